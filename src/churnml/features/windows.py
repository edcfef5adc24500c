"""Window aggregates at many cutoffs in one pass over an activity table.

Every window a feature needs ends at a cutoff and starts at `cutoff - w`; all those instants
(midnights) are the grid's probe points. Sorted, they cut time into buckets, so a row's bucket is
a cheap expression of its timestamp, and the table is aggregated once by (customer, bucket): a
GROUP BY with few groups, like the floor pass. Those few rows per customer are then joined to a
tiny membership table, one row per (cutoff, bucket before it) with a 0/1 flag per window, and
grouped by (customer, cutoff): a window's sum is sum(x * flag). No sort of the events, and no
join of events to cutoffs.

Rows at or after a cutoff fall in buckets after it and never reach its group: the point-in-time
rule is the bucket arithmetic itself.

Only portable Ibis: the same expressions run on DuckDB and on Spark and must give the same
values. Probes are midnights, so a day lies in one bucket and a window's active days are the sum
of its buckets' distinct days (an earlier bitmask of days compiled to a 32-bit shift on Spark).
Durations are divided as floats (a float literal is an exact decimal on Spark, which rounds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir
import pandas as pd

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Grid:
    """The probe points for a set of cutoffs and window lengths (days)."""

    cutoffs: tuple[datetime, ...]
    windows: tuple[int, ...]
    probes: tuple[datetime, ...]

    @classmethod
    def for_cutoffs(cls, cutoffs: list[datetime], windows: list[int]) -> Grid:
        for c in cutoffs:
            if c != datetime(c.year, c.month, c.day):
                raise ValueError(f"cutoff {c} is not a midnight: cutoffs are dates")
        probes = sorted({c - timedelta(days=w) for c in cutoffs for w in (0, *windows)})
        return cls(cutoffs=tuple(sorted(cutoffs)), windows=tuple(sorted(set(windows))), probes=tuple(probes))

    def bucket_of(self, ts: ir.TimestampValue) -> ir.IntegerValue:
        """Bucket b holds the times with exactly b probe points at or before them."""
        return ibis.cases(*[(ts < ibis.literal(p), i) for i, p in enumerate(self.probes)], else_=len(self.probes))

    def window(self, cutoff: datetime, days: int | None) -> range:
        """Buckets of [cutoff - days, cutoff); days None: all history before the cutoff."""
        end = self.probes.index(cutoff)
        start = 0 if days is None else self.probes.index(cutoff - timedelta(days=days)) + 1
        return range(start, end + 1)

    def membership(self) -> ir.Table:
        """(cutoff, _bucket, in_<w> for each window): which buckets lie before which cutoff."""
        rows = []
        for c in self.cutoffs:
            inside = {w: set(self.window(c, w)) for w in self.windows}
            for b in self.window(c, None):
                rows.append({"_cutoff": c, "_bucket": b, **{f"_in_{w}": int(b in inside[w]) for w in self.windows}})
        frame = pd.DataFrame(rows)
        frame["_cutoff"] = frame["_cutoff"].astype("datetime64[us]")
        return ibis.memtable(frame)


def days_between(later: ir.TimestampValue, earlier: ir.TimestampValue) -> ir.FloatingValue:
    """Days from `earlier` to `later`, fractional, null when either is null. The seconds are
    made a float before dividing: Spark reads 86400.0 as a decimal and would round the result."""
    return later.delta(earlier, unit="second").cast("float64") / SECONDS_PER_DAY


def distinct_days(ts: ir.TimestampValue) -> ir.IntegerValue:
    """A measure: the number of distinct calendar days among the rows. A day lies in one bucket,
    so summing it over a window's buckets counts the window's active days."""
    return ts.date().nunique()


def window_rows(table: ir.Table, time_column: str, grid: Grid,
                measures: Callable[[ir.Table], dict[str, ir.Scalar]]) -> ir.Table:
    """Per (customer, bucket) aggregates, each joined to every cutoff it lies before.

    `measures(rows)` gives aggregate expressions over the rows (count, sum, max, min, arg_max,
    distinct days).
    """
    ts = table[time_column]
    rows = table.filter(ts < ibis.literal(grid.cutoffs[-1])).mutate(_bucket=grid.bucket_of(ts))
    per_bucket = rows.group_by(["customer_id", "_bucket"]).aggregate(**measures(rows))
    return per_bucket.join(grid.membership(), "_bucket")


class At:
    """Window aggregates at one (customer, cutoff) group of `window_rows`: every method is a
    reduction, so feature expressions built from them go straight into an aggregate."""

    def __init__(self, rows: ir.Table):
        self.rows = rows

    def _flag(self, days: int | None) -> ir.IntegerValue | None:
        return None if days is None else self.rows[f"_in_{days}"]

    def sum(self, name: str, days: int | None = None) -> ir.NumericValue:
        # a zero of the column's own type, and a choice rather than `value * flag`: on Spark a
        # decimal(38, 9) times an integer loses scale and rounds exact sums to 6 decimals
        zero = ibis.literal(0).cast(self.rows[name].type())
        value = self.rows[name].fill_null(zero)
        flag = self._flag(days)
        return (value if flag is None else ibis.ifelse(flag == 1, value, zero)).sum()

    def greatest(self, name: str, days: int | None = None) -> ir.Value:
        flag = self._flag(days)
        return self.rows[name].max(where=None if flag is None else flag == 1)

    def least(self, name: str, days: int | None = None) -> ir.Value:
        flag = self._flag(days)
        return self.rows[name].min(where=None if flag is None else flag == 1)

    def latest(self, name: str) -> ir.Value:
        """The value of the latest bucket before the cutoff that has one."""
        value = self.rows[name]
        return value.argmax(ibis.ifelse(value.notnull(), self.rows._bucket, None))

    def since(self, ts: ir.TimestampValue) -> ir.FloatingValue:
        """Days from `ts` to the cutoff (null when `ts` is null)."""
        return days_between(self.rows._cutoff.max(), ts)
