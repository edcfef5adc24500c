"""Customer lifetime value: what each customer has brought in, and what they are expected to.

Historical CLV is revenue to date: order amounts plus subscription fees (MRR for each month a
subscription ran, prorated by day). Predicted CLV is margin x monthly value x the expected
remaining lifetime in months, discounted, with the monthly survival taken from the model's
churn probability: if p is the chance to churn within the label horizon (h days), the chance
to stay a month is s = (1 - p) ** (30.44 / h), and the expected discounted months to come over
the next T are sum_{t=1..T} (s / (1 + d)) ** t. The README says why this and not BG/NBD.

Per-customer values are engine tables (one row per customer, never collected); the pandas
forms are for small inputs.
"""

from __future__ import annotations

from datetime import datetime

import ibis
import numpy as np
import pandas as pd

from churnml.modeling.evaluation import DAYS_PER_MONTH
from churnml.retention.measures import Rows, as_table, left_join


def revenue_table(tables: dict[str, ibis.Table], until: datetime, since: datetime | None = None) -> ibis.Table:
    """customer_id, order_revenue, subscription_revenue, revenue earned in [since, until), one row
    per customer (engine table)."""
    lower = ibis.literal(pd.Timestamp(since or datetime(1, 1, 1)).to_pydatetime())
    upper = ibis.literal(pd.Timestamp(until).to_pydatetime())
    frame = tables["customers"].select("customer_id")
    if "orders" in tables and "amount" in tables["orders"].columns:
        orders = tables["orders"]
        orders = orders.filter((orders.timestamp >= lower) & (orders.timestamp < upper))
        frame = left_join(frame, orders.group_by("customer_id").aggregate(order_revenue=orders.amount.sum()))
    if "subscriptions" in tables and "mrr" in tables["subscriptions"].columns:
        subs = tables["subscriptions"]
        start = ibis.greatest(subs.start_date, lower)
        end = ibis.least(subs.end_date.fill_null(upper), upper)
        days = (end.epoch_seconds() - start.epoch_seconds()) / 86400
        paid = subs.mutate(fee=ibis.greatest(days, 0) / DAYS_PER_MONTH * subs.mrr.fill_null(0))
        frame = left_join(frame, paid.group_by("customer_id").aggregate(subscription_revenue=paid.fee.sum()))
    earned = {column: (frame[column].cast("float64") if column in frame.columns else ibis.literal(0.0))
              .fill_null(0.0) for column in ("order_revenue", "subscription_revenue")}
    return frame.select("customer_id", **earned).mutate(
        revenue=lambda t: t.order_revenue + t.subscription_revenue)


def historical_revenue(tables: dict[str, ibis.Table], until: datetime, since: datetime | None = None) -> pd.DataFrame:
    """`revenue_table` as a pandas frame sorted by customer_id: for small data."""
    frame = revenue_table(tables, until, since).to_pandas()
    return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)


def months_ago(until: datetime, months: int) -> datetime:
    return (pd.Timestamp(until) - pd.DateOffset(months=int(months))).to_pydatetime()


def expected_months_of(probability: ibis.NumericValue, horizon_days: float, discount_rate: float,
                       max_months: int) -> ibis.NumericValue:
    """Expected discounted months still to come within `max_months`, per churn probability."""
    p = probability.cast("float64").clip(lower=0.0, upper=1.0)
    survival = (1.0 - p) ** (DAYS_PER_MONTH / float(horizon_days))
    ratio = survival / (1.0 + float(discount_rate))
    t = int(max_months)
    # numpy.isclose(ratio, 1.0) with its default tolerances, as the formula was first written
    level = (ratio - 1.0).abs() <= 1e-08 + 1e-05
    # the denominator is kept away from 0 even where its branch is not taken: Spark's ANSI mode raises
    geometric = ratio * (1.0 - ratio**t) / ibis.ifelse(level, 1.0, 1.0 - ratio)
    return ibis.ifelse(level, float(t), geometric)


def expected_months(probability: np.ndarray, horizon_days: float, discount_rate: float,
                    max_months: int) -> np.ndarray:
    """`expected_months_of` for an array of probabilities."""
    p = np.asarray(probability, dtype="float64")
    frame = ibis.memtable(pd.DataFrame({"position": np.arange(len(p)), "p": p}))
    months = frame.select("position", months=expected_months_of(frame.p, horizon_days, discount_rate, max_months))
    return months.order_by("position").to_pandas()["months"].to_numpy("float64")


def predicted_clv_table(scores: ibis.Table, *, value_months: float, horizon_days: float, margin: float,
                        discount_rate: float, max_months: int) -> ibis.Table:
    """customer_id, monthly_value, expected_months, predicted_clv for each scored customer.

    `scores` is `churnml score` output: its customer_value is `value_months` months of value,
    so the monthly value is customer_value / value_months.
    """
    monthly = scores.customer_value.cast("float64") / float(value_months)
    months = expected_months_of(scores.churn_probability, horizon_days, discount_rate, max_months)
    return scores.select(customer_id=scores.customer_id.cast("string"), monthly_value=monthly,
                         expected_months=months, predicted_clv=float(margin) * monthly * months)


def predicted_clv(scores: Rows, *, value_months: float, horizon_days: float, margin: float,
                  discount_rate: float, max_months: int) -> pd.DataFrame:
    """`predicted_clv_table` as a pandas frame sorted by customer_id: for small data."""
    table = predicted_clv_table(as_table(scores), value_months=value_months, horizon_days=horizon_days,
                                margin=margin, discount_rate=discount_rate, max_months=max_months)
    return table.to_pandas().sort_values("customer_id", kind="stable").reset_index(drop=True)


def value_histogram(per_customer: ibis.Table, bins: int = 40, clip_quantile: float = 0.99) -> pd.DataFrame:
    """bin_start, bin_end, historical, predicted: scored customers per value bin, counted by the
    engine. The `bins` edges run from 0 to the `clip_quantile` of both values (at least 1); values
    above that quantile count as the quantile, values below 0 in no bin, as numpy.histogram bins."""
    scored = per_customer.filter(per_customer.scored)
    values = ibis.union(scored.select(series=ibis.literal("historical"), value=scored.historical_clv),
                        scored.select(series=ibis.literal("predicted"), value=scored.predicted_clv), distinct=False)
    top = values.value.quantile(clip_quantile).execute()
    top = 1.0 if top is None or pd.isna(top) else float(top)
    edges = np.linspace(0, max(top, 1.0), bins)
    binned = values.mutate(bin=ibis.least(values.value, top).bucket([float(e) for e in edges]))
    binned = binned.filter(binned.bin.notnull())
    counts = binned.group_by("series", "bin").aggregate(customers=binned.count())
    counts = counts.to_pandas().pivot(index="bin", columns="series", values="customers")
    counts = counts.reindex(index=range(bins - 1), columns=["historical", "predicted"]).fillna(0).astype("int64")
    return pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:],
                         "historical": counts["historical"].to_numpy(), "predicted": counts["predicted"].to_numpy()})
