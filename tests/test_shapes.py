"""Config alone adapts churnml to data shaped unlike the default: here a retailer with only
customers and orders, under its own column names, labelled by inactivity. The whole DVC pipeline
runs on it in a temporary project."""

import json
import shutil

import pandas as pd
import pytest

from churnml.data.generate.dataset import generate_dataset
from churnml.params import compose_text
from support import ROOT, fresh_mlflow_db, run

pytestmark = pytest.mark.e2e

SHOP = """name: shop
path: data/raw/shop
reference_time: null
score_range: [0, 10]
tables:
  customers:
    file: clients.parquet
    columns: {customer_id: cust, signup_date: first_seen}
    attributes: [country, channel]
  orders:
    file: sales.csv
    columns: {customer_id: cust, timestamp: ordered_at, amount: total}
  events: null
  feedback: null
  subscriptions: null
checks:
  before_signup: warn
"""


def _project(tmp_path, empty_mlflow_db, name, data_yaml, overrides, n_customers=700, months=12):
    """A temporary project whose data config is `data_yaml`, with the configured MLflow store new
    and empty, and the generated dataset to cut that project's raw tables from."""
    home = tmp_path / name
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "tmp")
    for folder in ("conf", "pipelines", "src", ".dvc"):
        shutil.copytree(ROOT / folder, home / folder, ignore=ignore)
    for file in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / file, home / file)
    (home / f"conf/data/{name}.yaml").write_text(data_yaml)
    (home / "params.yaml").write_text(compose_text(home / "conf", [f"data={name}", *overrides]))
    fresh_mlflow_db(empty_mlflow_db, home / "mlflow.db")
    raw = tmp_path / "generated"
    generate_dataset(raw, n_customers=n_customers, months=months)
    return home, raw


def _shop_tables(home, raw):
    """The generated customers and orders under the shop's own file and column names."""
    shop = home / "data/raw/shop"
    shop.mkdir(parents=True)
    customers = pd.read_parquet(raw / "customers.parquet")
    customers.rename(columns={"customer_id": "cust", "signup_date": "first_seen"})[
        ["cust", "first_seen", "country", "channel"]].to_parquet(shop / "clients.parquet")
    orders = pd.read_parquet(raw / "orders.parquet")
    orders.rename(columns={"customer_id": "cust", "timestamp": "ordered_at", "amount": "total"})[
        ["cust", "ordered_at", "total"]].to_csv(shop / "sales.csv", index=False)


def test_orders_only_retailer_runs_end_to_end(tmp_path, empty_mlflow_db):
    """A retailer with only customers and orders, under its own names: a 90-day horizon on monthly
    cutoffs, customers still customers for 540 days after an order (longer than the data, so no
    month start has a whole look-back window for the retention report), and the registry name set
    once, under tracking. Every stage runs through score and the report."""
    home, raw = _project(tmp_path, empty_mlflow_db, "shop", SHOP, [
        "labels=inactivity", "labels.inactivity.tables=[orders]", "labels.horizon_days=90",
        "labels.inactivity.active_window_days=540", "tracking.registered_model=retailer_model",
        "train.search.trials=0"], months=15)
    _shop_tables(home, raw)

    run(["git", "init", "-q"], home)
    log = run(["dvc", "repro"], home).stdout
    assert "no events table, so no engagement features" in log
    catalog = pd.read_csv(home / "data/processed/feature_catalog.csv")
    assert set(catalog["family"]) == {"purchase", "purchase_process", "profile"}
    metrics = json.loads((home / "reports/metrics.json").read_text())
    assert metrics["model"]["roc_auc"] > 0.6
    # the model is registered, promoted and scored under the name given once
    assert "registered retailer_model v1" in log
    from mlflow.tracking import MlflowClient

    champion = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db").get_model_version_by_alias(
        "retailer_model", "champion")
    assert str(champion.version) == "1"
    scores = pd.read_parquet(home / "data/scores/scores.parquet")
    summary = json.loads((home / "data/scores/scores_summary.json").read_text())
    assert len(scores) == summary["scored"] > 0 and scores["customer_id"].str.startswith("C").all()
    assert set(scores["status"]) <= {"active", "lapsed"}
    assert summary["scored"] + sum(summary["not_scored"].values()) == summary["customers"] == 700
    # the retention report: purchase habits from the orders alone; no month to measure churn on,
    # said plainly, and every file written with its columns
    headline = json.loads((home / "reports/retention.json").read_text())
    assert headline["definition"] == "inactivity" and headline["customers"] == 700
    assert 0 < headline["repeat_purchase_rate"] <= 1 and headline["average_order_value"] > 0
    assert "no month start before the end of the data" in log
    churn = pd.read_csv(home / "reports/plots/churn_rate.csv")
    assert churn.empty and list(churn.columns) == ["month", "customers", "churned", "churn_rate"]
    assert headline["churn_rate_latest"] is None and (home / "reports/retention/retention.html").exists()
    segments = pd.read_csv(home / "reports/retention/segments.csv")
    assert set(segments["segment_kind"]) == {"country", "channel", "risk tier"}  # no plan column here
    assert "segment 'plan' is not a column of the customers table" in log


