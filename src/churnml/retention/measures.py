"""The measures a retention team runs on: churn rate per month, cohort retention, purchase habits.

Churn and retention follow the configured label definition, so the report counts churn exactly
as the model is trained to predict it: at each month start, the customers who are still customers
(a subscription covers the date, or they were active in the window before it) are observed, and
the churned are those the definition labels 1 once the label window has passed.

Row-level work is Ibis, run by the engine (DuckDB or Spark alike); only aggregates (per month
start, per cohort and month, per segment, or one row) come back as pandas. The functions also take
pandas frames, for small hand-made inputs.
"""

from __future__ import annotations

from datetime import datetime

import ibis
import numpy as np
import pandas as pd

from churnml.features.label_times import LabelSpec, candidates, cutoff_grid, history_start, label_rows

Rows = ibis.Table | pd.DataFrame


def as_table(rows: Rows) -> ibis.Table:
    """An engine table; a pandas frame becomes an in-memory table."""
    return ibis.memtable(rows) if isinstance(rows, pd.DataFrame) else rows


def left_join(left: ibis.Table, right: ibis.Table, key: str = "customer_id") -> ibis.Table:
    """Every row of `left` with the other columns of `right` (null where it has no match)."""
    joined = left.left_join(right, key)
    return joined.select(left, *[right[c] for c in right.columns if c != key])


def kept(table: ibis.Table) -> ibis.Table:
    """`table` computed once and kept by the engine (DuckDB: a temporary table; Spark: cached on
    the executors) for the queries that follow; `.release()` lets it go."""
    # Ibis's Spark backend caches without registering the in-memory tables the query reads (the
    # grid of cutoffs): registered here first, as executing the query would
    table._find_backend(use_default=True)._run_pre_execute_hooks(table)
    return table.cache()


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
OBSERVED_SCHEMA = ibis.schema({"customer_id": "string", "cutoff": "timestamp", "label": "int8",
                               "label_known": "boolean"})


def _empty(types: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in types.items()})


def observed_table(tables: dict[str, ibis.Table], spec: LabelSpec, cutoffs: list[datetime],
                   until: datetime) -> ibis.Table:
    """customer_id, cutoff, label, label_known of every customer still a customer at each cutoff
    (an engine table, nothing computed yet)."""
    if not cutoffs:
        # no rows, typed, on the data's own engine: an in-memory table would be computed (and
        # kept) on Ibis's default engine and could not be joined to the data's tables
        customers = tables["customers"]
        return customers.filter(ibis.literal(False)).select(
            **{name: ibis.null().cast(dtype).name(name) for name, dtype in OBSERVED_SCHEMA.items()})
    rows = candidates(tables["customers"], cutoffs)
    labelled = label_rows(tables, rows, spec, until, _definition(spec))
    return labelled.select("customer_id", "cutoff", "label", "label_known")


