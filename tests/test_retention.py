"""Retention measures on a tiny hand-made dataset, every answer worked out by hand.

The customers are those of test_observations (data until 2024-07-01, horizon 30 days, grace 7,
active window 30, activity = events), with fees and orders added:
- A (subscription): Jan 1 - Mar 10 at 10/month, then Mar 14 - open at 12/month; never churns.
  One event on Jan 1 (a subscriber: it changes no label).
- B (subscription): Jan 1 - Apr 15 at 20/month; churns in the Apr 1 window.
- C (pay as you go, signed up Jan 15): events Jan 20, Feb 10, Mar 5, May 20, Jun 25; orders o1
  (10) and o2 (30).
- D (pay as you go, signed up Mar 20): events Mar 25, Apr 2, Jun 30; order o3 in two lines (5 + 15).
- E (signed up Nov 15, 2023, before the data starts): nothing recorded, so never a customer.

Events and subscriptions record from Jan 1, so the first month start whose 30-day look-back is
recorded is Feb 1; they run to Jul 1. Still a customer at:
  Feb 1: A B C | Mar 1: A B C | Apr 1: A B C D | May 1: A D | Jun 1: A C | Jul 1: A C D
Known labels (window passed): Feb 1 A0 B0 C0; Mar 1 A0 B0 C0; Apr 1 A0 B1 C1 D0; May 1 A0 D1;
Jun 1 C0 only (A's window ends with the grace on Jul 8, after the data, so June is incomplete).
"""

import ibis
import numpy as np
import pandas as pd
import pytest

from churnml.retention.clv import expected_months, historical_revenue, predicted_clv
from churnml.data.engine import connect
from churnml.modeling.evaluation import DAYS_PER_MONTH
from churnml.features.label_times import LabelSpec, observed_until
from churnml.retention.measures import (cohort_retention, month_starts, monthly_churn, observed_rows, purchase_measures, recent_churn_by_customer, segment_table)

T = pd.Timestamp
SPEC = LabelSpec(definition="hybrid", horizon_days=30, grace_days=7, activity_tables=("events",))


@pytest.fixture()
def tables():
    connect()
    frames = {
        "customers": pd.DataFrame({
            "customer_id": ["A", "B", "C", "D", "E"],
            "signup_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-15", "2024-03-20", "2023-11-15"]),
            "plan": ["pro", "basic", None, "basic", "pro"],
        }),
        "subscriptions": pd.DataFrame({
            "customer_id": ["A", "A", "B"],
            "start_date": pd.to_datetime(["2024-01-01", "2024-03-14", "2024-01-01"]),
            "end_date": pd.to_datetime(["2024-03-10", None, "2024-04-15"]),
            "mrr": [10.0, 12.0, 20.0],
        }),
        "events": pd.DataFrame({
            "customer_id": ["A"] + ["C"] * 5 + ["D"] * 3,
            "timestamp": pd.to_datetime(["2024-01-01 09:00", "2024-01-20 10:00", "2024-02-10 00:00", "2024-03-05 00:00", "2024-05-20 00:00", "2024-06-25 00:00",
                                         "2024-03-25 00:00", "2024-04-02 00:00", "2024-06-30 23:00"]),
            "event_type": ["login"] * 9,
        }),
        "orders": pd.DataFrame({
            "customer_id": ["C", "C", "D", "D"],
            "order_id": ["o1", "o2", "o3", "o3"],
            "timestamp": pd.to_datetime(["2024-01-25", "2024-02-20", "2024-03-28", "2024-03-28"]),
            "amount": [10.0, 30.0, 5.0, 15.0],
        }),
    }
    return {name: ibis.memtable(frame) for name, frame in frames.items()}


@pytest.fixture()
def observed(tables):
    # orders are not activity here, and would move the start of the record to Jan 25
    tables = {name: table for name, table in tables.items() if name != "orders"}
    until = observed_until(tables)
    assert until == T("2024-07-01")
    cutoffs = month_starts(tables, until, SPEC)
    assert [f"{c:%m-%d}" for c in cutoffs] == ["02-01", "03-01", "04-01", "05-01", "06-01", "07-01"]
    return observed_rows(tables, SPEC, cutoffs, until)


