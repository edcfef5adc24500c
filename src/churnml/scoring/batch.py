"""Scoring the customer base at a date with a trained model, in process, chunk by chunk.

Who is scored is decided in `churnml.scoring.eligible`; each batch of customers' features goes
through `score_rows`, the one implementation of a score (encoding, calibrated probability, tier,
value, reasons) that the Spark path (`churnml.scoring.partitioned`) runs on its executors too.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime

import ibis
import numpy as np
import pandas as pd
import xgboost as xgb

from churnml.scoring.drift import add_counts, bin_counts, drift_from_counts
from churnml.scoring.eligible import eligible_customers
from churnml.scoring.summary import score_summary
from churnml.modeling.evaluation import customer_value
from churnml.explain.reasons import explain_rows
from churnml.features.build import FeatureSpec, build_features, check_compatible, fit_population
from churnml.modeling.matrix import design_matrix
from churnml.modeling.booster import predict_proba, profile_of, spec_of
from churnml.features.label_times import LabelSpec, observed_until


log = logging.getLogger(__name__)

EXPLAIN_MODES = ("at-risk", "all", "none")
REASON_PARTS = (("", "string"), ("_feature", "string"), ("_value", "string"), ("_contribution", "float64"))


DEFAULT_VALUE = {"value": "auto", "value_months": 12, "constant_value": 0.0}


@dataclass(frozen=True)
class ScoringRun:
    """What a scoring run is asked for, whichever engine runs it: the date, who is eligible
    (`population`, `lapsed_within_days`, see scoring.eligible), how scores become tiers and how
    many reasons each gets, and how a customer is priced for `value_at_risk` = probability x
    value (`value`: {"value", "value_months", "constant_value"}, as in evaluate.economics)."""

    as_of: datetime
    label_spec: LabelSpec
    risk_tiers: dict[str, float]
    top_k: int = 5
    explain: str = "at-risk"
    model_version: str = ""
    value: dict = field(default_factory=lambda: dict(DEFAULT_VALUE))
    device: str = "cpu"
    population: str = "all"
    lapsed_within_days: int | None = 365

    def __post_init__(self) -> None:
        if self.explain not in EXPLAIN_MODES:
            raise ValueError(f"explain must be one of {EXPLAIN_MODES}, got '{self.explain}'")

    def row_options(self) -> dict:
        """What `score_rows` takes of the run: plain values, shipped to Spark's executors."""
        return {"as_of": self.as_of, "risk_tiers": dict(self.risk_tiers), "top_k": int(self.top_k),
                "explain": self.explain, "model_version": str(self.model_version), "value": dict(self.value),
                "device": self.device}

    def summary_options(self) -> dict:
        """What `score_summary` takes of the run, besides the scores, the drift and the counts."""
        return {"as_of": self.as_of, "model_version": self.model_version, "population": self.population,
                "lapsed_within_days": self.lapsed_within_days}


def default_as_of(tables: dict[str, ibis.Table]) -> datetime:
    """The day after the last activity in the data."""
    return observed_until(tables)


def score_columns(top_k: int) -> dict[str, str]:
    """The columns of a scores file in their order, with their pandas types."""
    reasons = {f"{slot}{suffix}": dtype for slot in [f"reason_{i + 1}" for i in range(top_k)] + ["protective"]
               for suffix, dtype in REASON_PARTS}
    return {"customer_id": "string", "as_of": "datetime64[us]", "churn_probability": "float64",
            "risk_tier": "string", "rank": "int64", "customer_value": "float64", "value_at_risk": "float64",
            "status": "string", **reasons, "model_version": "string"}


