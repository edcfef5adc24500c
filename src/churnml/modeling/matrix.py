"""The model's input: labelled rows for training and evaluation, and the design matrix.

Categorical features are encoded to the integer codes of the levels fixed at training time and
handed to XGBoost's native categorical support; a level first seen at scoring time becomes
missing, which every tree already has a learned direction for.
"""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import xgboost as xgb

from churnml.features.build import CUSTOMER_KEYS, FeatureSpec, feature_catalog
from churnml.features.catalog import FeatureInfo


def design_matrix(features: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Model input: numeric features as float, categorical ones as codes of the spec's levels."""
    catalog = feature_catalog(spec)
    missing = [info.name for info in catalog if info.name not in features.columns]
    if missing:
        raise ValueError(f"features missing for the model: {missing}")
    columns: dict[str, np.ndarray] = {}
    for info in catalog:
        values = features[info.name]
        if info.kind == "categorical":
            levels = spec.levels.get(info.name, [])
            codes = pd.Categorical(values.astype("string"), categories=levels).codes.astype("float64")
            codes[codes < 0] = np.nan  # unseen level or missing
            columns[info.name] = codes
        else:
            columns[info.name] = pd.to_numeric(values, errors="raise").astype("float64").to_numpy()
    return pd.DataFrame(columns, index=features.index)


def feature_types(catalog: list[FeatureInfo]) -> list[str]:
    return ["c" if info.kind == "categorical" else "q" for info in catalog]


def to_dmatrix(matrix: pd.DataFrame, spec: FeatureSpec, label: np.ndarray | None = None,
              weight: np.ndarray | None = None) -> xgb.DMatrix:
    catalog = feature_catalog(spec)
    return xgb.DMatrix(
        matrix.to_numpy(dtype="float64"),
        label=label,
        weight=weight,
        feature_names=[info.name for info in catalog],
        feature_types=feature_types(catalog),
        enable_categorical=True,
        missing=np.nan,
    )


def labelled_rows(features: pd.DataFrame, observations: pd.DataFrame) -> pd.DataFrame:
    """Features joined to their label and split; every observation must have its feature row."""
    obs = observations[[*CUSTOMER_KEYS, "label", "split"]]
    merged = obs.merge(features, on=CUSTOMER_KEYS, how="left", indicator=True, validate="one_to_one")
    missing = merged["_merge"] != "both"
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} observations have no feature row, e.g.\n"
            f"{merged.loc[missing, CUSTOMER_KEYS].head(5).to_string(index=False)}\nrerun the features stage"
        )
    return merged.drop(columns="_merge")


def labelled_table(features: ibis.Table, observations: ibis.Table) -> ibis.Table:
    """`labelled_rows` on the engine, for a table too large to collect (Spark): the same columns
    in the same order; only a count and at most five example rows come back to check it."""
    obs = observations.select(*CUSTOMER_KEYS, "label", "split")
    missing = obs.anti_join(features, CUSTOMER_KEYS)
    count = int(missing.count().execute())
    if count:
        examples = missing.select(*CUSTOMER_KEYS).order_by(CUSTOMER_KEYS).limit(5).to_pandas()
        raise ValueError(f"{count} observations have no feature row, e.g.\n{examples.to_string(index=False)}\n"
                         "rerun the features stage")
    return obs.join(features, CUSTOMER_KEYS)


def split_xy(rows: pd.DataFrame, spec: FeatureSpec, split: str) -> tuple[pd.DataFrame, np.ndarray]:
    part = rows[rows["split"] == split]
    if part.empty:
        raise ValueError(f"no '{split}' rows: check labels.split and the cutoff grid")
    return design_matrix(part, spec), part["label"].to_numpy(dtype="float64")