def test_who_is_still_a_customer_at_each_month_start(observed):
    seen = observed.groupby(observed["cutoff"].dt.strftime("%m-%d"))["customer_id"].apply(lambda s: "".join(sorted(s)))
    assert seen.to_dict() == {"02-01": "ABC", "03-01": "ABC", "04-01": "ABCD", "05-01": "AD", "06-01": "AC",
                              "07-01": "ACD"}


def test_churn_rate_per_month(observed):
    churn = monthly_churn(observed)
    # Jun 1 is left out: C's label is known, A's (subscription, with grace) is not yet
    assert [f"{m:%m-%d}" for m in churn["month"]] == ["02-01", "03-01", "04-01", "05-01"]
    assert churn["customers"].tolist() == [3, 3, 4, 2]
    assert churn["churned"].tolist() == [0, 0, 2, 1]
    assert churn["churn_rate"].tolist() == [0.0, 0.0, 0.5, 0.5]


def test_cohort_retention_matrix(tables, observed):
    customers = tables["customers"].select("customer_id", "signup_date").to_pandas()
    matrix = cohort_retention(customers, observed)
    assert matrix.index.tolist() == ["2023-11", "2024-01", "2024-03"]
    assert matrix["customers"].tolist() == [1, 3, 1]
    # E: Dec 1 and Jan 1 come before the first month start (Feb 1): unknown, not lost; then 0
    row = matrix.loc["2023-11", list(range(1, 9))].to_numpy(float)
    assert np.isnan(row[:2]).all() and (row[2:] == 0).all()
    # January: A B C until Apr 1, only A on May 1, A and C on Jun 1 and Jul 1
    np.testing.assert_allclose(matrix.loc["2024-01", [1, 2, 3, 4, 5, 6]].to_numpy(float),
                               [1, 1, 1, 1 / 3, 2 / 3, 2 / 3])
    # March (D): Apr 1, May 1 yes; Jun 1 no; Jul 1 back; months 5 and 6 are after the data
    row = matrix.loc["2024-03", [1, 2, 3, 4, 5, 6]].to_numpy(float)
    np.testing.assert_allclose(row[:4], [1, 1, 0, 1])
    assert np.isnan(row[4:]).all()


def test_repeat_purchase_rate_order_value_and_frequency(tables):
    orders = tables["orders"].to_pandas()
    measures = purchase_measures(orders, months=6.0)
    # buyers C (orders o1, o2) and D (o3, two lines): 3 orders, 60 revenue
    assert measures["buyers"] == 2 and measures["orders"] == 3 and measures["revenue"] == 60.0
    assert measures["repeat_purchase_rate"] == 0.5
    assert measures["average_order_value"] == 20.0
    assert measures["purchase_frequency"] == 1.5
    assert measures["purchases_per_buyer_month"] == 0.25
    # without order ids every row is an order
    rows = purchase_measures(orders.drop(columns="order_id"), months=6.0)
    assert rows["orders"] == 4 and rows["repeat_purchase_rate"] == 1.0 and rows["average_order_value"] == 15.0
    assert purchase_measures(None, 6.0)["repeat_purchase_rate"] is None


def test_historical_clv(tables):
    revenue = historical_revenue(tables, T("2024-07-01")).set_index("customer_id")
    month = DAYS_PER_MONTH
    # A: 69 days at 10 (Jan 1 - Mar 10) + 109 days at 12 (Mar 14 - Jul 1); B: 105 days at 20
    assert revenue.loc["A", "subscription_revenue"] == pytest.approx(69 / month * 10 + 109 / month * 12)
    assert revenue.loc["B", "revenue"] == pytest.approx(105 / month * 20)
    assert revenue.loc["C", "revenue"] == 40.0 and revenue.loc["D", "order_revenue"] == 20.0
    assert revenue.loc["E", "revenue"] == 0.0
    # from Mar 1 only: A 9 days at 10 + 109 at 12; C's o2 (Feb 20) is before it
    recent = historical_revenue(tables, T("2024-07-01"), since=T("2024-03-01")).set_index("customer_id")
    assert recent.loc["A", "revenue"] == pytest.approx(9 / month * 10 + 109 / month * 12)
    assert recent.loc["C", "revenue"] == 0.0


