"""What every stage entry does first: read params.yaml once, open the engine and the data."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
import pandas as pd

from churnml.data import parquet
from churnml.data.contract import open_contract_tables
from churnml.data.engine import connect
from churnml.data.io import read_json
from churnml.params import load_params
from churnml.data.engine import connect_configured

if TYPE_CHECKING:
    import xgboost as xgb

    from churnml.features.build import FeatureSpec
    from churnml.modeling.distributed import SparkTraining

# The modelling imports (XGBoost, and through it SciPy and scikit-learn: seconds) are made by the
# functions that need them, so the data stages, which never do, start without them.

# MLflow and DVC stay offline: no usage telemetry from a pipeline run.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


def start(stage: str) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format=f"[{stage}] %(message)s", stream=sys.stdout)
    logging.getLogger("churnml").setLevel(logging.INFO)
    return load_params()


def run(stage: str, main: Callable[[], int]) -> int:
    """Run a stage's main; a RuntimeError (the MLflow store is read-only or unreachable, a model
    cannot be loaded) is one line on stderr and exit status 1, as in the CLI, not a traceback."""
    try:
        return main()
    except RuntimeError as error:
        print(f"{stage}: {error}", file=sys.stderr)
        return 1


def engine(params: dict[str, Any]) -> ibis.BaseBackend:
    return connect_configured(params["engine"])


def validated_tables(params: dict[str, Any], con: ibis.BaseBackend) -> dict[str, ibis.Table]:
    return open_contract_tables(con, params["paths"]["validated"])


def on_spark(params: dict[str, Any]) -> bool:
    return (params["engine"].get("backend") or "duckdb") == "spark"


def labelled(params: dict[str, Any]) -> pd.DataFrame:
    """The feature table joined to each observation's label and split. On Spark, the bounded
    stratified sample of it that train's driver side works on (train.spark.sample_rows), so that
    evaluate and explain see the same rows."""
    if on_spark(params):
        return spark_training(params).sample
    from churnml.modeling.matrix import labelled_rows

    paths = params["paths"]
    return labelled_rows(pd.read_parquet(paths["features"]), pd.read_parquet(paths["observations"]))


def spark_training(params: dict[str, Any]) -> SparkTraining:
    """Every labelled row on the Spark engine, the driver's sample of them, and the workers."""
    from churnml.modeling.distributed import SparkTraining, stratified_sample, workers
    from churnml.modeling.matrix import labelled_table

    paths, settings = params["paths"], params["train"].get("spark") or {}
    con = engine(params)
    table = labelled_table(parquet.read(con, paths["features"]), parquet.read(con, paths["observations"]))
    sample, drawn = stratified_sample(table, int(settings["sample_rows"]), int(params["seed"]))
    return SparkTraining(con, table, sample, drawn, workers(con, settings.get("num_workers")))


def trained_model(params: dict[str, Any]) -> tuple[xgb.Booster, FeatureSpec, dict[str, Any]]:
    """The model the train stage wrote, its feature spec, and its record (MLflow run id, version)."""
    import xgboost as xgb

    from churnml.modeling.booster import spec_of

    model_dir = Path(params["paths"]["model_dir"])
    booster = xgb.Booster(model_file=str(model_dir / "model.ubj"))
    return booster, spec_of(booster), read_json(model_dir / "train.json")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'model': {'max_depth': 6}} -> {'model.max_depth': 6}, for MLflow params."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
