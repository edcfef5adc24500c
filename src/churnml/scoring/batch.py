"""Scoring the customer base at a date with a trained model.

Who is scored is a setting (`population`):
- active: the customers the model would have been trained on at that date (signed up before it
  and still a customer at it by the label definition);
- all (the default): also non-contractual customers who have lapsed (no activity in the active
  window) but were active within `lapsed_within_days`: the ones a win-back campaign wants. The
  model never trained on such rows, so their probability is an extrapolation; `status` marks them.
Contractual customers whose subscriptions have all ended have churned and are never scored.
Everyone left out is counted in the summary by reason, never silently dropped.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from datetime import datetime

import ibis
import numpy as np
import pandas as pd
import xgboost as xgb

from churnml.scoring.drift import add_counts, bin_counts, drift_from_counts
from churnml.modeling.evaluation import customer_value
from churnml.explain.reasons import explain_rows
from churnml.features.build import build_features, check_compatible, fit_population
from churnml.modeling.matrix import design_matrix
from churnml.modeling.booster import predict_proba, profile_of, spec_of
from churnml.features.label_times import (LabelSpec, activity_times, candidates, contractual_rows, label_rows,
                                          observed_until)


log = logging.getLogger(__name__)

EXPLAIN_MODES = ("at-risk", "all", "none")
POPULATIONS = ("all", "active")


def default_as_of(tables: dict[str, ibis.Table]) -> datetime:
    """The day after the last activity in the data."""
    return observed_until(tables)


def eligible_customers(
    tables: dict[str, ibis.Table],
    as_of: datetime,
    spec: LabelSpec,
    population: str = "all",
    lapsed_within_days: int | None = 365,
) -> tuple[pd.DataFrame, dict]:
    """(customer_id, cutoff, status) of everyone scored at `as_of`, and counts of who was not, by reason.

    status is active (observed by the label definition) or lapsed (a non-contractual customer
    past the active window whose last activity, or signup, is within `lapsed_within_days`; None:
    any time). Lapsed ones are scored only when `population` is all.
    """
    if population not in POPULATIONS:
        raise ValueError(f"score.population must be one of {POPULATIONS}, got '{population}'")
    definition = spec.fallback if spec.definition == "custom" else spec.definition
    customers = tables["customers"]
    total = int(customers.count().execute())
    rows = candidates(customers, [as_of])
    signed_up = int(rows.count().execute())
    observed = label_rows(tables, rows, spec, as_of, definition).select("customer_id", "cutoff")
    active = observed.to_pandas().assign(status="active")
    rest = _not_observed(tables, rows.anti_join(observed, "customer_id"), as_of, spec, definition,
                         lapsed_within_days)
    lapsed = rest[~rest["contractual"] & rest["recent"]]
    reasons = {
        "not_yet_signed_up": total - signed_up,
        "no_active_subscription": int(rest["contractual"].sum()),
        "lapsed_too_long": int((~rest["contractual"] & ~rest["recent"]).sum()),
        "lapsed": 0 if population == "all" else int(len(lapsed)),
    }
    parts = [active] + ([lapsed[["customer_id", "cutoff"]].assign(status="lapsed")] if population == "all" else [])
    frame = pd.concat(parts, ignore_index=True)
    frame = pd.DataFrame({
        "customer_id": frame["customer_id"].astype("string"),
        "cutoff": pd.to_datetime(frame["cutoff"]).astype("datetime64[us]"),
        "status": frame["status"].astype("string"),
    }).sort_values("customer_id", kind="stable").reset_index(drop=True)
    counts = {
        "customers": total,
        "scored": int(len(frame)),
        "scored_active": int((frame["status"] == "active").sum()),
        "scored_lapsed": int((frame["status"] == "lapsed").sum()),
        "not_scored": reasons,
        # the two flat counts of earlier versions, kept for dashboards that read them
        "not_yet_signed_up": reasons["not_yet_signed_up"],
        "already_churned": signed_up - int(len(frame)),
    }
    return frame, counts


def _not_observed(tables: dict[str, ibis.Table], rows: ibis.Table, as_of: datetime, spec: LabelSpec,
                  definition: str, lapsed_within_days: int | None) -> pd.DataFrame:
    """customer_id, cutoff, contractual, recent of signed-up customers the label definition does not observe.

    contractual: the subscription rule applies to them (so they have churned); recent: their last
    activity, or their signup, lies within `lapsed_within_days` of `as_of`.
    """
    if definition == "subscription":
        contractual = ibis.literal(True)
    elif definition == "hybrid" and "subscriptions" in tables:
        # the same split as label_rows: a subscription started before the date makes a subscriber
        rows = contractual_rows(rows, tables["subscriptions"])
        contractual = rows.contractual
    else:
        contractual = ibis.literal(False)
    rows = rows.mutate(contractual=contractual)
    if lapsed_within_days is None:
        recent = ibis.literal(True)
    else:
        since = ibis.literal(as_of) - ibis.interval(days=int(lapsed_within_days))
        activity = activity_times(tables, spec)
        if activity is not None:
            before = activity.filter(activity.ts < ibis.literal(as_of))
            last = before.group_by("customer_id").aggregate(last_ts=before.ts.max())
            rows = rows.left_join(last, "customer_id").select(rows, last.last_ts)
            recent = (rows.last_ts >= since).fill_null(False) | (rows.signup_date >= since)
        else:
            recent = rows.signup_date >= since
    picked = rows.select("customer_id", "cutoff", "contractual", recent=recent).to_pandas()
    return picked.astype({"contractual": bool, "recent": bool})


def risk_tier(probability: np.ndarray, tiers: dict[str, float]) -> np.ndarray:
    """The first tier (highest threshold first) whose threshold the probability reaches."""
    ordered = sorted(tiers.items(), key=lambda kv: -kv[1])
    out = np.full(len(probability), ordered[-1][0], dtype=object)
    for name, threshold in reversed(ordered):
        out[probability >= threshold] = name
    return out


def _chunks(frame: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    size = max(1, int(size))
    return [frame.iloc[i:i + size] for i in range(0, len(frame), size)] or [frame]


def _progress(total: int, show_bar: bool):
    """A tqdm bar on a terminal; plain log lines otherwise (scheduled runs write to files)."""
    if not show_bar:
        return None
    from tqdm import tqdm

    size = shutil.get_terminal_size((0, 0))
    # a terminal that reports no size (a pseudo-terminal a scheduler opened, `docker run -t`)
    # makes tqdm hide the bar; give it a conventional one instead
    shape = {} if size.columns > 0 and size.lines > 0 else {"ncols": 80, "nrows": 24}
    return tqdm(total=total, unit="customer", desc="scoring", file=sys.stderr, **shape)


def score_customers(
    tables: dict[str, ibis.Table],
    booster: xgb.Booster,
    *,
    as_of: datetime,
    label_spec: LabelSpec,
    risk_tiers: dict[str, float],
    top_k: int = 5,
    explain: str = "at-risk",
    model_version: str = "",
    value: dict | None = None,
    customers_per_chunk: int = 250_000,
    progress: bool = False,
    device: str = "cpu",
    population: str = "all",
    lapsed_within_days: int | None = 365,
) -> tuple[pd.DataFrame, dict]:
    """One row per scored customer, highest risk first, and a summary of the run.

    Customers are scored chunk by chunk (features, probability, reasons), so memory follows the
    chunk size, not the size of the base. `value` ({"value", "value_months", "constant_value"},
    as in evaluate.economics) prices each customer for `value_at_risk` = probability x value.
    `population` and `lapsed_within_days` decide who is scored (see eligible_customers).
    """
    spec = spec_of(booster)
    check_compatible(spec, tables)
    if explain not in EXPLAIN_MODES:
        raise ValueError(f"explain must be one of {EXPLAIN_MODES}, got '{explain}'")
    value = value or {"value": "auto", "value_months": 12, "constant_value": 0.0}
    started = time.perf_counter()
    observed, counts = eligible_customers(tables, as_of, label_spec, population, lapsed_within_days)
    status = observed.set_index("customer_id")["status"]
    phases = dict.fromkeys(("eligible", "features", "predict", "explain"), 0.0)
    phases["eligible"] = time.perf_counter() - started
    lowest = min(risk_tiers, key=risk_tiers.get)
    profile = profile_of(booster)
    parts, drift_counts = [], None
    bar = _progress(len(observed), progress)
    chunks = _chunks(observed, customers_per_chunk)
    # population-level features (the purchase-process model) are fitted on the whole base, not per chunk
    fitted = fit_population(spec, tables, [pd.Timestamp(c).to_pydatetime() for c in observed["cutoff"].unique()])
    for number, chunk in enumerate(chunks, start=1):
        started = time.perf_counter()
        ids = ibis.memtable(chunk[["customer_id"]])
        sliced = {name: (t if name == "customers" else t.semi_join(ids, "customer_id")) for name, t in tables.items()}
        features = build_features(sliced, ibis.memtable(chunk[["customer_id", "cutoff"]]), spec, fitted).to_pandas()
        features = features.sort_values("customer_id", kind="stable").reset_index(drop=True)
        matrix = design_matrix(features, spec)
        phases["features"] += time.perf_counter() - started
        started = time.perf_counter()
        probability = predict_proba(booster, matrix, spec) if len(matrix) else np.array([])
        part = pd.DataFrame({
            "customer_id": features["customer_id"].astype("string"),
            "as_of": pd.Timestamp(as_of).normalize(),
            "churn_probability": probability.astype("float64"),
            "risk_tier": pd.Series(risk_tier(probability, risk_tiers), dtype="string"),
            "customer_value": customer_value(features, value["value"], float(value["value_months"]),
                                             float(value["constant_value"])),
        })
        part["value_at_risk"] = part["churn_probability"] * part["customer_value"]
        # lapsed customers lie outside the rows the model trained on: marked, so a campaign can tell
        part["status"] = part["customer_id"].map(status).astype("string")
        phases["predict"] += time.perf_counter() - started
        started = time.perf_counter()
        mask = {"all": np.ones(len(part), bool), "none": np.zeros(len(part), bool),
                "at-risk": part["risk_tier"].to_numpy() != lowest}[explain]
        if mask.any():
            reasons, _ = explain_rows(booster, features[mask], matrix[mask], spec, top_k, device)
            part = part.join(reasons)
        phases["explain"] += time.perf_counter() - started
        parts.append(part)
        if profile and len(matrix):
            drift_counts = add_counts(drift_counts, bin_counts(profile, matrix))
        if bar is not None:
            bar.update(len(chunk))
        else:
            log.info("scoring: chunk %d of %d, %d customers", number, len(chunks), len(chunk))
    if bar is not None:
        bar.close()
    scores = pd.concat(parts, ignore_index=True)
    for slot in [f"reason_{i + 1}" for i in range(top_k)] + ["protective"]:
        for suffix, dtype in (("", "string"), ("_feature", "string"), ("_value", "string"), ("_contribution", "float64")):
            if f"{slot}{suffix}" not in scores.columns:
                scores[f"{slot}{suffix}"] = pd.Series([None] * len(scores), dtype=dtype)
    scores["model_version"] = str(model_version)
    scores = scores.sort_values(["churn_probability", "customer_id"], ascending=[False, True], kind="stable")
    scores.insert(4, "rank", np.arange(1, len(scores) + 1))
    scores = scores.reset_index(drop=True)
    drift = drift_from_counts(profile, drift_counts) if drift_counts is not None else None
    summary = {
        "as_of": f"{pd.Timestamp(as_of):%Y-%m-%d}",
        "model_version": str(model_version),
        "population": population,
        "lapsed_within_days": lapsed_within_days,
        **counts,
        "tiers": {name: int((scores["risk_tier"] == name).sum()) for name in risk_tiers},
        "top_tier": max(risk_tiers, key=risk_tiers.get),
        "explained": int(scores["reason_1"].notna().sum()),
        "value_at_risk": round(float(scores["value_at_risk"].sum()), 2),
        "probability_quantiles": {f"p{q}": round(float(np.quantile(scores["churn_probability"], q / 100)), 6)
                                  for q in (10, 25, 50, 75, 90, 99)} if len(scores) else {},
        "drifted_features": [] if drift is None else drift.loc[drift["drifted"], "feature"].tolist(),
        "chunks": len(chunks),
        "phases_s": {k: round(v, 2) for k, v in phases.items()},
    }
    return scores, summary | {"drift": None if drift is None else drift.round(6).to_dict("records")}