def test_predicted_clv_from_churn_probability():
    # a horizon of one mean month: survival is 1 - p each month
    months = expected_months(np.array([0.0, 0.5, 1.0]), DAYS_PER_MONTH, discount_rate=0.0, max_months=3)
    np.testing.assert_allclose(months, [3.0, 0.5 + 0.25 + 0.125, 0.0])
    # discounting: survival 1, 10% a month over 2 months: 1/1.1 + 1/1.21
    assert expected_months(np.array([0.0]), DAYS_PER_MONTH, 0.1, 2)[0] == pytest.approx(1 / 1.1 + 1 / 1.21)
    # a 60-day horizon: p = 0.75 over 60 days is survival 0.5 a month
    assert expected_months(np.array([0.75]), 2 * DAYS_PER_MONTH, 0.0, 1)[0] == pytest.approx(0.5)
    scores = pd.DataFrame({"customer_id": ["x", "y"], "churn_probability": [0.0, 0.5], "customer_value": [120.0, 240.0]})
    clv = predicted_clv(scores, value_months=12, horizon_days=DAYS_PER_MONTH, margin=0.5, discount_rate=0.0, max_months=3)
    # x: 10 a month for 3 months at 50% margin = 15; y: 20 a month for 0.875 months at 50% = 8.75
    assert clv["predicted_clv"].tolist() == pytest.approx([15.0, 8.75])


def test_segment_table(observed):
    churn = recent_churn_by_customer(observed, months=12)
    # rows of complete months (Feb - May): A 4 (never churned), B 3 (1), C 3 (1), D 2 (1)
    assert churn.set_index("customer_id")[["observed", "churned"]].to_dict("index") == {
        "A": {"observed": 4, "churned": 0}, "B": {"observed": 3, "churned": 1},
        "C": {"observed": 3, "churned": 1}, "D": {"observed": 2, "churned": 1}}
    segments = pd.DataFrame({"customer_id": ["A", "B", "C", "D"], "plan": ["pro", "basic", None, "basic"]})
    scores = pd.DataFrame({"customer_id": ["A", "C", "D"], "value_at_risk": [1.0, 2.0, 4.0],
                           "predicted_clv": [100.0, 50.0, 30.0]})
    revenue = pd.DataFrame({"customer_id": ["A", "B", "C", "D"], "recent_revenue": [10.0, 20.0, 40.0, 20.0]})
    table = segment_table(segments, scores, churn, revenue).set_index("segment")
    # basic = B + D: one scored (D), churn 2 of 5 rows, revenue 40, value at risk 4; C alone is missing
    assert table.loc["basic", ["customers", "revenue", "value_at_risk", "predicted_clv"]].tolist() == [1, 40.0, 4.0, 30.0]
    assert table.loc["basic", "churn_rate"] == pytest.approx(2 / 5)
    assert table.loc["pro", "churn_rate"] == 0.0 and table.loc["(missing)", "customers"] == 1
    assert table.index.tolist() == ["basic", "(missing)", "pro"]  # by value at risk


def test_month_starts_wait_for_a_recorded_look_back(tables):
    # with orders, every source records from Jan 25; 30 days on is Feb 24, so months start Mar 1
    cutoffs = month_starts(tables, T("2024-07-01"), SPEC)
    assert [f"{c:%m-%d}" for c in cutoffs] == ["03-01", "04-01", "05-01", "06-01", "07-01"]
    longer = LabelSpec(definition="hybrid", horizon_days=30, active_window_days=70, activity_tables=("events",))
    assert f"{month_starts(tables, T('2024-07-01'), longer)[0]:%m-%d}" == "05-01"  # Jan 25 + 70 days: Apr 4


# ---------------------------------------------------------------- the report collects no row


