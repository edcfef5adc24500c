"""Training at scale: the driver's stratified sample (on DuckDB, no Spark needed), and xgboost.spark
on one worker giving exactly the model xgb.train gives (Spark, local[2])."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from churnml.data.engine import connect
from churnml.features.build import FeatureSpec
from churnml.modeling.booster import booster_params, fit_rounds, imbalance, train_booster, valid_score
from churnml.modeling.distributed import draw, fit_spark, stratified_sample
from churnml.modeling.matrix import design_matrix, labelled_rows, labelled_table, split_xy, to_dmatrix

SPEC = FeatureSpec(families=["profile"], windows=[7], attributes={"x": "numeric", "plan": "categorical"},
                   levels={"prof_plan": ["basic", "plus", "pro"]})


def labelled_frames(customers: int, cutoffs: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features, observations) as the stages write them: observations sorted by cutoff and
    customer; a monthly grid with the last cutoff as test and the one before as valid."""
    rng = np.random.default_rng(seed)
    grid = pd.date_range("2024-01-01", periods=cutoffs, freq="MS")
    obs = pd.DataFrame({"cutoff": np.repeat(grid, customers).astype("datetime64[us]"),
                        "customer_id": np.tile([f"C{i:05d}" for i in range(customers)], cutoffs)})
    x = rng.normal(size=len(obs))
    plan = rng.choice(np.array(["basic", "plus", "pro", None], dtype=object), len(obs))
    obs["label"] = (rng.uniform(size=len(obs)) < 1 / (1 + np.exp(-(2 * x + (plan == "pro") - 1.5)))).astype("int8")
    obs["split"] = np.select([obs["cutoff"] == grid[-1], obs["cutoff"] == grid[-2]], ["test", "valid"], "train")
    features = obs[["customer_id", "cutoff"]].assign(prof_days_since_signup=rng.integers(0, 400, len(obs)).astype(float),
                                                     prof_x=np.where(np.arange(len(obs)) % 13 == 0, np.nan, x),
                                                     prof_plan=plan)
    # the feature table's own order is not the observations'
    return features.sample(frac=1, random_state=1).reset_index(drop=True), obs[["customer_id", "cutoff", "label", "split"]]


FEATURES, OBSERVATIONS = labelled_frames(customers=400, cutoffs=6)


def duckdb_table(features: pd.DataFrame = FEATURES, observations: pd.DataFrame = OBSERVATIONS) -> ibis.Table:
    con = connect()
    return labelled_table(con.create_table("features", features), con.create_table("observations", observations))


