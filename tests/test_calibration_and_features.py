"""Issue 14, items 5 and 9: calibration that keeps the ranking, features that mean what their
names say (plan changes, redundant features dropped from the model's spec), and a retention
headline that names the months it actually measured. Every table is hand-made."""

import ibis
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churnml.data.engine import connect
from churnml.features.build import FeatureSpec, build_features, feature_catalog, plan_features
from churnml.features.catalog import FeatureInfo
from churnml.features.label_times import LabelSpec, observed_until
from churnml.modeling.calibration import apply_calibration, fit_calibration
from churnml.modeling.matrix import design_matrix
from churnml.modeling.redundancy import redundant_features

T = pd.to_datetime


# ---------------------------------------------------------------- item 5: calibration keeps the ranking


def _steep(n: int, scale: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores u whose true churn probability is scale * u**4: fine ranking, off probabilities
    in a shape Platt cannot follow (so isotonic wins the Brier score)."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=n)
    return (rng.uniform(size=n) < scale * u**4).astype(int), u


def test_isotonic_is_centred_and_keeps_every_distinct_score():
    # 3,000 rows, 5% churners: the plain isotonic fit has a few dozen steps and would tie
    # thousands of scores; its centred form keeps them apart, wins the Brier score and costs
    # no ranking, so auto chooses it
    y, raw = _steep(3000, 0.3)
    cal = fit_calibration(y, raw, seed=0)
    assert cal["brier_isotonic"] < cal["brier_platt"] < cal["brier_raw"]
    assert cal["method"] == "isotonic" and cal["form"] == "centred"
    assert abs(cal["auc_drop_isotonic"]) <= 1e-12
    out = apply_calibration(raw, cal)
    assert len(np.unique(out)) == len(np.unique(raw))
    assert np.all(np.diff(out[np.argsort(raw)]) > 0)  # strictly increasing in the raw score
    assert roc_auc_score(y, out) == pytest.approx(roc_auc_score(y, raw), abs=1e-12)
    # and it calibrates: the top tenth's mean probability is near its churn rate
    top = raw >= np.quantile(raw, 0.9)
    assert abs(out[top].mean() - y[top].mean()) < 0.05


def test_centred_map_continues_past_its_ends_with_the_raw_slope():
    # blocks at raw 0.2 (rate 0), 0.5 (rate 0.2) and 0.8 (rate 0.6): scores below the first and
    # above the last centre stay ordered instead of clipping to one value
    cal = {"method": "isotonic", "form": "centred", "x": [0.2, 0.5, 0.8], "y": [0.0, 0.2, 0.6]}
    raw = np.array([0.01, 0.1, 0.2, 0.35, 0.5, 0.8, 0.9, 0.99])
    out = apply_calibration(raw, cal)
    assert np.all(np.diff(out) > 0)
    assert out[4] == pytest.approx(0.2) and out[5] == pytest.approx(0.6)
    assert out[2] == pytest.approx(1e-4)  # a block with no churner: a rate held just above 0
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    # past the last centre the calibrated logit moves one for one with the raw logit
    assert logit(out[6]) - logit(out[5]) == pytest.approx(logit(0.9) - logit(0.8))
    # between centres: a straight line in logit space
    mid = (logit(0.2) + logit(0.5)) / 2
    assert logit(apply_calibration(np.array([1 / (1 + np.exp(-mid))]), cal)[0]) == pytest.approx(
        (logit(1e-4) + logit(0.2)) / 2)


def test_a_calibration_that_costs_ranking_is_not_chosen():
    # a map stored before the centred form is a step function: it ties scores, and the rule
    # that rejects a costly method still holds for it (the tolerance is the rule)
    from churnml.modeling import calibration

    y, raw = _steep(3000, 0.3)

    def stepwise(y_fit, raw_fit):
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw_fit, y_fit)
        return {"x": list(iso.X_thresholds_), "y": list(iso.y_thresholds_)}  # no form: applied as steps

    original = calibration._FITTERS["isotonic"]
    calibration._FITTERS["isotonic"] = stepwise
    try:
        cal = fit_calibration(y, raw, seed=0)
        assert cal["auc_drop_isotonic"] > 0.002 and cal["method"] == "platt"
        assert "isotonic" in cal["reason"] and "ROC AUC" in cal["reason"]
        assert fit_calibration(y, raw, seed=0, auc_tolerance=0.05)["method"] == "isotonic"
        forced = fit_calibration(y, raw, seed=0, method="isotonic")
        assert "forced" in forced["reason"] and "lowers validation ROC AUC" in forced["reason"]
    finally:
        calibration._FITTERS["isotonic"] = original


