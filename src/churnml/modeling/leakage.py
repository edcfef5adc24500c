"""The single-feature AUC probe: a feature that alone nearly separates churners is suspect.

Real churn signals are noisy; a single column reaching AUC ~1 on the training rows usually means
it was computed with information from after the cutoff (or from the label itself).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

MAX_LISTED = 10


class LeakageError(ValueError):
    """Raised when features reach a suspiciously high AUC on their own."""


def _oriented_auc(y: np.ndarray, values: np.ndarray) -> float:
    auc = float(roc_auc_score(y, values))
    return max(auc, 1.0 - auc)  # a rule may use the column either way round


def _numeric_auc(y: np.ndarray, values: np.ndarray) -> float:
    missing = np.isnan(values)
    present = values[~missing]
    if present.size == 0 or (not missing.any() and np.ptp(present) == 0):
        return 0.5  # constant: no rule can separate anything
    if not missing.any():
        return _oriented_auc(y, values)
    # Missingness can itself be the signal (e.g. "never ordered"), so try it at both ends.
    low, high = present.min() - 1.0, present.max() + 1.0
    return max(_oriented_auc(y, np.where(missing, low, values)),
               _oriented_auc(y, np.where(missing, high, values)))


def _categorical_auc(y: np.ndarray, values: pd.Series) -> float:
    # Each level (missing included) is replaced by its churn rate here; the AUC of that encoding
    # is the best a lookup on this column can do. In-sample, so ID-like columns also score high.
    frame = pd.DataFrame({"level": values.to_numpy(), "y": y})
    rate = frame.groupby("level", dropna=False)["y"].transform("mean").to_numpy(dtype="float64")
    return _oriented_auc(y, rate)


def single_feature_auc(x: pd.DataFrame, y: np.ndarray, categorical: set[str] = frozenset()) -> pd.Series:
    """Best AUC in [0.5, 1] a rule on each column alone reaches; sorted descending."""
    y = np.asarray(y).astype(int)
    if len(y) != len(x):
        raise ValueError(f"{len(x)} rows but {len(y)} labels")
    if np.unique(y).size < 2:
        raise ValueError("single-feature AUC needs both churners and non-churners in the labels")
    aucs = {}
    for name in x.columns:
        if name in categorical:
            aucs[name] = _categorical_auc(y, x[name])
        else:
            aucs[name] = _numeric_auc(y, pd.to_numeric(x[name]).to_numpy(dtype="float64"))
    return pd.Series(aucs, dtype="float64", name="auc").sort_values(ascending=False, kind="stable")


def check_leakage(aucs: pd.Series, max_auc: float, allow: list[str]) -> list[str]:
    """Names of features whose AUC exceeds `max_auc` and that are not explicitly allowed."""
    allowed = set(allow)
    ordered = aucs.sort_values(ascending=False, kind="stable")
    return [str(name) for name, auc in ordered.items() if auc > max_auc and name not in allowed]


def raise_for_leakage(aucs: pd.Series, max_auc: float, allow: list[str]) -> None:
    """Raise LeakageError naming each offending feature (up to MAX_LISTED) with its AUC."""
    offenders = check_leakage(aucs, max_auc, allow)
    if not offenders:
        return
    lines = [
        f"feature {name!r} alone reaches AUC {aucs[name]:.3f} on the training data (limit {max_auc:g}): "
        "likely leakage of the label; fix the feature or allow it in train.leakage.allow"
        for name in offenders[:MAX_LISTED]
    ]
    if len(offenders) > MAX_LISTED:
        lines.append(f"... and {len(offenders) - MAX_LISTED} more")
    raise LeakageError("\n".join(lines))