APP = """name: app
path: data/raw/app
reference_time: null
score_range: [0, 10]
tables:
  customers:
    file: users.parquet
    columns: {customer_id: user_id, signup_date: created_at}
    attributes: [plan, country]
  events:
    file: activity.parquet
    columns: {customer_id: user_id, timestamp: at, event_type: action, value: value}
  subscriptions:
    file: billing.parquet
    columns: {customer_id: user_id, start_date: period_start, end_date: period_end, plan: tier, mrr: fee}
  orders: null
  feedback: null
"""


def test_events_and_subscriptions_product_runs_end_to_end(tmp_path, empty_mlflow_db):
    # the search is not what this test is about (test_pipeline covers it): train `model` as set
    home, raw = _project(tmp_path, empty_mlflow_db, "app", APP, ["labels=hybrid", "labels.inactivity.tables=[events]",
                                                "train.search.trials=0"])
    app = home / "data/raw/app"
    app.mkdir(parents=True)
    ids = {"customer_id": "user_id"}
    pd.read_parquet(raw / "customers.parquet").rename(columns={**ids, "signup_date": "created_at"})[
        ["user_id", "created_at", "plan", "country"]].to_parquet(app / "users.parquet")
    pd.read_parquet(raw / "events.parquet").rename(columns={**ids, "timestamp": "at", "event_type": "action"})[
        ["user_id", "at", "action", "value"]].to_parquet(app / "activity.parquet")
    pd.read_parquet(raw / "subscriptions.parquet").rename(columns={
        **ids, "start_date": "period_start", "end_date": "period_end", "plan": "tier", "mrr": "fee"})[
        ["user_id", "period_start", "period_end", "tier", "fee"]].to_parquet(app / "billing.parquet")

    run(["git", "init", "-q"], home)
    log = run(["dvc", "repro"], home).stdout
    catalog = pd.read_csv(home / "data/processed/feature_catalog.csv")
    assert set(catalog["family"]) == {"engagement", "subscription", "profile"}
    metrics = json.loads((home / "reports/metrics.json").read_text())
    assert metrics["model"]["roc_auc"] > 0.6
    scores = pd.read_parquet(home / "data/scores/scores.parquet")
    # value comes from the subscription fee alone
    assert len(scores) > 0 and scores["customer_value"].gt(0).any()
    headline = json.loads((home / "reports/retention.json").read_text())
    assert headline["repeat_purchase_rate"] is None and headline["average_order_value"] is None
    assert headline["historical_clv_mean"] > 0 and headline["predicted_clv_total"] > 0
    assert "no orders table" in log
    cohorts = pd.read_csv(home / "reports/retention/cohort_retention.csv")
    assert cohorts["customers"].sum() == 700
