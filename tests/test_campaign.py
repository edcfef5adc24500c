"""Campaign measurement on a tiny hand-made dataset, every answer worked out by hand.

The campaign ran at 2024-06-01; its window is [Jun 1, Jul 1) (horizon 30 days, grace 7 days,
active window 30 days, hybrid definition). The data runs to Jul 10 (observed until Jul 11).

    id  group    how                                          outcome
    T1  treated  events May 20, Jun 15                        stays
    T2  treated  event May 20, nothing after                  churns
    T3  treated  events May 25, Jun 20                        stays
    T4  treated  subscription from Jan 1, open                stays
    T5  treated  subscription Jan 1 .. Jun 20                 churns
    T6  treated  last event in March: gone before Jun 1       not observed
    T7  treated  not in the customers table                   not found
    K1  control  events May 10, Jun 2                         stays
    K2  control  event May 10, nothing after                  churns
    K3  control  subscription ends Jun 10, restarts Jun 14    stays (restart within grace)
    K4  control  subscription Jan 1 .. Jun 25                 churns

Treated: 5 measured, 2 churned (40%); control: 4 measured, 2 churned (50%); difference 0.10.
Retained 0.10 x 5 = 0.5 customers. The measured treated are worth 100+200+300+400+500 = 1500, and
the 7 treated contacts cost 6 each: realised net value 0.10 x 1500 - 42 = 108.
"""

import json
from datetime import datetime
from pathlib import Path

import ibis
import pandas as pd
import pytest
import yaml
from statsmodels.stats.proportion import confint_proportions_2indep

from churnml.retention.campaign import compare_groups, measure_outcomes, measurement_spec
from churnml.cli import main
from churnml.data.engine import connect
from churnml.modeling.evaluation import Economics
from churnml.features.label_times import LabelSpec, observed_until

ROOT = Path(__file__).resolve().parents[1]
AS_OF = datetime(2024, 6, 1)
SPEC = measurement_spec(LabelSpec(definition="hybrid", lead_days=5, grace_days=7, activity_tables=("events",)), 30)
ECON = Economics(contact_cost=1.0, offer_cost=5.0, success_rate=0.3)
CHURNED = {"T1": 0, "T2": 1, "T3": 0, "T4": 0, "T5": 1, "K1": 0, "K2": 1, "K3": 0, "K4": 1}


def frames() -> dict[str, pd.DataFrame]:
    ids = ["T1", "T2", "T3", "T4", "T5", "T6", "K1", "K2", "K3", "K4"]
    customers = pd.DataFrame({"customer_id": ids, "signup_date": pd.Timestamp("2024-01-01")})
    events = pd.DataFrame({
        "customer_id": ["T1", "T1", "T2", "T3", "T3", "T6", "K1", "K1", "K2", "K4"],
        "timestamp": pd.to_datetime(["2024-05-20", "2024-06-15", "2024-05-20", "2024-05-25", "2024-06-20",
                                     "2024-03-03", "2024-05-10", "2024-06-02", "2024-05-10", "2024-07-10 12:00"],
                                    format="ISO8601"),
        "event_type": "login",
        "value": 1.0,
    })
    subscriptions = pd.DataFrame({
        "customer_id": ["T4", "T5", "K3", "K3", "K4"],
        "start_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-01", "2024-06-14", "2024-01-01"]),
        "end_date": pd.to_datetime([None, "2024-06-20", "2024-06-10", None, "2024-06-25"]),
        "plan": "basic",
        "mrr": 10.0,
    })
    return {"customers": customers, "events": events, "subscriptions": subscriptions}


@pytest.fixture()
def tables():
    connect()  # the default backend executes memtables
    return {name: ibis.memtable(frame) for name, frame in frames().items()}


def targets() -> pd.DataFrame:
    ids = ["T1", "T2", "T3", "T4", "T5", "T6", "T7", "K1", "K2", "K3", "K4"]
    return pd.DataFrame({
        "customer_id": ids,
        "group": ["treated"] * 7 + ["control"] * 4,
        "customer_value": [100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 50.0, 50.0, 50.0, 50.0],
    })


