"""Training past one machine (engine.backend: spark): the model learns from every labelled row
on the executors, and the parts that need the rows on the driver work on a bounded sample.

The model: xgboost.spark's SparkXGBClassifier on churnml's own design matrix, built per batch on
the executors by `design_matrix` (one encoding for every path), with the feature names and types
`to_dmatrix` gives and the class weighting `imbalance` gives. Its booster is then finished as
`train_booster` or `fit_rounds` finish theirs (the best trees, the spec, the validation score),
so the registry, TreeSHAP, the gate and scoring cannot tell it from one trained in process. With
one worker it is the model `xgb.train` gives on the same rows.

The sample: leakage probe, search, calibration, baselines and drift profile run on at most
`sample_rows` labelled rows, drawn per stratum (split, label) with the same fraction for each, so
that churn rates and split shares stay as they are. Which rows is decided by a hash of
(customer_id, cutoff) and the seed alone: the same rows whatever the partitioning, the engine or
the run. With no more rows than that, the sample is every row.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import ibis
import numpy as np
import pandas as pd
import xgboost as xgb

from churnml.data.engine import map_batches
from churnml.features.build import CUSTOMER_KEYS, FeatureSpec, feature_catalog
from churnml.modeling.booster import best_trees, class_weighting, last_score, with_spec
from churnml.modeling.matrix import design_matrix, feature_types

STRATA = ["split", "label"]
# the order of labelled_rows: that of the observations table
ROW_ORDER = ["cutoff", "customer_id"]
DRAW = "_churnml_draw"
LABEL, WEIGHT, VALID = "_churnml_label", "_churnml_weight", "_churnml_valid"


def draw(keys: pd.DataFrame, seed: int) -> np.ndarray:
    """A number in [0, 1) for each row of `keys` (customer_id, cutoff), from those values and the
    seed alone: row by row, so batches, partitions and engines do not change it."""
    # the seed keys the string hash: another seed draws another sample
    ids = pd.util.hash_array(keys["customer_id"].astype(str).to_numpy(dtype=object), hash_key=f"{int(seed):016d}"[-16:],
                             categorize=False)
    micros = pd.to_datetime(keys["cutoff"]).to_numpy(dtype="datetime64[us]").astype("int64").astype("uint64")
    mixed = pd.util.hash_array(ids ^ pd.util.hash_array(micros))
    return (mixed >> np.uint64(11)).astype("float64") * 2.0 ** -53


def stratum_quotas(counts: pd.DataFrame, sample_rows: int) -> pd.DataFrame:
    """`counts` (split, label, rows) with the rows each stratum keeps: the same fraction of every
    stratum, sample_rows / all rows, rounded down, so that at most sample_rows are kept."""
    total = int(counts["rows"].sum())
    quotas = counts.copy()
    quotas["sampled"] = [int(n) if total <= sample_rows else int(n) * int(sample_rows) // total for n in counts["rows"]]
    return quotas


def stratified_sample(table: ibis.Table, sample_rows: int, seed: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """At most `sample_rows` rows of the labelled `table` (labelled_table's columns), as a pandas
    frame in labelled_rows' order, and an account of the draw: rows in full, rows sampled, and
    rows, sampled rows and fraction per stratum (split, label).

    Each stratum keeps its quota of rows with the smallest draws (`draw`). Only those rows, and
    the keys of a few more, come to the driver."""
    if sample_rows < 1:
        raise ValueError(f"train.spark.sample_rows must be a whole number of at least 1, got {sample_rows!r}")
    counts = table.group_by(STRATA).aggregate(rows=table.count()).to_pandas()
    quotas = stratum_quotas(counts.sort_values(STRATA, kind="stable").reset_index(drop=True), sample_rows)
    total = int(quotas["rows"].sum())
    if total <= sample_rows:
        chosen = table
    else:
        keys = ibis.memtable(_chosen_keys(table, quotas, seed), schema=table.select(*CUSTOMER_KEYS).schema())
        chosen = table.semi_join(keys, CUSTOMER_KEYS)
    # through Arrow, as pandas reads Parquet: the same column types as labelled_rows on every engine
    rows = chosen.to_pyarrow().to_pandas().sort_values(ROW_ORDER, kind="stable").reset_index(drop=True)
    strata = [{"split": str(q.split), "label": _plain(q.label), "rows": int(q.rows), "sampled": int(q.sampled),
               "fraction": q.sampled / q.rows} for q in quotas.itertuples()]
    return rows, {"rows": total, "sampled": len(rows), "fraction": len(rows) / total if total else 1.0,
                  "strata": strata}


def _chosen_keys(table: ibis.Table, quotas: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The keys of the rows with the smallest draws in each stratum, as many as its quota.

    Only rows under a threshold per stratum come back: one set to bring the quota and a margin
    of eight standard deviations. A stratum that still falls short is read whole the next time."""
    keys = table.select(*CUSTOMER_KEYS, *STRATA)
    drawn = map_batches(keys, lambda batch: batch.assign(**{DRAW: draw(batch, seed)}),
                        ibis.schema({**keys.schema(), DRAW: "float64"}))
    limits = {(q.split, q.label): min(1.0, (q.sampled + 8 * math.sqrt(q.sampled) + 10) / q.rows)
              for q in quotas.itertuples()}
    while True:
        under = ibis.cases(*[((drawn.split == split) & (drawn.label == _plain(label)), limit)
                             for (split, label), limit in limits.items()], else_=0.0)
        near = drawn.filter(drawn[DRAW] < under).to_pandas()
        got = near.groupby(STRATA).size()
        short = [(q.split, q.label) for q in quotas.itertuples() if got.get((q.split, q.label), 0) < q.sampled]
        if not short:
            break
        limits.update(dict.fromkeys(short, 2.0))  # above every draw: the whole stratum
    near = near.sort_values([*STRATA, DRAW, *CUSTOMER_KEYS], kind="stable").reset_index(drop=True)
    quota = near[STRATA].merge(quotas, on=STRATA, how="left")["sampled"].to_numpy()
    keep = near.groupby(STRATA).cumcount().to_numpy() < quota
    return near.loc[keep, CUSTOMER_KEYS].reset_index(drop=True)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for JSON and MLflow)."""
    return value.item() if hasattr(value, "item") else value


@dataclass
class SparkTraining:
    """A training run on Spark: every labelled row on the engine, the sample of them the driver
    works on, how it was drawn (`stratified_sample`'s account), and the XGBoost workers."""

    con: ibis.BaseBackend
    table: ibis.Table
    sample: pd.DataFrame
    drawn: dict[str, Any]
    num_workers: int

    def rows(self, splits: list[str] | None = None) -> int:
        """Labelled rows in full, of `splits` (None: all of them)."""
        return sum(s["rows"] for s in self.drawn["strata"] if splits is None or s["split"] in splits)

    def churners(self, splits: list[str] | None = None) -> int:
        return sum(s["rows"] for s in self.drawn["strata"]
                   if (splits is None or s["split"] in splits) and s["label"] == 1)

    def fit(self, spec: FeatureSpec, params: dict, num_boost_round: int, imbalance_mode: str,
            fit_splits: list[str] | None = None, **validation: Any) -> xgb.Booster:
        """`fit_spark` on every labelled row of `fit_splits` (None: all), validated as `validation`
        says (valid_split, early_stopping_rounds); the class counts come from the draw's account."""
        return fit_spark(self.con, self.table, spec, params, num_boost_round, imbalance_mode, fit_splits=fit_splits,
                         num_workers=self.num_workers, class_counts=(self.rows(fit_splits), self.churners(fit_splits)),
                         **validation)

    def describe(self) -> str:
        """One sentence for the output and the MLflow run: what ran on all rows, what on the sample."""
        drawn = self.drawn
        if drawn["sampled"] == drawn["rows"]:
            sample = f"all {drawn['rows']:,} labelled rows (no more than train.spark.sample_rows)"
        else:
            sample = (f"a sample of {drawn['sampled']:,} of the {drawn['rows']:,} labelled rows "
                      f"(about {drawn['fraction']:.1%} of each split and class, drawn by the seed)")
        return (f"on Spark: the held-out model and the refit learned from every labelled row with xgboost.spark "
                f"on {self.num_workers} worker(s); the redundancy check, leakage probe, search, calibration, "
                f"baselines and drift profile used {sample}, and so do evaluate and explain")

    def mlflow_params(self) -> dict[str, Any]:
        return {"train.sample.rows": self.drawn["sampled"], "train.sample.rows_full": self.drawn["rows"],
                "train.sample.fraction": round(self.drawn["fraction"], 6), "train.spark.workers": self.num_workers}


def fit_spark(
    con: ibis.BaseBackend,
    table: ibis.Table,
    spec: FeatureSpec,
    params: dict,
    num_boost_round: int,
    imbalance_mode: str,
    *,
    fit_splits: list[str] | None = None,
    valid_split: str | None = None,
    early_stopping_rounds: int | None = None,
    num_workers: int | None = None,
    class_counts: tuple[int, int] | None = None,
) -> xgb.Booster:
    """Fit on the rows of `table` (labelled_table's columns, on the Spark engine `con`) whose split
    is one of `fit_splits` (None: every row), with SparkXGBClassifier on `num_workers` (None:
    Spark's default parallelism).

    `params` are `booster_params`; the class weighting of `imbalance_mode` is computed on the
    fitted rows, as `imbalance` does in process, from `class_counts` (rows, churners) when the
    caller knows them, or counted. With `valid_split`, those rows are scored
    (unweighted, as in `train_booster`); with `early_stopping_rounds` too, they stop the fit and
    the booster keeps its best trees, as `train_booster`'s does; without, all
    `num_boost_round` trees are kept, as `fit_rounds` keeps them. The booster carries the spec and
    the validation score; calibration, profile and fit record are the caller's to set."""
    from xgboost.spark import SparkXGBClassifier

    from churnml.data import spark

    if not spark.is_spark(con):
        raise ValueError("fit_spark trains with xgboost.spark: engine.backend must be spark")
    if valid_split is not None and (fit_splits is None or valid_split in fit_splits):
        raise ValueError(f"the validation split '{valid_split}' must not be among the fitted splits {fit_splits}")
    if early_stopping_rounds is not None and valid_split is None:
        raise ValueError("early stopping needs a validation split")
    catalog = feature_catalog(spec)
    names = [info.name for info in catalog]
    if class_counts is None:
        fitted = table if fit_splits is None else table.filter(table.split.isin(fit_splits))
        counts = con.execute(fitted.group_by("label").aggregate(rows=fitted.count()))
        class_counts = int(counts["rows"].sum()), int(counts.loc[counts["label"] == 1, "rows"].sum())
    extra, churner_weight = class_weighting(*class_counts, imbalance_mode)
    rows = table if fit_splits is None else table.filter(table.split.isin([*fit_splits, *([valid_split] if valid_split else [])]))
    rows = rows.select(*names, "label", "split")
    # positional column names: a feature's name never has to be a valid Spark column reference
    columns = [f"_churnml_x{i}" for i in range(len(names))]

    def model_input(batch: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(design_matrix(batch, spec).to_numpy(dtype="float64"), columns=columns)
        label = batch["label"].to_numpy(dtype="float64")
        is_valid = (batch["split"] == valid_split).to_numpy(dtype=bool)
        weight = np.ones(len(label)) if churner_weight is None else np.where(label == 1, churner_weight, 1.0)
        # the validation rows are scored unweighted, as train_booster scores them
        return out.assign(**{LABEL: label, WEIGHT: np.where(is_valid, 1.0, weight), VALID: is_valid})

    schema = ibis.schema({**dict.fromkeys(columns, "float64"), LABEL: "float64", WEIGHT: "float64", VALID: "boolean"})
    # the design matrix is made on the executors, batch by batch, by the one encoding there is
    frame = spark.to_frame(con, spark.map_batches(con, rows, model_input, schema))
    booster_args = {k: v for k, v in {**params, **extra}.items() if k not in ("objective", "nthread")}
    estimator = SparkXGBClassifier(
        features_col=columns, label_col=LABEL,
        weight_col=WEIGHT if churner_weight is not None else None,
        validation_indicator_col=VALID if valid_split else None,
        num_workers=workers(con, num_workers), force_repartition=True,
        feature_names=names, feature_types=feature_types(catalog),
        n_estimators=int(num_boost_round), early_stopping_rounds=early_stopping_rounds, verbose=False, **booster_args)
    # xgboost.spark logs every parameter of every fit at INFO: stage output is for churnml's lines
    logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)
    model = estimator.fit(frame)
    booster = model.get_booster()
    if early_stopping_rounds is not None:
        booster, score = best_trees(booster)
        return with_spec(booster, score, spec)
    history = model.training_summary.validation_objective_history if valid_split else None
    return with_spec(booster, last_score(history) if history else None, spec)


def workers(con: ibis.BaseBackend, num_workers: int | None) -> int:
    """The XGBoost workers a fit uses: `num_workers`, or Spark's default parallelism."""
    return int(num_workers or con._session.sparkContext.defaultParallelism)
