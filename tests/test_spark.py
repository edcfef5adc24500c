"""Parity: the stages on Spark (local[2]) give what they give on DuckDB, to the bit.

Hand-made tables first (every feature family, the expressions that once differed), then a small
generated dataset through validate, observations and features on both engines, each engine
reading what the other wrote.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import ibis
import numpy as np
import pandas as pd
import pytest

from churnml.data import parquet
from churnml.data.contract import open_contract_tables
from churnml.data.dataset import validate_folder
from churnml.data.engine import connect
from churnml.data.generate.dataset import generate_dataset
from churnml.data.validation.run import write_validated
from churnml.features.build import build_features, plan_features, write_features
from churnml.features.label_times import LabelSpec, SplitSpec, build_observations
from churnml.params import load_params
from support import ROOT
from test_features import ALL, OBS, frames

pytestmark = pytest.mark.spark


def assert_identical(duck: pd.DataFrame, spark: pd.DataFrame, keys: list[str]) -> None:
    """Same columns, same types, same values bit for bit (NaN where NaN)."""
    duck = duck.sort_values(keys).reset_index(drop=True)
    spark = spark.sort_values(keys).reset_index(drop=True)
    assert list(spark.columns) == list(duck.columns)
    assert len(spark) == len(duck)
    differ = []
    for column in duck.columns:
        a, b = duck[column], spark[column]
        if a.dtype.kind == "f":
            same = np.array_equal(a.to_numpy(), b.to_numpy(dtype="float64"), equal_nan=True)
        else:
            same = a.astype("string").fillna("<null>").equals(b.astype("string").fillna("<null>"))
        if not same:
            differ.append(column)
    assert differ == [], f"columns that differ between DuckDB and Spark: {differ}: " + "; ".join(
        f"{c}: {duck[c].dtype} {duck[c].head(2).tolist()} vs {spark[c].dtype} {spark[c].head(2).tolist()}" for c in differ[:3])


def test_hand_made_features_are_identical(spark_engine):
    duck = connect()
    tables = {k: ibis.memtable(v) for k, v in frames().items()}
    spec = plan_features(tables, families=ALL, windows=[7, 30, 90])
    expr = build_features(tables, ibis.memtable(OBS), spec)
    assert_identical(duck.execute(expr), spark_engine.execute(expr), ["customer_id", "cutoff"])


def test_active_days_past_32_and_exact_days_on_spark(spark_engine):
    """The silent errors the first Spark run showed: a 32-bit day bitmask, rounded decimal days."""
    cutoff = datetime(2024, 6, 1)
    stamps = [cutoff - timedelta(days=d) + timedelta(hours=3) for d in range(1, 86)]
    events = pd.DataFrame({"customer_id": "A", "timestamp": pd.to_datetime(stamps), "event_type": "login"})
    events.loc[0, "timestamp"] = cutoff - timedelta(days=1, seconds=-7)
    tables = {"customers": ibis.memtable(pd.DataFrame({"customer_id": ["A"],
                                                       "signup_date": pd.to_datetime(["2023-01-01"])})),
              "events": ibis.memtable(events)}
    spec = plan_features(tables, families={"engagement": True}, windows=[7, 30, 90])
    obs = ibis.memtable(pd.DataFrame({"customer_id": ["A"], "cutoff": pd.to_datetime([cutoff])}))
    out = spark_engine.execute(build_features(tables, obs, spec)).iloc[0]
    assert out["eng_active_days_90d"] == 85
    assert out["eng_days_since_last_event"] == (86400 - 7) / 86400.0


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A small mixed dataset (all five tables), validated on DuckDB and on Spark."""
    root = tmp_path_factory.mktemp("spark_parity")
    generate_dataset(root / "raw", n_customers=150, months=10, seed=5)
    return root


@pytest.fixture(scope="module")
def validated(generated, spark_engine):
    tables = load_params(ROOT / "params.yaml")["data"]["tables"]
    reports = {}
    for name, con in (("duckdb", connect()), ("spark", spark_engine)):
        result = validate_folder(con, generated / "raw", tables)
        reports[name] = write_validated(con, result, generated / f"validated_{name}")
    return generated, reports


def test_validate_writes_the_same_tables(validated, spark_engine):
    root, reports = validated
    assert reports["spark"] == reports["duckdb"]
    for name in reports["duckdb"]["tables"]:
        assert (root / "validated_spark" / f"{name}.parquet").is_dir()  # Spark writes folders
        duck = pd.read_parquet(root / "validated_duckdb" / f"{name}.parquet")
        spark = pd.read_parquet(root / "validated_spark" / f"{name}.parquet")
        pd.testing.assert_frame_equal(spark, duck)
    # each engine reads the other's output
    assert parquet.rows(connect(), root / "validated_spark" / "events.parquet") == reports["spark"]["tables"]["events"]["rows"]
    assert parquet.rows(spark_engine, root / "validated_duckdb" / "events.parquet") == reports["duckdb"]["tables"]["events"]["rows"]


