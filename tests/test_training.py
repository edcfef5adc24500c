"""Training is reproducible for a seed; the search is seeded and judged on the validation slice;
class-imbalance settings do what they say."""

import numpy as np
import pandas as pd
import pytest

from churnml.features.build import FeatureSpec
from churnml.modeling.booster import booster_params, imbalance, predict_raw, train_booster, valid_score
from churnml.modeling.search import check_space, search

SPEC = FeatureSpec(families=["profile"], windows=[7], attributes={"x": "numeric", "z": "numeric"})
SPACE = {"max_depth": {"type": "int", "low": 2, "high": 5},
         "learning_rate": {"type": "float", "low": 0.05, "high": 0.3, "log": True}}


def _data(seed, n=800):
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=n), rng.normal(size=n)
    p = 1 / (1 + np.exp(-(2 * x + z * z - 2)))
    frame = pd.DataFrame({"prof_days_since_signup": rng.uniform(0, 400, n), "prof_x": x, "prof_z": z})
    return frame, (rng.uniform(size=n) < p).astype(float)


TRAIN, VALID = _data(1), _data(2)


def _run(seed):
    base = booster_params({"subsample": 0.8, "colsample_bytree": 0.8}, seed=seed, nthread=2)
    found = search(TRAIN, VALID, SPEC, base, SPACE, trials=3, seed=seed, num_boost_round=200, early_stopping_rounds=10)
    booster = train_booster(TRAIN, VALID, SPEC, {**base, **found.best_params}, 200, 10)
    return found, predict_raw(booster, VALID[0], SPEC)


def test_the_same_seed_gives_the_same_model():
    (a, pa), (b, pb) = _run(7), _run(7)
    assert a.best_params == b.best_params and a.best_score == b.best_score
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert np.array_equal(pa, pb)


def test_the_search_keeps_its_best_trial_and_refits_it_exactly():
    found, _ = _run(3)
    assert len(found.trials) == 3 and found.direction == "minimize"
    assert found.best_score == min(t.score for t in found.trials)
    base = booster_params({"subsample": 0.8, "colsample_bytree": 0.8}, seed=3, nthread=2)
    refit = train_booster(TRAIN, VALID, SPEC, {**base, **found.best_params}, 200, 10)
    assert valid_score(refit) == pytest.approx(found.best_score)


def test_a_malformed_search_space_is_named():
    with pytest.raises(ValueError, match="train.search.space.max_depth"):
        check_space({"max_depth": {"type": "int", "low": 9, "high": 3}})
    with pytest.raises(ValueError, match="'uniform' is not one of"):
        check_space({"eta": {"type": "uniform", "low": 0, "high": 1}})


def test_imbalance_modes():
    labels = np.array([1, 0, 0, 0, 1, 0, 0, 0])  # 2 churners, 6 stay: ratio 3
    assert imbalance(labels, "none") == ({}, None)
    assert imbalance(labels, "scale_pos_weight") == ({"scale_pos_weight": 3.0}, None)
    params, weights = imbalance(labels, "sample_weight")
    assert params == {} and list(weights) == [3, 1, 1, 1, 3, 1, 1, 1]
    with pytest.raises(ValueError, match="train.imbalance"):
        imbalance(labels, "smote")


def test_weighting_churners_raises_the_predicted_churn_rate():
    base = booster_params({}, seed=0, nthread=2)
    plain = train_booster(TRAIN, VALID, SPEC, base, 100, 10)
    extra, _ = imbalance(TRAIN[1], "scale_pos_weight")
    weighted = train_booster(TRAIN, VALID, SPEC, {**base, **extra}, 100, 10)
    assert predict_raw(weighted, VALID[0], SPEC).mean() > predict_raw(plain, VALID[0], SPEC).mean() + 0.05


def test_the_training_profile_travels_inside_the_saved_model(tmp_path):
    import xgboost as xgb

    from churnml.scoring.drift import drift_report, feature_profile
    from churnml.features.build import feature_catalog
    from churnml.modeling.booster import profile_of, set_profile

    booster = train_booster(TRAIN, VALID, SPEC, booster_params({}, seed=0, nthread=2), 20, 5)
    set_profile(booster, feature_profile(TRAIN[0], feature_catalog(SPEC), SPEC.levels))
    booster.save_model(tmp_path / "m.ubj")
    loaded = xgb.Booster(model_file=str(tmp_path / "m.ubj"))
    report = drift_report(profile_of(loaded), TRAIN[0])
    assert list(report["feature"].sort_values()) == sorted(TRAIN[0].columns)
    assert report["psi"].max() == pytest.approx(0.0, abs=1e-12)