def test_isotonic_that_keeps_auc_may_be_chosen():
    # raw scores that already come in 10 steps, with a churn rate per step no logistic curve
    # follows: isotonic maps each step to its own rate and makes no ties that were not there
    rates = np.array([0.01, 0.02, 0.04, 0.08, 0.4, 0.5, 0.6, 0.7, 0.9, 0.95])
    rng = np.random.default_rng(3)
    step = rng.integers(0, 10, 5000)
    raw = (step + 1) / 11.0
    y = (rng.uniform(size=5000) < rates[step]).astype(int)
    cal = fit_calibration(y, raw, seed=0)
    assert cal["method"] == "isotonic"
    assert abs(cal["auc_drop_isotonic"]) <= 0.002
    assert "lowest cross-fitted Brier" in cal["reason"]


def test_platt_never_costs_auc_and_reasons_are_always_given():
    y, raw = _steep(2000, 1.0, seed=4)
    cal = fit_calibration(y, raw, seed=0)
    assert cal["auc_drop_platt"] == pytest.approx(0.0, abs=1e-12)
    assert cal["reason"]
    forced = fit_calibration(*_steep(3000, 0.3), seed=0, method="isotonic")
    assert forced["method"] == "isotonic" and "forced" in forced["reason"]
    with pytest.raises(ValueError, match="calibration_auc_tolerance"):
        fit_calibration(y, raw, seed=0, auc_tolerance=-1)


# ---------------------------------------------------------------- item 9a: plan changes


def _plan_changes(subs: pd.DataFrame, obs: pd.DataFrame, with_plan: bool = True) -> dict:
    connect()
    customers = pd.DataFrame({"customer_id": sorted(set(subs["customer_id"])), "signup_date": T("2023-12-01")})
    if not with_plan:
        subs = subs.drop(columns="plan")
    tables = {"customers": ibis.memtable(customers), "subscriptions": ibis.memtable(subs)}
    spec = plan_features(tables, families={"subscription": True}, windows=[30])
    out = build_features(tables, ibis.memtable(obs), spec).to_pandas()
    return {(c, f"{t:%m-%d}"): v for c, t, v in zip(out.customer_id, out.cutoff, out.sub_plan_changes)}


def _rows(customer: str, starts: list[str], plans: list[str], mrrs: list[float]) -> pd.DataFrame:
    ends = [*starts[1:], None]  # each row ends the day the next starts: back to back
    return pd.DataFrame({"customer_id": customer, "start_date": T(starts), "end_date": T(ends),
                         "plan": plans, "mrr": mrrs})


MONTHLY = ["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"]
SUBS = pd.concat([
    _rows("renews", MONTHLY, ["basic"] * 4, [10.0] * 4),  # one row per billing period, nothing changes
    _rows("switches", MONTHLY, ["basic", "basic", "pro", "pro"], [10.0] * 4),  # new plan, same price
    _rows("reprices", MONTHLY, ["basic"] * 4, [10.0, 10.0, 10.0, 12.0]),  # same plan, new price
    _rows("later", MONTHLY, ["basic", "basic", "basic", "pro"], [10.0, 10.0, 10.0, 20.0]),  # changes on Apr 1
], ignore_index=True)
OBS = pd.DataFrame({"customer_id": ["renews", "switches", "reprices", "later", "later", "later"],
                    "cutoff": T(["2024-05-01", "2024-05-01", "2024-05-01", "2024-03-15", "2024-04-01", "2024-04-02"])})


def test_renewals_are_not_plan_changes():
    changes = _plan_changes(SUBS, OBS)
    assert changes[("renews", "05-01")] == 0
    assert changes[("switches", "05-01")] == 1
    assert changes[("reprices", "05-01")] == 1


def test_only_rows_started_before_the_cutoff_count():
    changes = _plan_changes(SUBS, OBS)
    # the Apr 1 row is not before an Apr 1 cutoff: its change is the future
    assert changes[("later", "03-15")] == 0 and changes[("later", "04-01")] == 0
    assert changes[("later", "04-02")] == 1


def test_plan_changes_without_a_plan_column_follow_the_price():
    changes = _plan_changes(SUBS, OBS, with_plan=False)
    assert changes[("renews", "05-01")] == 0 and changes[("switches", "05-01")] == 0
    assert changes[("reprices", "05-01")] == 1


# ---------------------------------------------------------------- item 9b: redundant features


