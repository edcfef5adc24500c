"""Rolling-origin folds: validation by time over the training cutoffs, for the search and early stopping.

One validation slice is one draw of "the future": a search judged on it alone picks parameters
that suit that month. Rolling-origin validation judges every candidate on several later cutoffs,
each time trained only on what was known before it, as the production model will be.

Fold k validates on one cutoff c_k (one of the latest cutoffs before the test set) and trains on
the cutoffs whose label window has closed by then: cutoff + lead + horizon + grace <= c_k. A
training label still open at c_k would tell the model what happens after c_k: the same purge the
observations stage applies between training and test, applied between each fold's two sides.
A fold needs `min_train_cutoffs` training cutoffs and both classes on each side; the rest are
left out with their reason. With fewer than two usable folds the caller falls back to the single
validation slice, and the plan says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Fold:
    valid_cutoff: pd.Timestamp
    train_cutoffs: tuple[pd.Timestamp, ...]
    train_rows: int
    valid_rows: int


@dataclass
class FoldPlan:
    folds: list[Fold]
    # cutoff (YYYY-MM-DD) -> why no fold validates on it
    skipped: dict[str, str] = field(default_factory=dict)
    purge_days: int = 0

    @property
    def rolling(self) -> bool:
        """Whether there are enough folds to judge by time; otherwise use the single slice."""
        return len(self.folds) >= 2

    def describe(self) -> str:
        """One line for the output and the MLflow tag: which validation the search used, and why."""
        if self.rolling:
            days = ", ".join(f"{f.valid_cutoff:%Y-%m-%d}" for f in self.folds)
            return f"rolling-origin, {len(self.folds)} folds (validating on {days}; purge {self.purge_days} days)"
        why = "; ".join(f"{day}: {reason}" for day, reason in self.skipped.items()) or "no cutoffs before the test set"
        return f"single slice: only {len(self.folds)} usable fold(s) ({why})"


def purge_days(lead_days: int, horizon_days: int, grace_days: int) -> int:
    """Days after a cutoff until its label is surely known. The grace period counts for every
    definition: it is only conservative for those that do not wait for it."""
    return int(lead_days) + int(horizon_days) + int(grace_days)


def rolling_origin_folds(rows: pd.DataFrame, folds: int, min_train_cutoffs: int, purge: int) -> FoldPlan:
    """Plan up to `folds` folds over `rows` (customer_id, cutoff, label: the training rows only,
    never the test set), validating on the latest distinct cutoffs, oldest fold first."""
    if folds < 1 or min_train_cutoffs < 1:
        raise ValueError(f"train.search.folds ({folds}) and train.search.min_train_cutoffs "
                         f"({min_train_cutoffs}) must be at least 1")
    cutoffs = pd.to_datetime(rows["cutoff"])
    distinct = sorted(cutoffs.unique())
    gap = pd.Timedelta(days=purge)
    plan = FoldPlan(folds=[], purge_days=purge)
    for valid_cutoff in distinct[-folds:] if distinct else []:
        valid_cutoff = pd.Timestamp(valid_cutoff)
        known = [pd.Timestamp(c) for c in distinct if pd.Timestamp(c) + gap <= valid_cutoff]
        in_train, in_valid = cutoffs.isin(known), cutoffs == valid_cutoff
        day = f"{valid_cutoff:%Y-%m-%d}"
        if len(known) < min_train_cutoffs:
            plan.skipped[day] = (f"{len(known)} training cutoff(s) have a closed label window by then, "
                                 f"fewer than train.search.min_train_cutoffs = {min_train_cutoffs}")
        elif rows.loc[in_train, "label"].nunique() < 2 or rows.loc[in_valid, "label"].nunique() < 2:
            plan.skipped[day] = "one side of the fold has a single class"
        else:
            plan.folds.append(Fold(valid_cutoff, tuple(known), int(in_train.sum()), int(in_valid.sum())))
    return plan


def fold_masks(rows: pd.DataFrame, fold: Fold) -> tuple[pd.Series, pd.Series]:
    """Boolean masks over `rows`: the fold's training rows and its validation rows."""
    cutoffs = pd.to_datetime(rows["cutoff"])
    return cutoffs.isin(list(fold.train_cutoffs)), cutoffs == fold.valid_cutoff


def refit_rounds(best_rounds: int, rows_all: int, rows_fit: int, power: float, ceiling: int) -> int:
    """Boosting rounds for the refit on every labelled row: the early-stopped count scaled by
    (rows_all / rows_fit) ** power, at least 1 and at most `ceiling` (model.num_boost_round).

    More rows support more trees before they overfit: power 1 scales the rounds in proportion to
    the rows (the usual rule when refitting on train + validation), 0 keeps them as they were.
    """
    if rows_fit <= 0 or best_rounds <= 0:
        raise ValueError(f"refit_rounds needs rows and rounds to scale, got {rows_fit} row(s), {best_rounds} round(s)")
    if power < 0:
        raise ValueError(f"train.refit_rounds_power must be >= 0, got {power}")
    scaled = round(best_rounds * (rows_all / rows_fit) ** power)
    return int(min(max(scaled, 1), ceiling))
