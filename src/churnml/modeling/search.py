"""Hyperparameter search: Optuna's TPE over XGBoost parameters, judged by time.

Each trial trains once per fold with early stopping on that fold's validation cutoff (rolling-origin
folds, churnml.modeling.folds; or the single validation slice when there are too few), and its
score is the mean of the early-stopping metric over the folds: every fold precedes the test
cutoffs, so the test cutoffs never steer the search. The
sampler is seeded and trials run one at a time, so a seed gives the same trials and the same
winner (unless a wall-clock timeout cuts the search short).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd

from churnml.features.build import FeatureSpec
from churnml.modeling.booster import MAXIMISED_METRICS, train_booster, valid_score

log = logging.getLogger(__name__)

KINDS = ("int", "float", "categorical")


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict[str, Any]
    score: float  # the mean over the folds
    trees: int  # the mean early-stopped number of trees over the folds
    fold_scores: tuple[float, ...] = ()


@dataclass(frozen=True)
class FoldData:
    """One fold's rows: trained on `train`, early-stopped and judged on `valid`. `weights` and
    `extra` (e.g. scale_pos_weight) are the class-imbalance handling worked out on this fold's
    training rows."""
    train: tuple[pd.DataFrame, np.ndarray]
    valid: tuple[pd.DataFrame, np.ndarray]
    weights: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResult:
    best_params: dict[str, Any]
    best_score: float
    direction: str
    trials: list[Trial]
    # the best trial's mean early-stopped trees and its score on each fold
    best_trees: int = 0
    best_fold_scores: tuple[float, ...] = ()


def check_space(space: dict[str, dict[str, Any]]) -> None:
    """Fail early, naming the entry, on a malformed search space."""
    for name, entry in space.items():
        kind = entry.get("type", "float")
        if kind not in KINDS:
            raise ValueError(f"train.search.space.{name}.type: '{kind}' is not one of {list(KINDS)}")
        if kind == "categorical":
            if not entry.get("choices"):
                raise ValueError(f"train.search.space.{name}: a categorical entry needs 'choices'")
        elif not ("low" in entry and "high" in entry and entry["low"] <= entry["high"]):
            raise ValueError(f"train.search.space.{name}: needs 'low' <= 'high', got {entry}")


def suggest(trial: optuna.Trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, entry in space.items():
        kind = entry.get("type", "float")
        if kind == "int":
            params[name] = trial.suggest_int(name, int(entry["low"]), int(entry["high"]), log=bool(entry.get("log")))
        elif kind == "categorical":
            params[name] = trial.suggest_categorical(name, list(entry["choices"]))
        else:
            params[name] = trial.suggest_float(name, float(entry["low"]), float(entry["high"]), log=bool(entry.get("log")))
    return params


def search(
    train: tuple[pd.DataFrame, np.ndarray],
    valid: tuple[pd.DataFrame, np.ndarray],
    spec: FeatureSpec,
    base_params: dict[str, Any],
    space: dict[str, dict[str, Any]],
    *,
    trials: int,
    seed: int,
    num_boost_round: int,
    early_stopping_rounds: int,
    weights: np.ndarray | None = None,
    timeout_s: float | None = None,
    on_trial: Callable[[Trial], None] | None = None,
    folds: list[FoldData] | None = None,
) -> SearchResult:
    """Run `trials` TPE trials over `space` on top of `base_params`; returns the best parameters.

    With `folds`, each trial is judged by its mean score over them; without, on `train` vs `valid`.
    `on_trial` sees every finished trial (the pipeline logs each as a nested MLflow run).
    """
    slices = folds or [FoldData(train, valid, weights)]
    check_space(space)
    direction = "maximize" if base_params.get("eval_metric") in MAXIMISED_METRICS else "minimize"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed))
    done: list[Trial] = []

    def objective(trial: optuna.Trial) -> float:
        suggested = suggest(trial, space)
        scores, trees = cross_validate(slices, spec, {**base_params, **suggested}, num_boost_round,
                                       early_stopping_rounds)
        result = Trial(trial.number, suggested, float(np.mean(scores)), int(round(np.mean(trees))), tuple(scores))
        done.append(result)
        log.info("search: trial %d: %s = %.5f with %s", trial.number, base_params.get("eval_metric"),
                 result.score, result.params)
        if on_trial is not None:
            on_trial(result)
        return result.score

    study.optimize(objective, n_trials=trials, timeout=timeout_s, n_jobs=1)
    best = study.best_trial
    chosen = next(t for t in done if t.number == best.number)
    return SearchResult(best_params=dict(best.params), best_score=float(best.value), direction=direction, trials=done,
                        best_trees=chosen.trees, best_fold_scores=chosen.fold_scores)


def cross_validate(slices: list[FoldData], spec: FeatureSpec, params: dict[str, Any], num_boost_round: int,
                   early_stopping_rounds: int) -> tuple[list[float], list[int]]:
    """Train once per fold with early stopping on its validation cutoff; the folds' scores and
    early-stopped numbers of trees."""
    scores, trees = [], []
    for part in slices:
        booster = train_booster(part.train, part.valid, spec, {**params, **part.extra}, num_boost_round,
                                early_stopping_rounds, part.weights)
        scores.append(valid_score(booster))
        trees.append(booster.num_boosted_rounds())
    return scores, trees
