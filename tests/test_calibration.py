"""Calibration: hand-computed mappings, choice by cross-fitted Brier, JSON round trip."""

import json
import math

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from churnml.modeling.calibration import apply_calibration, fit_calibration


def _sample(n: int, seed: int, power: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true_p = rng.uniform(0, 1, n)
    y = (rng.uniform(0, 1, n) < true_p).astype(int)
    return y, true_p**power


def test_platt_by_hand():
    raw = np.array([0.1, 0.5, 0.75, 0.9])
    assert apply_calibration(raw, {"method": "platt", "a": 1.0, "b": 0.0}) == pytest.approx(raw)
    # logit(0.75) = ln 3, so sigmoid(2 ln 3) = 9 / (9 + 1)
    assert apply_calibration(np.array([0.75]), {"method": "platt", "a": 2.0, "b": 0.0})[0] == pytest.approx(0.9)
    # b shifts the log-odds: logit(0.5) = 0, sigmoid(ln 4) = 0.8
    assert apply_calibration(np.array([0.5]), {"method": "platt", "a": 1.0, "b": math.log(4)})[0] == pytest.approx(0.8)
    # raw 0 and 1 stay finite
    assert np.isfinite(apply_calibration(np.array([0.0, 1.0]), {"method": "platt", "a": 1.0, "b": 0.0})).all()


def test_none_returns_raw():
    raw = np.array([0.2, 0.7])
    np.testing.assert_array_equal(apply_calibration(raw, None), raw)
    np.testing.assert_array_equal(apply_calibration(raw, {"method": "none"}), raw)


def test_isotonic_interpolates_and_clips():
    cal = {"method": "isotonic", "x": [0.2, 0.4, 0.8], "y": [0.1, 0.3, 0.5]}
    out = apply_calibration(np.array([0.0, 0.2, 0.3, 0.6, 0.8, 1.0]), cal)
    assert out == pytest.approx([0.1, 0.1, 0.2, 0.4, 0.5, 0.5])


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="unknown calibration"):
        apply_calibration(np.array([0.5]), {"method": "beta"})


def test_miscalibrated_scores_get_calibrated():
    y, raw = _sample(3000, seed=1, power=3)
    cal = fit_calibration(y, raw, seed=7)
    assert cal["method"] in {"platt", "isotonic"}
    assert cal[f"brier_{cal['method']}"] < cal["brier_raw"]
    y_new, raw_new = _sample(20000, seed=2, power=3)
    calibrated = apply_calibration(raw_new, cal)
    assert brier_score_loss(y_new, calibrated) < brier_score_loss(y_new, raw_new) - 0.005
    # monotone in the raw probability
    order = np.argsort(raw_new)
    assert np.all(np.diff(calibrated[order]) >= -1e-12)


def test_calibrated_scores_are_not_made_worse():
    y, raw = _sample(3000, seed=3, power=1)
    cal = fit_calibration(y, raw, seed=7)
    y_new, raw_new = _sample(20000, seed=4, power=1)
    assert brier_score_loss(y_new, apply_calibration(raw_new, cal)) <= brier_score_loss(y_new, raw_new) + 0.002


@pytest.mark.parametrize("power", [3, 1 / 3])
def test_json_round_trip_applies_identically(power):
    y, raw = _sample(1000, seed=5, power=power)
    cal = fit_calibration(y, raw, seed=0)
    back = json.loads(json.dumps(cal))
    grid = np.linspace(0, 1, 101)
    np.testing.assert_array_equal(apply_calibration(grid, back), apply_calibration(grid, cal))
    assert np.all(np.diff(apply_calibration(grid, back)) >= -1e-12)


def test_fitted_params_are_present():
    y, raw = _sample(2000, seed=6, power=3)
    for cal in (fit_calibration(y, raw, seed=s) for s in range(3)):
        if cal["method"] == "platt":
            assert {"a", "b"} <= cal.keys()
        elif cal["method"] == "isotonic":
            assert len(cal["x"]) == len(cal["y"]) >= 1


def test_single_class_slice_keeps_raw():
    cal = fit_calibration(np.zeros(50, dtype=int), np.linspace(0.01, 0.5, 50), seed=0)
    assert cal["method"] == "none" and "reason" in cal
    json.dumps(cal)


def test_few_positives_use_fewer_folds():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 1, 200)
    y = np.zeros(200, dtype=int)
    y[np.argsort(raw)[-3:]] = 1  # 3 positives: at most 3 folds
    cal = fit_calibration(y, raw, seed=0, folds=5)
    assert cal["folds"] == 3
    one = y.copy()
    one[np.argsort(raw)[-2:-1]] = 0
    one[np.argsort(raw)[-3:-2]] = 0  # a single positive cannot be cross-fitted
    assert fit_calibration(one, raw, seed=0)["method"] == "none"


def test_a_forced_method_is_fitted_even_when_it_does_not_help():
    rng = np.random.default_rng(5)
    p = rng.uniform(0.05, 0.95, 2000)
    y = (rng.uniform(size=2000) < p).astype(int)
    forced = fit_calibration(y, p, seed=1, method="isotonic")
    assert forced["method"] == "isotonic" and forced["x"] and forced["brier_raw"] is not None
    assert fit_calibration(y, p, seed=1, method="none")["method"] == "none"
    with pytest.raises(ValueError, match="train.calibration"):
        fit_calibration(y, p, seed=1, method="beta")
