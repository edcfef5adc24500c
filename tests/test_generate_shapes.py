"""Issue 15, item 4 (generator part): `generate_dataset(..., shape=...)` writes a subscription
business, a retailer (orders only, Pareto/GGG-like purchasing with silent death) or today's mix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from churnml.data.dataset import validate_folder
from churnml.data.engine import connect
from churnml.data.generate.dataset import generate_dataset
from churnml.data.generate.tables import SCHEMAS

END = "2026-06-30"
FILES = {
    "subscription": {"customers", "events", "subscriptions", "churn_truth"},
    "orders": {"customers", "orders", "churn_truth"},
}
# enough churners that a modest planted effect is measured well; the retail simulation is cheap
ORDERS_ARGS = {"n_customers": 20_000, "months": 24, "end_date": END, "seed": 11, "chunk_size": 7000}
SUB_ARGS = {"n_customers": 400, "months": 6, "end_date": END, "seed": 5, "chunk_size": 150}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shapes")
    generate_dataset(root / "orders", shape="orders", **ORDERS_ARGS)
    generate_dataset(root / "subscription", shape="subscription", **SUB_ARGS)
    return {"orders": root / "orders", "subscription": root / "subscription"}


@pytest.fixture(scope="module")
def retail(made) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(made["orders"] / f"{name}.parquet") for name in FILES["orders"]}


@pytest.fixture(scope="module")
def window(made) -> tuple[pd.Timestamp, pd.Timestamp]:
    p = json.loads((made["orders"] / "ground_truth.json").read_text())["parameters"]
    return pd.Timestamp(p["start_date"]), pd.Timestamp(p["end_date"]) + pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def gaps(retail) -> pd.DataFrame:
    """Every order after a customer's first, with the days since the previous one and its rank
    counted back from the customer's last order (1 = the last gap)."""
    od = retail["orders"]
    gap = od.groupby("customer_id").timestamp.diff().dt.total_seconds() / 86_400
    frame = od.assign(gap=gap).dropna(subset=["gap"])
    return frame.assign(back=frame.groupby("customer_id").cumcount(ascending=False) + 1)


# ------------------------------------------------------------------------------------ every shape


@pytest.mark.parametrize("shape", ["subscription", "orders"])
def test_writes_its_tables_and_nothing_else(made, shape):
    expected = {f"{name}.parquet" for name in FILES[shape]} | {"ground_truth.json"}
    assert {p.name for p in made[shape].iterdir()} == expected
    truth = json.loads((made[shape] / "ground_truth.json").read_text())
    assert truth["parameters"]["shape"] == shape
    for name in FILES[shape]:
        assert truth["summary"]["rows"][name] == pq.read_metadata(made[shape] / f"{name}.parquet").num_rows
    assert set(truth["summary"]["rows"]) == FILES[shape]


@pytest.mark.parametrize("shape", ["subscription", "orders"])
def test_tables_have_the_contract_schemas(made, shape):
    for name in FILES[shape]:
        assert pq.read_schema(made[shape] / f"{name}.parquet").remove_metadata() == SCHEMAS[name], name


@pytest.mark.parametrize("shape", ["subscription", "orders"])
def test_churnml_validates_the_shape_without_findings(made, shape):
    """The folder passes churnml's own validation with the absent tables switched off."""
    tables = {
        name: ({"file": f"{name}.parquet", "columns": {c: c for c in SCHEMAS[name].names}, "attributes": None}
               if name in FILES[shape] else None)
        for name in ("customers", "events", "orders", "feedback", "subscriptions")
    }
    tables["customers"]["columns"] = {"customer_id": "customer_id", "signup_date": "signup_date"}
    validated = validate_folder(connect(), made[shape], tables, reference_time="2027-01-01")
    assert validated.findings == []
    assert set(validated.tables) == FILES[shape] - {"churn_truth"}


@pytest.mark.parametrize("shape,args", [("subscription", SUB_ARGS), ("orders", ORDERS_ARGS)])
def test_same_arguments_give_identical_bytes(made, tmp_path, shape, args):
    again = tmp_path / "again"
    generate_dataset(again, shape=shape, **args)
    for f in sorted(p.name for p in made[shape].iterdir()):
        assert (again / f).read_bytes() == (made[shape] / f).read_bytes(), f
    other = tmp_path / "other"
    generate_dataset(other, shape=shape, **{**args, "seed": args["seed"] + 1})
    assert (other / "customers.parquet").read_bytes() != (again / "customers.parquet").read_bytes()


