"""Putting features and labels together for training and evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnml.features import CUSTOMER_KEYS, FeatureSpec
from churnml.model import design_matrix


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


def split_xy(rows: pd.DataFrame, spec: FeatureSpec, split: str) -> tuple[pd.DataFrame, np.ndarray]:
    part = rows[rows["split"] == split]
    if part.empty:
        raise ValueError(f"no '{split}' rows: check labels.split and the cutoff grid")
    return design_matrix(part, spec), part["label"].to_numpy(dtype="float64")
