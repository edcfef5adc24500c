"""The time split of the label-times table: train, valid and test, never at random.

The latest labelled cutoffs are the test set (`test_cutoffs` of them on a cutoff grid, the latest
`test_fraction` of rows for user-supplied label times, or everything from `test_from`). The valid
set comes just before it, the rest is train.

Purging: a train or valid label only known after the test starts (its window, plus grace,
reaches into the test period) would let training peek at the test period, so it is dropped. The
gap is automatic: only the cutoffs whose windows overlap the test go, about horizon / 30 of them
on monthly cutoffs, and the valid set is the cutoffs just before that gap. On a cutoff grid the
whole cutoff goes, so every split keeps the same mix of customers; with user label times, where
cutoffs differ per customer, the row goes.

A split that leaves a part empty is refused here, with the counts and the settings that would
work, rather than by a traceback in a later stage.

The decision looks only at counts of rows per (cutoff, label_known_at), a few per cutoff, so it is
the same for a pandas frame (`split_by_cutoff`) and for an engine table too large to collect
(`split_column` applies it there).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import ibis
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SPLIT_KEYS = ("test_cutoffs", "valid_cutoffs", "test_fraction", "valid_fraction", "purge", "test_from", "valid_from")


@dataclass(frozen=True)
class SplitSpec:
    test_cutoffs: int = 2
    valid_cutoffs: int = 1
    test_fraction: float = 0.2
    valid_fraction: float = 0.1
    purge: bool = True
    test_from: datetime | None = None   # set: the test set is every cutoff on or after it
    valid_from: datetime | None = None  # set: the valid set is every cutoff from it to the test

    def __post_init__(self) -> None:
        for name in ("test_cutoffs", "valid_cutoffs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"labels.split.{name} must be a whole number of at least 1, got {value!r}")
        for name in ("test_fraction", "valid_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ValueError(f"labels.split.{name} must be between 0 and 1 (a share of rows), got {value!r}")
        if self.test_fraction + self.valid_fraction >= 1:
            raise ValueError(
                f"labels.split.test_fraction ({self.test_fraction}) and valid_fraction ({self.valid_fraction}) "
                f"add up to 1 or more and leave nothing for train"
            )
        if not isinstance(self.purge, bool):
            raise ValueError(f"labels.split.purge must be true or false, got {self.purge!r}")
        if self.test_from and self.valid_from and self.valid_from >= self.test_from:
            raise ValueError(
                f"labels.split.valid_from ({self.valid_from:%Y-%m-%d}) must be before labels.split.test_from "
                f"({self.test_from:%Y-%m-%d})"
            )


def split_spec(labels: dict[str, Any]) -> SplitSpec:
    """The `labels.split` config section as a SplitSpec; impossible settings are refused."""
    split = labels.get("split") or {}
    unknown = sorted(set(split) - set(SPLIT_KEYS))
    if unknown:
        raise ValueError(
            f"unknown setting(s) labels.split.{', labels.split.'.join(unknown)}; known: {', '.join(SPLIT_KEYS)}"
        )
    defaults = SplitSpec()
    values = {key: split[key] for key in SPLIT_KEYS if split.get(key) is not None}
    for key in ("test_cutoffs", "valid_cutoffs"):
        # 2.0 from YAML is 2; 1.5 is not silently truncated to 1
        if isinstance(values.get(key), float) and values[key].is_integer():
            values[key] = int(values[key])
    for key in ("test_from", "valid_from"):
        if key in values:
            values[key] = _date(key, values[key])
    return replace(defaults, **values)


def _date(key: str, value: Any) -> datetime:
    try:
        return pd.Timestamp(value).normalize().to_pydatetime()
    except (ValueError, TypeError):
        raise ValueError(f"labels.split.{key}: {value!r} is not a date; write it as YYYY-MM-DD") from None


def split_by_cutoff(
    frame: pd.DataFrame, split: SplitSpec, custom_times: bool, *, horizon_days: int | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Add `split` (train / valid / test / purged) to labelled rows, and the warnings it raised.

    `custom_times`: the rows are user-supplied label times (cutoffs differ per customer), split by
    shares of rows and purged row by row. `horizon_days` is only used to suggest a shorter window
    when the split is impossible.
    """
    frame = frame.copy()
    if frame.empty:
        frame["split"] = pd.Series(dtype="string")
        return frame, []
    decision, notes = decide_split(cutoff_counts(frame), split, custom_times, horizon_days=horizon_days)
    frame["split"] = split_of(frame, decision).to_numpy()
    return frame, notes


