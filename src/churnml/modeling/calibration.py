"""Probability calibration that travels with the model as plain JSON (no pickles).

XGBoost ranks well but its probabilities can be off (class weights, early stopping, small
slices). We pick among no calibration, Platt scaling and isotonic regression by a cross-fitted
Brier score on the validation slice, so the choice is not judged on the rows it was fitted to,
and store only the few numbers needed to apply it again.

Calibration must not cost ranking. Plain isotonic regression is a step function: on a slice
with few churners it maps thousands of distinct scores to a few dozen values, tied scores rank
nothing, and ROC AUC and top-decile lift fall (on a retailer's 1,837 customers, 48 distinct
probabilities and 0.004 ROC AUC lost). So the isotonic map is stored in its centred form
(centred isotonic regression, Oron and Flournoy 2017): one point per block of the fit, at the
block's middle, joined by straight lines in logit space, and continued beyond the first and last
block with the raw model's own slope. It is strictly increasing: distinct raw scores stay
distinct and the ranking is the model's. A method is still a candidate only when its
cross-fitted validation ROC AUC stays within `auc_tolerance` of the raw model's; Platt scaling
is strictly increasing too.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

METHODS = ("none", "platt", "isotonic")
_EPS = 1e-9  # keeps logit finite for raw probabilities of exactly 0 or 1
# the most validation ROC AUC a calibration may cost and still be chosen by "auto"
AUC_TOLERANCE = 0.002


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
    """The centred isotonic map: the middle of each block of the isotonic fit and its churn rate."""
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
    xs, ys = np.asarray(iso.X_thresholds_, dtype="float64"), np.asarray(iso.y_thresholds_, dtype="float64")
    # sklearn keeps each block's first and last score; a block is a run of equal fitted values
    block = np.concatenate([[0], np.cumsum(np.diff(ys) != 0)])
    centres = [float((xs[block == b].min() + xs[block == b].max()) / 2) for b in range(block[-1] + 1)]
    rates = [float(ys[block == b][0]) for b in range(block[-1] + 1)]
    return {"form": "centred", "x": centres, "y": rates}


_FITTERS = {"platt": _fit_platt, "isotonic": _fit_isotonic}


def fit_calibration(y_valid: np.ndarray, raw_prob_valid: np.ndarray, seed: int, folds: int = 5,
                    method: str = "auto", auc_tolerance: float = AUC_TOLERANCE) -> dict:
    """Choose and fit a calibration on the validation slice; returns a JSON-serialisable dict.

    `method` "auto" chooses the lowest cross-fitted Brier among the methods whose cross-fitted
    ROC AUC is within `auc_tolerance` of the raw model's ("none" always qualifies); "none",
    "platt" or "isotonic" force that one (the cross-fitted scores are still reported, so the
    forced choice can be judged). The dict's "reason" says, in words, why the method was chosen.
    """
    if method != "auto" and method not in METHODS:
        raise ValueError(f"train.calibration: '{method}' is not one of {['auto', *METHODS]}")
    if not auc_tolerance >= 0:
        raise ValueError(f"train.calibration_auc_tolerance: must be 0 or more, got {auc_tolerance}")
    y = np.asarray(y_valid).astype(int)
    raw = np.asarray(raw_prob_valid, dtype="float64")
    if y.shape != raw.shape:
        raise ValueError(f"labels and probabilities differ in shape: {y.shape} vs {raw.shape}")
    result: dict = {"method": "none", "brier_raw": None, "brier_platt": None, "brier_isotonic": None,
                    "auc_raw": None, "auc_drop_platt": None, "auc_drop_isotonic": None,
                    "auc_tolerance": float(auc_tolerance)}
    if len(y) == 0:
        return {**result, "reason": "empty validation slice"}
    result["brier_raw"] = float(brier_score_loss(y, raw))
    # Each fold needs both classes, so the rarer class bounds the number of folds.
    k = min(folds, int(y.sum()), int(len(y) - y.sum()))
    if k < 2:
        if method in _FITTERS:
            return {**result, "method": method, **_FITTERS[method](y, raw),
                    "reason": "forced by train.calibration (too few examples of one class to judge it)"}
        return {**result, "reason": "validation slice has too few examples of one class to cross-fit"}

    result["auc_raw"] = float(roc_auc_score(y, raw))
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for candidate, fitter in _FITTERS.items():
        held_out = np.empty_like(raw)
        drops = []
        for fit_idx, test_idx in splitter.split(raw.reshape(-1, 1), y):
            params = fitter(y[fit_idx], raw[fit_idx])
            held_out[test_idx] = apply_calibration(raw[test_idx], {"method": candidate, **params})
            # AUC is compared fold by fold, on the same rows: pooling the folds would mix several
            # fitted maps and charge even a strictly increasing one for their differences.
            drops.append(roc_auc_score(y[test_idx], raw[test_idx]) - roc_auc_score(y[test_idx], held_out[test_idx]))
        result[f"brier_{candidate}"] = float(brier_score_loss(y, held_out))
        result[f"auc_drop_{candidate}"] = float(np.mean(drops))
    result["folds"] = k

    best, reason = _choose(result, method, float(auc_tolerance))
    result["method"], result["reason"] = best, reason
    if best != "none":
        result.update(_FITTERS[best](y, raw))
    return result


def _choose(scores: dict, method: str, tolerance: float) -> tuple[str, str]:
    """The method and the reason for it, from the cross-fitted Brier scores and AUC drops."""
    brier = {"none": scores["brier_raw"], "platt": scores["brier_platt"], "isotonic": scores["brier_isotonic"]}
    drop = {"none": 0.0, "platt": scores["auc_drop_platt"], "isotonic": scores["auc_drop_isotonic"]}
    costly = [m for m in METHODS if drop[m] > tolerance]
    if method != "auto":
        reason = f"forced by train.calibration (cross-fitted Brier {brier[method]:.4f}, raw {brier['none']:.4f})"
        if method in costly:
            reason += f"; note: it lowers validation ROC AUC by {drop[method]:.4f}, more than {tolerance:g}"
        return method, reason
    # A method must be strictly better to be chosen; ties keep the simpler one (METHODS order).
    kept = [m for m in METHODS if m not in costly]
    best = min(kept, key=lambda m: (brier[m], METHODS.index(m)))
    if best == "none":
        reason = f"no method that keeps the validation ranking lowers the cross-fitted Brier ({brier['none']:.4f} raw)"
    else:
        reason = (f"lowest cross-fitted Brier among methods that keep the validation ranking: {brier[best]:.4f} "
                  f"vs {brier['none']:.4f} raw, ROC AUC drop {max(drop[best], 0.0):.4f} <= {tolerance:g}")
    rejected = [f"{m} (Brier {brier[m]:.4f}, but ROC AUC drop {drop[m]:.4f} > {tolerance:g})"
                for m in costly if brier[m] < brier[best]]
    if rejected:
        reason += "; rejected " + ", ".join(rejected)
    return best, reason


def apply_calibration(raw_prob: np.ndarray, calibration: dict | None) -> np.ndarray:
    """Map raw probabilities through a calibration dict; monotone non-decreasing in the raw value."""
    raw = np.asarray(raw_prob, dtype="float64")
    method = "none" if calibration is None else calibration.get("method", "none")
    if method == "none":
        return raw
    if method == "platt":
        return _sigmoid(float(calibration["a"]) * _logit(raw) + float(calibration["b"]))
    if method == "isotonic":
        x, y = np.asarray(calibration["x"], dtype="float64"), np.asarray(calibration["y"], dtype="float64")
        if calibration.get("form") != "centred":
            # a map stored before the centred form: the step function, held flat past its ends
            return np.interp(raw, x, y)
        return _centred(raw, x, y)
    raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")


# a block with no churner (or only churners) has a rate of 0 (or 1), which has no logit: held this
# far inside, it stays far below (above) every other block and the line through it keeps rising
_RATE_FLOOR = 1e-4


def _centred(raw: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Straight lines in logit space through the block centres; past the first and last centre,
    the raw logit's own slope (1), so the map is strictly increasing everywhere."""
    z = _logit(raw)
    zx, zy = _logit(x), _logit(np.clip(y, _RATE_FLOOR, 1 - _RATE_FLOOR))
    inside = np.interp(z, zx, zy)
    below, above = zy[0] + (z - zx[0]), zy[-1] + (z - zx[-1])
    return _sigmoid(np.where(z < zx[0], below, np.where(z > zx[-1], above, inside)))
