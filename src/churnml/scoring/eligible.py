"""Who is scored at a date, and everyone who is not, counted by reason.

Who is scored is a setting (`population`):
- active: the customers the model would have been trained on at that date (signed up before it
  and still a customer at it by the label definition);
- all (the default): also non-contractual customers who have lapsed (no activity in the active
  window) but were active within `lapsed_within_days`: the ones a win-back campaign wants. The
  model never trained on such rows, so their probability is an extrapolation; `status` marks them.
Contractual customers whose subscriptions have all ended have churned and are never scored.
Everyone left out is counted in the summary by reason, never silently dropped.

The rows stay an engine table (`eligible_table`), so a base too big for one machine is never
collected; only the counts come back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ibis
import pandas as pd

from churnml.features.label_times import (LabelSpec, activity_times, candidates, contractual_rows, label_rows)

POPULATIONS = ("all", "active")


def eligible_table(
    tables: dict[str, ibis.Table],
    as_of: datetime,
    spec: LabelSpec,
    population: str = "all",
    lapsed_within_days: int | None = 365,
) -> tuple[ibis.Table, dict]:
    """(customer_id, cutoff, status) of everyone scored at `as_of`, as an engine table, and counts
    of who was not, by reason.

    status is active (observed by the label definition) or lapsed (a non-contractual customer
    past the active window whose last activity, or signup, is within `lapsed_within_days`; None:
    any time). Lapsed ones are scored only when `population` is all.
    """
    if population not in POPULATIONS:
        raise ValueError(f"score.population must be one of {POPULATIONS}, got '{population}'")
    definition = spec.fallback if spec.definition == "custom" else spec.definition
    rows = candidates(tables["customers"], [as_of])
    observed = label_rows(tables, rows, spec, as_of, definition).select("customer_id", observed=ibis.literal(True))
    tagged = rows.left_join(observed, "customer_id").select(rows, observed=observed.observed.fill_null(False))
    tagged = _with_lapse(tables, tagged, as_of, spec, definition, lapsed_within_days)
    lapsed = ~tagged.observed & ~tagged.contractual & tagged.recent
    # every count in one pass: the label rules are the costly part, and each query runs them anew
    tally = tagged.aggregate(
        signed_up=tagged.count(),
        active=tagged.observed.cast("int64").sum(),
        contractual=(~tagged.observed & tagged.contractual).cast("int64").sum(),
        too_long=(~tagged.observed & ~tagged.contractual & ~tagged.recent).cast("int64").sum(),
        lapsed=lapsed.cast("int64").sum(),
    ).to_pandas().fillna(0).iloc[0]
    total = int(tables["customers"].count().execute())
    signed_up, active, lapsed_count = int(tally["signed_up"]), int(tally["active"]), int(tally["lapsed"])
    scored_lapsed = lapsed_count if population == "all" else 0
    reasons = {
        "not_yet_signed_up": total - signed_up,
        "no_active_subscription": int(tally["contractual"]),
        "lapsed_too_long": int(tally["too_long"]),
        "lapsed": 0 if population == "all" else lapsed_count,
    }
    keep = tagged.observed | lapsed if population == "all" else tagged.observed
    table = tagged.filter(keep).select(
        "customer_id", "cutoff", status=tagged.observed.ifelse(ibis.literal("active"), ibis.literal("lapsed")))
    counts = {
        "customers": total,
        "scored": active + scored_lapsed,
        "scored_active": active,
        "scored_lapsed": scored_lapsed,
        "not_scored": reasons,
        # the two flat counts of earlier versions, kept for dashboards that read them
        "not_yet_signed_up": reasons["not_yet_signed_up"],
        "already_churned": signed_up - active - scored_lapsed,
    }
    return table, counts


def eligible_customers(tables: dict[str, ibis.Table], as_of: datetime, spec: LabelSpec,
                       **options: Any) -> tuple[pd.DataFrame, dict]:
    """`eligible_table` (its options: population, lapsed_within_days) collected, sorted by
    customer: for scoring a base chunk by chunk in process."""
    table, counts = eligible_table(tables, as_of, spec, **options)
    frame = table.to_pandas()
    frame = pd.DataFrame({
        "customer_id": frame["customer_id"].astype("string"),
        "cutoff": pd.to_datetime(frame["cutoff"]).astype("datetime64[us]"),
        "status": frame["status"].astype("string"),
    }).sort_values("customer_id", kind="stable").reset_index(drop=True)
    return frame, counts


def _with_lapse(tables: dict[str, ibis.Table], rows: ibis.Table, as_of: datetime, spec: LabelSpec,
                definition: str, lapsed_within_days: int | None) -> ibis.Table:
    """`rows` (signed-up customers at `as_of`) with contractual and recent, which decide what
    became of those the label definition does not observe.

    contractual: the subscription rule applies to them (so they have churned); recent: their last
    activity, or their signup, lies within `lapsed_within_days` of `as_of`.
    """
    if definition == "subscription":
        contractual = ibis.literal(True)
    elif definition == "hybrid" and "subscriptions" in tables:
        # the same split as label_rows: a subscription started before the date makes a subscriber
        rows = contractual_rows(rows, tables["subscriptions"])
        contractual = rows.contractual
    else:
        contractual = ibis.literal(False)
    rows = rows.mutate(contractual=contractual)
    if lapsed_within_days is None:
        recent = ibis.literal(True)
    else:
        since = ibis.literal(as_of) - ibis.interval(days=int(lapsed_within_days))
        activity = activity_times(tables, spec)
        if activity is not None:
            before = activity.filter(activity.ts < ibis.literal(as_of))
            last = before.group_by("customer_id").aggregate(last_ts=before.ts.max())
            rows = rows.left_join(last, "customer_id").select(rows, last.last_ts)
            recent = (rows.last_ts >= since).fill_null(False) | (rows.signup_date >= since)
        else:
            recent = rows.signup_date >= since
    return rows.select("customer_id", "cutoff", "observed", contractual=rows.contractual.cast("boolean"),
                       recent=recent)