def score_rows(features: pd.DataFrame, booster: xgb.Booster, spec: FeatureSpec, *, as_of: datetime,
               risk_tiers: dict[str, float], top_k: int, explain: str, model_version: str, value: dict,
               device: str = "cpu", timings: dict[str, float] | None = None) -> pd.DataFrame:
    """The scores of a batch of customers from their features (and `status`): every column of
    `score_columns` but rank, which only the whole base can give. Each row is scored on its own,
    so batches, chunks and partitions do not change a score. `timings` adds up the seconds spent
    to predict and to explain."""
    timings = {} if timings is None else timings
    started = time.perf_counter()
    features = features.reset_index(drop=True)
    matrix = design_matrix(features, spec)
    probability = predict_proba(booster, matrix, spec) if len(matrix) else np.array([], dtype="float64")
    part = pd.DataFrame({
        "customer_id": features["customer_id"].astype("string"),
        "as_of": pd.Series(pd.Timestamp(as_of).normalize(), index=features.index).astype("datetime64[us]"),
        "churn_probability": probability.astype("float64"),
        "risk_tier": pd.Series(risk_tier(probability, risk_tiers), dtype="string"),
        "customer_value": customer_value(features, value["value"], float(value["value_months"]),
                                         float(value["constant_value"])),
    })
    part["value_at_risk"] = part["churn_probability"] * part["customer_value"]
    # lapsed customers lie outside the rows the model trained on: marked, so a campaign can tell
    part["status"] = features["status"].astype("string")
    lowest = min(risk_tiers, key=risk_tiers.get)
    mask = {"all": np.ones(len(part), bool), "none": np.zeros(len(part), bool),
            "at-risk": part["risk_tier"].to_numpy() != lowest}[explain]
    timings["predict"] = timings.get("predict", 0.0) + time.perf_counter() - started
    started = time.perf_counter()
    if mask.any():
        reasons, _ = explain_rows(booster, features[mask], matrix[mask], spec, top_k, device)
        part = part.join(reasons)
    timings["explain"] = timings.get("explain", 0.0) + time.perf_counter() - started
    part["model_version"] = str(model_version)
    columns = {name: dtype for name, dtype in score_columns(top_k).items() if name != "rank"}
    for name, dtype in columns.items():
        if name not in part.columns:
            part[name] = pd.Series([None] * len(part), dtype=dtype)
    return part[list(columns)].astype(columns)


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

    # the size of the terminal the bar is drawn on, stderr: not $COLUMNS or stdout, which may say
    # nothing about it. One that reports no size (a pseudo-terminal a scheduler opened, `docker
    # run -t`) makes tqdm hide the bar; give it a conventional one instead
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError):
        size = os.terminal_size((0, 0))
    shape = {} if size.columns > 0 and size.lines > 0 else {"ncols": 80, "nrows": 24}
    return tqdm(total=total, unit="customer", desc="scoring", file=sys.stderr, **shape)


def score_customers(
    tables: dict[str, ibis.Table],
    booster: xgb.Booster,
    run: ScoringRun,
    *,
    customers_per_chunk: int = 250_000,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict]:
    """One row per scored customer, highest risk first, and a summary of the run.

    Customers are scored chunk by chunk (features, probability, reasons), so memory follows the
    chunk size, not the size of the base.
    """
    spec = spec_of(booster)
    check_compatible(spec, tables)
    started = time.perf_counter()
    observed, counts = eligible_customers(tables, run.as_of, run.label_spec, population=run.population,
                                          lapsed_within_days=run.lapsed_within_days)
    phases = dict.fromkeys(("eligible", "features", "predict", "explain"), 0.0)
    phases["eligible"] = time.perf_counter() - started
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
        features = features.merge(chunk[["customer_id", "status"]].astype({"customer_id": features["customer_id"].dtype}),
                                  on="customer_id", how="left")
        features = features.sort_values("customer_id", kind="stable").reset_index(drop=True)
        phases["features"] += time.perf_counter() - started
        parts.append(score_rows(features, booster, spec, **run.row_options(), timings=phases))
        started = time.perf_counter()
        if profile and len(features):
            drift_counts = add_counts(drift_counts, bin_counts(profile, design_matrix(features, spec)))
        phases["predict"] += time.perf_counter() - started
        if bar is not None:
            bar.update(len(chunk))
        else:
            log.info("scoring: chunk %d of %d, %d customers", number, len(chunks), len(chunk))
    if bar is not None:
        bar.close()
    scores = pd.concat(parts, ignore_index=True)
    scores = scores.sort_values(["churn_probability", "customer_id"], ascending=[False, True], kind="stable")
    scores.insert(4, "rank", np.arange(1, len(scores) + 1, dtype="int64"))
    scores = scores.reset_index(drop=True)
    drift = drift_from_counts(profile, drift_counts) if drift_counts is not None else None
    summary = score_summary(ibis.memtable(scores), run.risk_tiers, drift, **run.summary_options(), counts=counts)
    summary["chunks"] = len(chunks)
    summary["phases_s"] = {k: round(v, 2) for k, v in phases.items()}
    return scores, summary
