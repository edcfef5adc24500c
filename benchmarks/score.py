"""Batch-scoring benchmark: the whole customer base, end to end, in bounded memory.

A model is trained (once, in process) on a small dataset from the project's generator; then
`score_customers` scores every customer of a large one at its last day, exactly as
`churnml score` does: eligibility, features chunk by chunk, probability, reasons for the at-risk
customers, drift, then the atomic write. The run is a child process, so its peak RSS is its own.

    python benchmarks/score.py                        # 1M customers, ~100M events
    python benchmarks/score.py --customers 200000     # a quicker run
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE))

import harness  # noqa: E402


def train_small_model(folder: Path):
    """A churnml model trained on a small dataset of the same shape (no search: speed only)."""
    import ibis
    import pandas as pd

    from churnml.data.contract import mappings_from_config, open_raw_tables
    from churnml.scoring.drift import feature_profile
    from churnml.data.engine import connect
    from churnml.features.build import build_features, feature_catalog, plan_features
    from churnml.modeling.booster import booster_params, set_profile, train_booster
    from churnml.modeling.matrix import design_matrix
    from churnml.features.label_times import LabelSpec, SplitSpec, build_observations

    con = connect()
    tables = open_raw_tables(con, folder, mappings_from_config({n: {} for n in (
        "customers", "events", "orders", "feedback", "subscriptions")}))
    obs, _ = build_observations(tables, LabelSpec(definition="hybrid", horizon_days=30, grace_days=7),
                                SplitSpec(test_cutoffs=1, valid_cutoffs=1), freq="MS", min_history_days=90)
    spec = plan_features(tables, families=dict.fromkeys(
        ("engagement", "purchase", "feedback", "subscription", "profile"), True), windows=[7, 30, 90],
        attributes=["plan", "billing", "country", "channel", "monthly_price"])
    features = build_features(tables, ibis.memtable(obs[["customer_id", "cutoff"]]), spec).to_pandas()
    features["cutoff"] = pd.to_datetime(features["cutoff"]).astype(obs["cutoff"].dtype)
    rows = obs.merge(features, on=["customer_id", "cutoff"])
    part = {s: rows[rows["split"] == s] for s in ("train", "valid")}
    xy = {s: (design_matrix(p, spec), p["label"].to_numpy(float)) for s, p in part.items()}
    booster = train_booster(xy["train"], xy["valid"], spec, booster_params({"max_depth": 6}, 42, None), 300, 30)
    set_profile(booster, feature_profile(xy["train"][0], feature_catalog(spec), spec.levels))
    return booster


def run_scoring(customers: int) -> dict:
    from churnml.data.dataset import validate_folder
    from churnml.data.io import write_table
    from churnml.features.label_times import LabelSpec
    from churnml.scoring.batch import ScoringRun, default_as_of, score_customers
    from features import dataset  # the feature benchmark's generator cache

    booster = train_small_model(dataset(20_000))
    folder = dataset(customers)
    con, engine = harness.project_engine()  # the project's own engine settings

    events, floor_s = harness.events_floor(con, folder)
    started = time.perf_counter()
    # as `churnml score` does: validate the raw tables first, then score what validation passed
    tables = validate_folder(con, folder, {n: {} for n in (
        "customers", "events", "orders", "feedback", "subscriptions")}).tables
    validated = round(time.perf_counter() - started, 2)
    run = ScoringRun(as_of=default_as_of(tables), label_spec=LabelSpec(definition="hybrid", horizon_days=30),
                     risk_tiers={"high": 0.5, "medium": 0.2, "low": 0.0}, top_k=5, explain="at-risk",
                     model_version="bench")
    scores, summary = score_customers(tables, booster, run, customers_per_chunk=int(engine["customers_per_chunk"]))
    written = time.perf_counter()
    write_table(scores, DATA / "scores_out.parquet")
    phases = {"validate": validated, **summary["phases_s"], "write": round(time.perf_counter() - written, 2)}
    wall_s = round(time.perf_counter() - started, 2)
    return {"customers": int(summary["customers"]), "events": events, "scored": int(summary["scored"]),
            "explained": int(summary["explained"]), "chunks": summary["chunks"], "wall_s": wall_s,
            "phases": phases, "floor_s": floor_s, "wall_over_floor": round(wall_s / floor_s, 1),
            "memory_limit": engine["memory_limit"]}


if __name__ == "__main__":
    harness.main(__file__, __doc__, "score", run_scoring)
