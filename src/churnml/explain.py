"""Why a customer is at risk: exact per-customer TreeSHAP contributions, rendered as reasons.

The contributions are XGBoost's `pred_contribs` (path-dependent TreeSHAP) on the very matrix the
model scores; each reason is a sentence from the feature catalog with the customer's raw value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xgboost as xgb

from churnml.catalog import FeatureInfo
from churnml.features import FeatureSpec, feature_catalog
from churnml.model import to_dmatrix

# contributions plus bias must equal the model's margin to this tolerance
ADDITIVITY_TOLERANCE = 1e-3


def contributions(booster: xgb.Booster, matrix: pd.DataFrame, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """SHAP values (rows x features) and the bias per row, checked against the margin."""
    dmatrix = to_dmatrix(matrix, spec)
    contribs = booster.predict(dmatrix, pred_contribs=True)
    margin = booster.predict(dmatrix, output_margin=True)
    gap = np.abs(contribs.sum(axis=1) - margin)
    if len(gap) and gap.max() > ADDITIVITY_TOLERANCE:
        raise AssertionError(f"SHAP contributions do not add up to the margin (max gap {gap.max():.2e})")
    return contribs[:, :-1], contribs[:, -1]


def top_reasons(
    shap_values: np.ndarray, raw: pd.DataFrame, catalog: list[FeatureInfo], k: int = 3
) -> pd.DataFrame:
    """For each row, the k features that raise the risk most, as text and as structured columns.

    Only risk-raising contributions (> 0) become reasons; a row with fewer gets empty slots.
    Equal contributions are ordered by catalog position, so the output is deterministic.
    """
    n, f = shap_values.shape
    order = np.argsort(-shap_values, axis=1, kind="stable")[:, :k]
    out: dict[str, list] = {}
    for slot in range(k):
        idx = order[:, slot] if f > slot else np.full(n, -1)
        texts, names, values = [], [], []
        for row, j in enumerate(idx):
            if j < 0 or shap_values[row, j] <= 0:
                texts.append(None)
                names.append(None)
                values.append(np.nan)
                continue
            info = catalog[j]
            texts.append(info.describe(raw.iloc[row][info.name]))
            names.append(info.name)
            values.append(float(shap_values[row, j]))
        out[f"reason_{slot + 1}"] = texts
        out[f"reason_{slot + 1}_feature"] = names
        out[f"reason_{slot + 1}_contribution"] = values
    return pd.DataFrame(out, index=raw.index)


def explain_rows(
    booster: xgb.Booster, features: pd.DataFrame, matrix: pd.DataFrame, spec: FeatureSpec, k: int = 3
) -> tuple[pd.DataFrame, np.ndarray]:
    """Reasons for every row of `features` (raw values) / `matrix` (model input), and the SHAP values."""
    values, _ = contributions(booster, matrix, spec)
    reasons = top_reasons(values, features.reset_index(drop=True), feature_catalog(spec), k)
    reasons.index = features.index
    return reasons, values


def summary_plot(shap_values: np.ndarray, matrix: pd.DataFrame, path, max_display: int = 20) -> None:
    """The global beeswarm of SHAP values, drawn by the shap library, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    shap.summary_plot(shap_values, matrix, feature_names=list(matrix.columns), show=False,
                      max_display=max_display, plot_size=(9, 7))
    plt.title("What drives churn risk (SHAP, out-of-time test set)")
    plt.tight_layout()
    plt.savefig(path, dpi=110)
    plt.close("all")
