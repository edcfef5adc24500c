"""Row checks on the keys: a null customer id or key time (null_key), a customer id repeated in
customers (duplicate_customer), an activity row whose customer is not in customers
(unknown_customer)."""

from __future__ import annotations

from typing import Callable

import ibis

from churnml.data.validation.findings import CONFIG
from churnml.data.validation.lookup import KNOWN
from churnml.data.validation.rows import RowCheck
from churnml.data.validation.schema import PRIVATE, Plan

# Columns that must never be null, besides customer_id (checked in every table).
_KEY_TIME_COLUMNS = {
    "customers": "signup_date",
    "events": "timestamp",
    "orders": "timestamp",
    "feedback": "timestamp",
    "subscriptions": "start_date",
}
_DUPKEY = f"{PRIVATE}dupkey"
_DUPN = f"{PRIVATE}dupn"  # how many rows of customers have the row's customer_id


def null_key_checks(plan: Plan) -> list[RowCheck]:
    """null_key: no customer_id, or no key time (signup_date, timestamp or start_date)."""
    out = []
    for name in ("customer_id", _KEY_TIME_COLUMNS[plan.name]):
        col = plan.columns.get(name)
        if col is None or not col.usable:
            continue
        out.append(
            RowCheck(
                check="null_key",
                column=name,
                condition=lambda w, n=name: w[f"{PRIVATE}missing_{n}"],
                describe=f"with no {name} (null or blank)",
                hint=(
                    f"Fill in {col.source} on these rows in the {plan.name} file; or set "
                    f"checks.null_key: drop in {CONFIG} to remove them."
                ),
            )
        )
    return out


def duplicate_customer_checks(plan: Plan) -> list[RowCheck]:
    """duplicate_customer: every row of customers whose customer_id appears more than once
    (reads the wide table of `count_duplicates`)."""
    if not plan.usable("customer_id"):
        return []
    return [
        RowCheck(
            check="duplicate_customer",
            column="customer_id",
            condition=lambda w: w[_DUPN] > 1,
            describe="whose customer_id appears more than once in customers",
            hint=(
                "Keep one row per customer in the customers file; or set "
                f"checks.duplicate_customer: drop in {CONFIG} to remove every row of a repeated id "
                "(warn keeps them all, and later joins would count such customers twice)."
            ),
            needs_join=True,
            extra={"times_seen": _DUPN},
        )
    ]


def count_duplicates(plan: Plan) -> Callable[[ibis.Table], ibis.Table]:
    """The wide table of customers: each typed row with how many rows share its customer_id."""

    def wide(typed: ibis.Table) -> ibis.Table:
        if not plan.usable("customer_id"):
            return typed
        key = typed[plan.tcol("customer_id")]
        counts = typed.filter(key.notnull()).group_by(**{_DUPKEY: key}).aggregate(**{_DUPN: ibis._.count()})
        return typed.left_join(counts, key == counts[_DUPKEY])

    return wide


def unknown_customer_checks(plan: Plan, lookup: ibis.Table | None, customers_dropped: bool) -> list[RowCheck]:
    """unknown_customer: an activity row whose customer_id is not among the kept customers
    (reads the wide table of `lookup.join_customers`)."""
    if lookup is None or not plan.usable("customer_id"):
        return []
    tid = plan.tcol("customer_id")
    dropped_note = (
        " Customers removed by 'drop' checks on customers count as unknown here." if customers_dropped else ""
    )
    return [
        RowCheck(
            check="unknown_customer",
            column="customer_id",
            condition=lambda w: w[tid].notnull() & w[KNOWN].isnull(),
            describe="whose customer_id is not in table 'customers'",
            hint=(
                "Add these customers to the customers file or fix the ids (ids are compared as "
                f"text, so 42 and '042' differ); or set checks.unknown_customer: drop in {CONFIG}."
                + dropped_note
            ),
            needs_join=True,
        )
    ]
