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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

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
    notes: list[str] = []
    out = _assign(frame, split, custom_times, notes)
    if out.empty:
        return out, notes
    parts = out["split"].value_counts()
    if not all(parts.get(name, 0) for name in ("train", "valid", "test")):
        raise ValueError(_impossible(frame, out, split, custom_times, horizon_days))
    for note in notes:
        log.warning(note)
    return out, notes


def _assign(frame: pd.DataFrame, split: SplitSpec, custom_times: bool, notes: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    if frame.empty:
        frame["split"] = pd.Series(dtype="string")
        return frame
    cutoffs = pd.to_datetime(frame["cutoff"])
    test_start = _test_start(cutoffs, split, custom_times)
    is_test = cutoffs >= test_start
    frame["split"] = "train"
    frame.loc[is_test, "split"] = "test"
    before = ~is_test
    if split.purge:
        leaky = before & (pd.to_datetime(frame["label_known_at"]) > test_start)
        if not custom_times:
            leaky = before & cutoffs.isin(cutoffs[leaky].unique())
        frame.loc[leaky, "split"] = "purged"
        before = before & ~leaky
    remaining = cutoffs[before]
    if not remaining.empty:
        valid_start = _valid_start(remaining, split, custom_times, notes)
        frame.loc[before & (cutoffs >= valid_start), "split"] = "valid"
    return frame


def _test_start(cutoffs: pd.Series, split: SplitSpec, custom_times: bool) -> pd.Timestamp:
    if split.test_from is not None:
        return pd.Timestamp(split.test_from)
    if custom_times:
        return cutoffs.quantile(1 - split.test_fraction, interpolation="higher")
    distinct = sorted(cutoffs.unique())
    # more test cutoffs than there are: all of them are test, and the check says so
    return pd.Timestamp(distinct[-min(split.test_cutoffs, len(distinct))])


def _valid_start(remaining: pd.Series, split: SplitSpec, custom_times: bool, notes: list[str]) -> pd.Timestamp:
    if split.valid_from is not None:
        return pd.Timestamp(split.valid_from)
    if custom_times:
        return remaining.quantile(1 - split.valid_fraction / (1 - split.test_fraction), interpolation="higher")
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
    """Which part is empty, how many cutoffs each part got, what the purge removed, what would work."""
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
        parts.append(f"the purge removed {len(purged)} ({named or 'none'}), {len(got['purged'])} row(s) whose "
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
