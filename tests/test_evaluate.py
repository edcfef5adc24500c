"""Evaluation metrics, campaign economics and curves, checked against answers worked out by hand."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from churnml.modeling.evaluation import (Economics, campaign_summary, classification_metrics, curves, customer_value, per_cutoff_metrics, profit_curve, top_fraction_lift)
from churnml.modeling.evaluation_plots import save_evaluation_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# ---- classification metrics ---------------------------------------------------------------------

# 10 customers, churners at rows 1, 5, 6 (rate 0.3). Rows 1, 2, 3 tie at 0.9, so row order decides
# (the churner comes first; with the tie reversed the top two would hold no churner).
# Ranking (stable on -p): 1, 2, 3 | 4 (0.5) | 6 (0.4) | 7 (0.3) | 0, 8 (0.2) | 5, 9 (0.1)
Y10 = np.array([0, 1, 0, 0, 0, 1, 1, 0, 0, 0])
P10 = np.array([0.2, 0.9, 0.9, 0.9, 0.5, 0.1, 0.4, 0.3, 0.2, 0.1])


def test_recall_precision_and_lift_break_ties_by_row_order():
    m = classification_metrics(Y10, P10)
    # top 10% = ceil(1.0) = 1 customer: row 1, a churner -> recall 1/3, precision 1/1
    assert m["recall_at_10"] == pytest.approx(1 / 3)
    assert m["precision_at_10"] == pytest.approx(1.0)
    # top 20% = 2 customers: rows 1, 2 -> one churner -> recall 1/3, precision 1/2
    assert m["recall_at_20"] == pytest.approx(1 / 3)
    assert m["precision_at_20"] == pytest.approx(0.5)
    # lift: churn rate in the top 10% (1.0) over the overall rate (0.3)
    assert m["top_decile_lift"] == pytest.approx(1 / 0.3)
    assert m["churn_rate"] == pytest.approx(0.3)
    assert m["rows"] == 10


def test_aucs_by_hand():
    m = classification_metrics(Y10, P10)
    # ROC AUC over 3 x 7 pairs: the churner at 0.9 beats 5 non-churners and ties 2 (rows 2, 3) -> 6;
    # the one at 0.4 beats 4 (0.3, 0.2, 0.2, 0.1) -> 4; the one at 0.1 ties row 9 -> 0.5. 10.5 / 21
    assert m["roc_auc"] == pytest.approx(0.5)
    # average precision, recall steps of 1/3: at 0.9 precision 1/3, at 0.4 precision 2/5, at 0.1 3/10
    assert m["pr_auc"] == pytest.approx((1 / 3 + 2 / 5 + 3 / 10) / 3)


def test_log_loss_brier_and_ece_with_a_certain_mistake():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.8, 0.4, 0.5, 1.0])
    m = classification_metrics(y, p)
    # log loss: -(ln 0.8 + ln 0.6 + ln 0.5 + ln(1e-15)) / 4; p = 1.0 for a non-churner is clipped to 1 - 1e-15
    expected = -(math.log(0.8) + math.log(0.6) + math.log(0.5) + math.log(1e-15)) / 4
    assert m["log_loss"] == pytest.approx(expected)
    assert m["log_loss"] == pytest.approx(8.99147, abs=1e-4)
    # brier: (0.2^2 + 0.4^2 + 0.5^2 + 1^2) / 4 = 1.45 / 4
    assert m["brier"] == pytest.approx(0.3625)
    # ECE, 10 bins: one row each in bins 8, 4, 5 and 9 (p = 1.0 joins the last bin):
    # (|0.8 - 1| + |0.4 - 0| + |0.5 - 1| + |1.0 - 0|) / 4 = 2.1 / 4
    assert m["ece"] == pytest.approx(0.525)
    assert all(type(v) in (float, int) for v in m.values())


def test_ece_weights_bins_by_rows():
    y = np.array([1, 1, 0, 0, 1, 1, 0])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.8, 0.7])
    # 2 bins: [0, 0.5) holds 4 rows, mean p 0.25, churn 0.5 -> gap 0.25
    #         [0.5, 1] holds 3 rows (0.5 included), mean p 2.0/3, churn 2/3 -> gap 0
    # (4 * 0.25 + 3 * 0) / 7
    assert classification_metrics(y, p, ece_bins=2)["ece"] == pytest.approx(1 / 7)
    # with 10 bins every row has its own bin: (0.9 + 0.8 + 0.3 + 0.4 + 0.5 + 0.2 + 0.7) / 7
    assert classification_metrics(y, p, ece_bins=10)["ece"] == pytest.approx(3.8 / 7)


def test_one_class_gives_nan_aucs():
    m = classification_metrics(np.zeros(4), np.array([0.1, 0.2, 0.3, 0.4]))
    assert math.isnan(m["roc_auc"]) and math.isnan(m["pr_auc"]) and math.isnan(m["recall_at_10"])
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.09 + 0.16) / 4)


def test_top_fraction_is_not_fooled_by_floating_point():
    # 0.1 * 30 is 3.0000000000000004; the top 10% of 30 is 3 customers (all churners), not 4
    y = np.array([1, 1, 1] + [0] * 27)
    assert top_fraction_lift(y, np.linspace(1, 0, 30), 0.1) == pytest.approx(1.0 / 0.1)


def test_probabilities_outside_the_unit_interval_are_rejected():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        classification_metrics(np.array([0, 1]), np.array([0.2, 1.3]))


def test_per_cutoff_metrics_by_hand():
    frame = pd.DataFrame({
        "cutoff": pd.to_datetime(["2024-02-29", "2024-01-31", "2024-01-31", "2024-01-31", "2024-02-29",
                                  "2024-01-31", "2024-02-29", "2024-01-31", "2024-01-31"]),
        "split": ["test", "test", "train", "test", "test", "test", "test", "train", "test"],
        "label": [0, 1, 1, 0, 0, 0, 1, 1, 1],
        "probability": [0.3, 0.9, 0.7, 0.2, 0.1, 0.6, 0.2, 0.8, 0.4],
    })
    out = per_cutoff_metrics(frame)
    assert list(out.columns) == ["cutoff", "split", "rows", "churn_rate", "roc_auc", "pr_auc", "brier",
                                 "top_decile_lift"]
    assert [(f"{c:%Y-%m-%d}", s) for c, s in zip(out["cutoff"], out["split"])] == [
        ("2024-01-31", "test"), ("2024-01-31", "train"), ("2024-02-29", "test")]
    jan_test, jan_train, feb_test = (out.iloc[i] for i in range(3))
    # Jan test: labels 1, 0, 0, 1 at p 0.9, 0.2, 0.6, 0.4. ROC pairs: 0.9 > 0.2, 0.9 > 0.6, 0.4 > 0.2,
    # 0.4 < 0.6 -> 3/4. AP: ranked 1, 0, 1, 0 -> (1/1 + 2/3) / 2. Brier (0.01 + 0.04 + 0.36 + 0.36) / 4.
    # Lift: top ceil(0.4) = 1 row is a churner -> 1 / 0.5.
    assert jan_test["rows"] == 4 and jan_test["churn_rate"] == pytest.approx(0.5)
    assert jan_test["roc_auc"] == pytest.approx(0.75)
    assert jan_test["pr_auc"] == pytest.approx(5 / 6)
    assert jan_test["brier"] == pytest.approx(0.1925)
    assert jan_test["top_decile_lift"] == pytest.approx(2.0)
    # Jan train: two churners at 0.7 and 0.8 -> one class, no AUC; Brier (0.09 + 0.04) / 2; lift 1 / 1
    assert jan_train["rows"] == 2 and math.isnan(jan_train["roc_auc"])
    assert jan_train["brier"] == pytest.approx(0.065)
    assert jan_train["top_decile_lift"] == pytest.approx(1.0)
    # Feb test: labels 0, 0, 1 at p 0.3, 0.1, 0.2. ROC: 0.2 < 0.3, 0.2 > 0.1 -> 1/2. AP: churner ranked
    # second -> 1/2. Brier (0.09 + 0.01 + 0.64) / 3. Lift: top row (0.3) is not a churner -> 0.
    assert feb_test["rows"] == 3 and feb_test["churn_rate"] == pytest.approx(1 / 3)
    assert feb_test["roc_auc"] == pytest.approx(0.5)
    assert feb_test["pr_auc"] == pytest.approx(0.5)
    assert feb_test["brier"] == pytest.approx(0.74 / 3)
    assert feb_test["top_decile_lift"] == pytest.approx(0.0)


# ---- campaign economics -------------------------------------------------------------------------

def test_customer_value_for_each_source():
    both = pd.DataFrame({"sub_mrr": [10.0, np.nan, 25.0], "pur_spend_90d": [90.0, 180.0, np.nan]})
    # mrr x 3 months, missing -> 0
    np.testing.assert_allclose(customer_value(both, "mrr", 3, 0), [30.0, 0.0, 75.0])
    # spend: 90 / 90 days x 30.436875 days x 2 months = 60.87375; 180 -> double; missing -> 0
    np.testing.assert_allclose(customer_value(both, "spend", 2, 0), [60.87375, 121.7475, 0.0])
    np.testing.assert_allclose(customer_value(both, "constant", 2, 50), [50.0, 50.0, 50.0])
    # auto: mrr plus spend, from the columns there, else the constant
    # row 1: 10 x 3 + 90/90 x 30.436875 x 3 = 30 + 91.310625; row 2: 0 + 2 x 91.310625; row 3: 75 + 0
    np.testing.assert_allclose(customer_value(both, "auto", 3, 0), [121.310625, 182.62125, 75.0])
    np.testing.assert_allclose(customer_value(both[["sub_mrr"]], "auto", 3, 0), [30.0, 0.0, 75.0])
    np.testing.assert_allclose(customer_value(both[["pur_spend_90d"]], "auto", 2, 0), [60.87375, 121.7475, 0.0])
    np.testing.assert_allclose(customer_value(pd.DataFrame({"x": [1, 2]}), "auto", 2, 7), [7.0, 7.0])


def test_customer_value_errors_name_source_and_column():
    with pytest.raises(ValueError, match=r"'mrr'.*'sub_mrr'"):
        customer_value(pd.DataFrame({"pur_spend_90d": [1.0]}), "mrr", 1, 0)
    with pytest.raises(ValueError, match=r"'spend'.*'pur_spend_90d'"):
        customer_value(pd.DataFrame({"sub_mrr": [1.0]}), "spend", 1, 0)
    with pytest.raises(ValueError, match="'ltv'"):
        customer_value(pd.DataFrame({"sub_mrr": [1.0]}), "ltv", 1, 0)


# 4 customers; cost per contact 1 + 4 = 5, an offer saves a churner half the time.
# Ranked by p: row 1 (0.9, churner, value 40), row 3 (0.7, stays, 100), row 2 (0.6, churner, 100),
# row 0 (0.2, stays, value 0).
Y4 = np.array([0, 1, 1, 0])
P4 = np.array([0.2, 0.9, 0.6, 0.7])
V4 = np.array([0.0, 40.0, 100.0, 100.0])
ECON = Economics(contact_cost=1.0, offer_cost=4.0, success_rate=0.5)


def test_profit_curve_by_hand():
    curve = profit_curve(Y4, P4, V4, ECON)
    # realised net per contact, in rank order: 0.5*40 - 5 = 15, -5, 0.5*100 - 5 = 45, -5
    # expected net: 0.9*0.5*40 - 5 = 13, 0.7*0.5*100 - 5 = 30, 0.6*0.5*100 - 5 = 25, 0.2*0.5*0 - 5 = -5
    assert list(curve["contacted"]) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(curve["share_contacted"], [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(curve["threshold"], [1.0, 0.9, 0.7, 0.6, 0.2])
    np.testing.assert_allclose(curve["profit"], [0, 15, 10, 55, 50])
    np.testing.assert_allclose(curve["expected_profit"], [0, 13, 43, 68, 63])


def test_campaign_summary_by_hand():
    s = campaign_summary(Y4, P4, V4, ECON, budgets=[0.1, 0.25, 0.5])
    # best realised profit 55 at k = 3, threshold 0.6 (see test_profit_curve_by_hand)
    assert s["optimal_threshold"] == pytest.approx(0.6)
    assert s["optimal_contacted"] == 3
    assert s["optimal_profit"] == pytest.approx(55.0)
    assert s["optimal_expected_profit"] == pytest.approx(68.0)
    # budgets: round(0.4) = 0 -> nobody; round(1) = 1; round(2) = 2
    assert s["profit_at_10pct"] == 0.0 and s["expected_profit_at_10pct"] == 0.0
    assert s["profit_at_25pct"] == pytest.approx(15.0) and s["expected_profit_at_25pct"] == pytest.approx(13.0)
    assert s["profit_at_50pct"] == pytest.approx(10.0) and s["expected_profit_at_50pct"] == pytest.approx(43.0)
    # break-even p = 5 / (0.5 * value) over customers worth something: 0.25, 0.1, 0.1 (row 0 is worth 0)
    assert s["breakeven_probability_mean"] == pytest.approx(0.45 / 3)
    assert all(type(v) in (float, int) for v in s.values())


def test_campaign_summary_contacts_nobody_when_no_campaign_pays():
    dear = Economics(contact_cost=10.0, offer_cost=20.0, success_rate=0.5)
    # realised net in rank order: 20 - 30 = -10, -30, 50 - 30 = 20, -30 -> cumulative 0, -10, -40, -20, -50
    s = campaign_summary(Y4, P4, V4, dear, budgets=[0.5])
    assert s["optimal_contacted"] == 0
    assert s["optimal_threshold"] == 1.0
    assert s["optimal_profit"] == 0.0 and s["optimal_expected_profit"] == 0.0
    assert s["profit_at_50pct"] == pytest.approx(-40.0)


def test_profit_curve_thinning_keeps_ends_and_optimum():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=1000)
    y = (rng.uniform(size=1000) < p).astype(int)
    value = rng.uniform(0, 200, size=1000)
    curve = profit_curve(y, p, value, ECON, points=50)
    summary = campaign_summary(y, p, value, ECON, budgets=[])
    assert len(curve) <= 50
    assert curve["contacted"].iloc[0] == 0 and curve["contacted"].iloc[-1] == 1000
    assert summary["optimal_contacted"] in set(curve["contacted"])
    assert curve["profit"].max() == pytest.approx(summary["optimal_profit"])


# ---- curves and plots ---------------------------------------------------------------------------

# 20 customers in rank order (decreasing score), 5 churners (rate 0.25)
Y20 = np.array([1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])


@pytest.mark.parametrize("scores", [np.linspace(1, 0, 20), np.full(20, 0.5)], ids=["distinct", "all-tied"])
def test_gains_and_lift_deciles(scores):
    c = curves(Y20, scores)
    gains, lift = c["gains"], c["lift"]
    assert tuple(gains.iloc[0]) == (0.0, 0.0) and tuple(gains.iloc[-1]) == (1.0, 1.0)
    # top 10% (2 customers) catch 2 of 5 churners
    assert gains.iloc[2]["share_of_churners_caught"] == pytest.approx(0.4)
    # deciles of 2 rows (ties keep row order): churn rates 1, .5, 0, .5, 0, 0, 0, 0, 0, .5; lift = rate / 0.25
    assert list(lift["decile"]) == list(range(1, 11))
    np.testing.assert_allclose(lift["churn_rate"], [1, 0.5, 0, 0.5, 0, 0, 0, 0, 0, 0.5])
    np.testing.assert_allclose(lift["lift"], [4, 2, 0, 2, 0, 0, 0, 0, 0, 2])


def test_calibration_curve_by_hand():
    y = np.array([0, 1, 0, 1, 1])
    p = np.array([0.05, 0.15, 0.12, 0.95, 1.0])
    cal = curves(y, p)["calibration"]
    # bin 0: 0.05 (rate 0); bin 1: 0.15, 0.12 (mean 0.135, rate 0.5); bin 9: 0.95 and 1.0 (mean 0.975, rate 1)
    assert list(cal["bin"]) == [0, 1, 9]
    np.testing.assert_allclose(cal["mean_probability"], [0.05, 0.135, 0.975])
    np.testing.assert_allclose(cal["churn_rate"], [0.0, 0.5, 1.0])
    assert list(cal["rows"]) == [1, 2, 2]


def test_curves_keep_roc_and_pr_and_are_thinned():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=5000)
    y = (rng.uniform(size=5000) < p).astype(int)
    c = curves(y, p)
    assert list(c["roc"].columns) == ["fpr", "tpr"] and list(c["pr"].columns) == ["recall", "precision"]
    assert all(len(frame) <= 201 for frame in c.values())
    assert tuple(c["roc"].iloc[-1]) == (1.0, 1.0)


def test_save_evaluation_plots_writes_pngs(tmp_path):
    rng = np.random.default_rng(1)
    p = rng.uniform(size=400)
    y = (rng.uniform(size=400) < p).astype(int)
    frame = pd.DataFrame({"cutoff": np.repeat(pd.to_datetime(["2024-01-31", "2024-02-29"]), 200),
                          "split": np.tile(["valid", "test"], 200), "label": y, "probability": p})
    baseline = {"recency": curves(y, rng.uniform(size=400))}
    paths = save_evaluation_plots(curves(y, p), profit_curve(y, p, 100.0, ECON), per_cutoff_metrics(frame),
                                  tmp_path / "plots", baselines=baseline)
    names = ["roc", "pr", "calibration", "gains", "lift", "profit", "per_cutoff"]
    assert [path.name for path in paths] == [f"{name}.png" for name in names]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert sorted(f.name for f in (tmp_path / "plots").iterdir()) == sorted(f"{n}.png" for n in names)
    assert plt.get_fignums() == []


def test_budgets_round_half_up():
    # 10 customers worth 100 each; rank order starts row 1 (churner: 0.5 * 100 - 5 = 45), row 2 (stays: -5)
    s = campaign_summary(Y10, P10, 100.0, ECON, budgets=[0.05, 0.15])
    # 5% of 10 = 0.5 -> 1 customer; 15% = 1.5 -> 2 customers
    assert s["profit_at_5pct"] == pytest.approx(45.0)
    assert s["profit_at_15pct"] == pytest.approx(40.0)
    # expected: 0.9 * 0.5 * 100 - 5 = 40 per contact for rows 1 and 2
    assert s["expected_profit_at_5pct"] == pytest.approx(40.0)
    assert s["expected_profit_at_15pct"] == pytest.approx(80.0)
