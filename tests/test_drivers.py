"""Churn drivers: global and per-segment importance by hand, and, on the default synthetic
dataset, the planted causes of churn among the model's top global drivers."""

import numpy as np
import pandas as pd
import pytest
from support import ROOT

from churnml.features.catalog import FeatureInfo
from churnml.explain.drivers import global_drivers, label, segment_drivers, segment_series, tenure_band

CATALOG = [FeatureInfo("a_30d", "engagement", 30, "numeric", "Logins in the last 30 days: {value}"),
           FeatureInfo("b", "subscription", None, "categorical", "Current plan: {value}"),
           FeatureInfo("c", "feedback", None, "numeric", "Latest feedback score: {value}")]
# rows x features, log-odds
SHAP = np.array([[0.4, -0.2, 0.0],
                 [-0.2, 0.4, 0.1],
                 [0.6, 0.0, -0.5]])


def test_global_drivers_rank_by_mean_absolute_contribution():
    g = global_drivers(SHAP, CATALOG)
    # mean |SHAP|: a (0.4+0.2+0.6)/3 = 0.4, b 0.6/3 = 0.2, c 0.6/3 = 0.2 -> b before c by name
    assert list(g["feature"]) == ["a_30d", "b", "c"]
    assert list(g["mean_abs_shap"]) == pytest.approx([0.4, 0.2, 0.2])
    assert list(g["share"]) == pytest.approx([0.5, 0.25, 0.25])
    # signed mean: a (0.4-0.2+0.6)/3, c (0+0.1-0.5)/3
    assert g.set_index("feature").loc["c", "mean_shap"] == pytest.approx(-0.4 / 3)
    assert g.loc[0, "description"] == "Logins in the last 30 days" == label(CATALOG[0])


def test_tenure_bands_are_readable_and_cover_unknowns():
    bands = tenure_band(pd.Series([0, 89.9, 90, 364, 365, 800, None]), [90, 365])
    assert list(bands) == ["< 90 days", "< 90 days", "90-364 days", "90-364 days", "365+ days", "365+ days", "unknown"]


def test_segment_drivers_by_hand():
    segments = {"plan": pd.Series(["basic", "pro", "basic"]), "risk tier": pd.Series(["high", "low", "low"])}
    s = segment_drivers(SHAP, CATALOG, segments).set_index(["segment_kind", "segment", "feature"])
    # basic = rows 0 and 2: a (0.4+0.6)/2, b (0.2+0)/2, c (0+0.5)/2
    assert s.loc[("plan", "basic", "a_30d"), "mean_abs_shap"] == pytest.approx(0.5)
    assert s.loc[("plan", "basic", "c"), "mean_abs_shap"] == pytest.approx(0.25)
    assert s.loc[("plan", "basic", "a_30d"), "customers"] == 2
    assert s.loc[("risk tier", "low", "b"), "mean_abs_shap"] == pytest.approx(0.2)


def test_segments_come_from_the_columns_the_data_has():
    features = pd.DataFrame({"sub_plan": ["basic", "pro"], "prof_days_since_signup": [10.0, 400.0]})
    found = segment_series(features, {"plan": "sub_plan", "country": "prof_country"},
                           ["sub_tenure_days", "prof_days_since_signup"], [90, 365], pd.Series(["high", "low"]))
    assert list(found) == ["plan", "tenure band", "risk tier"]
    assert list(found["tenure band"]) == ["< 90 days", "365+ days"]


@pytest.fixture(scope="module")
def default_drivers(tmp_path_factory):
    """The default dataset, labelled, featured and modelled with the default config, in process."""
    import ibis

    from churnml.data.contract import mappings_from_config, open_raw_tables
    from churnml.data.engine import connect
    from churnml.explain.reasons import contributions
    from churnml.features.build import build_features, feature_catalog, plan_features
    from churnml.data.generate.dataset import generate_dataset
    from churnml.modeling.booster import booster_params, train_booster
    from churnml.modeling.matrix import design_matrix
    from churnml.features.label_times import build_observations
    from churnml.params import load_params
    from churnml.features.label_times import label_spec, split_spec

    params = load_params(ROOT / "params.yaml")
    folder = tmp_path_factory.mktemp("default") / "raw"
    generate_dataset(folder, n_customers=5000, months=18, seed=42)
    con = connect()
    tables = open_raw_tables(con, folder, mappings_from_config(params["data"]["tables"]))
    labels, feats = params["labels"], params["features"]
    obs, _ = build_observations(tables, label_spec(labels), split_spec(labels), freq=labels["cutoffs"]["freq"],
                                start=None, end=None, min_history_days=int(labels["cutoffs"]["min_history_days"]))
    spec = plan_features(tables, families=feats["families"], windows=feats["windows"],
                         attributes=params["data"]["tables"]["customers"].get("attributes"))
    features = build_features(tables, ibis.memtable(obs[["customer_id", "cutoff"]]), spec).to_pandas()
    features["cutoff"] = pd.to_datetime(features["cutoff"]).astype(obs["cutoff"].dtype)
    rows = obs.merge(features, on=["customer_id", "cutoff"])
    part = {s: rows[rows["split"] == s] for s in ("train", "valid", "test")}
    xy = {s: (design_matrix(p, spec), p["label"].to_numpy(float)) for s, p in part.items()}
    booster = train_booster(xy["train"], xy["valid"], spec, booster_params(params["model"], 42, None), 1000, 50)
    values, _ = contributions(booster, xy["test"][0], spec)
    return global_drivers(values, feature_catalog(spec))


PRICE = {"sub_plan", "sub_mrr", "prof_plan", "prof_monthly_price", "prof_billing"}


def test_the_planted_causes_are_among_the_top_drivers(default_drivers):
    """The generator plants three causes (ground_truth.json): disengagement (events and orders
    thin out), service failures (feedback sours, tickets and complaints) and price (the plan,
    paying above list, a recent increase). Disengagement is the most frequent cause and must
    lead; service must show among the 20 strongest of the ~108 drivers; price, the rarest and
    partly seen through feedback too, among the strongest 30. Together the planted signals must
    carry most of the model's attribution."""
    top = default_drivers.head(30)
    shown = top[["feature", "share"]].to_string()
    price = top["feature"].isin(PRICE) | top["feature"].str.startswith(("sub_upgrades", "sub_downgrades"))
    assert top["family"].iloc[0] in {"engagement", "purchase"}, shown
    assert top["family"].head(20).eq("feedback").any(), shown
    assert price.any(), shown
    planted = default_drivers["family"].isin(["engagement", "purchase", "feedback"]) | default_drivers["feature"].isin(PRICE)
    assert default_drivers.loc[planted, "share"].sum() > 0.6, shown
