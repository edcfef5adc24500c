"""churnml.explain.treeshap against XGBoost's own TreeSHAP (`pred_contribs`) on small random models."""

import json

import numpy as np
import pytest
import xgboost as xgb

from churnml.explain import treeshap

TOLERANCE = 1e-4


def _data(n=600, f=6, seed=0, nan_rate=0.1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f))
    x[rng.random((n, f)) < nan_rate] = np.nan
    z = np.nan_to_num(x)
    logit = z[:, 0] - 0.7 * z[:, 1] * z[:, 2] + np.abs(z[:, 3]) + np.isnan(x[:, 4])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return x, y


def _train(x, y, feature_types=None, rounds=12, **params):
    d = xgb.DMatrix(x, y, feature_types=feature_types, enable_categorical=feature_types is not None)
    base = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "nthread": 1, "seed": 0}
    return xgb.train({**base, **params}, d, rounds), d


def _check(booster, d, x, tolerance=TOLERANCE):
    model = treeshap.compile_model(booster)
    ours = treeshap.shap_values(model, x, n_threads=1)
    theirs = booster.predict(d, pred_contribs=True)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < tolerance
    return model, ours


@pytest.mark.parametrize("depth", [3, 6])
def test_numeric_with_missing_values(depth):
    x, y = _data(seed=depth)
    booster, d = _train(x, y, max_depth=depth)
    _check(booster, d, x)
    # rows with every value missing follow the default directions everywhere
    empty = np.full((3, x.shape[1]), np.nan)
    _check(booster, xgb.DMatrix(empty), empty)


@pytest.mark.parametrize("onehot", [True, False])
def test_native_categorical_feature(onehot):
    rng = np.random.default_rng(3)
    x, _ = _data(n=800, seed=3)
    n_cats = 3 if onehot else 12
    x[:, 2] = rng.integers(0, n_cats, len(x))
    x[rng.random(len(x)) < 0.1, 2] = np.nan
    y = ((np.isin(x[:, 2], [1, 4, 7, 8]) + np.nan_to_num(x[:, 0]) + rng.normal(size=len(x))) > 0.7).astype(float)
    types = ["q", "q", "c", "q", "q", "q"]
    # max_cat_to_onehot above the category count: one-hot splits; below: partition (set) splits
    booster, _ = _train(x, y, feature_types=types, max_depth=5, max_cat_to_onehot=4 if onehot else 1)
    trees = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    assert any(1 in t["split_type"] for t in trees)
    # scoring rows may hold categories unseen in training and invalid codes: XGBoost sends them left
    probe = x.copy()
    probe[:5, 2] = [n_cats + 3, 40, -1, 2.5, 1e9]
    d = xgb.DMatrix(probe, feature_types=types, enable_categorical=True)
    _check(booster, d, probe)


def test_feature_reused_on_one_path():
    rng = np.random.default_rng(5)
    x = rng.uniform(-3, 3, size=(1000, 3))
    x[rng.random(1000) < 0.05, 0] = np.nan
    y = (np.sin(2 * np.nan_to_num(x[:, 0])) + 0.3 * x[:, 1] > 0).astype(float)
    booster, d = _train(x, y, max_depth=6, rounds=8)
    # the point of the test: some root-to-leaf path splits on feature 0 more than once
    tree = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"][0]
    left, right, feat = tree["left_children"], tree["right_children"], tree["split_indices"]

    def most_repeats(node, seen):
        if left[node] == -1:
            return max(seen.values(), default=0)
        seen = {**seen, feat[node]: seen.get(feat[node], 0) + 1}
        return max(most_repeats(left[node], seen), most_repeats(right[node], seen))

    assert most_repeats(0, {}) >= 3
    _check(booster, d, x)


@pytest.mark.parametrize("objective,base_score", [
    ("binary:logistic", 0.13), ("reg:squarederror", 2.5), ("count:poisson", 3.0), ("binary:logitraw", 0.7)])
def test_base_score_not_one_half(objective, base_score):
    x, y = _data(seed=7)
    label = y if objective.startswith("binary") else np.abs(np.nan_to_num(x[:, 0])) * 3 + y
    booster, d = _train(x, label, objective=objective, base_score=base_score, max_depth=4)
    model, ours = _check(booster, d, x)
    assert ours[:, -1] == pytest.approx(booster.predict(d, pred_contribs=True)[:, -1], abs=TOLERANCE)


def test_rows_add_up_to_the_margin():
    x, y = _data(n=1000, f=8, seed=11)
    booster, d = _train(x, y, max_depth=6, rounds=40, base_score=0.3)
    model = treeshap.compile_model(booster)
    values = treeshap.shap_values(model, x, n_threads=2)
    margin = booster.predict(d, output_margin=True)
    assert np.abs(values.sum(axis=1) - margin).max() < TOLERANCE
    # float32 input, one thread, odd block sizes: the same values
    again = treeshap.shap_values(model, x.astype(np.float32), n_threads=1, block_rows=37)
    assert np.abs(again - values).max() < 1e-12


def test_group_sizes_do_not_change_the_values():
    x, y = _data(seed=13)
    booster, d = _train(x, y, max_depth=6, rounds=5)
    reference = booster.predict(d, pred_contribs=True)
    for bits in (0, 3, 6, 10):  # 0: one table per leaf; 10: whole depth-3 subtrees
        model = treeshap.compile_model(booster, max_group_bits=bits)
        assert np.abs(treeshap.shap_values(model, x) - reference).max() < TOLERANCE


def test_unsupported_models_raise():
    x, y = _data(n=300, seed=17)
    labels = (np.nan_to_num(x[:, 0]) > 0).astype(int) + (np.nan_to_num(x[:, 1]) > 0).astype(int)
    booster, _ = _train(x, labels, objective="multi:softprob", num_class=3, rounds=2)
    with pytest.raises(NotImplementedError):
        treeshap.compile_model(booster)
    with pytest.raises(ValueError):
        treeshap.shap_values(treeshap.compile_model(_train(x, y, rounds=1)[0]), x[:, :3])
