"""The champion/challenger gate: the decision rule, the registry it acts on, and scoring a
champion trained on other features on the same test observations."""

import math

import ibis
import mlflow
import numpy as np
import pandas as pd
import pytest
import xgboost
from mlflow.tracking import MlflowClient
from support import fresh_mlflow_db
from test_features import OBS, frames

from churnml.modeling import tracking
from churnml.data.engine import connect
from churnml.features.build import FeatureSpec, build_features, plan_features
from churnml.modeling.gate import champion_probabilities, decide
from churnml.modeling.booster import booster_params, predict_proba, train_booster
from churnml.modeling.matrix import design_matrix

SPEC = FeatureSpec(families=["profile"], windows=[7], attributes={"x": "numeric", "noise": "numeric"})


def test_no_champion_means_promotion():
    d = decide("pr_auc", 0.3, None, None, margin=0.01)
    assert d.promote and d.reason == "no champion yet"


def test_candidate_must_beat_the_champion_by_more_than_the_margin():
    assert decide("pr_auc", 0.42, 0.40, "3", margin=0.01).promote
    kept = decide("pr_auc", 0.405, 0.40, "3", margin=0.01)
    assert not kept.promote and "does not beat champion v3" in kept.reason
    assert not decide("pr_auc", 0.39, 0.40, "3", margin=0.0).promote
    # equal is not better
    assert not decide("roc_auc", 0.8, 0.8, "3", margin=0.0).promote


def test_lower_is_better_metrics_compare_the_other_way():
    assert decide("brier", 0.05, 0.06, "1", margin=0.005).promote
    assert not decide("brier", 0.07, 0.06, "1", margin=0.0).promote
    assert not decide("log_loss", 0.2, 0.2, "1", margin=0.0).promote


def test_an_unscorable_champion_stays():
    d = decide("pr_auc", 0.9, None, "2", margin=0.0, unavailable="features differ")
    assert not d.promote and "features differ" in d.reason and "churnml promote" in d.reason
    assert not decide("pr_auc", 0.9, float("nan"), "2", margin=0.0).promote


def _data(seed, n=600, signal=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(3 * x - 1))) if signal else np.full(n, 0.3)
    frame = pd.DataFrame({"prof_days_since_signup": rng.uniform(0, 400, n), "prof_x": x, "prof_noise": rng.normal(size=n)})
    return frame, (rng.uniform(size=n) < p).astype(float)


def _model(signal):
    train, valid = _data(1, signal=signal), _data(2, signal=signal)
    params = booster_params({"max_depth": 2, "learning_rate": 0.3}, seed=0, nthread=1)
    return train_booster(train, valid, SPEC, params, 30, 5)


def _register(booster, name):
    with mlflow.start_run():
        # the requirements named, not inferred: inference imports the model's code in a subprocess,
        # the slowest part of logging a model here, and the gate never reads them
        info = mlflow.xgboost.log_model(booster, name="model", registered_model_name=name,
                                        pip_requirements=[f"xgboost=={xgboost.__version__}"])
    return str(info.registered_model_version)


@pytest.fixture()
def store(tmp_path, monkeypatch, empty_mlflow_db):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = fresh_mlflow_db(empty_mlflow_db, tmp_path / "mlflow.db")  # a new, empty store of its own
    tracking.configure(uri, "gate-test", str(tmp_path / "artifacts"))
    yield MlflowClient()
    mlflow.set_tracking_uri(None)


def _gate(name, version, test):
    """What the evaluate stage does: score both on the same rows, decide, record."""
    from sklearn.metrics import average_precision_score

    x, y = test
    candidate = average_precision_score(y, predict_proba(tracking.load_booster(f"models:/{name}/{version}")[0], x, SPEC))
    champion_version = tracking.champion_version(name, "champion")
    champion = None
    if champion_version is not None:
        booster = tracking.load_booster(f"models:/{name}@champion")[0]
        champion = average_precision_score(y, champion_probabilities(booster, x, SPEC, tables=None))
    decision = decide("pr_auc", candidate, champion, champion_version, margin=0.01)
    tracking.record_gate(name, version, "champion", decision.tags(), decision.promote)
    return decision


def test_a_worse_candidate_keeps_the_champion_and_a_better_one_takes_it(store):
    test = _data(3)
    weak, strong = _register(_model(signal=False), "m"), _register(_model(signal=True), "m")
    first = _gate("m", weak, test)
    assert first.promote and tracking.champion_version("m", "champion") == weak
    second = _gate("m", strong, test)
    assert second.promote and tracking.champion_version("m", "champion") == strong
    tags = store.get_model_version("m", strong).tags
    assert tags["churnml.gate.decision"] == "promoted" and tags["churnml.gate.champion_version"] == weak
    # and the weak one again, as a new version: it does not win the alias back
    again = _register(_model(signal=False), "m")
    third = _gate("m", again, test)
    assert not third.promote and tracking.champion_version("m", "champion") == strong
    assert store.get_model_version("m", again).tags["churnml.gate.decision"] == "kept champion"
    assert float(store.get_model_version("m", again).tags["churnml.gate.champion"]) == pytest.approx(third.champion)


def test_promote_by_hand_moves_the_alias_and_records_why(store):
    a, b = _register(_model(signal=True), "h"), _register(_model(signal=False), "h")
    assert tracking.promote("h", a, "champion", "first") is None
    assert tracking.promote("h", b, "champion", "rollback drill") == a
    assert tracking.champion_version("h", "champion") == b
    assert store.get_model_version("h", b).tags["churnml.gate.reason"] == "rollback drill"
    with pytest.raises(RuntimeError, match="no version 99"):
        tracking.promote("h", "99", "champion", "nope")


def test_a_champion_on_other_features_is_scored_with_its_own_features():
    connect()
    tables = {k: ibis.memtable(v) for k, v in frames().items()}
    keys = OBS.copy()
    champion_spec = plan_features(tables, families=dict(purchase=True, profile=True), windows=[7, 30, 90])
    current_spec = plan_features(tables, families=dict(profile=True), windows=[30])
    assert champion_spec != current_spec
    own = build_features(tables, ibis.memtable(keys), champion_spec).to_pandas()
    own["cutoff"] = pd.to_datetime(own["cutoff"]).astype(keys["cutoff"].dtype)
    own = keys.merge(own, on=["customer_id", "cutoff"])
    x = design_matrix(own, champion_spec)
    params = booster_params({"max_depth": 2}, seed=0, nthread=1)
    champion = train_booster((x, np.array([1.0, 0.0, 0.0])), (x, np.array([1.0, 0.0, 0.0])), champion_spec, params, 3, 3)
    current = build_features(tables, ibis.memtable(keys), current_spec).to_pandas()
    current["cutoff"] = pd.to_datetime(current["cutoff"]).astype(keys["cutoff"].dtype)
    current = keys.merge(current, on=["customer_id", "cutoff"])
    got = champion_probabilities(champion, current, current_spec, tables)
    assert np.allclose(got, predict_proba(champion, x, champion_spec))
    assert not any(math.isnan(v) for v in got)
    with pytest.raises(ValueError, match="no tables"):
        champion_probabilities(champion, current, current_spec, tables=None)
