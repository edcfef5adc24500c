"""The summary of a scoring run, from the scores as an engine table: counts by tier, value at
risk, the probability distribution and the drift. Only aggregates are computed, so a base
scored on a cluster is summarised where it lies, exactly as one scored in process."""

from __future__ import annotations

from datetime import datetime

import ibis
import pandas as pd

QUANTILES = (10, 25, 50, 75, 90, 99)
HISTOGRAM_BINS = 20


def score_summary(scores: ibis.Table, risk_tiers: dict[str, float], drift: pd.DataFrame | None, *,
                  as_of: datetime, model_version: str, population: str, lapsed_within_days: int | None,
                  counts: dict) -> dict:
    """Everything a scoring run reports but its timings; `counts` are scoring.eligible's."""
    p = scores.churn_probability
    # the histogram's bin of each probability: [i/20, (i+1)/20), the last one closed at 1
    bucket = ibis.least((p * HISTOGRAM_BINS).floor().cast("int64"), HISTOGRAM_BINS - 1)
    aggregates = {
        "value_at_risk": scores.value_at_risk.sum(),
        "explained": scores.reason_1.notnull().cast("int64").sum(),
        **{f"tier_{i}": (scores.risk_tier == name).cast("int64").sum() for i, name in enumerate(risk_tiers)},
        **{f"p{q}": p.quantile(q / 100) for q in QUANTILES},
        **{f"bin_{i}": (bucket == i).cast("int64").sum() for i in range(HISTOGRAM_BINS)},
    }
    total = scores.aggregate(rows=scores.count(), **aggregates).to_pandas().iloc[0]
    scored = int(total["rows"])
    as_int = lambda key: int(total[key]) if scored else 0  # noqa: E731 - sums over no rows are null
    return {
        "as_of": f"{pd.Timestamp(as_of):%Y-%m-%d}",
        "model_version": str(model_version),
        "population": population,
        "lapsed_within_days": lapsed_within_days,
        **counts,
        "tiers": {name: as_int(f"tier_{i}") for i, name in enumerate(risk_tiers)},
        "top_tier": max(risk_tiers, key=risk_tiers.get),
        "explained": as_int("explained"),
        "value_at_risk": round(float(total["value_at_risk"]), 2) if scored else 0.0,
        "probability_quantiles": {f"p{q}": round(float(total[f"p{q}"]), 6) for q in QUANTILES} if scored else {},
        "probability_histogram": {"edges": [round(i / HISTOGRAM_BINS, 4) for i in range(HISTOGRAM_BINS + 1)],
                                  "counts": [as_int(f"bin_{i}") for i in range(HISTOGRAM_BINS)]},
        "drifted_features": [] if drift is None else drift.loc[drift["drifted"], "feature"].tolist(),
        "drift": None if drift is None else drift.round(6).to_dict("records"),
    }