def test_redundant_features_on_a_hand_made_frame():
    catalog = [FeatureInfo("a", "x", None, "numeric", "{value}"),
               FeatureInfo("flat", "x", None, "numeric", "{value}"),
               FeatureInfo("a_again", "x", None, "numeric", "{value}"),
               FeatureInfo("nothing", "x", None, "numeric", "{value}"),
               FeatureInfo("plan", "x", None, "categorical", "{value}"),
               FeatureInfo("plan_copy", "x", None, "categorical", "{value}"),
               FeatureInfo("near", "x", None, "numeric", "{value}")]
    frame = pd.DataFrame({
        "a": [1.0, np.nan, 3.0, 4.0],
        "flat": [5.0, 5.0, 5.0, 5.0],
        "a_again": [1.0, np.nan, 3.0, 4.0],  # same values, missing in the same row
        "nothing": [np.nan] * 4,  # always missing is constant too
        "plan": [0.0, 1.0, 0.0, np.nan],  # codes of ["basic", "pro"]
        "plan_copy": [1.0, 0.0, 1.0, np.nan],  # the same plans coded with levels ["pro", "basic"]
        "near": [1.0, 2.0, 3.0, 4.0],  # like a, but not missing where a is: kept
    })
    dropped = redundant_features(frame, catalog)
    assert dropped == {"flat": "constant on the training rows",
                       "a_again": "identical to a on the training rows",
                       "nothing": "constant on the training rows",
                       "plan_copy": "identical to plan on the training rows"}
    # empty frames and a single column drop nothing
    assert redundant_features(frame.iloc[:, :1], catalog[:1]) == {}


def test_dropped_features_leave_the_spec_the_catalog_and_the_matrix():
    spec = FeatureSpec(families=["subscription"], windows=[30], levels={"sub_plan": ["basic", "pro"]})
    names = [info.name for info in feature_catalog(spec)]
    assert "sub_upgrades_30d" in names
    spec.dropped = ["sub_upgrades_30d", "sub_plan"]
    kept = [info.name for info in feature_catalog(spec)]
    assert kept == [n for n in names if n not in spec.dropped]
    # the spec travels as JSON inside the booster; an old spec without the field still loads
    assert FeatureSpec.from_dict(spec.to_dict()).dropped == ["sub_upgrades_30d", "sub_plan"]
    old = spec.to_dict()
    del old["dropped"]
    assert FeatureSpec.from_dict(old).dropped == []
    rows = pd.DataFrame({n: [1.0] for n in names}).assign(sub_plan="pro")
    assert list(design_matrix(rows, spec).columns) == kept
    # features built for the reduced spec carry only the kept columns, so scoring matches training
    connect()
    subs = _rows("c", MONTHLY, ["basic"] * 4, [10.0] * 4)
    tables = {"customers": ibis.memtable(pd.DataFrame({"customer_id": ["c"], "signup_date": T(["2023-12-01"])})),
              "subscriptions": ibis.memtable(subs)}
    built = build_features(tables, ibis.memtable(OBS.head(1).assign(customer_id="c")), spec).to_pandas()
    assert list(built.columns) == ["customer_id", "cutoff", *kept]


def test_unknown_dropped_feature_is_an_error():
    spec = FeatureSpec(families=["subscription"], windows=[30], dropped=["no_such_feature"])
    with pytest.raises(ValueError, match="no_such_feature"):
        feature_catalog(spec)


# ---------------------------------------------------------------- item 9c: retention headline months


SPEC = LabelSpec(definition="hybrid", horizon_days=30, grace_days=7, activity_tables=("events",))


def test_retention_headline_says_how_many_months_it_measured(tmp_path):
    from churnml.retention.report import ClvSpec, build_retention, write_retention

    connect()
    # data Jan 1 - Jul 1 2024: month starts Feb 1 ... May 1 have every label known (4 months)
    frames = {
        "customers": pd.DataFrame({"customer_id": ["A", "B"], "signup_date": T(["2024-01-01", "2024-01-01"])}),
        "subscriptions": pd.DataFrame({"customer_id": ["A", "B"], "start_date": T(["2024-01-01", "2024-01-01"]),
                                       "end_date": T([None, "2024-04-15"]), "mrr": [10.0, 20.0]}),
        "events": pd.DataFrame({"customer_id": ["A", "A"], "timestamp": T(["2024-01-01 09:00", "2024-06-30 23:00"]),
                                "event_type": ["login", "login"]}),
    }
    tables = {name: ibis.memtable(frame) for name, frame in frames.items()}
    until = observed_until(tables)
    scores = pd.DataFrame({"customer_id": ["A"], "churn_probability": [0.1], "customer_value": [10.0],
                           "value_at_risk": [1.0], "risk_tier": ["low"]})
    result = build_retention(tables, scores, spec=SPEC, until=until, segments=[], recent_months=12, clv=ClvSpec(),
                             value_months=12.0)
    head = result.headline
    assert len(result.churn) == 4
    assert head["recent_months"] == 4 and head["recent_months_asked"] == 12
    assert head["recent_period"] == "last 4 months (of 12 asked; only 4 recorded)"
    paths = write_retention(result, tmp_path / "retention", tmp_path / "retention.json")
    assert "last 4 months (of 12 asked; only 4 recorded)" in paths["retention.html"].read_text()
    # when the data hold every month asked for, the period is said plainly
    enough = build_retention(tables, scores, spec=SPEC, until=until, segments=[], recent_months=3, clv=ClvSpec(),
                             value_months=12.0).headline
    assert enough["recent_months"] == 3 and enough["recent_period"] == "last 3 months"