@dataclass(frozen=True)
class SplitDecision:
    """Where test and valid start and what the purge drops: taken from counts per cutoff, then
    applied alike to rows in pandas (`split_of`) or to an engine table (`split_column`)."""

    test_start: pd.Timestamp
    valid_start: pd.Timestamp | None = None
    purged_cutoffs: tuple[pd.Timestamp, ...] = ()  # on a cutoff grid the whole cutoff goes
    purge_rows: bool = False  # user label times: each row known after test_start goes


def cutoff_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Labelled rows as counts per (cutoff, label_known_at): all the split decision looks at."""
    keys = pd.DataFrame({"cutoff": pd.to_datetime(frame["cutoff"]),
                         "label_known_at": pd.to_datetime(frame["label_known_at"]) if "label_known_at" in frame
                         else pd.NaT})
    return keys.groupby(["cutoff", "label_known_at"], dropna=False).size().rename("rows").reset_index()


def decide_split(
    counts: pd.DataFrame, split: SplitSpec, custom_times: bool, *, horizon_days: int | None = None
) -> tuple[SplitDecision | None, list[str]]:
    """The split of labelled rows given as `counts` (cutoff, label_known_at, rows), and its warnings.

    None when there are no rows; a split that leaves a part empty is refused with the counts and
    the settings that would work.
    """
    notes: list[str] = []
    if counts.empty or not counts["rows"].sum():
        return None, notes
    decision = _decide(counts, split, custom_times, notes)
    out = counts.assign(split=split_of(counts, decision))
    if not {"train", "valid", "test"} <= set(out["split"]):
        raise ValueError(_impossible(counts, out, split, custom_times, horizon_days))
    for note in notes:
        log.warning(note)
    return decision, notes


def split_of(frame: pd.DataFrame, decision: SplitDecision) -> pd.Series:
    """The split of each row of `frame` (cutoff, label_known_at) under `decision`."""
    cutoffs = pd.to_datetime(frame["cutoff"])
    out = pd.Series("train", index=frame.index, dtype=object)
    if decision.valid_start is not None:
        out[cutoffs >= decision.valid_start] = "valid"
    out[_purged(frame, decision)] = "purged"
    out[cutoffs >= decision.test_start] = "test"
    return out


def split_column(table: Any, decision: SplitDecision | None) -> Any:
    """The same split as `split_of`, as an Ibis expression on a table with cutoff and label_known_at."""
    if decision is None:  # no rows
        return ibis.literal("train")
    branches = [(table.cutoff >= _timestamp(decision.test_start), "test")]
    if decision.purged_cutoffs:
        branches.append((table.cutoff.isin([_timestamp(c) for c in decision.purged_cutoffs]), "purged"))
    if decision.purge_rows:
        branches.append((table.label_known_at > _timestamp(decision.test_start), "purged"))
    if decision.valid_start is not None:
        branches.append((table.cutoff >= _timestamp(decision.valid_start), "valid"))
    return ibis.cases(*branches, else_="train")


def _timestamp(value: Any) -> ibis.Value:
    return ibis.literal(pd.Timestamp(value).to_pydatetime(), type="timestamp")


def _purged(frame: pd.DataFrame, decision: SplitDecision) -> pd.Series:
    cutoffs = pd.to_datetime(frame["cutoff"])
    before = cutoffs < decision.test_start
    if decision.purge_rows:
        return before & (pd.to_datetime(frame["label_known_at"]) > decision.test_start)
    return before & cutoffs.isin(decision.purged_cutoffs)


def _decide(counts: pd.DataFrame, split: SplitSpec, custom_times: bool, notes: list[str]) -> SplitDecision:
    cutoffs, rows = pd.to_datetime(counts["cutoff"]), counts["rows"]
    decision = SplitDecision(_test_start(cutoffs, rows, split, custom_times))
    before = cutoffs < decision.test_start
    if split.purge:
        leaky = before & (pd.to_datetime(counts["label_known_at"]) > decision.test_start)
        decision = (replace(decision, purge_rows=True) if custom_times
                    else replace(decision, purged_cutoffs=tuple(sorted(cutoffs[leaky].unique()))))
        before = before & ~_purged(counts, decision)
    if before.any():
        decision = replace(decision, valid_start=_valid_start(cutoffs[before], rows[before], split, custom_times,
                                                               notes))
    return decision


def _assign(counts: pd.DataFrame, split: SplitSpec, custom_times: bool, notes: list[str]) -> pd.DataFrame:
    return counts.assign(split=split_of(counts, _decide(counts, split, custom_times, notes)))


def _quantile(values: pd.Series, rows: pd.Series, q: float) -> pd.Timestamp:
    """`values` repeated `rows` times, then `.quantile(q, interpolation="higher")`, without the repeat.

    pandas asks np.quantile, which takes index ceil((n - 1) * q) of the sorted values; the same
    float product picks the same row (tests/test_observation_table.py checks it against pandas).
    """
    order = values.sort_values(kind="stable").index
    ends = rows[order].cumsum().to_numpy()
    index = min(int(np.ceil((ends[-1] - 1) * np.float64(q))), int(ends[-1]) - 1)
    return pd.Timestamp(values[order].iloc[int(np.searchsorted(ends, index, side="right"))])


def _test_start(cutoffs: pd.Series, rows: pd.Series, split: SplitSpec, custom_times: bool) -> pd.Timestamp:
    if split.test_from is not None:
        return pd.Timestamp(split.test_from)
    if custom_times:
        return _quantile(cutoffs, rows, 1 - split.test_fraction)
    distinct = sorted(cutoffs.unique())
    # more test cutoffs than there are: all of them are test, and the check says so
    return pd.Timestamp(distinct[-min(split.test_cutoffs, len(distinct))])


def _valid_start(remaining: pd.Series, rows: pd.Series, split: SplitSpec, custom_times: bool, notes: list[str]
                 ) -> pd.Timestamp:
    if split.valid_from is not None:
        return pd.Timestamp(split.valid_from)
    if custom_times:
        return _quantile(remaining, rows, 1 - split.valid_fraction / (1 - split.test_fraction))
    distinct = sorted(remaining.unique())
    taken = min(split.valid_cutoffs, max(1, len(distinct) - 1))
    if taken < split.valid_cutoffs:
        notes.append(
            f"labels.split.valid_cutoffs is {split.valid_cutoffs} but only {len(distinct)} cutoff(s) remain before "
            f"the test set: valid gets {taken} so that train keeps at least one"
        )
    return pd.Timestamp(distinct[-taken])


# ---------------------------------------------------------------- the message for an impossible split


def _impossible(
    frame: pd.DataFrame, out: pd.DataFrame, split: SplitSpec, custom_times: bool, horizon_days: int | None
) -> str:
    """Which part is empty, how many cutoffs each part got, what the purge removed, what would work.

    `frame`: counts of rows per cutoff (`cutoff_counts`); `out`: the same with their split."""
    cutoffs = pd.to_datetime(out["cutoff"])
    got = {name: cutoffs[out["split"] == name] for name in ("test", "purged", "valid", "train")}
    if got["test"].empty:
        return (f"labels.split leaves no test rows: labels.split.test_from {split.test_from:%Y-%m-%d} is after "
                f"every labelled cutoff (the last labelled cutoff is {_day(cutoffs.max())}); set an earlier "
                f"labels.split.test_from")
    empty = " or ".join(word for name, word in (("train", "train"), ("valid", "validation")) if got[name].empty)
    purged = sorted(got["purged"].unique())
    parts = [f"of {cutoffs.nunique()} labelled cutoffs ({_day(cutoffs.min())} .. {_day(cutoffs.max())}), "
             f"test got {got['test'].nunique()} (from {_day(got['test'].min())})"]
    if split.purge:
        named = ", ".join(_day(c) for c in purged[:6]) + (", ..." if len(purged) > 6 else "")
        rows = int(out.loc[out["split"] == "purged", "rows"].sum())
        parts.append(f"the purge removed {len(purged)} ({named or 'none'}), {rows} row(s) whose "
                     f"labels are only known after the test starts")
    parts.append(f"valid got {got['valid'].nunique()}, train got {got['train'].nunique()}.")
    message = f"labels.split leaves no {empty} rows: " + ", ".join(parts)
    if not custom_times and split.test_from is None and split.valid_from is None:
        needed = split.test_cutoffs + len(purged) + split.valid_cutoffs + 1
        message += f" This split needs at least {needed} labelled cutoffs; you have {cutoffs.nunique()}."
    fixes = _fixes(frame, split, custom_times, horizon_days)
    fixes.append("or more history (an earlier labels.cutoffs.start or a smaller labels.cutoffs.min_history_days)")
    return message + " Settings that would work: " + "; ".join(fixes) + "."


def _works(frame: pd.DataFrame, split: SplitSpec, custom_times: bool) -> bool:
    try:
        parts = set(_assign(frame, split, custom_times, [])["split"])
    except (ValueError, IndexError):
        return False
    return {"train", "valid", "test"} <= parts


def _fixes(frame: pd.DataFrame, split: SplitSpec, custom_times: bool, horizon_days: int | None) -> list[str]:
    """The nearest settings that give every part rows, each tried on these very rows."""
    fixes = []
    if split.test_from is not None:
        later = [c for c in sorted(pd.to_datetime(frame["cutoff"]).unique()) if c > pd.Timestamp(split.test_from)]
        works = next((c for c in later if _works(frame, replace(split, test_from=c.to_pydatetime(), valid_from=None),
                                                    custom_times)), None)
        if works is not None:
            fixes.append(f"labels.split.test_from: {_day(works)} (without valid_from)")
    elif custom_times:
        for share in (0.15, 0.1, 0.05):
            if share < split.test_fraction and _works(frame, replace(split, test_fraction=share), custom_times):
                fixes.append(f"labels.split.test_fraction: {share}")
                break
    else:
        for count in range(split.test_cutoffs - 1, 0, -1):
            if _works(frame, replace(split, test_cutoffs=count), custom_times):
                fixes.append(f"labels.split.test_cutoffs: {count}")
                break
    if split.valid_from is not None and _works(frame, replace(split, valid_from=None), custom_times):
        fixes.append("no labels.split.valid_from (valid is then the cutoffs just before the test)")
    shorter = _shorter_horizon(frame, split, custom_times, horizon_days)
    if shorter:
        fixes.append(f"labels.horizon_days: {shorter} or less")
    if split.purge and _works(frame, replace(split, purge=False), custom_times):
        fixes.append("labels.split.purge: false (train labels then overlap the test period)")
    return fixes


def _shorter_horizon(frame: pd.DataFrame, split: SplitSpec, custom_times: bool, horizon_days: int | None) -> int:
    """The longest horizon whose label windows leave train and valid rows before the test (0: none).

    Shortening the window by d days makes every label known d days sooner; fewer rows are purged
    the shorter it gets, so a binary search finds the least cut that works.
    """
    if not horizon_days or not split.purge:
        return 0
    known = pd.to_datetime(frame["label_known_at"])

    def works(cut: int) -> bool:
        return _works(frame.assign(label_known_at=known - pd.Timedelta(days=cut)), split, custom_times)

    low, high = 1, horizon_days - 1
    if high < low or not works(high):
        return 0
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if works(middle) else (middle + 1, high)
    # a shorter window also labels later cutoffs, so this bound is on the safe side
    return horizon_days - low


def _day(value: Any) -> str:
    return f"{pd.Timestamp(value):%Y-%m-%d}"
