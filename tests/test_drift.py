"""PSI drift: profiles from training data and the index itself, by hand."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from churnml.features.catalog import FeatureInfo
from churnml.scoring.drift import drift_report, feature_profile, psi

CATALOG = [FeatureInfo("x", "engagement", None, "numeric", "x: {value}"),
           FeatureInfo("plan", "subscription", None, "categorical", "plan: {value}")]


def test_psi_by_hand():
    # (0.5-0.25) ln(0.5/0.25) + (0.5-0.75) ln(0.5/0.75) = 0.25 ln 2 + 0.25 ln 1.5
    assert psi([0.25, 0.75], [0.5, 0.5]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([0.3, 0.7], [0.3, 0.7]) == 0.0


def test_profile_bins_missing_values_and_categories():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, np.nan], "plan": [0.0, 0.0, 1.0, np.nan, 1.0]})
    profile = feature_profile(train, CATALOG, {"plan": ["basic", "pro"]}, bins=2)
    # the median of 1..4 is 2.5: bins (-inf, 2.5], (2.5, inf), missing -> 2/5, 2/5, 1/5
    assert profile["features"]["x"]["edges"] == [2.5]
    assert profile["features"]["x"]["shares"] == pytest.approx([0.4, 0.4, 0.2])
    # codes 0, 1, then missing: 2/5, 2/5, 1/5
    assert profile["features"]["plan"]["shares"] == pytest.approx([0.4, 0.4, 0.2])
    assert json.loads(json.dumps(profile)) == profile


def test_drift_is_zero_on_the_training_data_and_large_on_a_shift():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(size=5000), "plan": rng.integers(0, 2, 5000).astype(float)})
    profile = feature_profile(train, CATALOG, {"plan": ["basic", "pro"]})
    same = drift_report(profile, train)
    assert same["psi"].max() == pytest.approx(0.0, abs=1e-12) and not same["drifted"].any()
    shifted = pd.DataFrame({"x": rng.normal(loc=1.0, size=5000), "plan": np.ones(5000)})
    report = drift_report(profile, shifted).set_index("feature")
    assert report.loc["x", "drifted"] and report.loc["x", "psi"] > 0.25
    # every customer now on code 1: shares (0, 1, 0) against about (0.5, 0.5, 0)
    assert report.loc["plan", "drifted"]
    # a value beyond every training edge still lands in the outer bin, not nowhere
    extreme = drift_report(profile, pd.DataFrame({"x": [1e9] * 10, "plan": [0.0] * 10})).set_index("feature")
    assert extreme.loc["x", "psi"] > 1


def test_counts_of_chunks_add_up_to_the_whole():
    from churnml.scoring.drift import add_counts, bin_counts, drift_from_counts

    rng = np.random.default_rng(1)
    train = pd.DataFrame({"x": rng.normal(size=2000), "plan": rng.integers(0, 2, 2000).astype(float)})
    profile = feature_profile(train, CATALOG, {"plan": ["basic", "pro"]})
    scored = pd.DataFrame({"x": rng.normal(loc=0.5, size=999), "plan": rng.integers(0, 2, 999).astype(float)})
    scored.loc[::7, "x"] = np.nan
    scored.loc[::5, "plan"] = np.nan
    total = None
    for start in range(0, len(scored), 250):
        total = add_counts(total, bin_counts(profile, scored.iloc[start:start + 250]))
    assert sum(total["x"]) == sum(total["plan"]) == 999
    pd.testing.assert_frame_equal(drift_from_counts(profile, total), drift_report(profile, scored))
