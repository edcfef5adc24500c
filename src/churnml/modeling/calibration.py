"""Probability calibration that travels with the model as plain JSON (no pickles).

XGBoost ranks well but its probabilities can be off (class weights, early stopping, small
slices). We pick among no calibration, Platt scaling and isotonic regression by a cross-fitted
Brier score on the validation slice, so the choice is not judged on the rows it was fitted to,
and store only the few numbers needed to apply it again.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold

METHODS = ("none", "platt", "isotonic")
_EPS = 1e-9  # keeps logit finite for raw probabilities of exactly 0 or 1


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype="float64"), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free form of 1 / (1 + exp(-z))


def _fit_platt(y: np.ndarray, raw: np.ndarray) -> dict:
    # A large C makes this (almost) the unpenalised Platt fit while staying well-posed on
    # separable slices.
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(raw).reshape(-1, 1), y)
    # A negative slope would reverse the model's ranking; calibration must only re-map it.
    return {"a": max(float(lr.coef_[0, 0]), 0.0), "b": float(lr.intercept_[0])}


def _fit_isotonic(y: np.ndarray, raw: np.ndarray) -> dict:
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
    return {"x": [float(v) for v in iso.X_thresholds_], "y": [float(v) for v in iso.y_thresholds_]}


_FITTERS = {"platt": _fit_platt, "isotonic": _fit_isotonic}


def fit_calibration(y_valid: np.ndarray, raw_prob_valid: np.ndarray, seed: int, folds: int = 5,
                    method: str = "auto") -> dict:
    """Choose and fit a calibration on the validation slice; returns a JSON-serialisable dict.

    `method` "auto" chooses by cross-fitted Brier; "none", "platt" or "isotonic" force that one
    (the cross-fitted scores are still reported, so the forced choice can be judged).
    """
    if method != "auto" and method not in METHODS:
        raise ValueError(f"train.calibration: '{method}' is not one of {['auto', *METHODS]}")
    y = np.asarray(y_valid).astype(int)
    raw = np.asarray(raw_prob_valid, dtype="float64")
    if y.shape != raw.shape:
        raise ValueError(f"labels and probabilities differ in shape: {y.shape} vs {raw.shape}")
    result: dict = {"method": "none", "brier_raw": None, "brier_platt": None, "brier_isotonic": None}
    if len(y) == 0:
        return {**result, "reason": "empty validation slice"}
    result["brier_raw"] = float(brier_score_loss(y, raw))
    # Each fold needs both classes, so the rarer class bounds the number of folds.
    k = min(folds, int(y.sum()), int(len(y) - y.sum()))
    if k < 2:
        if method in _FITTERS:
            return {**result, "method": method, **_FITTERS[method](y, raw)}
        return {**result, "reason": "validation slice has too few examples of one class to cross-fit"}

    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for candidate, fitter in _FITTERS.items():
        held_out = np.empty_like(raw)
        for fit_idx, test_idx in splitter.split(raw.reshape(-1, 1), y):
            params = fitter(y[fit_idx], raw[fit_idx])
            held_out[test_idx] = apply_calibration(raw[test_idx], {"method": candidate, **params})
        result[f"brier_{candidate}"] = float(brier_score_loss(y, held_out))
    result["folds"] = k

    # A method must be strictly better to be chosen; ties keep the simpler one (METHODS order).
    scores = {"none": result["brier_raw"], "platt": result["brier_platt"], "isotonic": result["brier_isotonic"]}
    best = min(METHODS, key=lambda m: (scores[m], METHODS.index(m))) if method == "auto" else method
    result["method"] = best
    if best != "none":
        result.update(_FITTERS[best](y, raw))
    return result


def apply_calibration(raw_prob: np.ndarray, calibration: dict | None) -> np.ndarray:
    """Map raw probabilities through a calibration dict; monotone non-decreasing in the raw value."""
    raw = np.asarray(raw_prob, dtype="float64")
    method = "none" if calibration is None else calibration.get("method", "none")
    if method == "none":
        return raw
    if method == "platt":
        return _sigmoid(float(calibration["a"]) * _logit(raw) + float(calibration["b"]))
    if method == "isotonic":
        # np.interp holds the end values outside the thresholds, like out_of_bounds="clip".
        return np.interp(raw, np.asarray(calibration["x"], dtype="float64"),
                         np.asarray(calibration["y"], dtype="float64"))
    raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")
