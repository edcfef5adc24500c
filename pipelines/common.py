"""What every stage entry does first: read params.yaml once, open the engine and the data."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import xgboost as xgb

from churnml.data.contract import open_contract_tables
from churnml.data.engine import connect
from churnml.features.build import FeatureSpec
from churnml.data.io import read_json
from churnml.modeling.booster import spec_of
from churnml.params import load_params
from churnml.data.engine import connect_configured
from churnml.modeling.matrix import labelled_rows

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


def labelled(params: dict[str, Any]) -> pd.DataFrame:
    """The feature table joined to each observation's label and split."""
    paths = params["paths"]
    return labelled_rows(pd.read_parquet(paths["features"]), pd.read_parquet(paths["observations"]))


def trained_model(params: dict[str, Any]) -> tuple[xgb.Booster, FeatureSpec, dict[str, Any]]:
    """The model the train stage wrote, its feature spec, and its record (MLflow run id, version)."""
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
