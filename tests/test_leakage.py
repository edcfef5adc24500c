"""The single-feature AUC probe, checked against AUCs worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from churnml.modeling.leakage import LeakageError, check_leakage, raise_for_leakage, single_feature_auc

Y4 = np.array([0, 0, 1, 1])


def test_auc_by_hand_and_direction_does_not_matter():
    x = pd.DataFrame({"sorted": [1, 2, 3, 4], "one_swap": [1, 3, 2, 4], "reversed": [4, 3, 2, 1]})
    aucs = single_feature_auc(x, Y4)
    assert aucs["sorted"] == 1.0
    assert aucs["one_swap"] == pytest.approx(0.75)  # 3 of the 4 churner/stayer pairs in order
    assert aucs["reversed"] == 1.0
    assert list(aucs.index) == ["sorted", "reversed", "one_swap"]  # descending


def test_missing_values_tried_at_both_ends():
    y = np.array([1, 1, 0, 0])
    x = pd.DataFrame({
        "nan_for_churners": [np.nan, np.nan, 1.0, 2.0],
        "nan_for_churners_high": [np.nan, np.nan, 5.0, -3.0],
        "all_nan": [np.nan] * 4,
        "constant": [7.0] * 4,
    })
    aucs = single_feature_auc(x, y)
    assert aucs["nan_for_churners"] == 1.0
    assert aucs["nan_for_churners_high"] == 1.0
    assert aucs["all_nan"] == 0.5
    assert aucs["constant"] == 0.5


def test_categorical_levels_encoded_by_churn_rate():
    # rates: level 0 -> 0, level 1 -> 1/2, missing -> 1; scores [0, 0, .5, .5, 1, 1]
    # 9 churner/stayer pairs: the .5 churner beats two stayers and ties one (2.5), the two
    # 1.0 churners beat all three (6) -> 8.5 / 9
    x = pd.DataFrame({"plan": [0.0, 0.0, 1.0, 1.0, np.nan, np.nan]})
    y = np.array([0, 0, 1, 0, 1, 1])
    assert single_feature_auc(x, y, categorical={"plan"})["plan"] == pytest.approx(8.5 / 9)
    # levels 0 and 2 churn, level 1 stays: a lookup separates them, a numeric cut cannot
    x = pd.DataFrame({"plan": [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]})
    y = np.array([1, 1, 0, 0, 1, 1])
    assert single_feature_auc(x, y, categorical={"plan"})["plan"] == 1.0
    assert single_feature_auc(x, y)["plan"] == 0.5


def test_single_class_labels_rejected():
    with pytest.raises(ValueError, match="both churners and non-churners"):
        single_feature_auc(pd.DataFrame({"a": [1, 2, 3]}), np.array([1, 1, 1]))


def _planted(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 600
    y = rng.integers(0, 2, n)
    x = pd.DataFrame({f"noise_{i}": rng.normal(size=n) for i in range(6)})
    x["pur_refund_after_cutoff"] = y + rng.normal(scale=0.05, size=n)
    x["plan"] = rng.integers(0, 3, n).astype(float)
    return x, y


def test_planted_leak_is_caught_and_named():
    x, y = _planted()
    aucs = single_feature_auc(x, y, categorical={"plan"})
    assert aucs.index[0] == "pur_refund_after_cutoff"
    assert check_leakage(aucs, 0.95, []) == ["pur_refund_after_cutoff"]
    with pytest.raises(LeakageError) as err:
        raise_for_leakage(aucs, 0.95, [])
    message = str(err.value)
    assert "'pur_refund_after_cutoff'" in message and "AUC 1.000" in message and "limit 0.95" in message
    assert "noise_" not in message
    assert isinstance(err.value, ValueError)


def test_allowed_feature_passes():
    x, y = _planted()
    aucs = single_feature_auc(x, y)
    raise_for_leakage(aucs, 0.95, ["pur_refund_after_cutoff"])  # does not raise
    assert check_leakage(aucs, 0.95, ["pur_refund_after_cutoff"]) == []


def test_threshold_is_respected():
    aucs = pd.Series({"a": 0.97, "b": 0.95, "c": 0.60})
    assert check_leakage(aucs, 0.95, []) == ["a"]  # strictly above the limit
    assert check_leakage(aucs, 0.94, []) == ["a", "b"]
    assert check_leakage(aucs, 0.99, []) == []


def test_message_lists_at_most_ten():
    aucs = pd.Series({f"f{i:02d}": 0.99 for i in range(13)})
    with pytest.raises(LeakageError) as err:
        raise_for_leakage(aucs, 0.9, [])
    lines = str(err.value).splitlines()
    assert len(lines) == 11 and lines[-1] == "... and 3 more"