def test_the_sample_keeps_the_same_fraction_of_every_stratum():
    sample, drawn = stratified_sample(duckdb_table(), 1000, seed=42)
    rows = labelled_rows(FEATURES, OBSERVATIONS)
    counts = rows.groupby(["split", "label"]).size()
    expected = {key: n * 1000 // len(rows) for key, n in counts.items()}  # 2,400 rows: 5/12 of each, rounded down
    got = sample.groupby(["split", "label"]).size()
    assert got.to_dict() == expected and len(sample) == sum(expected.values()) <= 1000
    assert drawn["rows"] == 2400 and drawn["sampled"] == len(sample)
    assert {(s["split"], s["label"]): (s["rows"], s["sampled"]) for s in drawn["strata"]} == {
        key: (counts[key], expected[key]) for key in counts.index}
    # the rows of each stratum with the smallest draws, whole and in labelled_rows' order
    ranked = rows.assign(draw=draw(rows, 42)).sort_values("draw")
    quota = [expected[key] for key in zip(ranked["split"], ranked["label"])]
    want = ranked[ranked.groupby(["split", "label"]).cumcount() < quota]
    want = want.sort_values(["cutoff", "customer_id"]).drop(columns="draw").reset_index(drop=True)
    pd.testing.assert_frame_equal(sample, want)


def test_the_sample_depends_on_the_keys_and_the_seed_alone():
    first, _ = stratified_sample(duckdb_table(), 700, seed=42)
    shuffled = OBSERVATIONS.sample(frac=1, random_state=3)
    again, _ = stratified_sample(duckdb_table(FEATURES, shuffled), 700, seed=42)
    pd.testing.assert_frame_equal(first, again)
    other, _ = stratified_sample(duckdb_table(), 700, seed=43)
    shared = first.merge(other, on=["customer_id", "cutoff"])
    assert len(other) == len(first) and 0 < len(shared) < len(first) / 2  # ~7/24 of them by chance
    # row by row: a batch of rows draws what it draws within the whole table
    whole = draw(OBSERVATIONS, 42)
    assert np.array_equal(draw(OBSERVATIONS.iloc[100:300], 42), whole[100:300])
    assert ((whole >= 0) & (whole < 1)).all() and 0.45 < whole.mean() < 0.55


def test_a_table_within_the_bound_is_sampled_whole():
    sample, drawn = stratified_sample(duckdb_table(), 2400, seed=42)
    pd.testing.assert_frame_equal(sample, labelled_rows(FEATURES, OBSERVATIONS))
    assert drawn["fraction"] == 1.0 and all(s["fraction"] == 1.0 for s in drawn["strata"])


def test_observations_without_a_feature_row_are_named():
    with pytest.raises(ValueError, match=r"2 observations have no feature row, e\.g\.\n(.|\n)*C00003"):
        duckdb_table(FEATURES[~FEATURES["customer_id"].eq("C00003") | (FEATURES["cutoff"] > "2024-02-01")],
                     OBSERVATIONS)


@pytest.fixture(scope="module")
def spark_rows(spark_engine):
    """300 labelled rows as a table on the Spark engine: churners weighted, a categorical, NaNs."""
    from churnml.data import spark

    features, observations = labelled_frames(customers=100, cutoffs=3, seed=5)
    rows = labelled_rows(features, observations)
    # three partitions, none in the table's order: neither the sample nor the model may depend on them
    frame = spark.to_frame(spark_engine, ibis.memtable(rows.sample(frac=1, random_state=2))).repartition(3)
    return rows, spark.from_frame(spark_engine, frame)


@pytest.mark.spark
def test_spark_draws_the_sample_duckdb_draws(spark_engine, spark_rows):
    rows, table = spark_rows
    on_spark, drawn = stratified_sample(table, 120, seed=42)
    on_duckdb, expected = stratified_sample(connect().create_table("rows", rows), 120, seed=42)
    assert drawn == expected and 100 < len(on_spark) <= 120
    pd.testing.assert_frame_equal(on_spark, on_duckdb)


@pytest.mark.spark
def test_one_worker_on_spark_trains_the_model_xgb_train_trains(spark_engine, spark_rows):
    rows, table = spark_rows
    train, valid = split_xy(rows, SPEC, "train"), split_xy(rows, SPEC, "valid")
    base = booster_params({"max_depth": 3, "learning_rate": 0.3}, seed=7, nthread=2)
    extra, weights = imbalance(train[1], "sample_weight")
    assert extra == {} and weights.max() > 1  # churners are weighted, as rows
    expected = train_booster(train, valid, SPEC, {**base, **extra}, 200, 5, weights)
    got = fit_spark(spark_engine, table, SPEC, base, 200, "sample_weight", fit_splits=["train"], valid_split="valid",
                    early_stopping_rounds=5, num_workers=1)
    # early stopping ran and kept the same best trees
    assert 1 < got.num_boosted_rounds() == expected.num_boosted_rounds() < 50
    assert valid_score(got) == valid_score(expected)
    assert got.feature_types == ["q", "q", "c"]
    assert bytes(got.save_raw("ubj")) == bytes(expected.save_raw("ubj"))
    matrix = to_dmatrix(split_xy(rows, SPEC, "test")[0], SPEC)
    assert np.array_equal(got.predict(matrix), expected.predict(matrix))


@pytest.mark.spark
def test_the_refit_on_spark_is_fit_rounds_on_every_row(spark_engine, spark_rows):
    rows, table = spark_rows
    x_all, y_all = design_matrix(rows, SPEC), rows["label"].to_numpy(dtype="float64")
    base = booster_params({"max_depth": 2}, seed=3, nthread=2)
    extra, _ = imbalance(y_all, "scale_pos_weight")
    expected = fit_rounds((x_all, y_all), SPEC, {**base, **extra}, 12, None)
    got = fit_spark(spark_engine, table, SPEC, base, 12, "scale_pos_weight", num_workers=1)
    assert got.num_boosted_rounds() == 12
    assert bytes(got.save_raw("ubj")) == bytes(expected.save_raw("ubj"))
    assert isinstance(got, xgb.Booster) and got.attr("churnml_valid_score") is None