def test_measurement_window_starts_at_the_as_of_date():
    # the configured lead is dropped: a churn the day after the campaign starts is one it failed to stop
    assert (SPEC.lead_days, SPEC.horizon_days, SPEC.grace_days) == (0, 30, 7)


def test_outcomes_by_hand(tables):
    until = observed_until(tables)
    assert until == datetime(2024, 7, 11)
    outcomes = measure_outcomes(tables, targets(), AS_OF, SPEC, until)
    assert list(outcomes["customer_id"]) == list(targets()["customer_id"])  # nobody dropped
    status = dict(zip(outcomes["customer_id"], outcomes["status"], strict=True))
    assert status["T6"] == "not_observed" and status["T7"] == "not_found"
    measured = outcomes[outcomes["status"] == "measured"]
    assert dict(zip(measured["customer_id"], measured["churned"].astype(int), strict=True)) == CHURNED
    assert outcomes.loc[outcomes["status"] != "measured", "churned"].isna().all()


def test_comparison_by_hand(tables):
    outcomes = measure_outcomes(tables, targets(), AS_OF, SPEC, observed_until(tables))
    result = compare_groups(outcomes, targets()["customer_value"], ECON)
    treated, control = result["groups"]["treated"], result["groups"]["control"]
    assert treated == {"targeted": 7, "measured": 5, "not_observed": 1, "not_found": 1, "churned": 2,
                       "churn_rate": 0.4, "value": 1500.0}
    assert control == {"targeted": 4, "measured": 4, "not_observed": 0, "not_found": 0, "churned": 2,
                       "churn_rate": 0.5, "value": 200.0}
    diff = result["difference"]
    assert diff["estimate"] == pytest.approx(0.1)
    # control first: the interval is for control - treated, not its mirror image
    low, high = confint_proportions_2indep(2, 4, 2, 5, method="newcomb", compare="diff")
    assert (diff["ci_low"], diff["ci_high"]) == (pytest.approx(low, abs=1e-6), pytest.approx(high, abs=1e-6))
    assert diff["ci_low"] < 0.1 < diff["ci_high"] and diff["ci_low"] != pytest.approx(-diff["ci_high"])
    assert 0.5 < diff["p_value"] <= 1  # two churners in each small group: no evidence either way
    assert result["retained"]["estimate"] == pytest.approx(0.5)
    assert result["retained"]["ci_low"] == pytest.approx(low * 5, abs=0.01)
    assert result["net_value"]["estimate"] == pytest.approx(108.0)
    assert result["net_value"]["cost"] == 42.0
    assert result["net_value"]["ci_high"] == pytest.approx(high * 1500 - 42, abs=0.01)


def test_a_clear_effect_is_significant():
    # 200 per group: 40% churn in control, 20% among the treated
    outcomes = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(400)],
        "group": ["control"] * 200 + ["treated"] * 200,
        "status": "measured",
        "churned": pd.array([1] * 80 + [0] * 120 + [1] * 40 + [0] * 160, dtype="Int8"),
    })
    result = compare_groups(outcomes, pd.Series([10.0] * 400), ECON)
    assert result["difference"]["estimate"] == pytest.approx(0.2)
    assert result["difference"]["p_value"] < 0.001 and result["difference"]["ci_low"] > 0.1
    assert result["retained"]["estimate"] == pytest.approx(40.0)


def test_not_yet_measurable_says_from_when(tables):
    # subscription labels need the window plus 7 days' grace: known on Jul 8
    with pytest.raises(ValueError, match=r"can be measured from 2024-07-08, with data through 2024-07-07"):
        measure_outcomes(tables, targets(), AS_OF, SPEC, datetime(2024, 7, 5))
    # the data does not even reach the end of the window
    with pytest.raises(ValueError, match=r"not yet fully observed: the data runs to 2024-06-19"):
        measure_outcomes(tables, targets(), AS_OF, SPEC, datetime(2024, 6, 20))
    # inactivity alone needs no grace: known on Jul 1
    inactivity = measurement_spec(LabelSpec(definition="inactivity", activity_tables=("events",)), 30)
    with pytest.raises(ValueError, match=r"can be measured from 2024-07-01"):
        measure_outcomes(tables, targets(), AS_OF, inactivity, datetime(2024, 6, 25))
    assert len(measure_outcomes(tables, targets(), AS_OF, inactivity, datetime(2024, 7, 1))) == 11