def observed_rows(tables: dict[str, ibis.Table], spec: LabelSpec, cutoffs: list[datetime],
                  until: datetime) -> pd.DataFrame:
    """`observed_table` as a pandas frame, sorted: for small data and for looking at the rows."""
    frame = observed_table(tables, spec, cutoffs, until).to_pandas().astype(OBSERVED_TYPES)
    return frame.sort_values(["cutoff", "customer_id"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- per month start


def month_counts(observed: Rows) -> pd.DataFrame:
    """Per month start: customers (observed), churned, complete (every label known), by cutoff.

    Definitions learn their outcome at different times (a subscription waits out its grace
    period), so a month with some labels known would count only the quick ones: only complete
    months are measured.
    """
    rows = as_table(observed)
    unknown = ibis.ifelse(rows.label_known, 0, 1)
    counts = rows.group_by("cutoff").aggregate(customers=rows.count(), churned=rows.label.cast("int64").sum(),
                                               unknown=unknown.sum()).to_pandas()
    counts = counts.astype({"cutoff": "datetime64[us]", "customers": "int64", "churned": "int64"})
    counts["complete"] = counts.pop("unknown").astype("int64") == 0
    return counts.sort_values("cutoff", kind="stable").reset_index(drop=True)


def churn_per_month(counts: pd.DataFrame) -> pd.DataFrame:
    """month, customers, churned, churn_rate of the complete months of `month_counts`."""
    table = counts.loc[counts["complete"], ["cutoff", "customers", "churned"]].reset_index(drop=True)
    table["churn_rate"] = (table["churned"] / table["customers"]).astype("float64")
    return table.rename(columns={"cutoff": "month"})


def monthly_churn(observed: Rows) -> pd.DataFrame:
    """Per month start whose label windows have all passed: customers, churned, churn_rate."""
    return churn_per_month(month_counts(observed))


def recent_cutoffs(counts: pd.DataFrame, months: int) -> list[datetime]:
    """The last `months` complete month starts, or as many as the data hold when there are fewer
    (the report's headline says how many)."""
    complete = counts.loc[counts["complete"], "cutoff"].sort_values()
    return [pd.Timestamp(c).to_pydatetime() for c in complete.tolist()[-months:]]


# ---------------------------------------------------------------- cohorts


def _month_number(when: ibis.Value) -> ibis.IntegerValue:
    # a pandas monthly Period's ordinal (months since January 1970): plain integers on every engine
    return (when.year().cast("int64") - 1970) * 12 + when.month().cast("int64") - 1


def cohort_retention(customers: Rows, observed: Rows) -> pd.DataFrame:
    """Share of each signup-month cohort still a customer k months on (k = 1, 2, ...).

    Column k is the month start k months after the cohort's signup month; a customer counts at
    it when the label definition observes them there. Cells outside the observed month starts
    (before every source records, or past the end of the data) are empty.
    `customers` holds customer_id and signup_date; the index is the cohort ('YYYY-MM').
    """
    customers, observed = as_table(customers), as_table(observed)
    signed = customers.filter(customers.signup_date.notnull())
    cohorts = signed.select("customer_id", cohort=_month_number(signed.signup_date))
    sizes = cohorts.group_by("cohort").aggregate(customers=cohorts.count()).to_pandas()
    seen = observed.select("customer_id", "cutoff").join(cohorts, "customer_id")
    cells = seen.group_by("cohort", "cutoff").aggregate(seen=seen.count()).to_pandas()
    return cohort_matrix(sizes, cells)


def cohort_matrix(sizes: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """The matrix of `cohort_retention` from cohort sizes (cohort, customers) and the customers
    observed per cohort and month start (cohort, cutoff, seen); cohorts are Period ordinals."""
    size = pd.Series(sizes["customers"].to_numpy("int64"),
                     index=pd.PeriodIndex.from_ordinals(sizes["cohort"].to_numpy("int64"), freq="M")).sort_index()
    cutoffs = pd.DatetimeIndex(cells["cutoff"])
    first_cutoff = cutoffs.min() if len(cells) else None
    last_cutoff = cutoffs.max() if len(cells) else None
    k = (cutoffs.year * 12 + cutoffs.month - 1 - 1970 * 12).to_numpy("int64") - cells["cohort"].to_numpy("int64")
    counts = dict(zip(zip(cells["cohort"].astype("int64"), k), cells["seen"].astype("int64")))
    horizon = 0 if last_cutoff is None or size.empty else max((last_cutoff.to_period("M") - size.index.min()).n, 0)
    matrix = pd.DataFrame(index=size.index, columns=range(1, horizon + 1), dtype="float64")
    for period, customers in size.items():
        for months in matrix.columns:
            when = period.start_time + pd.DateOffset(months=months)
            if last_cutoff is None or not first_cutoff <= when <= last_cutoff:
                continue  # before the data starts or after it ends: left empty, not zero
            matrix.at[period, months] = counts.get((period.ordinal, months), 0) / customers
    matrix.index = matrix.index.astype(str)
    matrix.index.name = "cohort"
    matrix.insert(0, "customers", size.to_numpy())
    return matrix


# ---------------------------------------------------------------- purchases


def purchase_measures(orders: Rows | None, months: float) -> dict[str, float | int | None]:
    """Repeat purchase rate, average order value and purchase frequency from the orders.

    repeat_purchase_rate: share of buyers with two orders or more. average_order_value: revenue
    per order. purchase_frequency: orders per buyer over the period, and per buyer per month.
    An order is an order_id when the table has one (lines of one order count once), else a row.
    """
    empty = {"buyers": 0, "orders": 0, "revenue": 0.0, "repeat_purchase_rate": None,
             "average_order_value": None, "purchase_frequency": None, "purchases_per_buyer_month": None}
    if orders is None:
        return empty
    lines = as_table(orders)
    amount = lines.amount.cast("float64") if "amount" in lines.columns else ibis.null("float64")
    shape = {"rows": lines.count()}
    if "order_id" in lines.columns:
        shape["missing_ids"] = ibis.ifelse(lines.order_id.isnull(), 1, 0).sum()
    shape = lines.aggregate(**shape).to_pandas().iloc[0]
    if int(shape["rows"]) == 0:
        return empty
    lines = lines.mutate(amount=amount)
    by_id = "missing_ids" in shape and int(shape["missing_ids"]) == 0
    per_order = (lines.group_by("customer_id", "order_id").aggregate(amount=lines.amount.sum())
                 if by_id else lines.select("customer_id", "amount"))
    bought = per_order.filter(per_order.customer_id.notnull())
    per_buyer = bought.group_by("customer_id").aggregate(orders=bought.count())
    totals = per_order.aggregate(orders=per_order.count(), revenue=per_order.amount.sum()).cross_join(
        per_buyer.aggregate(buyers=per_buyer.count(), repeat=ibis.ifelse(per_buyer.orders >= 2, 1, 0).sum())
    ).to_pandas().iloc[0]
    buyers, n_orders = int(totals["buyers"]), int(totals["orders"])
    revenue = 0.0 if pd.isna(totals["revenue"]) else float(totals["revenue"])
    frequency = n_orders / buyers
    return {
        "buyers": buyers,
        "orders": n_orders,
        "revenue": revenue,
        "repeat_purchase_rate": int(totals["repeat"]) / buyers,
        "average_order_value": revenue / n_orders,
        "purchase_frequency": frequency,
        "purchases_per_buyer_month": frequency / months if months > 0 else None,
    }


# ---------------------------------------------------------------- segments


RECENT_CHURN_TYPES = {"customer_id": "str", "observed": "int64", "churned": "int64"}


def recent_churn_table(observed: Rows, cutoffs: list[datetime]) -> ibis.Table:
    """customer_id, observed (rows), churned over the month starts `cutoffs` (engine table)."""
    rows = as_table(observed)
    if not cutoffs:
        return ibis.memtable(_empty(RECENT_CHURN_TYPES))
    rows = rows.filter(rows.cutoff.isin([ibis.literal(c, type="timestamp") for c in cutoffs]))
    return rows.group_by("customer_id").aggregate(observed=rows.count(), churned=rows.label.cast("int64").sum())


def recent_churn_by_customer(observed: Rows, months: int) -> pd.DataFrame:
    """customer_id, observed (rows), churned over the last `months` complete month starts, or
    over as many as the data hold when there are fewer (the report's headline says how many)."""
    rows = as_table(observed)
    frame = recent_churn_table(rows, recent_cutoffs(month_counts(rows), months)).to_pandas()
    return frame.astype(RECENT_CHURN_TYPES).sort_values("customer_id", kind="stable").reset_index(drop=True)


SEGMENT_TYPES = {"segment_kind": "str", "segment": "str", "customers": "int64", "churn_rate": "float64",
                 "revenue": "float64", "value_at_risk": "float64", "predicted_clv": "float64"}


def _segment_label(column: ibis.Value) -> ibis.StringValue:
    # as pandas writes values as text ("True", not SQL's "true"), so segments read the same everywhere
    text = ibis.ifelse(column, "True", "False") if column.type().is_boolean() else column.cast("string")
    return text.fill_null("(missing)")


def segment_table(segments: Rows, scores: Rows, churn: Rows, revenue: Rows) -> pd.DataFrame:
    """segment_kind, segment, customers, churn_rate, revenue, value_at_risk, predicted_clv.

    `segments` has customer_id and one column per segment kind; `scores` the scored customers
    (customer_id, value_at_risk, predicted_clv); `churn` from recent_churn_table;
    `revenue` customer_id and recent_revenue. customers counts the scored ones; churn_rate is
    realised (churned rows over observed rows) over the recent months; revenue is that of the
    recent months, of every customer in the segment.
    """
    base = as_table(segments)
    kinds = [c for c in base.columns if c != "customer_id"]
    if not kinds:
        return _empty(SEGMENT_TYPES)
    scores, churn, revenue = as_table(scores), as_table(churn), as_table(revenue)
    # explicit types: an empty pandas frame has no column types to go by
    base = base.mutate(customer_id=base.customer_id.cast("string"))
    base = left_join(base, churn.select(customer_id=churn.customer_id.cast("string"),
                                        observed=churn.observed.cast("int64"), churned=churn.churned.cast("int64")))
    base = left_join(base, revenue.select(customer_id=revenue.customer_id.cast("string"),
                                          recent_revenue=revenue.recent_revenue.cast("float64")))
    base = left_join(base, scores.select(customer_id=scores.customer_id.cast("string"),
                                         value_at_risk=scores.value_at_risk.cast("float64"),
                                         predicted_clv=scores.predicted_clv.cast("float64"),
                                         scored=ibis.literal(1, type="int64")))
    # one row per customer and kind: every kind counted in one pass over the customers
    labelled = base.mutate(**{kind: _segment_label(base[kind]) for kind in kinds})
    rows = labelled.pivot_longer(kinds, names_to="segment_kind", values_to="segment")
    table = rows.group_by("segment_kind", "segment").aggregate(
        customers=rows.scored.sum().fill_null(0), observed=rows.observed.sum().fill_null(0),
        churned=rows.churned.sum().fill_null(0), revenue=rows.recent_revenue.sum().fill_null(0.0),
        value_at_risk=rows.value_at_risk.sum().fill_null(0.0), predicted_clv=rows.predicted_clv.sum().fill_null(0.0),
    ).to_pandas()
    # sums of floats come in whatever order the engine's threads or partitions finish: rounded far
    # below a cent, so that reruns and engines give the same bytes
    table[["revenue", "value_at_risk", "predicted_clv"]] = table[["revenue", "value_at_risk", "predicted_clv"]].astype(
        "float64").round(6)
    observed = table["observed"].astype("float64")
    table["churn_rate"] = np.where(observed > 0, table["churned"] / observed.where(observed > 0, 1), np.nan)
    table = table[list(SEGMENT_TYPES)].astype(SEGMENT_TYPES)
    return table.sort_values(["segment_kind", "value_at_risk", "segment"], ascending=[True, False, True],
                             kind="stable").reset_index(drop=True)
