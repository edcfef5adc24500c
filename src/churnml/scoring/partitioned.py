"""Scoring a base on Spark, partition by partition: nothing is collected to the driver.

The executors build the features of every eligible customer and run `score_rows`, the same
function the in-process path runs per chunk, on each batch (mapInPandas), with the model's
bytes broadcast once to each of them. The scores are numbered across partitions and written as
a Parquet folder that replaces the previous one only once complete; the summary and the drift
come from aggregates.
"""

from __future__ import annotations

import time
from functools import lru_cache

import ibis
import pandas as pd
import xgboost as xgb

from churnml.data import parquet, spark
from churnml.features.build import build_features, check_compatible, fit_population
from churnml.modeling.booster import profile_of, spec_of
from churnml.modeling.matrix import design_matrix
from churnml.scoring.batch import ScoringRun, score_columns, score_rows
from churnml.scoring.drift import bin_counts, counts_frame, counts_from_frame, drift_from_counts
from churnml.scoring.eligible import eligible_table
from churnml.scoring.summary import score_summary

RANK_ORDER = [("churn_probability", False), ("customer_id", True)]


@lru_cache(maxsize=2)
def _model(raw: bytes) -> xgb.Booster:
    """The booster of its UBJ bytes, loaded once per executor process (with its TreeSHAP tables,
    which are cached per booster object)."""
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    return booster


def _schema(columns: dict[str, str]) -> ibis.Schema:
    kinds = {"string": "string", "float64": "float64", "int64": "int64", "datetime64[us]": "timestamp"}
    return ibis.schema({name: kinds[dtype] for name, dtype in columns.items()})


def score_partitioned(
    tables: dict[str, ibis.Table],
    booster: xgb.Booster,
    run: ScoringRun,
    target: parquet.Location,
) -> dict:
    """Score every eligible customer on the Spark engine of `tables` and write the scores, highest
    risk first, as a Parquet folder at `target`; returns the summary (as `score_customers`')."""
    spec = spec_of(booster)
    check_compatible(spec, tables)
    if str(target).lower().endswith(".csv"):
        raise ValueError(f"{target}: on Spark the scores are a Parquet folder; give a location without .csv")
    con = tables["customers"]._find_backend()
    phases: dict[str, float] = {}
    started = time.perf_counter()
    eligible, counts = eligible_table(tables, run.as_of, run.label_spec, run.population, run.lapsed_within_days)
    phases["eligible"] = time.perf_counter() - started

    started = time.perf_counter()
    fitted = fit_population(spec, tables, [run.as_of])
    features = build_features(tables, eligible.select("customer_id", "cutoff"), spec, fitted)
    features = features.join(eligible.select("customer_id", "status"), "customer_id")
    # read twice, by the scores and by the drift counts: built once
    features, release_features = spark.persisted(con, features)
    model = spark.broadcast(con, bytes(booster.save_raw("ubj")))
    settings = run.row_options()

    def score(batch: pd.DataFrame) -> pd.DataFrame:
        scoring = _model(model.value)
        return score_rows(batch, scoring, spec_of(scoring), **settings)

    columns = score_columns(run.top_k)
    unranked = {name: dtype for name, dtype in columns.items() if name != "rank"}
    scored = spark.map_batches(con, features, score, _schema(unranked))
    ranked, release_scores = spark.numbered(con, scored, RANK_ORDER, "rank")
    try:
        parquet.write(con, ranked.select(*columns), target, ["rank"])
    finally:
        release_scores()
    phases["score_and_write"] = time.perf_counter() - started

    started = time.perf_counter()
    profile = profile_of(booster)
    drift = None
    if profile:
        def drift_bins(batch: pd.DataFrame) -> pd.DataFrame:
            scoring = _model(model.value)
            return counts_frame(bin_counts(profile, design_matrix(batch, spec_of(scoring))))

        bins = spark.map_batches(con, features, drift_bins,
                                 ibis.schema({"feature": "string", "bin": "int64", "rows": "int64"}))
        totals = bins.group_by("feature", "bin").aggregate(rows=bins.rows.sum()).to_pandas()
        drift = drift_from_counts(profile, counts_from_frame(profile, totals)) if len(totals) else None
    chunks = spark.partitions(con, features)
    release_features()
    phases["drift"] = time.perf_counter() - started

    started = time.perf_counter()
    summary = score_summary(parquet.read(con, target), run.risk_tiers, drift, **run.summary_options(),
                            counts=counts)
    phases["summary"] = time.perf_counter() - started
    summary["chunks"] = chunks
    summary["phases_s"] = {k: round(v, 2) for k, v in phases.items()}
    return summary

