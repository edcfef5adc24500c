"""Scoring the customer base at a date with a trained model.

Who is scored follows the label definition: the customers the model would have been trained on
at that date (signed up before it and still a customer at it). Everyone else is counted in the
summary, never silently dropped.
"""

from __future__ import annotations

from datetime import datetime

import ibis
import numpy as np
import pandas as pd
import xgboost as xgb

from churnml.explain import explain_rows
from churnml.features import build_features
from churnml.model import design_matrix, predict_proba, spec_of
from churnml.observations import LabelSpec, candidates, label_rows, observed_until


def default_as_of(tables: dict[str, ibis.Table]) -> datetime:
    """The day after the last activity in the data."""
    return observed_until(tables)


def eligible_customers(
    tables: dict[str, ibis.Table], as_of: datetime, spec: LabelSpec
) -> tuple[pd.DataFrame, dict[str, int]]:
    """(customer_id, cutoff) of everyone observed at `as_of`, and counts of who was not."""
    definition = spec.fallback if spec.definition == "custom" else spec.definition
    customers = tables["customers"]
    total = int(customers.count().execute())
    rows = candidates(customers, [as_of])
    signed_up = int(rows.count().execute())
    observed = label_rows(tables, rows, spec, as_of, definition).select("customer_id", "cutoff")
    frame = observed.to_pandas().sort_values("customer_id", kind="stable").reset_index(drop=True)
    counts = {
        "customers": total,
        "scored": int(len(frame)),
        "not_yet_signed_up": total - signed_up,
        "already_churned": signed_up - int(len(frame)),
    }
    return frame, counts


def risk_tier(probability: np.ndarray, tiers: dict[str, float]) -> np.ndarray:
    """The first tier (highest threshold first) whose threshold the probability reaches."""
    ordered = sorted(tiers.items(), key=lambda kv: -kv[1])
    out = np.full(len(probability), ordered[-1][0], dtype=object)
    for name, threshold in reversed(ordered):
        out[probability >= threshold] = name
    return out


def score_customers(
    tables: dict[str, ibis.Table],
    booster: xgb.Booster,
    *,
    as_of: datetime,
    label_spec: LabelSpec,
    risk_tiers: dict[str, float],
    top_k: int = 3,
    explain: str = "at-risk",
    model_version: str = "",
) -> tuple[pd.DataFrame, dict]:
    """One row per scored customer, highest risk first, and a summary of the run."""
    spec = spec_of(booster)
    observed, counts = eligible_customers(tables, as_of, label_spec)
    features = build_features(tables, ibis.memtable(observed), spec).to_pandas()
    matrix = design_matrix(features, spec)
    probability = predict_proba(booster, matrix, spec) if len(matrix) else np.array([])
    tiers = risk_tier(probability, risk_tiers)
    scores = pd.DataFrame(
        {
            "customer_id": features["customer_id"].astype("string"),
            "as_of": pd.Timestamp(as_of).normalize(),
            "churn_probability": probability.astype("float64"),
            "risk_tier": pd.Series(tiers, dtype="string"),
        }
    )
    top_tier = max(risk_tiers, key=risk_tiers.get)
    explain_mask = {"all": np.ones(len(scores), bool), "none": np.zeros(len(scores), bool),
                    "at-risk": scores["risk_tier"].to_numpy() != min(risk_tiers, key=risk_tiers.get)}[explain]
    reason_cols = [f"reason_{i + 1}" for i in range(top_k)]
    if explain_mask.any():
        reasons, _ = explain_rows(booster, features[explain_mask], matrix[explain_mask], spec, top_k)
        scores = scores.join(reasons)
    for col in reason_cols:
        if col not in scores.columns:
            scores[col] = pd.Series([None] * len(scores), dtype="string")
    scores["model_version"] = str(model_version)
    scores = scores.sort_values(["churn_probability", "customer_id"], ascending=[False, True], kind="stable")
    scores.insert(4, "rank", np.arange(1, len(scores) + 1))
    scores = scores.reset_index(drop=True)
    summary = {
        "as_of": f"{pd.Timestamp(as_of):%Y-%m-%d}",
        "model_version": str(model_version),
        **counts,
        "tiers": {name: int((scores["risk_tier"] == name).sum()) for name in risk_tiers},
        "top_tier": top_tier,
    }
    return scores, summary