def test_an_empty_group_is_refused(tables):
    outcomes = measure_outcomes(tables, targets(), AS_OF, SPEC, observed_until(tables))
    treated_only = outcomes[outcomes["group"] == "treated"]
    with pytest.raises(ValueError, match=r"no measured customers in the control group \(0 targeted\)"):
        compare_groups(treated_only, targets()["customer_value"][:7], ECON)
    gone = outcomes.assign(status=outcomes["status"].where(outcomes["group"] == "control", "not_observed"))
    with pytest.raises(ValueError, match=r"no measured customers in the treated group \(7 targeted\)"):
        compare_groups(gone, targets()["customer_value"], ECON)


# ---- the command line: target, then measure -----------------------------------------------------

def test_cli_target_then_campaign_report(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, frame in frames().items():
        frame.to_parquet(raw / f"{name}.parquet", index=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["tables"]["customers"]["attributes"] = []
    params["data"]["tables"]["orders"] = params["data"]["tables"]["feedback"] = None
    params["data"]["reference_time"] = "2024-08-01"
    params["labels"].update(definition="hybrid", horizon_days=30, grace_days=7, lead_days=0)
    params["labels"]["inactivity"].update(tables=["events"], active_window_days=None)
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params))
    # every measurable customer (and T6, T7) is scored high enough to be worth a contact
    scores = targets().assign(as_of=pd.Timestamp(AS_OF), churn_probability=0.9, customer_value=1000.0,
                              model_version="3").drop(columns=["group"])
    scores.to_parquet(tmp_path / "scores.parquet", index=False)
    campaign = tmp_path / "campaign"
    assert main(["target", "--scores", str(tmp_path / "scores.parquet"), "--budget", "100", "--campaign-id", "june",
                 "--control-share", "0.5", "--out", str(campaign), "--params", str(params_path)]) == 0
    groups = pd.read_parquet(campaign / "targets.parquet").set_index("customer_id")["group"]
    assert len(groups) == 11 and set(groups) == {"treated", "control"}
    capsys.readouterr()

    assert main(["campaign-report", "--campaign", str(campaign), "--data", str(raw), "--params", str(params_path)]) == 0
    report = json.loads((campaign / "campaign_report.json").read_text())
    for group in ("treated", "control"):
        members = [c for c in CHURNED if groups[c] == group]
        got = report["groups"][group]
        assert (got["measured"], got["churned"]) == (len(members), sum(CHURNED[c] for c in members))
        assert got["targeted"] == int((groups == group).sum())
    assert report["groups"][groups["T6"]]["not_observed"] >= 1 and report["groups"][groups["T7"]]["not_found"] >= 1
    assert report["window"] == {"start": "2024-06-01", "end": "2024-07-01", "definition": "hybrid", "horizon_days": 30}
    out = capsys.readouterr().out
    assert "campaign june: churn in [2024-06-01, 2024-07-01)" in out and "churn difference (control - treated)" in out

    # with data only up to Jun 30 the window (plus grace) is not yet observed
    early = tmp_path / "early"
    early.mkdir()
    for name, frame in frames().items():
        column = "timestamp" if name == "events" else "start_date" if name == "subscriptions" else None
        kept = frame if column is None else frame[frame[column] < "2024-07-01"]
        if name == "subscriptions":  # ends after Jun 30 are not known yet either
            kept = kept.assign(end_date=kept["end_date"].where(kept["end_date"] < "2024-07-01"))
        kept.to_parquet(early / f"{name}.parquet", index=False)
    assert main(["campaign-report", "--campaign", str(campaign), "--data", str(early),
                 "--params", str(params_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("churnml campaign-report: campaign june: churn in [2024-06-01, 2024-07-01)")
    assert "can be measured from 2024-07-08" in err
