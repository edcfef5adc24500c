"""The booster: XGBoost training, and what travels inside a trained model.

The feature spec travels inside the booster (as an attribute), and so does the probability
calibration fitted on the validation slice: a registered model carries everything scoring needs, in XGBoost's own format.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xgboost as xgb

from churnml.features.build import FeatureSpec, feature_catalog
from churnml.modeling.calibration import apply_calibration
from churnml.modeling.matrix import to_dmatrix

SPEC_ATTR = "churnml_feature_spec"
CALIBRATION_ATTR = "churnml_calibration"
# the training distribution of every feature (churnml.scoring.drift), for drift checks at scoring time
PROFILE_ATTR = "churnml_feature_profile"
# the validation score of the kept trees, in the early-stopping metric
VALID_SCORE_ATTR = "churnml_valid_score"
# how a model was fitted: "held-out" (never saw the test cutoffs) or "refit" (every labelled row),
# with the rows and rounds behind it, so a loaded model says which it is
FIT_ATTR = "churnml_fit"
IMBALANCE_MODES = ("none", "scale_pos_weight", "sample_weight")
# XGBoost eval metrics where higher is better; every other one is minimised
MAXIMISED_METRICS = {"auc", "aucpr", "map", "ndcg", "pre"}


def booster_params(model: dict, seed: int, nthread: int | None) -> dict:
    """XGBoost parameters from the `model` config section (plain values only)."""
    params = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "device": model.get("device", "cpu"),
        "eval_metric": model.get("eval_metric", "logloss"),
        "seed": int(seed),
    }
    for key in ("max_depth", "learning_rate", "min_child_weight", "subsample", "colsample_bytree",
                "reg_lambda", "reg_alpha", "max_bin", "max_cat_to_onehot"):
        if model.get(key) is not None:
            params[key] = model[key]
    if nthread:
        params["nthread"] = int(nthread)
    return params


def imbalance(labels: np.ndarray, mode: str) -> tuple[dict, np.ndarray | None]:
    """Extra booster parameters and per-row weights for the configured class-imbalance handling.

    Both non-trivial modes weigh churners by negatives/positives on the training rows: through
    XGBoost's `scale_pos_weight`, or as explicit sample weights (which also flow into the
    early-stopping metric on the weighted training set).
    """
    extra, churner_weight = class_weighting(len(labels), int(np.sum(labels == 1)), mode)
    return extra, None if churner_weight is None else np.where(labels == 1, churner_weight, 1.0)


def class_weighting(rows: int, positives: int, mode: str) -> tuple[dict, float | None]:
    """`imbalance` from the training rows' counts alone (for a table too large to collect): the
    extra booster parameters, and the weight of a churner when the mode weighs rows (others weigh 1)."""
    if mode not in IMBALANCE_MODES:
        raise ValueError(f"train.imbalance: '{mode}' is not one of {list(IMBALANCE_MODES)}")
    ratio = (rows - positives) / positives if positives else 1.0
    if mode == "scale_pos_weight":
        return {"scale_pos_weight": ratio}, None
    if mode == "sample_weight":
        return {}, ratio
    return {}, None


def train_booster(
    train: tuple[pd.DataFrame, np.ndarray],
    valid: tuple[pd.DataFrame, np.ndarray],
    spec: FeatureSpec,
    params: dict,
    num_boost_round: int,
    early_stopping_rounds: int,
    weights: np.ndarray | None = None,
) -> xgb.Booster:
    """Fit on `train`, stopping early on `valid` (a slice that precedes the test cutoffs).

    The validation score of the kept trees is recorded on the booster (`valid_score`).
    """
    dtrain = to_dmatrix(train[0], spec, train[1], weights)
    dvalid = to_dmatrix(valid[0], spec, valid[1])
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=num_boost_round,
        evals=[(dtrain, "train"), (dvalid, "valid")],
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=False,
    )
    return with_spec(*best_trees(booster), spec)


def fit_rounds(
    train: tuple[pd.DataFrame, np.ndarray],
    spec: FeatureSpec,
    params: dict,
    num_boost_round: int,
    weights: np.ndarray | None = None,
    valid: tuple[pd.DataFrame, np.ndarray] | None = None,
) -> xgb.Booster:
    """Fit exactly `num_boost_round` trees on `train`, no early stopping: the number was chosen
    elsewhere (the folds' early stopping, or scaled up for a refit). With `valid`, its score in
    the eval metric is recorded as for `train_booster`; it does not steer the fit."""
    dtrain = to_dmatrix(train[0], spec, train[1], weights)
    evals = [] if valid is None else [(to_dmatrix(valid[0], spec, valid[1]), "valid")]
    history: dict = {}
    booster = xgb.train(params, dtrain, num_boost_round=num_boost_round, evals=evals, evals_result=history,
                        verbose_eval=False)
    return with_spec(booster, None if valid is None else last_score(history["valid"]), spec)


def best_trees(booster: xgb.Booster) -> tuple[xgb.Booster, float]:
    """An early-stopped booster cut to the trees up to its best iteration, so every consumer
    predicts the same way, and the validation score of those trees."""
    return booster[: booster.best_iteration + 1], float(booster.best_score)


def last_score(history: dict[str, list[float]]) -> float:
    """The score of all the trees, from one evaluation set's history (the eval metric is last)."""
    return float(list(history.values())[-1][-1])


def with_spec(booster: xgb.Booster, valid_score: float | None, spec: FeatureSpec) -> xgb.Booster:
    """`booster` carrying its feature spec, and the validation score of its trees when it has one:
    what every churnml model carries however it was fitted (here, or by xgboost.spark)."""
    # no sort_keys: the order of the attributes is the order of the model's columns
    booster.set_attr(**{SPEC_ATTR: json.dumps(spec.to_dict())})
    if valid_score is not None:
        booster.set_attr(**{VALID_SCORE_ATTR: repr(valid_score)})
    return booster


def mark_refit(booster: xgb.Booster, held_out: xgb.Booster, rows: int, profile: dict,
               fit: dict | None = None) -> xgb.Booster:
    """Make `booster`, fitted by `fit_rounds` on every labelled row (train, valid and test; `rows`
    of them), the refit of `held_out`: its calibration map, the drift profile of those rows and a
    record of the fit, with the kind "refit". Returns `booster`.

    It carries the held-out model's calibration map: that map was learned on the validation
    slice, and no slice is left unseen by the refit to learn another. More trees on more rows
    make the raw scores a little sharper than the held-out model's, so its probabilities are
    that much less exactly calibrated; the ranking is the refit's own.
    """
    set_calibration(booster, calibration_of(held_out))
    set_profile(booster, profile)
    set_fit(booster, {**(fit or {}), "kind": "refit", "rows": rows, "rounds": booster.num_boosted_rounds()})
    return booster


def set_fit(booster: xgb.Booster, fit: dict) -> None:
    booster.set_attr(**{FIT_ATTR: json.dumps(fit, sort_keys=True)})


def fit_of(booster: xgb.Booster) -> dict | None:
    raw = booster.attr(FIT_ATTR)
    return None if raw is None else json.loads(raw)


def valid_score(booster: xgb.Booster) -> float:
    return float(booster.attr(VALID_SCORE_ATTR))


def set_calibration(booster: xgb.Booster, calibration: dict | None) -> None:
    booster.set_attr(**{CALIBRATION_ATTR: None if calibration is None else json.dumps(calibration, sort_keys=True)})


def set_profile(booster: xgb.Booster, profile: dict) -> None:
    booster.set_attr(**{PROFILE_ATTR: json.dumps(profile)})


def profile_of(booster: xgb.Booster) -> dict | None:
    raw = booster.attr(PROFILE_ATTR)
    return None if raw is None else json.loads(raw)


def calibration_of(booster: xgb.Booster) -> dict | None:
    raw = booster.attr(CALIBRATION_ATTR)
    return None if raw is None else json.loads(raw)


def spec_of(booster: xgb.Booster) -> FeatureSpec:
    """The feature spec a model was trained with, checked against what this code builds from it."""
    raw = booster.attr(SPEC_ATTR)
    if raw is None:
        raise ValueError("this model carries no churnml feature spec; was it trained by churnml?")
    spec = FeatureSpec.from_dict(json.loads(raw))
    built = [info.name for info in feature_catalog(spec)]
    expected = list(booster.feature_names or [])
    if built != expected:
        missing = [n for n in expected if n not in built]
        extra = [n for n in built if n not in expected]
        raise ValueError(
            "the model's features do not match what this version of churnml builds "
            f"(model expects {len(expected)}, code builds {len(built)}); "
            f"missing: {missing[:10]}{' ...' if len(missing) > 10 else ''}; "
            f"unexpected: {extra[:10]}{' ...' if len(extra) > 10 else ''}. "
            "Retrain (dvc repro) and promote the new model, or score with the churnml version that trained it."
        )
    return spec


def predict_raw(booster: xgb.Booster, matrix: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """The booster's own probability, before calibration."""
    return booster.predict(to_dmatrix(matrix, spec))


def predict_proba(booster: xgb.Booster, matrix: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """Churn probability: the booster's output through the calibration it carries (if any)."""
    return apply_calibration(predict_raw(booster, matrix, spec), calibration_of(booster))
