"""Row checks on times: a timestamp after the reference time (future_timestamp), activity on a day
before the customer's signup (before_signup), a subscription that ends before it starts
(end_before_start)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timezone

import ibis
import ibis.expr.datatypes as dt

from churnml.data.contract import CONTRACT
from churnml.data.validation.findings import CONFIG
from churnml.data.validation.lookup import SIGNUP
from churnml.data.validation.rows import RowCheck
from churnml.data.validation.schema import Plan


# YYYY-MM-DD, optionally a time and a UTC offset: the one written form of a date that no reader
# takes for another (01/07/2026 is 1 July to some and 7 January to others).
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?")


def parse_iso_datetime(text: str, what: str) -> datetime:
    """A date the user wrote (`what` names where, for the message), accepted only in ISO form:
    YYYY-MM-DD, optionally with a time (YYYY-MM-DD HH:MM:SS) and an offset."""
    text = str(text).strip()
    try:
        if _ISO.fullmatch(text):
            return datetime.fromisoformat(text)
    except ValueError:  # the right shape but no such day, e.g. 2026-13-01
        pass
    raise ValueError(
        f"{what}: '{text}' is not a date in the form YYYY-MM-DD (optionally followed by a time "
        "HH:MM:SS), e.g. 2026-07-01; other forms such as 01/07/2026 are ambiguous"
    )


def resolve_reference_time(reference_time) -> datetime:
    """"Now" for the future_timestamp check, as a naive UTC datetime (None: the wall clock)."""
    if reference_time is None:
        return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    if isinstance(reference_time, str):
        reference_time = parse_iso_datetime(reference_time, "data.reference_time")
    elif isinstance(reference_time, date) and not isinstance(reference_time, datetime):
        reference_time = datetime.combine(reference_time, time())
    elif hasattr(reference_time, "to_pydatetime"):  # pandas Timestamp
        reference_time = reference_time.to_pydatetime()
    if not isinstance(reference_time, datetime):
        raise ValueError(f"data.reference_time must be a date in the form YYYY-MM-DD, got {reference_time!r}")
    if reference_time.tzinfo is not None:
        reference_time = reference_time.astimezone(timezone.utc).replace(tzinfo=None)
    return reference_time


def future_timestamp_checks(plan: Plan, ref: datetime) -> list[RowCheck]:
    """future_timestamp: a value of any timestamp column after `ref`."""
    out = []
    ref_lit = ibis.literal(ref, type=dt.Timestamp())
    for name, _, tcol in plan.usable_of_kind("timestamp"):
        out.append(
            RowCheck(
                check="future_timestamp",
                column=name,
                condition=lambda w, tcol=tcol: w[tcol] > ref_lit,
                describe=f"with {name} after the reference time {ref.isoformat(sep=' ')}",
                hint=(
                    "Fix these dates in the file (a clock or time-zone error?); if the data really runs "
                    f"later, set reference_time in {CONFIG}; or set checks.future_timestamp to warn "
                    "or drop."
                ),
            )
        )
    return out


def before_signup_checks(plan: Plan, lookup: ibis.Table | None) -> list[RowCheck]:
    """before_signup: an activity row whose time falls on a day before its customer's signup_date
    (reads the wide table of `lookup.join_customers`)."""
    time_col = CONTRACT[plan.name].time_column
    if lookup is None or not plan.usable("customer_id") or not plan.usable(time_col):
        return []
    ttime = plan.tcol(time_col)
    return [
        RowCheck(
            check="before_signup",
            column=time_col,
            condition=lambda w: w[ttime].date() < w[SIGNUP].date(),
            describe=f"whose {time_col} is on a day before the customer's signup_date",
            hint=(
                f"Fix {plan.columns[time_col].source} on these rows or the customer's signup_date "
                "(shown as customers.signup_date); or set "
                f"checks.before_signup to warn (keep) or drop (remove) in {CONFIG}."
            ),
            needs_join=True,
            extra={"customers.signup_date": SIGNUP},
        )
    ]


def end_before_start_checks(plan: Plan) -> list[RowCheck]:
    """end_before_start: a subscription whose end_date is before its start_date."""
    if plan.name != "subscriptions" or not (plan.usable("start_date") and plan.usable("end_date")):
        return []
    tstart, tend = plan.tcol("start_date"), plan.tcol("end_date")
    return [
        RowCheck(
            check="end_before_start",
            column="end_date",
            condition=lambda w: w[tend] < w[tstart],
            describe="with end_date before start_date",
            hint=(
                f"Fix {plan.columns['start_date'].source} or {plan.columns['end_date'].source} on "
                "these rows (swapped columns?); or set checks.end_before_start to warn (keep them) "
                f"or drop (remove them) in {CONFIG}."
            ),
        )
    ]
