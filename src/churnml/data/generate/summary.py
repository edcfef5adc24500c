"""Counts of what was planted: per chunk, summed over chunks, and the summary of ground_truth.json
(rows, churn by billing and cause, churn rates, returns, life events)."""

from __future__ import annotations

from typing import Any

from churnml.data.generate.activity import Grid
from churnml.data.generate.population import Population
from churnml.data.generate.subscriptions import Spells
from churnml.data.generate.timeline import NEVER
from churnml.data.generate.vocab import BILLING, CAUSES
from churnml.data.generate.weekly import History


def chunk_stats(pop: Population, hist: History, grid: Grid, spells: Spells) -> dict[str, Any]:
    """A chunk's customers, churners, exposure days, churns by cause, returns and life events."""
    bill, cause, churned = pop.bill, hist.cause, hist.churned
    exposure = grid.length.reshape(pop.n, grid.n_weeks).sum(axis=1)
    return {
        "customers": {b: int((bill == i).sum()) for i, b in enumerate(BILLING)},
        "churned": {b: int((churned & (bill == i)).sum()) for i, b in enumerate(BILLING)},
        "exposure_days": {b: int(exposure[bill == i].sum()) for i, b in enumerate(BILLING)},
        "churn_by_cause": {c: int((cause == i).sum()) for i, c in enumerate(CAUSES)},
        "churn_by_cause_billing": {
            b: {c: int(((cause == i) & (bill == j)).sum()) for i, c in enumerate(CAUSES)}
            for j, b in enumerate(BILLING)
        },
        "returned": int(hist.returned.sum()),
        "plan_changes": int((hist.pp.change_day < NEVER).sum()),
        "price_increases": int((hist.pp.inc_day < NEVER).sum()),
        "payment_lapses": int(spells.lapsed.sum()),
    }


def merge_stats(total: dict[str, Any], part: dict[str, Any]) -> None:
    """Add a chunk's counts into `total`, nested dicts key by key."""
    for k, v in part.items():
        if isinstance(v, dict):
            merge_stats(total.setdefault(k, {}), v)
        else:
            total[k] = total.get(k, 0) + v


def summarise(stats: dict[str, Any], rows: dict[str, int]) -> dict[str, Any]:
    """The summary of the whole dataset from the merged counts and the rows written per table."""
    month_days = 365.25 / 12
    n_total = sum(stats["customers"].values())
    churned_total = sum(stats["churned"].values())
    exposure_total = sum(stats["exposure_days"].values())
    return {
        "rows": dict(rows),
        "customers_by_billing": stats["customers"],
        "churned": churned_total,
        "churned_by_billing": stats["churned"],
        "churn_by_cause": stats["churn_by_cause"],
        "churn_by_cause_and_billing": stats["churn_by_cause_billing"],
        "churn_rate": round(churned_total / n_total, 4),
        "churn_rate_by_billing": {
            b: round(stats["churned"][b] / c, 4) if c else None for b, c in stats["customers"].items()
        },
        "monthly_churn_rate": round(churned_total / (exposure_total / month_days), 4) if exposure_total else None,
        "monthly_churn_rate_by_billing": {
            b: round(stats["churned"][b] / (e / month_days), 4) if e else None
            for b, e in stats["exposure_days"].items()
        },
        "returned_after_churn": stats["returned"],
        "plan_changes": stats["plan_changes"],
        "price_increases": stats["price_increases"],
        "payment_lapses": stats["payment_lapses"],
    }
