"""Parity: the retention report built on Spark (local[2]) is the one DuckDB builds.

The same raw tables and scores, as Parquet files, are read by each engine; the report's measures
must agree, and the per-customer CLV that each engine writes (a file on DuckDB, a sorted folder
on Spark) must hold the same rows.
"""

from __future__ import annotations

import pandas as pd
import pytest

from churnml.data import parquet
from churnml.data.engine import connect
from churnml.features.label_times import observed_until
from churnml.retention.report import ClvSpec, build_retention, write_retention
from churnml.retention.targeting import check_score_table, read_score_table
from test_retention import SPEC, many_frames

pytestmark = pytest.mark.spark


def assert_same(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    """Same columns and rows; floats to 1e-12 relative (a sum may add in another order, and Java's
    pow may round its last bit otherwise), everything else exactly."""
    assert list(spark.columns) == list(duck.columns)
    pd.testing.assert_frame_equal(duck.reset_index(drop=True), spark.reset_index(drop=True), check_dtype=False,
                                  check_exact=False, rtol=1e-12, atol=0)


def test_the_report_on_spark_is_the_report_on_duckdb(spark_engine, tmp_path):
    frames, scores = many_frames(customers=60, seed=3)
    # a boolean segment: SQL would write it "true", pandas (and so the report) "True"
    frames["customers"]["newsletter"] = frames["customers"]["customer_id"].str[-1].isin(list("02468"))
    for name, frame in frames.items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    scores.to_parquet(tmp_path / "scores.parquet", index=False)  # without value_at_risk: the report adds it
    results, written = {}, {}
    for engine, con in (("duckdb", connect()), ("spark", spark_engine)):
        tables = {name: parquet.read(con, tmp_path / f"{name}.parquet") for name in frames}
        checked = check_score_table(read_score_table(con, tmp_path / "scores.parquet"), "scores.parquet")
        results[engine] = build_retention(tables, checked, spec=SPEC, until=observed_until(tables),
                                          segments=["plan", "newsletter"], recent_months=6, clv=ClvSpec(),
                                          value_months=12.0)
        written[engine] = write_retention(results[engine], tmp_path / engine, tmp_path / engine / "retention.json")
    duck, spark = results["duckdb"], results["spark"]
    assert spark.headline == duck.headline and spark.notes == duck.notes
    assert duck.headline["customers"] == 60 and duck.headline["customers_scored"] == len(scores)
    assert_same(duck.churn, spark.churn)
    assert_same(duck.cohorts.reset_index(), spark.cohorts.reset_index())
    assert_same(duck.segments, spark.segments)
    assert set(duck.segments["segment_kind"]) == {"newsletter", "plan", "risk tier"}
    assert set(duck.segments.loc[duck.segments["segment_kind"] == "newsletter", "segment"]) == {"True", "False"}
    assert_same(duck.clv_histogram, spark.clv_histogram)  # the edges from each engine's 99th percentile
    # each engine wrote the per-customer CLV: one file on DuckDB, a sorted Parquet folder on Spark
    assert written["duckdb"]["clv.parquet"].is_file() and written["spark"]["clv.parquet"].is_dir()
    assert (written["spark"]["clv.parquet"] / "part-00000.snappy.parquet").exists()
    duck_clv = pd.read_parquet(written["duckdb"]["clv.parquet"])
    spark_clv = pd.read_parquet(written["spark"]["clv.parquet"])  # the part files in order
    assert duck_clv["customer_id"].tolist() == sorted(frames["customers"]["customer_id"])
    assert_same(duck_clv, spark_clv)
    assert int(duck_clv["scored"].sum()) == len(scores) - 1  # every score but the stranger's
    for name in ("churn_rate.csv", "cohort_retention.csv", "segments.csv"):
        assert_same(pd.read_csv(written["duckdb"][name]), pd.read_csv(written["spark"][name]))
