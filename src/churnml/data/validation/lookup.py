"""Activity rows joined to their customer: a lookup of the kept customers (one row per id, with
its signup date), which the unknown_customer and before_signup checks read."""

from __future__ import annotations

from typing import Callable

import ibis

from churnml.data.validation.schema import PRIVATE, Plan

KEY = f"{PRIVATE}key"  # the customer id
SIGNUP = f"{PRIVATE}signup"  # the customer's (earliest) signup date
KNOWN = f"{PRIVATE}known"  # True where the row's customer is in the lookup, null where not


def customer_lookup(plan: Plan, kept: ibis.Table) -> ibis.Table | None:
    """One row per kept customer: key, signup date; None when customers has no usable customer_id.

    `kept` is the customers table after its drops, as a typed (or wide) table of `plan`.
    """
    if not plan.usable("customer_id"):
        return None
    key = kept[plan.tcol("customer_id")]
    known = kept.filter(key.notnull())
    if plan.usable("signup_date"):
        lookup = known.group_by(**{KEY: key}).aggregate(**{SIGNUP: kept[plan.tcol("signup_date")].min()})
    else:
        # No usable signup_date (a finding already says why): before_signup has nothing to compare.
        # A null literal is a scalar, which has no min(), so it is added after the grouping.
        lookup = known.select(**{KEY: key}).distinct().mutate(**{SIGNUP: ibis.null("timestamp")})
    return lookup.mutate(**{KNOWN: ibis.literal(True)})


def join_customers(plan: Plan, lookup: ibis.Table | None) -> Callable[[ibis.Table], ibis.Table]:
    """The wide table of an activity table: each typed row with its customer's lookup columns."""

    def wide(typed: ibis.Table) -> ibis.Table:
        if lookup is None or not plan.usable("customer_id"):
            return typed
        return typed.left_join(lookup, typed[plan.tcol("customer_id")] == lookup[KEY])

    return wide