def test_rejects_an_unknown_shape(tmp_path):
    with pytest.raises(ValueError, match=r"shape must be one of mixed, subscription, orders; got 'retail'"):
        generate_dataset(tmp_path / "raw", n_customers=10, months=2, shape="retail")
    assert not (tmp_path / "raw").exists()


def test_cli_takes_the_shape(tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run(
        [sys.executable, "-m", "churnml.cli", "generate", "--out", str(out), "--customers", "50",
         "--months", "3", "--shape", "orders"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} == {"customers.parquet", "orders.parquet", "churn_truth.parquet",
                                               "ground_truth.json"}
    helped = subprocess.run([sys.executable, "-m", "churnml.cli", "generate", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert "{mixed,subscription,orders}" in helped.stdout


# ------------------------------------------------------------------------------------ subscription


def test_subscription_shape_bills_everyone_by_subscription(made):
    folder = made["subscription"]
    cu = pd.read_parquet(folder / "customers.parquet")
    sb = pd.read_parquet(folder / "subscriptions.parquet")
    ct = pd.read_parquet(folder / "churn_truth.parquet")
    assert set(cu.billing) == {"subscription"} and "payg" not in set(cu.plan)
    assert set(sb.customer_id) == set(cu.customer_id)
    assert set(ct.billing) == {"subscription"} and ct.churned.any()
    assert not (folder / "orders.parquet").exists() and not (folder / "feedback.parquet").exists()


# ------------------------------------------------------------------------------------ orders


def test_retail_customers_pay_as_they_go(retail):
    cu = retail["customers"]
    assert set(cu.billing) == {"payg"} and set(cu.plan) == {"payg"} and (cu.monthly_price == 0).all()
    assert cu.country.nunique() >= 4 and cu.channel.nunique() >= 4
    od = retail["orders"]
    assert (od.amount > 0).all() and (od.quantity >= 1).all() and od.order_id.is_unique
    key = list(zip(od.customer_id, od.timestamp))
    assert key == sorted(key)
    # spend per order does not follow purchase frequency (independent, as in the Gamma-Gamma model)
    per = od.groupby("customer_id").agg(n=("amount", "size"), spend=("amount", "mean"))
    assert abs(np.corrcoef(np.log(per.n), np.log(per.spend))[0, 1]) < 0.15


def test_first_order_on_signup_day_and_none_outside_the_window(retail, window):
    start, end_excl = window
    cu, od = retail["customers"].set_index("customer_id"), retail["orders"]
    assert od.timestamp.min() >= start and od.timestamp.max() < end_excl
    first = od.groupby("customer_id").timestamp.min()
    signup = cu.signup_date
    inside = signup[signup >= start].index
    # a retailer knows a customer from the first order: everyone who signed up inside has one, that day
    assert set(inside) <= set(first.index)
    assert (first[inside].dt.normalize() == signup[inside]).all()
    assert (od.timestamp >= od.customer_id.map(signup)).all()
    # some customers who were there before the window never order in it (they had already left)
    assert (~signup[signup < start].index.isin(first.index)).sum() > 0


def test_no_order_after_a_churn(retail, window):
    ct, od = retail["churn_truth"].set_index("customer_id"), retail["orders"]
    assert (ct.churned == ct.churn_date.notna()).all() and ct.return_date.isna().all()
    assert set(ct.billing) == {"payg"}
    assert set(ct.churn_cause.dropna()) == {"disengagement", "random"}
    churn = od.customer_id.map(ct.churn_date)
    assert not (od.timestamp >= churn).any()
    assert (ct.churn_date.dropna() < window[1]).all()


def test_purchase_rates_are_heterogeneous(retail, window):
    """Counts over the last year among customers there all year and never churned: a Poisson
    process with one common rate has variance / mean 1; gamma-mixed rates give far more."""
    start, end_excl = window
    year = end_excl - pd.Timedelta(days=365)
    cu = retail["customers"].merge(retail["churn_truth"], on="customer_id")
    stayers = cu.customer_id[(cu.signup_date < year) & ~cu.churned]
    od = retail["orders"]
    counts = od[od.timestamp >= year].groupby("customer_id").size().reindex(stayers, fill_value=0)
    assert len(counts) > 300
    assert counts.var() / counts.mean() > 2.0, counts.var() / counts.mean()


def test_some_buy_in_bursts_and_some_on_a_rhythm(gaps):
    per = gaps.groupby("customer_id").gap.agg(["size", "mean", "std"])
    cv = (per["std"] / per["mean"])[per["size"] >= 7]  # customers with >= 8 orders
    assert len(cv) > 100
    assert (cv < 0.6).mean() > 0.1 and (cv > 1.2).mean() > 0.1, cv.describe()


def test_faded_churners_slow_down_and_silent_ones_do_not(retail, gaps):
    """The last two gaps before a churn against the customer's earlier gaps (log ratio, median over
    churners with >= 5 gaps): stretched for faded (disengagement) churners, not for silent (random) ones.

    The gap that would cross the death is never seen, so the observed last gaps are cut a little
    short for everyone; that is why silent churners sit slightly below 0, not at it. Over seeds
    11-16 faded medians ran 0.25-0.37, silent ones -0.12 to -0.06.
    """
    ct = retail["churn_truth"].set_index("customer_id")
    gone = gaps[gaps.customer_id.isin(ct.index[ct.churned])]
    enough = gone.groupby("customer_id").size() >= 5
    gone = gone[gone.customer_id.isin(enough.index[enough])]
    last = gone[gone.back <= 2].groupby("customer_id").gap.mean()
    earlier = gone[gone.back > 3].groupby("customer_id").gap.mean()
    log_ratio = np.log(last / earlier).dropna()
    cause = log_ratio.index.map(ct.churn_cause)
    faded, silent = log_ratio[cause == "disengagement"], log_ratio[cause == "random"]
    assert len(faded) > 300 and len(silent) > 300
    assert faded.median() > 0.2, faded.median()  # about 1.35x longer
    assert silent.median() < 0.05, silent.median()
    assert faded.median() - silent.median() > 0.25


def test_churn_rate_is_plausible(made, retail, window):
    """Monthly churn among live customers between 1.5% and 8%: a retailer loses a few percent of
    its active buyers a month (Pareto/NBD fits of retail panels give mean lifetimes of 1-5 years);
    less would make churn too rare to learn, more would empty the base within the window."""
    start, end_excl = window
    cu = retail["customers"].merge(retail["churn_truth"], on="customer_id")
    alive = cu[cu.churn_date.isna() | (cu.churn_date >= start)]
    a = alive.signup_date.clip(lower=start)
    b = alive.churn_date.fillna(end_excl)
    months = ((b - a).dt.days.sum()) / (365.25 / 12)
    rate = (alive.churn_date.notna()).sum() / months
    assert 0.015 < rate < 0.08, rate
    summary = json.loads((made["orders"] / "ground_truth.json").read_text())["summary"]
    assert summary["monthly_churn_rate"] == pytest.approx(rate, abs=0.002)
    assert summary["churned"] == int(cu.churned.sum())
    assert summary["churn_by_cause"] == cu.churn_cause.value_counts().to_dict()
    # some channels lose customers faster than others
    by_channel = cu[cu.signup_date >= start].groupby("channel").churned.mean()
    assert by_channel.max() > 1.3 * by_channel.min(), by_channel


def test_retail_ground_truth_describes_the_process(made):
    truth = json.loads((made["orders"] / "ground_truth.json").read_text())
    assert truth["parameters"] == {
        "n_customers": 20_000, "months": 24, "start_date": "2024-07-01", "end_date": END, "seed": 11,
        "chunk_size": 7000, "shape": "orders",
    }
    sim = truth["simulation"]
    for key in ("rate_shape", "regularity_median", "dropout_shape", "fade_share", "spend_median"):
        assert key in sim
    assert "Gamma" in truth["process"]["purchase_timing"]
    assert {"customers", "churned", "churn_rate", "churn_by_cause", "monthly_churn_rate", "rows"} <= set(
        truth["summary"]
    )
