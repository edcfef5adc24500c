"""The measures a retention team runs on: churn rate per month, cohort retention, purchase habits.

Churn and retention follow the configured label definition, so the report counts churn exactly
as the model is trained to predict it: at each month start, the customers who are still customers
(a subscription covers the date, or they were active in the window before it) are observed, and
the churned are those the definition labels 1 once the label window has passed.
"""

from __future__ import annotations

from datetime import datetime

import ibis
import numpy as np
import pandas as pd

from churnml.features.label_times import LabelSpec, candidates, cutoff_grid, history_start, label_rows


def _definition(spec: LabelSpec) -> str:
    # user-supplied label times carry no rule for other dates: their fallback definition applies
    return spec.fallback if spec.definition == "custom" else spec.definition


def month_starts(tables: dict[str, ibis.Table], until: datetime, spec: LabelSpec) -> list[datetime]:
    """Every month start up to `until` whose look-back window lies after all sources record.

    Before that, "no activity in the window" may only mean "not recorded yet", and a cohort
    would seem to shrink at the first month start and grow back at the next.
    """
    start = pd.Timestamp(history_start(tables)) + pd.Timedelta(days=spec.active_window)
    first = start if start == start.to_period("M").start_time else (start + pd.offsets.MonthBegin(1))
    return cutoff_grid(first.to_pydatetime(), until, "MS")


# The columns and types of observed rows, also when there are none: the measures and the report
# read them with .dt and integer sums, which an untyped empty frame would break.
OBSERVED_TYPES = {"customer_id": "str", "cutoff": "datetime64[us]", "label": "int8", "label_known": "bool"}


def _empty(types: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in types.items()})


def observed_rows(tables: dict[str, ibis.Table], spec: LabelSpec, cutoffs: list[datetime],
                  until: datetime) -> pd.DataFrame:
    """customer_id, cutoff, label, label_known of every customer still a customer at each cutoff."""
    if not cutoffs:
        return _empty(OBSERVED_TYPES)
    rows = candidates(tables["customers"], cutoffs)
    labelled = label_rows(tables, rows, spec, until, _definition(spec))
    frame = labelled.select("customer_id", "cutoff", "label", "label_known").to_pandas()
    frame = frame.astype({**OBSERVED_TYPES, "cutoff": "datetime64[us]"})
    return frame.sort_values(["cutoff", "customer_id"], kind="stable").reset_index(drop=True)


def complete_months(observed: pd.DataFrame) -> pd.DataFrame:
    """The rows of month starts where every label is known.

    Definitions learn their outcome at different times (a subscription waits out its grace
    period), so a month with some labels known would count only the quick ones: left out.
    """
    known = observed["label_known"].astype(bool)
    complete = known.groupby(observed["cutoff"]).transform("all")
    return observed[complete.to_numpy(bool)]


def monthly_churn(observed: pd.DataFrame) -> pd.DataFrame:
    """Per month start whose label windows have all passed: customers, churned, churn_rate."""
    known = complete_months(observed)
    table = known.groupby("cutoff").agg(customers=("customer_id", "size"), churned=("label", "sum")).reset_index()
    table = table.astype({"cutoff": "datetime64[us]", "customers": "int64", "churned": "int64"})
    table["churn_rate"] = (table["churned"] / table["customers"]).astype("float64")
    return table.rename(columns={"cutoff": "month"})


def cohort_retention(customers: pd.DataFrame, observed: pd.DataFrame) -> pd.DataFrame:
    """Share of each signup-month cohort still a customer k months on (k = 1, 2, ...).

    Column k is the month start k months after the cohort's signup month; a customer counts at
    it when the label definition observes them there. Cells outside the observed month starts
    (before every source records, or past the end of the data) are empty.
    `customers` holds customer_id and signup_date; the index is the cohort ('YYYY-MM').
    """
    cohort = pd.to_datetime(customers["signup_date"]).dt.to_period("M")
    sizes = cohort.value_counts().sort_index()
    last_cutoff = observed["cutoff"].max() if len(observed) else None
    first_cutoff = observed["cutoff"].min() if len(observed) else None
    # months as integers (year * 12 + month): vectorised, a whole base's rows at once
    ordinal = pd.Series((cohort.dt.year * 12 + cohort.dt.month).to_numpy(), index=customers["customer_id"].astype(str))
    start = ordinal.reindex(observed["customer_id"].astype(str)).to_numpy()
    known = ~np.isnan(start)
    cutoffs = pd.DatetimeIndex(observed["cutoff"])[known]
    k = (cutoffs.year * 12 + cutoffs.month).to_numpy() - start[known].astype("int64")
    periods = pd.PeriodIndex.from_ordinals(start[known].astype("int64") - (1970 * 12 + 1), freq="M")
    counts = pd.DataFrame({"cohort": periods, "k": k}).groupby(["cohort", "k"]).size().unstack("k", fill_value=0)
    horizon = 0 if last_cutoff is None else max(((last_cutoff.to_period("M") - sizes.index.min()).n), 0)
    matrix = pd.DataFrame(index=sizes.index, columns=range(1, horizon + 1), dtype="float64")
    for period, size in sizes.items():
        for k in matrix.columns:
            when = period.start_time + pd.DateOffset(months=k)
            if last_cutoff is None or not first_cutoff <= when <= last_cutoff:
                continue  # before the data starts or after it ends: left empty, not zero
            seen = counts.at[period, k] if period in counts.index and k in counts.columns else 0
            matrix.at[period, k] = seen / size
    matrix.index = matrix.index.astype(str)
    matrix.index.name = "cohort"
    matrix.insert(0, "customers", sizes.to_numpy())
    return matrix


