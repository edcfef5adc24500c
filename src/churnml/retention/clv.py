"""Customer lifetime value: what each customer has brought in, and what they are expected to.

Historical CLV is revenue to date: order amounts plus subscription fees (MRR for each month a
subscription ran, prorated by day). Predicted CLV is margin x monthly value x the expected
remaining lifetime in months, discounted, with the monthly survival taken from the model's
churn probability: if p is the chance to churn within the label horizon (h days), the chance
to stay a month is s = (1 - p) ** (30.44 / h), and the expected discounted months to come over
the next T are sum_{t=1..T} (s / (1 + d)) ** t. The README says why this and not BG/NBD.
"""

from __future__ import annotations

from datetime import datetime

import ibis
import numpy as np
import pandas as pd

from churnml.modeling.evaluation import DAYS_PER_MONTH


def historical_revenue(tables: dict[str, ibis.Table], until: datetime, since: datetime | None = None) -> pd.DataFrame:
    """customer_id, order_revenue, subscription_revenue, revenue: earned in [since, until)."""
    lower = ibis.literal(pd.Timestamp(since or datetime(1, 1, 1)).to_pydatetime())
    upper = ibis.literal(pd.Timestamp(until).to_pydatetime())
    parts = []
    if "orders" in tables and "amount" in tables["orders"].columns:
        orders = tables["orders"]
        orders = orders.filter((orders.timestamp >= lower) & (orders.timestamp < upper))
        parts.append(orders.group_by("customer_id").aggregate(order_revenue=orders.amount.sum()).to_pandas())
    if "subscriptions" in tables and "mrr" in tables["subscriptions"].columns:
        subs = tables["subscriptions"]
        start = ibis.greatest(subs.start_date, lower)
        end = ibis.least(subs.end_date.fill_null(upper), upper)
        days = (end.epoch_seconds() - start.epoch_seconds()) / 86400
        paid = subs.mutate(fee=ibis.greatest(days, 0) / DAYS_PER_MONTH * subs.mrr.fill_null(0))
        parts.append(paid.group_by("customer_id").aggregate(subscription_revenue=paid.fee.sum()).to_pandas())
    customers = tables["customers"].select("customer_id").to_pandas()
    frame = customers
    for part in parts:
        frame = frame.merge(part, on="customer_id", how="left")
    for column in ("order_revenue", "subscription_revenue"):
        frame[column] = pd.to_numeric(frame.get(column, 0.0), errors="coerce")
        frame[column] = frame[column].fillna(0.0).astype("float64")
    frame["revenue"] = frame["order_revenue"] + frame["subscription_revenue"]
    return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)


def months_ago(until: datetime, months: int) -> datetime:
    return (pd.Timestamp(until) - pd.DateOffset(months=int(months))).to_pydatetime()


def expected_months(probability: np.ndarray, horizon_days: float, discount_rate: float,
                    max_months: int) -> np.ndarray:
    """Expected discounted months still to come within `max_months`, per churn probability."""
    p = np.clip(np.asarray(probability, dtype="float64"), 0.0, 1.0)
    survival = (1.0 - p) ** (DAYS_PER_MONTH / float(horizon_days))
    ratio = survival / (1.0 + float(discount_rate))
    t = int(max_months)
    with np.errstate(divide="ignore", invalid="ignore"):
        geometric = ratio * (1.0 - ratio ** t) / (1.0 - ratio)
    return np.where(np.isclose(ratio, 1.0), float(t), geometric)


def predicted_clv(scores: pd.DataFrame, *, value_months: float, horizon_days: float, margin: float,
                  discount_rate: float, max_months: int) -> pd.DataFrame:
    """customer_id, monthly_value, expected_months, predicted_clv for each scored customer.

    `scores` is `churnml score` output: its customer_value is `value_months` months of value,
    so the monthly value is customer_value / value_months.
    """
    monthly = scores["customer_value"].to_numpy(dtype="float64") / float(value_months)
    months = expected_months(scores["churn_probability"].to_numpy(), horizon_days, discount_rate, max_months)
    return pd.DataFrame({
        "customer_id": scores["customer_id"].astype(str).to_numpy(),
        "monthly_value": monthly,
        "expected_months": months,
        "predicted_clv": float(margin) * monthly * months,
    })
