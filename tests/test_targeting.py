"""Campaign targeting: the selection against brute force, the control draw, and `churnml target`.

The small base (contact 1 + offer 1 = 2 per contact, success rate 0.5; every number exact in
binary, so ties are exact). Expected net value = p x value x 0.5 - 2:

    id   p       value  net     ranked
    c0   0.75    16      4.0    1
    c1   0.5     16      2.0    2   tie with c2, c3 on net; higher p first
    c2   0.25    32      2.0    3   tie with c3 on net and p; smaller id first
    c3   0.25    32      2.0    4
    c9   0.875    8      1.5    5
    c8   0.5     12      1.0    6   tie with c4 on net; higher p first
    c4   0.125   48      1.0    7
    c5   0.125   32      0.0    -   worth nothing: not contacted
    c6   0.0625  32     -1.0    -
    c7   1.0      2     -1.0    -
"""

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnml.cli import main
from churnml.modeling.evaluation import Economics
from churnml.params import load_params
from churnml.retention.targeting import (check_scores, contact_limit, control_draw, in_control, profit_by_budget, select_targets)

ROOT = Path(__file__).resolve().parents[1]
ECON = Economics(contact_cost=1.0, offer_cost=1.0, success_rate=0.5)
RANKED = ["c0", "c1", "c2", "c3", "c9", "c8", "c4"]
NET = {"c0": 4.0, "c1": 2.0, "c2": 2.0, "c3": 2.0, "c9": 1.5, "c8": 1.0, "c4": 1.0, "c5": 0.0, "c6": -1.0, "c7": -1.0}


def small_scores() -> pd.DataFrame:
    rows = {"c7": (1.0, 2), "c3": (0.25, 32), "c5": (0.125, 32), "c2": (0.25, 32), "c8": (0.5, 12),
            "c0": (0.75, 16), "c6": (0.0625, 32), "c4": (0.125, 48), "c9": (0.875, 8), "c1": (0.5, 16)}
    # deliberately not in ranked order (c3 before c2, c8 before c4 and c1)
    return pd.DataFrame({"customer_id": list(rows), "churn_probability": [p for p, _ in rows.values()],
                         "customer_value": [float(v) for _, v in rows.values()]})


def brute_force_best(ids: list[str], limit: int) -> float:
    """The best total net value over every subset of at most `limit` of `ids`."""
    best = 0.0
    for size in range(min(limit, len(ids)) + 1):
        for subset in itertools.combinations(ids, size):
            best = max(best, sum(NET[c] for c in subset))
    return best


def select(scores=None, **kwargs):
    return select_targets(check_scores(scores if scores is not None else small_scores(), "test"), ECON,
                          **{"campaign_id": "test", "control_share": 0.0, **kwargs})


@pytest.mark.parametrize("budget", range(0, 11))
def test_budget_selection_matches_brute_force(budget):
    targets = select(budget=budget)
    treated = targets[targets["group"] == "treated"]
    assert treated["expected_net_value"].sum() == pytest.approx(brute_force_best(list(NET), budget))
    assert (treated["expected_net_value"] > 0).all()  # zero and negative net values are never contacted
    assert len(treated) <= budget
    # ties broken by net value, then probability, then id: always the same prefix of one order
    assert list(treated["customer_id"]) == RANKED[:budget]
    assert list(treated["rank"]) == list(range(1, len(treated) + 1))


