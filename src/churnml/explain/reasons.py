"""Why a customer is at risk: exact per-customer TreeSHAP contributions, rendered as reasons.

The contributions are exact path-dependent TreeSHAP (the values of XGBoost's `pred_contribs`) on
the very matrix the model scores; each reason is a sentence from the feature catalog with the
customer's raw value.
"""

from __future__ import annotations

import logging
import weakref

import numpy as np
import pandas as pd
import xgboost as xgb

from churnml.features.catalog import FeatureInfo, format_value, sentence
from churnml.features.build import FeatureSpec, feature_catalog
from churnml.modeling.matrix import to_dmatrix
from churnml.explain.treeshap import TreeShapModel, compile_model, shap_values

log = logging.getLogger(__name__)
# compiled tables per booster object, dropped with the booster
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# contributions plus bias must equal the model's margin to this tolerance
ADDITIVITY_TOLERANCE = 1e-3


def _compiled(booster: xgb.Booster) -> TreeShapModel | None:
    """The booster's look-up tables, built once per booster object; None when unsupported."""
    if booster not in _COMPILED:
        try:
            _COMPILED[booster] = compile_model(booster)
        except NotImplementedError as reason:
            log.info("explain: exact tables not supported for this model (%s); using pred_contribs", reason)
            _COMPILED[booster] = None
    return _COMPILED[booster]


def contributions(booster: xgb.Booster, matrix: pd.DataFrame, spec: FeatureSpec,
                  device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """SHAP values (rows x features) and the bias per row, checked against the margin.

    On the CPU: churnml's table-driven TreeSHAP (`churnml.explain.treeshap`), the fastest exact method
    measured (BENCHMARKS.md), falling back to XGBoost's `pred_contribs` for models it does not
    support. `device="cuda"`: XGBoost's GPU TreeSHAP. All give the same path-dependent values.
    """
    dmatrix = to_dmatrix(matrix, spec)
    compiled = _compiled(booster) if device == "cpu" else None
    if compiled is not None:
        contribs = shap_values(compiled, matrix.to_numpy(dtype="float64"))
    else:
        if device != "cpu":
            booster = booster.copy()
            booster.set_param({"device": device})
        contribs = booster.predict(dmatrix, pred_contribs=True)
    margin = booster.predict(dmatrix, output_margin=True)
    gap = np.abs(contribs.sum(axis=1) - margin)
    if len(gap) and gap.max() > ADDITIVITY_TOLERANCE:
        raise AssertionError(f"SHAP contributions do not add up to the margin (max gap {gap.max():.2e})")
    return contribs[:, :-1], contribs[:, -1]


def _driver(info: FeatureInfo, row: pd.Series, contribution: float, by_name: dict[str, FeatureInfo]) -> tuple:
    return sentence(info, row, by_name), info.name, format_value(row[info.name], info.unit, info.kind), contribution


def top_reasons(
    shap_values: np.ndarray, raw: pd.DataFrame, catalog: list[FeatureInfo], k: int = 5
) -> pd.DataFrame:
    """For each row, the k drivers that raise the risk most and the one that lowers it most.

    Each driver has four columns: the sentence (`reason_i`), the feature (`reason_i_feature`),
    its value as read (`reason_i_value`) and its SHAP contribution in log-odds
    (`reason_i_contribution`); the protective driver likewise as `protective*`. Only
    contributions > 0 are reasons and < 0 protective; a row with fewer gets empty slots. Equal
    contributions are ordered by catalog position, so the output is deterministic.
    """
    n, f = shap_values.shape
    by_name = {info.name: info for info in catalog}
    order = np.argsort(-shap_values, axis=1, kind="stable")[:, :k]
    lowest = np.argsort(shap_values, axis=1, kind="stable")[:, 0] if f else np.full(n, -1)
    slots = [f"reason_{i + 1}" for i in range(k)] + ["protective"]
    out: dict[str, list] = {f"{slot}{suffix}": [] for slot in slots for suffix in ("", "_feature", "_value", "_contribution")}
    empty = (None, None, None, np.nan)
    for row in range(n):
        record = raw.iloc[row]
        drivers = []
        for slot in range(k):
            j = order[row, slot] if f > slot else -1
            positive = j >= 0 and shap_values[row, j] > 0
            drivers.append(_driver(catalog[j], record, float(shap_values[row, j]), by_name) if positive else empty)
        j = lowest[row]
        negative = j >= 0 and shap_values[row, j] < 0
        drivers.append(_driver(catalog[j], record, float(shap_values[row, j]), by_name) if negative else empty)
        for slot, driver in zip(slots, drivers):
            for suffix, item in zip(("", "_feature", "_value", "_contribution"), driver):
                out[f"{slot}{suffix}"].append(item)
    frame = pd.DataFrame(out, index=raw.index)
    for column in frame.columns:
        if not column.endswith("_contribution"):
            frame[column] = frame[column].astype("string")
    return frame


def explain_rows(
    booster: xgb.Booster, features: pd.DataFrame, matrix: pd.DataFrame, spec: FeatureSpec, k: int = 5,
    device: str = "cpu",
) -> tuple[pd.DataFrame, np.ndarray]:
    """Reasons for every row of `features` (raw values) / `matrix` (model input), and the SHAP values."""
    values, _ = contributions(booster, matrix, spec, device)
    reasons = top_reasons(values, features.reset_index(drop=True), feature_catalog(spec), k)
    reasons.index = features.index
    return reasons, values
