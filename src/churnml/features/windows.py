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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pandas as pd

# active days are counted with a bitmask of days per bucket: a bucket must span < 63 days
MAX_BUCKET_DAYS = 62
_EPOCH = datetime(1970, 1, 1)


@ibis.udf.scalar.builtin(name="bit_count")
def _bit_count(x: dt.Int64) -> dt.Int8:
    """Number of set bits (DuckDB builtin)."""


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
        ordered = sorted({c - timedelta(days=w) for c in cutoffs for w in (0, *windows)})
        # split long buckets, for the active-day bitmask
        filled = [ordered[0]]
        for nxt in ordered[1:]:
            while (nxt - filled[-1]).days > MAX_BUCKET_DAYS:
                filled.append(filled[-1] + timedelta(days=MAX_BUCKET_DAYS))
            filled.append(nxt)
        return cls(cutoffs=tuple(sorted(cutoffs)), windows=tuple(sorted(set(windows))), probes=tuple(filled))

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


def day_bit(ts: ir.TimestampValue) -> ir.IntegerValue:
    """1 << (day number mod 63): OR-ed over a bucket, its bit count is the number of distinct days."""
    day = ts.delta(ibis.literal(_EPOCH), unit="day")
    return ibis.literal(1, type="int64") << (day % (MAX_BUCKET_DAYS + 1)).cast("int64")


def window_rows(table: ir.Table, time_column: str, grid: Grid,
                measures: Callable[[ir.Table], dict[str, ir.Scalar]]) -> ir.Table:
    """Per (customer, bucket) aggregates, each joined to every cutoff it lies before.

    `measures(rows)` gives aggregate expressions over the rows (count, sum, max, min, arg_max, bit_or).
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
        value = self.rows[name].fill_null(0)
        flag = self._flag(days)
        return (value if flag is None else value * flag).sum()

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

    def days(self, name: str, days: int | None = None) -> ir.IntegerValue:
        """Distinct days, from a bucket bitmask measure."""
        count = _bit_count(self.rows[name].fill_null(0)).cast("int64")
        flag = self._flag(days)
        return (count if flag is None else count * flag).sum()

    def since(self, ts: ir.TimestampValue) -> ir.FloatingValue:
        """Days from `ts` to the cutoff (null when `ts` is null)."""
        return self.rows._cutoff.max().delta(ts, unit="second") / 86400.0