def many_frames(customers: int = 400, seed: int = 7) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Raw tables of `customers` customers over 2023-2024 (half of them subscribers, orders of one
    or two lines, a plan with gaps) and scores for most of them plus one stranger."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"c{i:04d}" for i in range(customers)])
    signup = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 150, customers), "D")
    subscribed = rng.random(customers) < 0.5
    ends = rng.integers(60, 700, subscribed.sum())
    subscriptions = pd.DataFrame({
        "customer_id": ids[subscribed], "start_date": signup[subscribed],
        "end_date": [s + pd.Timedelta(days=int(d)) if d < 500 else pd.NaT for s, d in zip(signup[subscribed], ends)],
        "mrr": rng.choice([9.0, 19.5, 49.0], subscribed.sum())})
    events = pd.DataFrame({"customer_id": rng.choice(ids, 30 * customers),
                           "timestamp": pd.Timestamp("2023-01-01") + pd.to_timedelta(
                               rng.integers(0, 540 * 24, 30 * customers), "h"),
                           "event_type": "login"})
    orders = pd.DataFrame({"customer_id": rng.choice(ids, 3 * customers),
                           "timestamp": pd.Timestamp("2023-01-01") + pd.to_timedelta(
                               rng.integers(0, 540, 3 * customers), "D"),
                           "amount": np.round(rng.uniform(1, 120, 3 * customers), 2)})
    # about 30% of the lines continue the order before them: one customer, one time per order
    orders["order_id"] = [f"o{n}" for n in np.cumsum(rng.random(len(orders)) >= 0.3)]
    orders[["customer_id", "timestamp"]] = orders.groupby("order_id")[["customer_id", "timestamp"]].transform("first")
    frames = {
        "customers": pd.DataFrame({"customer_id": ids, "signup_date": signup,
                                   "plan": rng.choice(np.array(["basic", "pro", None], dtype=object), customers)}),
        "subscriptions": subscriptions, "events": events, "orders": orders,
    }
    frames = {name: frame.astype({c: "datetime64[us]" for c in frame.columns if frame[c].dtype.kind == "M"})
              for name, frame in frames.items()}
    scored = np.r_[ids[rng.random(customers) < 0.8], ["stranger"]]
    probability = rng.uniform(0, 1, len(scored))
    tier = np.where(probability > 0.6, "high", np.where(probability > 0.3, "medium", "low"))
    scores = pd.DataFrame({"customer_id": scored, "churn_probability": probability,
                           "customer_value": np.round(rng.uniform(0, 400, len(scored)), 2), "risk_tier": tier})
    return frames, scores


@pytest.fixture()
def collected(monkeypatch):
    """The number of rows of every result DuckDB hands back to Python: to_pandas and execute of any
    expression (joins too, which bypass Expr.execute) end in the backend's execute."""
    from ibis.backends.duckdb import Backend

    sizes: list[int] = []
    execute = Backend.execute

    def counting(self, *args, **kwargs):
        result = execute(self, *args, **kwargs)
        sizes.append(len(result) if isinstance(result, (pd.DataFrame, pd.Series)) else 1)
        return result

    monkeypatch.setattr(Backend, "execute", counting)
    return sizes


def test_the_report_collects_only_aggregates(collected, tmp_path):
    from churnml.retention.report import ClvSpec, build_retention, write_retention

    connect()
    frames, scores = many_frames()
    tables = {name: ibis.memtable(frame) for name, frame in frames.items()}
    until = observed_until(tables)
    result = build_retention(tables, ibis.memtable(scores), spec=SPEC, until=until, segments=["plan"],
                             recent_months=6, clv=ClvSpec(), value_months=12.0)
    paths = write_retention(result, tmp_path / "retention", tmp_path / "retention.json")
    report = list(collected)
    observed = observed_rows(tables, SPEC, month_starts(tables, until, SPEC), until)
    # what came back is per month, cohort x month, segment or histogram bin: never per customer
    assert report and max(report) <= 100 < len(frames["customers"]), report
    assert len(observed) > 20 * max(report)
    assert result.headline["customers"] == 400 and result.headline["customers_scored"] == len(scores)
    assert result.churn["customers"].sum() > 0 and result.clv_histogram["predicted"].sum() == len(scores) - 1
    # and the engine wrote every customer's row, in customer order
    clv = pd.read_parquet(paths["clv.parquet"])
    assert clv["customer_id"].tolist() == sorted(frames["customers"]["customer_id"])
    assert int(clv["scored"].sum()) == len(scores) - 1  # the stranger is not a customer