@pytest.mark.parametrize("definition", ["hybrid", "inactivity"])
def test_observations_and_features_are_identical(validated, spark_engine, definition, tmp_path):
    root, _ = validated
    spec, split = LabelSpec(definition=definition, horizon_days=30), SplitSpec(test_cutoffs=1, valid_cutoffs=1)
    results, features = {}, {}
    for name, con in (("duckdb", connect()), ("spark", spark_engine)):
        tables = open_contract_tables(con, root / f"validated_{name}")
        results[name] = build_observations(tables, spec, split, freq="MS", min_history_days=60)
        if definition == "hybrid":
            feature_spec = plan_features(tables, families={**ALL, "purchase_process": True}, windows=[7, 30],
                                         horizon_days=30)
            write_features(con, tables, ibis.memtable(results[name][0]), feature_spec, tmp_path / f"{name}.parquet")
            features[name] = pd.read_parquet(tmp_path / f"{name}.parquet")
    (duck_obs, duck_summary), (spark_obs, spark_summary) = results["duckdb"], results["spark"]
    assert len(duck_obs) > 100 and duck_obs["label"].nunique() == 2
    pd.testing.assert_frame_equal(spark_obs, duck_obs)
    assert spark_summary == duck_summary
    if features:
        assert features["duckdb"].shape[1] > 60
        assert_identical(features["duckdb"], features["spark"], ["customer_id", "cutoff"])


@pytest.fixture(scope="module")
def small_model(validated):
    """A calibrated model with a drift profile, trained in process on the DuckDB copy."""
    from churnml.modeling.booster import booster_params, predict_raw, set_calibration, set_profile, train_booster
    from churnml.modeling.calibration import fit_calibration
    from churnml.modeling.matrix import design_matrix
    from churnml.scoring.drift import feature_profile
    from churnml.features.build import feature_catalog

    root, _ = validated
    tables = open_contract_tables(connect(), root / "validated_duckdb")
    obs, _ = build_observations(tables, LabelSpec(definition="hybrid", horizon_days=30),
                                SplitSpec(test_cutoffs=1, valid_cutoffs=1), freq="MS", min_history_days=60)
    spec = plan_features(tables, families=ALL, windows=[7, 30])
    rows = obs.merge(build_features(tables, ibis.memtable(obs[["customer_id", "cutoff"]]), spec).to_pandas(),
                     on=["customer_id", "cutoff"])
    xy = {s: (design_matrix(p, spec), p["label"].to_numpy(float)) for s, p in rows.groupby("split")}
    booster = train_booster(xy["train"], xy["valid"], spec, booster_params({"max_depth": 3}, 7, None), 40, 10)
    set_calibration(booster, fit_calibration(xy["valid"][1], predict_raw(booster, xy["valid"][0], spec), 7,
                                             method="platt"))
    set_profile(booster, feature_profile(xy["train"][0], feature_catalog(spec), spec.levels))
    return booster


def test_scores_reasons_and_summary_are_identical(validated, small_model, spark_engine, tmp_path):
    """The whole base scored on the executors (mapInPandas, the model broadcast, ranks numbered
    across partitions) gives the file and the summary that scoring in process gives."""
    from churnml.scoring.batch import ScoringRun, default_as_of, score_customers
    from churnml.scoring.partitioned import score_partitioned

    root, _ = validated
    duck_tables = open_contract_tables(connect(), root / "validated_duckdb")
    run = ScoringRun(as_of=default_as_of(duck_tables), label_spec=LabelSpec(definition="hybrid", horizon_days=30),
                     risk_tiers={"high": 0.3, "medium": 0.1, "low": 0.0}, top_k=3, explain="at-risk",
                     model_version="7")
    duck, duck_summary = score_customers(duck_tables, small_model, run, customers_per_chunk=40)
    spark_tables = open_contract_tables(spark_engine, root / "validated_spark")
    target = tmp_path / "scores.parquet"
    target.mkdir()  # a previous output, replaced whole
    (target / "part-00009.parquet").write_bytes(b"old")
    spark_summary = score_partitioned(spark_tables, small_model, run, target)

    assert sorted(p.name for p in target.iterdir())[0] == "part-00000.snappy.parquet"
    assert not (target / "part-00009.parquet").exists()
    spark = pd.read_parquet(target)
    assert len(duck) > 50 and duck["reason_1"].notna().sum() > 10 and duck["status"].nunique() == 2
    assert spark["rank"].tolist() == list(range(1, len(duck) + 1))  # read back in rank order
    assert_identical(duck, spark, ["rank"])
    timing = {"chunks", "phases_s"}
    assert {k: v for k, v in spark_summary.items() if k not in timing} == \
        {k: v for k, v in duck_summary.items() if k not in timing}
    assert spark_summary["drift"] and sum(spark_summary["probability_histogram"]["counts"]) == len(duck)
