"""Baselines: the recency rule, RFM quintile scores by hand, and the logistic regression."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churnml.modeling.baselines import (fit_logistic, fit_rfm, has_purchase_features, recency_scores, rfm_scores, rfm_table)
from churnml.features.catalog import FeatureInfo


def _info(name: str, kind: str = "numeric") -> FeatureInfo:
    return FeatureInfo(name=name, family="test", window=None, kind=kind, template=name + ": {value}")


def test_recency_takes_the_latest_activity_of_any_kind():
    x = pd.DataFrame({
        "eng_days_since_last_event": [5.0, np.nan, 40.0, np.nan],
        "pur_days_since_last_order": [20.0, 12.0, np.nan, np.nan],
        "sub_tenure_days": [900.0, 10.0, 10.0, 10.0],  # not a recency column
    })
    scores = recency_scores(x, [])
    # row 4 never did anything: riskier than the largest observed value (40)
    assert scores.tolist() == [5.0, 12.0, 40.0, 41.0]
    assert roc_auc_score([0, 0, 1, 1], scores) == 1.0


def test_recency_needs_a_recency_column():
    with pytest.raises(ValueError, match="eng_days_since_last_event"):
        recency_scores(pd.DataFrame({"pur_orders_90d": [1.0]}), [])


def _rfm_train() -> tuple[pd.DataFrame, np.ndarray]:
    # Ten customers ordered from loyal to lapsed.
    x = pd.DataFrame({
        "pur_days_since_last_order": np.arange(1.0, 11.0),  # edges 2.8, 4.6, 6.4, 8.2
        "pur_orders_90d": np.arange(9.0, -1.0, -1.0),  # 9..0 -> edges 1.8, 3.6, 5.4, 7.2
        "pur_spend_90d": [90.0, 80, 70, 60, 50, 40, 30, 20, 10, np.nan],  # NaN = 0 -> edges 18, 36, 54, 72
    })
    return x, np.array([0, 0, 0, 0, 1, 0, 0, 1, 1, 1])


def test_rfm_quintile_scores_by_hand():
    x, y = _rfm_train()
    model = fit_rfm(x, y, seed=0)
    assert model.recency_edges == pytest.approx((2.8, 4.6, 6.4, 8.2))
    assert model.frequency_edges == pytest.approx((1.8, 3.6, 5.4, 7.2))
    assert model.monetary_edges == pytest.approx((18.0, 36.0, 54.0, 72.0))
    table = rfm_table(model, x)
    assert list(table.columns) == ["r", "f", "m"]
    assert table["r"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # more days = riskier
    assert table["f"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # fewer orders = riskier
    assert table["m"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # less spend = riskier
    # Edges belong to the lower bin (right-closed); outside the training range and missing values:
    new = pd.DataFrame({
        "pur_days_since_last_order": [2.8, 2.9, 500.0, np.nan, 0.0],
        "pur_orders_90d": [1.8, 1.9, 50.0, np.nan, 0.0],
        "pur_spend_90d": [18.0, 18.5, 1e6, np.nan, 0.0],
    })
    t = rfm_table(model, new)
    assert t["r"].tolist() == [1, 2, 5, 5, 1]  # never ordered -> riskiest recency
    assert t["f"].tolist() == [5, 4, 1, 5, 5]  # missing orders count as zero
    assert t["m"].tolist() == [5, 4, 1, 5, 5]


def test_rfm_ranks_at_risk_above_loyal():
    x, y = _rfm_train()
    model = fit_rfm(x, y, seed=0)
    customers = pd.DataFrame({
        "pur_days_since_last_order": [300.0, 1.0],
        "pur_orders_90d": [0.0, 12.0],
        "pur_spend_90d": [0.0, 500.0],
    })
    at_risk, loyal = rfm_scores(model, customers)
    assert 0 < loyal < at_risk < 1


def test_rfm_applicability():
    assert has_purchase_features(["pur_days_since_last_order", "pur_orders_90d", "pur_spend_90d", "x"])
    assert not has_purchase_features(["pur_days_since_last_order", "pur_orders_90d"])
    with pytest.raises(ValueError, match="purchase features"):
        fit_rfm(pd.DataFrame({"pur_orders_90d": [1.0, 2.0]}), np.array([0, 1]), seed=0)


def test_logistic_fits_with_empty_and_categorical_columns():
    rng = np.random.default_rng(0)
    n = 400
    signal = rng.normal(size=n)
    y = (signal + rng.normal(scale=0.7, size=n) > 0).astype(int)
    plan = rng.integers(0, 3, n).astype(float)
    plan[rng.uniform(size=n) < 0.1] = np.nan
    x = pd.DataFrame({"signal": signal, "empty": np.nan, "plan": plan})
    catalog = [_info("signal"), _info("empty"), _info("plan", "categorical")]
    model = fit_logistic(x, y, catalog, seed=0)
    assert roc_auc_score(y, model.predict_proba(x)[:, 1]) > 0.8

    unseen = pd.DataFrame({"signal": [0.5, -0.5], "empty": [np.nan, 3.0], "plan": [7.0, np.nan]})
    p = model.predict_proba(unseen)[:, 1]
    assert p.shape == (2,) and np.all((p > 0) & (p < 1))