@pytest.mark.parametrize("max_cost", [0.0, 1.99, 2.0, 5.0, 7.99, 8.0, 13.0, 14.0, 100.0])
def test_max_cost_selection_matches_brute_force(max_cost):
    targets = select(max_cost=max_cost)
    treated = targets[targets["group"] == "treated"]
    assert len(treated) * ECON.cost <= max_cost
    # a subset's cost is 2 per member, so the cost limit is a size limit of floor(max_cost / 2)
    best = brute_force_best(list(NET), int(max_cost // 2))
    assert treated["expected_net_value"].sum() == pytest.approx(best)
    assert list(treated["customer_id"]) == RANKED[:int(max_cost // 2)]


def test_hand_computed_nets_and_tie_breaks():
    targets = select(budget=100)
    assert dict(zip(targets["customer_id"], targets["expected_net_value"], strict=True)) == {c: NET[c] for c in RANKED}
    assert list(targets["customer_id"]) == RANKED
    assert list(select(budget=2)["customer_id"]) == ["c0", "c1"]  # c1 beats c2, c3 on probability
    assert list(select(budget=3)["customer_id"]) == ["c0", "c1", "c2"]  # c2 beats c3 on id
    assert list(select(budget=6)["customer_id"])[-1] == "c8"  # c8 beats c4 on probability


def test_selection_does_not_depend_on_row_order():
    scores = small_scores()
    for seed in range(5):
        shuffled = scores.sample(frac=1.0, random_state=seed)
        for kwargs in ({"budget": 3}, {"max_cost": 9.0}, {"budget": 5, "control_share": 0.4}):
            pd.testing.assert_frame_equal(select(shuffled, **kwargs), select(scores, **kwargs))


@pytest.mark.parametrize("campaign_id", ["spring", "autumn", "x"])
@pytest.mark.parametrize("budget", [1, 2, 3, 4, 6, 10])
def test_with_a_control_group_the_treated_are_the_best_of_those_left_to_treat(campaign_id, budget):
    share = 0.4
    held = dict(zip(NET, in_control(campaign_id, list(NET), share), strict=True))
    targets = select(campaign_id=campaign_id, control_share=share, budget=budget)
    treated = targets[targets["group"] == "treated"]
    control = targets[targets["group"] == "control"]
    eligible = [c for c in NET if not held[c]]
    assert treated["expected_net_value"].sum() == pytest.approx(brute_force_best(eligible, budget))
    assert len(treated) <= budget  # the budget counts the treated only
    assert all(held[c] for c in control["customer_id"]) and not any(held[c] for c in treated["customer_id"])
    # the control group comes from the same rank range: never ranked below the last treated customer
    if len(treated) == budget:
        assert control["rank"].to_numpy().max(initial=0) < treated["rank"].max()
    else:  # the budget does not bind: every positive-value customer is in one group or the other
        assert set(targets["customer_id"]) == set(RANKED)
    assert sorted(targets["rank"]) == list(range(1, len(targets) + 1))


def test_control_draw_is_stable_per_campaign_and_customer():
    ids = [f"cust-{i}" for i in range(20_000)]
    first = in_control("2026-07-01-abc", ids, 0.1)
    assert np.array_equal(first, in_control("2026-07-01-abc", ids, 0.1))  # same call, same groups
    backwards = in_control("2026-07-01-abc", ids[::-1], 0.1)[::-1]
    assert np.array_equal(first, backwards)  # a customer's group does not depend on who else is there
    assert np.array_equal(first[5:10], in_control("2026-07-01-abc", ids[5:10], 0.1))
    other = in_control("2026-08-01-abc", ids, 0.1)
    assert not np.array_equal(first, other)
    # independent draws: about 0.1 x 0.1 of customers are held out by both campaigns
    assert abs((first & other).mean() - 0.01) < 0.004
    for share in (0.1, 0.5):
        assert abs(in_control("spring", ids, share).mean() - share) < 0.01  # 4.7 standard errors at 0.1
    draws = control_draw("spring", ids)
    assert draws.min() >= 0 and draws.max() < 1


def test_control_membership_survives_in_a_targeted_campaign():
    scores = small_scores()
    one = select(scores, campaign_id="spring", control_share=0.4, budget=10)
    two = select(scores.iloc[::-1], campaign_id="spring", control_share=0.4, budget=10)
    assert dict(zip(one["customer_id"], one["group"], strict=True)) == dict(
        zip(two["customer_id"], two["group"], strict=True))


def test_contact_limit():
    assert contact_limit(ECON, 5, None) == 5
    assert contact_limit(ECON, None, 7.99) == 3
    # 0.3 / 0.1 is 2.9999999999999996 in floating point: three contacts still fit
    assert contact_limit(Economics(0.1, 0.0, 0.5), None, 0.3) == 3
    assert contact_limit(Economics(0.0, 0.0, 0.5), None, 10.0) is None  # free contacts: no limit
    for budget, max_cost in ((None, None), (3, 6.0), (-1, None), (None, -1.0)):
        with pytest.raises(ValueError):
            contact_limit(ECON, budget, max_cost)


def test_profit_by_budget_is_the_cumulative_net_value_of_the_best_first():
    curve = profit_by_budget(check_scores(small_scores(), "test"), ECON)
    assert list(curve["contacted"]) == list(range(11))
    assert list(curve["expected_net_value"]) == [0.0, 4.0, 6.0, 8.0, 10.0, 11.5, 12.5, 13.5, 13.5, 12.5, 11.5]
    assert list(curve["expected_cost"]) == [2.0 * k for k in range(11)]
    # thinned, it keeps nobody, everybody and the best point
    thin = profit_by_budget(check_scores(small_scores(), "test"), ECON, points=4)
    assert {0, 7, 10} <= set(thin["contacted"]) and len(thin) <= 4


@pytest.mark.parametrize("column, value, message", [
    ("churn_probability", 1.5, "churn_probability is not a probability in [0, 1]"),
    ("churn_probability", np.nan, "churn_probability is not a probability in [0, 1]"),
    ("customer_value", -3.0, "customer_value is not a finite value >= 0"),
    ("customer_id", None, "without a customer_id"),
    ("customer_id", "c0", "appear more than once"),
])
def test_bad_scores_name_the_file_column_and_rows(column, value, message):
    scores = small_scores()
    scores[column] = scores[column].astype(object)
    scores.loc[4, column] = value
    with pytest.raises(ValueError) as info:
        check_scores(scores, "scores.parquet")
    text = str(info.value)
    assert text.startswith("scores.parquet: ") and message in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["row"])
    # the example rows, by their position in the file: the changed row 4 (and c0's own row 5)
    shown = [line.split()[0] for line in lines[header + 1:]]
    assert shown == (["4", "5"] if message == "appear more than once" else ["4"])


# ---- the command line ---------------------------------------------------------------------------

def scores_file(tmp_path: Path, n: int = 60, suffix: str = ".parquet") -> Path:
    """A scores file as `churnml score` writes it."""
    rng = np.random.default_rng(7)
    probability = np.round(rng.uniform(0, 1, n), 4)
    value = np.round(rng.uniform(0, 200, n), 2)
    frame = pd.DataFrame({
        "customer_id": pd.Series([f"{i:04d}" for i in range(n)], dtype="string"),
        "as_of": pd.Timestamp("2026-07-01"), "churn_probability": probability,
        "risk_tier": np.where(probability >= 0.5, "high", "low"), "rank": 0,
        "customer_value": value, "value_at_risk": probability * value,
        "reason_1": "Logins in the last 30 days: 0", "reason_1_feature": "eng_logins_30d",
        "reason_1_value": "0", "reason_1_contribution": 0.4, "protective": "Plan: premium",
        "protective_feature": "prof_plan", "protective_value": "premium", "protective_contribution": -0.2,
        "model_version": "7",
    })
    path = tmp_path / f"scores{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, index=False)
    return path


def target(*args: str) -> int:
    return main(["target", "--params", str(ROOT / "params.yaml"), *args])


def test_cli_target_writes_the_campaign(tmp_path, capsys):
    path = scores_file(tmp_path)
    out = tmp_path / "campaigns" / "spring"
    assert target("--scores", str(path), "--budget", "12", "--campaign-id", "spring", "--out", str(out),
                  "--contact-cost", "2", "--offer-cost", "3", "--success-rate", "0.4", "--control-share", "0.25") == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "campaign.json", "profit_by_budget.csv", "profit_by_budget.png", "targets.csv", "targets.parquet"]
    assert [p.name for p in out.parent.iterdir()] == ["spring"]  # no temporary folder left behind
    targets = pd.read_parquet(out / "targets.parquet")
    assert set(targets["group"]) == {"treated", "control"}
    assert (targets["group"] == "treated").sum() == 12  # the budget binds here
    for column in ("customer_id", "rank", "churn_probability", "customer_value", "expected_net_value",
                   "reason_1", "reason_1_feature", "protective_contribution", "as_of", "campaign_id"):
        assert column in targets.columns, column
    expected = targets["churn_probability"] * targets["customer_value"] * 0.4 - 5
    assert np.allclose(targets["expected_net_value"], expected) and (expected > 0).all()
    assert list(targets["rank"]) == list(range(1, len(targets) + 1))
    assert targets["customer_id"].str.len().eq(4).all()  # ids stay text: "0016", not 16
    record = json.loads((out / "campaign.json").read_text())
    assert record["campaign_id"] == "spring" and record["as_of"] == "2026-07-01"
    assert record["economics"] == {"contact_cost": 2.0, "offer_cost": 3.0, "success_rate": 0.4,
                                   "control_share": 0.25, "budget": 12, "max_cost": None}
    assert record["counts"] == {"treated": 12, "control": int((targets["group"] == "control").sum())}
    assert record["expected_cost"] == 60.0
    treated = targets["group"] == "treated"
    assert record["expected_net_value"] == pytest.approx(targets.loc[treated, "expected_net_value"].sum(), abs=0.01)
    assert record["scores"]["model_version"] == "7" and record["scores"]["path"] == str(path)
    assert record["labels"]["horizon_days"] == load_params(ROOT / "params.yaml")["labels"]["horizon_days"]
    curve = pd.read_csv(out / "profit_by_budget.csv")
    assert curve["contacted"].max() == 60  # the whole base, not only the targets
    csv = pd.read_csv(out / "targets.csv", dtype={"customer_id": str})
    assert list(csv["customer_id"]) == list(targets["customer_id"])
    assert "contact 12 customers" in capsys.readouterr().out


def test_cli_target_defaults_come_from_params(tmp_path, monkeypatch):
    params = load_params(ROOT / "params.yaml")
    economics = params["evaluate"]["economics"]
    path = scores_file(tmp_path, suffix=".csv")
    monkeypatch.chdir(tmp_path)
    assert target("--scores", str(path), "--max-cost", "30") == 0
    [folder] = (tmp_path / params["target"]["out_dir"]).iterdir()
    assert folder.name.startswith("2026-07-01-") and len(folder.name) == len("2026-07-01-") + 8
    record = json.loads((folder / "campaign.json").read_text())
    assert record["campaign_id"] == folder.name
    assert record["economics"]["contact_cost"] == economics["contact_cost"]
    assert record["economics"]["offer_cost"] == economics["offer_cost"]
    assert record["economics"]["success_rate"] == economics["success_rate"]
    assert record["economics"]["control_share"] == params["target"]["control_share"]
    assert record["expected_cost"] <= 30
    assert record["counts"]["treated"] == int(30 // (economics["contact_cost"] + economics["offer_cost"]))
    # the same scores give the same campaign id, so the same control group
    assert target("--scores", str(path), "--max-cost", "30") == 0
    assert [p.name for p in (tmp_path / params["target"]["out_dir"]).iterdir()] == [folder.name]


@pytest.mark.parametrize("change, message, example", [
    (lambda f: f.drop(columns=["customer_value", "churn_probability"]),
     "missing column(s) ['churn_probability', 'customer_value']", "columns present: customer_id, as_of"),
    (lambda f: f.assign(churn_probability=f["churn_probability"].where(f.index != 3, 1.2)),
     "churn_probability is not a probability in [0, 1]", ["3", "0003", "1.2", "30.16"]),
])
def test_cli_target_rejects_bad_scores_clearly(tmp_path, capsys, change, message, example):
    path = tmp_path / "bad.parquet"
    change(pd.read_parquet(scores_file(tmp_path))).to_parquet(path, index=False)
    assert target("--scores", str(path), "--budget", "5", "--out", str(tmp_path / "c")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"churnml target: {path}: ") and message in err
    if isinstance(example, list):  # the example row: its position, id, probability and value
        assert err.strip().splitlines()[-1].split() == example
    else:  # the columns that are there
        assert example in err
    assert not (tmp_path / "c").exists()


def test_cli_target_needs_exactly_one_limit(tmp_path):
    path = scores_file(tmp_path)
    for limits in ([], ["--budget", "3", "--max-cost", "9"]):
        with pytest.raises(SystemExit) as info:
            target("--scores", str(path), *limits)
        assert info.value.code == 2