def purchase_measures(orders: pd.DataFrame | None, months: float) -> dict[str, float | int | None]:
    """Repeat purchase rate, average order value and purchase frequency from the orders.

    repeat_purchase_rate: share of buyers with two orders or more. average_order_value: revenue
    per order. purchase_frequency: orders per buyer over the period, and per buyer per month.
    An order is an order_id when the table has one (lines of one order count once), else a row.
    """
    empty = {"buyers": 0, "orders": 0, "revenue": 0.0, "repeat_purchase_rate": None,
             "average_order_value": None, "purchase_frequency": None, "purchases_per_buyer_month": None}
    if orders is None or orders.empty:
        return empty
    key = "order_id" if "order_id" in orders and orders["order_id"].notna().all() else None
    per_order = (orders.groupby(["customer_id", key], dropna=False)["amount"].sum().reset_index()
                 if key else orders[["customer_id", "amount"]])
    per_buyer = per_order.groupby("customer_id").size()
    buyers, n_orders = int(len(per_buyer)), int(len(per_order))
    revenue = float(per_order["amount"].fillna(0).sum())
    frequency = n_orders / buyers
    return {
        "buyers": buyers,
        "orders": n_orders,
        "revenue": revenue,
        "repeat_purchase_rate": float((per_buyer >= 2).mean()),
        "average_order_value": revenue / n_orders,
        "purchase_frequency": frequency,
        "purchases_per_buyer_month": frequency / months if months > 0 else None,
    }


def recent_churn_by_customer(observed: pd.DataFrame, months: int) -> pd.DataFrame:
    """customer_id, observed (rows), churned over the last `months` complete month starts, or
    over as many as the data hold when there are fewer (the report's headline says how many)."""
    known = complete_months(observed)
    if known.empty:
        return _empty({"customer_id": "str", "observed": "int64", "churned": "int64"})
    recent = sorted(known["cutoff"].unique())[-months:]
    rows = known[known["cutoff"].isin(recent)]
    return rows.groupby("customer_id").agg(observed=("label", "size"), churned=("label", "sum")).reset_index()


def segment_table(segments: pd.DataFrame, scores: pd.DataFrame, churn: pd.DataFrame,
                  revenue: pd.DataFrame) -> pd.DataFrame:
    """segment_kind, segment, customers, churn_rate, revenue, value_at_risk, predicted_clv.

    `segments` has customer_id and one column per segment kind; `scores` the scored customers
    (customer_id, value_at_risk, predicted_clv); `churn` from recent_churn_by_customer;
    `revenue` customer_id and recent_revenue. customers counts the scored ones; churn_rate is
    realised (churned rows over observed rows) over the recent months; revenue is that of the
    recent months, of every customer in the segment.
    """
    base = segments.copy()
    base["customer_id"] = base["customer_id"].astype(str)
    keyed = {name: frame.assign(customer_id=frame["customer_id"].astype(str))
             for name, frame in (("scores", scores), ("churn", churn), ("revenue", revenue))}
    base = base.merge(keyed["churn"], on="customer_id", how="left").merge(keyed["revenue"], on="customer_id", how="left")
    base = base.merge(keyed["scores"][["customer_id", "value_at_risk", "predicted_clv"]].assign(scored=1),
                      on="customer_id", how="left")
    out = []
    for kind in [c for c in segments.columns if c != "customer_id"]:
        grouped = base.assign(segment=base[kind].astype("string").fillna("(missing)")).groupby("segment", sort=True)
        table = grouped.agg(customers=("scored", "sum"), observed=("observed", "sum"), churned=("churned", "sum"),
                            revenue=("recent_revenue", "sum"), value_at_risk=("value_at_risk", "sum"),
                            predicted_clv=("predicted_clv", "sum")).reset_index()
        table["churn_rate"] = np.where(table["observed"] > 0, table["churned"] / table["observed"].where(
            table["observed"] > 0, 1), np.nan)
        table.insert(0, "segment_kind", kind)
        out.append(table)
    columns = ["segment_kind", "segment", "customers", "churn_rate", "revenue", "value_at_risk", "predicted_clv"]
    if not out:
        return _empty({"segment_kind": "str", "segment": "str", "customers": "int64", "churn_rate": "float64",
                       "revenue": "float64", "value_at_risk": "float64", "predicted_clv": "float64"})
    table = pd.concat(out, ignore_index=True)
    table["customers"] = table["customers"].astype("int64")
    return table[columns].sort_values(["segment_kind", "value_at_risk", "segment"], ascending=[True, False, True],
                                      kind="stable").reset_index(drop=True)
