"""Features that carry nothing on the training rows: constant, or identical to another feature.

A constant feature never splits a tree, and a copy of another feature (e.g. `eng_value_30d` when
every event's value is 1.0, so it equals `eng_events_30d`) splits SHAP credit between two names
for one fact, so explanations read half as strong as they are. Both are dropped before training;
the names go into `FeatureSpec.dropped`, which the catalog, the design matrix and scoring honour.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from churnml.features.catalog import FeatureInfo


def _signature(values: pd.Series, categorical: bool) -> np.ndarray:
    """What makes two columns the same feature: equal values (missing in the same rows), or for
    categories the same grouping of rows whatever the labels or codes (first-seen order)."""
    if categorical:
        return pd.factorize(values, use_na_sentinel=True)[0].astype("float64")
    return values.to_numpy(dtype="float64")


def redundant_features(matrix: pd.DataFrame, catalog: list[FeatureInfo]) -> dict[str, str]:
    """Feature name -> why it is dropped, for the columns of `matrix` (the training rows' design
    matrix) that are constant or identical to an earlier feature of `catalog`; the first of a
    set of identical features, in catalog order, is kept."""
    dropped: dict[str, str] = {}
    kept: dict[tuple[bool, bytes], list[tuple[str, np.ndarray]]] = {}
    for info in catalog:
        column = matrix[info.name]
        if column.nunique(dropna=False) <= 1:
            dropped[info.name] = "constant on the training rows"
            continue
        categorical = info.kind == "categorical"
        signature = _signature(column, categorical)
        # a hash buckets the candidates; equality is then checked exactly (NaN equal to NaN)
        # (missing as +inf and -0.0 as 0.0, so that equal columns always share a bucket)
        canonical = np.where(np.isnan(signature), np.inf, signature) + 0.0
        key = (categorical, hashlib.blake2b(canonical.tobytes(), digest_size=16).digest())
        bucket = kept.setdefault(key, [])
        twin = next((name for name, other in bucket if np.array_equal(other, signature, equal_nan=True)), None)
        if twin is None:
            bucket.append((info.name, signature))
        else:
            dropped[info.name] = f"identical to {twin} on the training rows"
    return dropped
