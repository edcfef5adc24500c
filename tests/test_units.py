"""Small pieces checked against answers worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from churnml.features.catalog import FeatureInfo, sentence
from churnml.modeling.evaluation import ranking_metrics, top_fraction_lift
from churnml.explain.reasons import top_reasons
from churnml.data.io import write_parquet
from churnml.scoring.batch import risk_tier


def test_top_decile_lift_by_hand():
    # 20 customers, 4 churners (rate 0.2); the top 10% (2 customers) holds 1 churner (rate 0.5)
    y = np.array([1, 0] + [1, 1, 1] + [0] * 15)
    scores = np.linspace(1, 0, 20)
    assert top_fraction_lift(y, scores, 0.1) == pytest.approx(0.5 / 0.2)
    assert top_fraction_lift(y, scores, 0.25) == pytest.approx((4 / 5) / 0.2)


def test_ranking_metrics_perfect_and_reversed():
    y = np.array([0, 0, 1, 1])
    assert ranking_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]))["roc_auc"] == 1.0
    assert ranking_metrics(y, np.array([0.9, 0.8, 0.2, 0.1]))["roc_auc"] == 0.0
    # average precision of the reversed ranking: churners at ranks 3 and 4 -> (1/3 + 2/4) / 2
    assert ranking_metrics(y, np.array([0.9, 0.8, 0.2, 0.1]))["pr_auc"] == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_risk_tiers_take_the_highest_threshold_reached():
    tiers = risk_tier(np.array([0.0, 0.19, 0.2, 0.49, 0.5, 1.0]), {"high": 0.5, "medium": 0.2, "low": 0.0})
    assert list(tiers) == ["low", "low", "medium", "medium", "high", "high"]


def test_reasons_are_the_largest_risk_raising_contributions():
    catalog = [FeatureInfo("logins_30d", "engagement", 30, "numeric", "Logins in the last 30 days: {value}"),
               FeatureInfo("days_idle", "engagement", None, "numeric", "Time since the last activity: {value}", "days"),
               FeatureInfo("plan", "profile", None, "categorical", "Plan: {value}")]
    raw = pd.DataFrame({"logins_30d": [2.0, 10.0], "days_idle": [40.0, 1.0], "plan": ["basic", None]})
    shap = np.array([[0.3, 0.9, -0.2], [-0.5, -0.1, 0.2]])
    reasons = top_reasons(shap, raw, catalog, k=2)
    assert list(reasons["reason_1"]) == ["Time since the last activity: 40 days", "Plan: unknown"]
    assert reasons.loc[0, "reason_2"] == "Logins in the last 30 days: 2"
    # only risk-raising contributions are reasons: the second customer has one
    assert pd.isna(reasons.loc[1, "reason_2"])
    assert reasons.loc[0, "reason_1_contribution"] == pytest.approx(0.9)
    assert reasons.loc[0, "reason_1_feature"] == "days_idle" and reasons.loc[0, "reason_1_value"] == "40 days"
    # the strongest protective driver: the most negative contribution
    assert reasons.loc[0, "protective"] == "Plan: basic" and reasons.loc[0, "protective_contribution"] == pytest.approx(-0.2)
    assert reasons.loc[1, "protective_feature"] == "logins_30d"


def test_a_window_reads_against_the_period_before_it():
    catalog = [FeatureInfo("pur_orders_30d", "purchase", 30, "numeric", "Purchases in the last 30 days: {value}", additive=True),
               FeatureInfo("pur_orders_90d", "purchase", 90, "numeric", "Purchases in the last 90 days: {value}", additive=True),
               FeatureInfo("pur_spend_7d", "purchase", 7, "numeric", "Spend in the last 7 days: {value}", "currency", additive=True),
               FeatureInfo("pur_spend_30d", "purchase", 30, "numeric", "Spend in the last 30 days: {value}", "currency", additive=True),
               FeatureInfo("pur_days_since_last_order", "purchase", None, "numeric", "Time since the last purchase: {value}", "days"),
               FeatureInfo("eng_login_share_90d", "engagement", 90, "numeric", "Share of logins: {value}", "share")]
    by_name = {i.name: i for i in catalog}
    row = {"pur_orders_30d": 1.0, "pur_orders_90d": 9.0, "pur_spend_7d": 50.0, "pur_spend_30d": 73.0,
           "pur_days_since_last_order": np.nan, "eng_login_share_90d": 0.25}
    # 9 - 1 = 8 purchases in the 60 days before: 4 per 30 days
    assert sentence(by_name["pur_orders_30d"], row, by_name) == \
        "Purchases in the last 30 days: 1, down from 4 per 30 days in the 60 days before"
    # 73 - 50 = 23 over the 23 days before: 7.00 per 7 days
    assert sentence(by_name["pur_spend_7d"], row, by_name) == \
        "Spend in the last 7 days: 50.00, up from 7.00 per 7 days in the 23 days before"
    # the widest window has nothing wider to compare with; a missing recency reads "never"
    assert sentence(by_name["pur_orders_90d"], row, by_name) == "Purchases in the last 90 days: 9"
    assert sentence(by_name["pur_days_since_last_order"], row, by_name) == "Time since the last purchase: never"
    assert sentence(by_name["eng_login_share_90d"], row, by_name) == "Share of logins: 25%"
    steady = {**row, "pur_orders_30d": 3.0}  # 6 in the 60 days before: 3 per 30 days
    assert sentence(by_name["pur_orders_30d"], steady, by_name).endswith("the same pace as in the 60 days before")


def test_a_crash_mid_write_leaves_the_previous_output(tmp_path, monkeypatch):
    target = tmp_path / "scores.parquet"
    write_parquet(pd.DataFrame({"a": [1, 2]}), target)

    def crash(self, path, **kwargs):
        open(path, "wb").write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash)
    with pytest.raises(OSError):
        write_parquet(pd.DataFrame({"a": [3]}), target)
    monkeypatch.undo()
    assert pd.read_parquet(target)["a"].tolist() == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


def test_a_model_whose_features_differ_from_the_code_is_refused_before_scoring():
    import json

    import xgboost as xgb

    from churnml.features.build import FeatureSpec
    from churnml.modeling.booster import SPEC_ATTR, spec_of

    spec = FeatureSpec(families=["profile"], windows=[30], attributes={"price": "numeric"})
    data = xgb.DMatrix(np.array([[1.0, 2.0], [3.0, 4.0]]), label=[0, 1],
                       feature_names=["prof_days_since_signup", "prof_old_name"])
    booster = xgb.train({"objective": "binary:logistic"}, data, num_boost_round=1)
    booster.set_attr(**{SPEC_ATTR: json.dumps(spec.to_dict())})
    with pytest.raises(ValueError, match=r"missing: \['prof_old_name'\].*unexpected: \['prof_price'\]"):
        spec_of(booster)


def test_a_category_first_seen_at_scoring_becomes_missing():
    from churnml.features.build import FeatureSpec
    from churnml.modeling.matrix import design_matrix

    spec = FeatureSpec(families=["profile"], windows=[30], attributes={"plan": "categorical"},
                       levels={"prof_plan": ["basic", "pro"]})
    rows = pd.DataFrame({"prof_days_since_signup": [10.0, 20.0, 30.0, 40.0],
                         "prof_plan": ["pro", "basic", "enterprise", None]})
    matrix = design_matrix(rows, spec)
    # codes follow the training levels; an unseen level and a missing one are both missing
    assert matrix["prof_plan"].tolist()[:2] == [1.0, 0.0]
    assert matrix["prof_plan"].isna().tolist() == [False, False, True, True]


def test_contributions_are_xgboosts_own_values_with_or_without_the_tables(monkeypatch):
    from churnml.explain import reasons as explain
    from churnml.features.build import FeatureSpec
    from churnml.modeling.booster import booster_params, train_booster
    from churnml.modeling.matrix import to_dmatrix

    spec = FeatureSpec(families=["profile"], windows=[7], attributes={"plan": "categorical", "x": "numeric"},
                       levels={"prof_plan": ["basic", "pro", "team"]})
    rng = np.random.default_rng(3)
    n = 600
    matrix = pd.DataFrame({"prof_days_since_signup": rng.uniform(0, 500, n),
                           "prof_plan": rng.choice([0.0, 1.0, 2.0, np.nan], n),
                           "prof_x": np.where(rng.uniform(size=n) < 0.1, np.nan, rng.normal(size=n))})
    y = ((matrix["prof_plan"] == 0) ^ (matrix["prof_x"] > 0.5)).to_numpy(float)
    booster = train_booster((matrix, y), (matrix, y), spec, booster_params({"max_depth": 4}, 0, 2), 40, 5)
    expected = booster.predict(to_dmatrix(matrix, spec), pred_contribs=True)
    values, bias = explain.contributions(booster, matrix, spec)
    assert explain._COMPILED[booster] is not None  # the table method ran
    np.testing.assert_allclose(values, expected[:, :-1], atol=1e-4)
    np.testing.assert_allclose(bias, expected[:, -1], atol=1e-4)

    def unsupported(_):
        raise NotImplementedError("test")

    monkeypatch.setattr(explain, "compile_model", unsupported)
    other = booster.copy()
    fallback, _ = explain.contributions(other, matrix, spec)
    assert explain._COMPILED[other] is None
    np.testing.assert_allclose(fallback, expected[:, :-1], atol=1e-6)
