"""Label times: `observations(customer_id, cutoff, label, split)`.

A row says: at `cutoff`, this customer was a customer, and within the label window that follows
they did (label 1) or did not (label 0) churn. Features for a row may only use data strictly
before its cutoff; the label looks at the window [cutoff + lead, cutoff + lead + horizon).

Two definitions, and their per-customer mix:
- subscription (contractual): observed while a subscription spell covers the cutoff; churn when
  the spell ends inside the window. Spells join subscriptions that restart within `grace_days`,
  so a lapse that is quickly fixed is no churn.
- inactivity (non-contractual): observed while the customer was active in the `active_window`
  days before the cutoff (or signed up within it); churn when no activity falls in the window.
- hybrid: subscription for customers who have a subscription started before the cutoff,
  inactivity for everyone else.
A label is known only once its window (plus the grace period, for subscriptions) is fully
observed; later cutoffs are left unlabelled, which is what scoring is for.

Everything here is portable Ibis, so it runs out of core on DuckDB and, unchanged, on Spark.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import ibis
import pandas as pd

# the split lives in its own module; these names stay importable from here for existing callers
from churnml.features.splits import SplitSpec, split_by_cutoff, split_spec  # noqa: F401

log = logging.getLogger(__name__)

Definition = Literal["subscription", "inactivity", "hybrid", "custom"]
EVENTLIKE_TABLES = ("events", "orders", "feedback")


@dataclass(frozen=True)
class LabelSpec:
    definition: Definition = "hybrid"
    lead_days: int = 0
    horizon_days: int = 30
    grace_days: int = 7
    activity_tables: tuple[str, ...] = ("events", "orders")
    event_types: tuple[str, ...] | None = None
    active_window_days: int | None = None  # None: horizon_days
    fallback: Literal["subscription", "inactivity", "hybrid"] = "inactivity"

    @property
    def active_window(self) -> int:
        return self.active_window_days or self.horizon_days


def label_spec(labels: dict[str, Any]) -> LabelSpec:
    """The `labels` config section as a LabelSpec."""
    inactivity = labels.get("inactivity") or {}
    custom = labels.get("custom") or {}
    event_types = inactivity.get("event_types")
    return LabelSpec(
        definition=labels["definition"],
        lead_days=int(labels.get("lead_days", 0)),
        horizon_days=int(labels["horizon_days"]),
        grace_days=int(labels.get("grace_days", 0)),
        activity_tables=tuple(inactivity.get("tables") or ("events", "orders")),
        event_types=tuple(event_types) if event_types else None,
        active_window_days=inactivity.get("active_window_days"),
        fallback=custom.get("fallback") or "inactivity",
    )


@dataclass
class ObservationSummary:
    """What became of every candidate row: nothing is dropped without being counted here."""

    observed_until: str
    cutoffs: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    by_split: dict[str, dict[str, float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- time frame


def observed_until(tables: dict[str, ibis.Table]) -> datetime:
    """Midnight after the last day that has any activity: the data is complete before it."""
    latest: list[datetime] = []
    for name, column in (("events", "timestamp"), ("orders", "timestamp"), ("feedback", "timestamp"),
                         ("subscriptions", "start_date"), ("subscriptions", "end_date")):
        if name in tables and column in tables[name].columns:
            value = tables[name][column].max().execute()
            if value is not None and not pd.isna(value):
                latest.append(pd.Timestamp(value).to_pydatetime())
    if not latest:
        raise ValueError("no activity rows at all: cannot tell when the data ends")
    return pd.Timestamp(max(latest)).normalize().to_pydatetime() + timedelta(days=1)


def history_start(tables: dict[str, ibis.Table]) -> datetime:
    """Midnight of the first day on which every activity table is recording.

    Sources often start at different times (a contract history reaching back years, an event
    log switched on last year); before all have started, zeros would mean "not recorded", not
    "did nothing", so no cutoff should be placed there.
    """
    earliest = []
    for name, column in (("events", "timestamp"), ("orders", "timestamp"), ("feedback", "timestamp"),
                         ("subscriptions", "start_date")):
        if name in tables:
            value = tables[name][column].min().execute()
            if value is not None and not pd.isna(value):
                earliest.append(pd.Timestamp(value))
    if not earliest:
        raise ValueError("no activity rows at all: cannot tell when the data starts")
    return max(earliest).normalize().to_pydatetime()


def cutoff_grid(start: datetime, end: datetime, freq: str = "MS") -> list[datetime]:
    """Regular cutoffs from `start` to `end` inclusive, at midnight."""
    grid = pd.date_range(pd.Timestamp(start).normalize(), pd.Timestamp(end), freq=freq)
    return [ts.to_pydatetime() for ts in grid]


# ---------------------------------------------------------------- building blocks


def candidates(customers: ibis.Table, cutoffs: list[datetime]) -> ibis.Table:
    """Every (customer, cutoff) with the customer signed up before the cutoff."""
    grid = ibis.memtable(pd.DataFrame({"cutoff": pd.to_datetime(cutoffs).astype("datetime64[us]")}))
    rows = customers.select("customer_id", "signup_date").cross_join(grid)
    return rows.filter(rows.signup_date < rows.cutoff)


def subscription_spells(subscriptions: ibis.Table, grace_days: int) -> ibis.Table:
    """Merge subscriptions into spells: a restart within `grace_days` of an end continues a spell.

    Returns customer_id, spell_start, spell_end (null while the spell is open).
    """
    open_end = ibis.timestamp("9999-12-31 00:00:00")
    subs = subscriptions.mutate(end_filled=subscriptions.end_date.fill_null(open_end))
    by_customer = ibis.window(
        group_by="customer_id", order_by=["start_date", "end_filled"], preceding=None, following=0
    )
    # the latest end among earlier rows; one row back is not enough when spells nest
    earlier = subs.mutate(running_end=subs.end_filled.max().over(by_customer))
    earlier = earlier.mutate(
        prev_end=earlier.running_end.lag().over(
            ibis.window(group_by="customer_id", order_by=["start_date", "end_filled"])
        )
    )
    gap_start = earlier.prev_end.isnull() | (
        earlier.start_date > earlier.prev_end + ibis.interval(days=grace_days)
    )
    flagged = earlier.mutate(new_spell=gap_start.cast("int64"))
    flagged = flagged.mutate(
        spell=flagged.new_spell.sum().over(
            ibis.window(group_by="customer_id", order_by=["start_date", "end_filled"], preceding=None, following=0)
        )
    )
    spells = flagged.group_by(["customer_id", "spell"]).aggregate(
        spell_start=flagged.start_date.min(), spell_end_filled=flagged.end_filled.max()
    )
    return spells.select(
        "customer_id",
        "spell_start",
        spell_end=ibis.ifelse(spells.spell_end_filled == open_end, ibis.null("timestamp"), spells.spell_end_filled),
    )


def activity_times(tables: dict[str, ibis.Table], spec: LabelSpec) -> ibis.Table | None:
    """(customer_id, ts) of every row that counts as activity for the inactivity definition."""
    parts = []
    for name in spec.activity_tables:
        if name not in EVENTLIKE_TABLES:
            raise ValueError(f"labels.inactivity.tables: '{name}' is not an activity table {EVENTLIKE_TABLES}")
        if name not in tables:
            continue
        table = tables[name]
        if name == "events" and spec.event_types:
            table = table.filter(table.event_type.isin(list(spec.event_types)))
        parts.append(table.select("customer_id", ts=table.timestamp))
    if not parts:
        return None
    return ibis.union(*parts, distinct=False)


def subscription_status(rows: ibis.Table, subscriptions: ibis.Table, spec: LabelSpec, until: datetime) -> ibis.Table:
    """Observed rows under the subscription definition, with label and label_known.

    A row is observed when a subscription runs at the cutoff. The spells (restarts within
    `spec.grace_days` joined) give the label, but not who is observed: a customer whose
    subscription ended just before the cutoff and restarted just after it would be observed only
    because of a restart nobody could know of at the cutoff. Those who did not restart are not
    observed, so that row would teach the model that a lapsed subscription is safe; scoring at
    the cutoff does not see the restart and leaves that customer out.
    """
    spells = subscription_spells(subscriptions, spec.grace_days)
    running = rows.join(subscriptions, "customer_id").filter(
        lambda t: (t.start_date < t.cutoff) & (t.end_date.isnull() | (t.end_date >= t.cutoff))
    ).select("customer_id", "cutoff").distinct()
    joined = rows.semi_join(running, ["customer_id", "cutoff"]).join(spells, "customer_id")
    covering = joined.filter(
        (joined.spell_start < joined.cutoff) & (joined.spell_end.isnull() | (joined.spell_end >= joined.cutoff))
    )
    window_start = covering.cutoff + ibis.interval(days=spec.lead_days)
    window_end = window_start + ibis.interval(days=spec.horizon_days)
    ended = covering.spell_end.notnull()
    return covering.select(
        "customer_id",
        "cutoff",
        label=ibis.ifelse(ended & (covering.spell_end >= window_start) & (covering.spell_end < window_end), 1, 0),
        churned_in_lead=ended & (covering.spell_end < window_start),
        label_known_at=window_end + ibis.interval(days=spec.grace_days),
        definition=ibis.literal("subscription"),
    ).mutate(label_known=lambda t: t.label_known_at <= ibis.literal(until))


def inactivity_status(rows: ibis.Table, activity: ibis.Table, spec: LabelSpec, until: datetime) -> ibis.Table:
    """Observed rows under the inactivity definition, with label and label_known."""
    # Only activity near the cutoffs can decide anything: the last one before a cutoff matters
    # only inside the active window, the next one only from the window's start. Filtering first
    # keeps the running max and min from sorting the whole history (at scoring time, one cutoff at the end
    # of the data, almost all of it is dropped); the results are the same.
    earliest_cutoff = rows.cutoff.min().as_scalar()
    latest_cutoff = rows.cutoff.max().as_scalar()
    recent = activity.filter(
        activity.ts >= earliest_cutoff - ibis.interval(days=spec.active_window), activity.ts < latest_cutoff
    )
    later = activity.filter(activity.ts >= earliest_cutoff + ibis.interval(days=spec.lead_days))
    # the last activity strictly before the cutoff decides whether they are still a customer
    last = nearest_activity(rows.select("customer_id", "signup_date", "cutoff"), "cutoff", recent, "last_ts",
                            before=True)
    since = last.cutoff - ibis.interval(days=spec.active_window)
    active = last.filter((last.last_ts >= since) | (last.signup_date >= since))
    window_start = active.cutoff + ibis.interval(days=spec.lead_days)
    active = active.select("customer_id", "cutoff", window_start=window_start)
    # the first activity at or after the window opens decides the label
    nxt = nearest_activity(active, "window_start", later, "next_ts", before=False)
    window_end = nxt.window_start + ibis.interval(days=spec.horizon_days)
    return nxt.select(
        "customer_id",
        "cutoff",
        label=ibis.ifelse(nxt.next_ts.isnull() | (nxt.next_ts >= window_end), 1, 0),
        churned_in_lead=ibis.literal(False),
        label_known_at=window_end,
        definition=ibis.literal("inactivity"),
    ).mutate(label_known=lambda t: t.label_known_at <= ibis.literal(until))


def nearest_activity(rows: ibis.Table, at: str, activity: ibis.Table, name: str, *, before: bool) -> ibis.Table:
    """`rows` with column `name`: per row, the time of the customer's latest activity strictly
    before `rows[at]` (before=True), or of the earliest at or after it; null when there is none.

    An ASOF join, written as a union and a running max (min) per customer, because Spark SQL has
    no ASOF join: rows and activity are sorted together by time, a row sorting before activity
    at the same instant when the match must be strictly earlier and after it otherwise.
    """
    schema = rows.schema()
    stamp = "timestamp"
    marks = rows.mutate(_t=rows[at].cast(stamp), _row=ibis.literal(1), _ts=ibis.null(stamp))
    times = activity.select(
        customer_id=activity.customer_id.cast(schema["customer_id"]),
        **{c: ibis.null(schema[c]) for c in rows.columns if c != "customer_id"},
        _t=activity.ts.cast(stamp), _row=ibis.literal(0), _ts=activity.ts.cast(stamp),
    )
    both = ibis.union(marks, times.select(*marks.columns), distinct=False)
    if before:  # at one instant: the row first, so an activity then is not "before" it
        order, running = [both._t, ibis.desc(both._row)], both._ts.max()
    else:       # at one instant: the activity first, so it counts as "at or after"
        order, running = [ibis.desc(both._t), both._row], both._ts.min()
    found = both.mutate(**{name: running.over(ibis.cumulative_window(group_by="customer_id", order_by=order))})
    return found.filter(found._row == 1).drop("_t", "_row", "_ts")


def label_rows(
    tables: dict[str, ibis.Table], rows: ibis.Table, spec: LabelSpec, until: datetime, definition: str
) -> ibis.Table:
    """Apply one definition (subscription, inactivity or hybrid) to candidate rows."""
    has_subs = "subscriptions" in tables
    activity = activity_times(tables, spec)
    if definition == "subscription":
        if not has_subs:
            raise ValueError("labels.definition is 'subscription' but there is no subscriptions table")
        return subscription_status(rows, tables["subscriptions"], spec, until)
    if definition == "inactivity":
        if activity is None:
            raise ValueError(
                f"labels.definition is 'inactivity' but none of labels.inactivity.tables "
                f"{list(spec.activity_tables)} is present"
            )
        return inactivity_status(rows, activity, spec, until)
    if definition != "hybrid":
        raise ValueError(f"unknown label definition '{definition}'")
    if not has_subs:
        return label_rows(tables, rows, spec, until, "inactivity")
    subs = tables["subscriptions"]
    tagged = contractual_rows(rows, subs)
    sub_rows = tagged.filter(tagged.contractual).select("customer_id", "signup_date", "cutoff")
    other_rows = tagged.filter(~tagged.contractual).select("customer_id", "signup_date", "cutoff")
    parts = [subscription_status(sub_rows, subs, spec, until)]
    if activity is not None:
        parts.append(inactivity_status(other_rows, activity, spec, until))
    return ibis.union(*parts, distinct=False)


def contractual_rows(rows: ibis.Table, subscriptions: ibis.Table) -> ibis.Table:
    """`rows` with `contractual`: the customer had a subscription start before the cutoff (hybrid)."""
    first = subscriptions.group_by("customer_id").aggregate(first_start=subscriptions.start_date.min())
    tagged = rows.left_join(first, "customer_id").select(rows, first.first_start)
    return tagged.mutate(contractual=tagged.first_start.notnull() & (tagged.first_start < tagged.cutoff))


# ---------------------------------------------------------------- the stage


def build_observations(
    tables: dict[str, ibis.Table],
    spec: LabelSpec,
    split: SplitSpec,
    *,
    freq: str = "MS",
    start: datetime | None = None,
    end: datetime | None = None,
    min_history_days: int = 60,
    custom: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, ObservationSummary]:
    """The label-times table and a summary of what happened to every candidate row.

    With `custom` (customer_id, cutoff[, label]) the rows are the user's, cutoffs may differ per
    customer, and rows without a label are labelled by `spec.fallback`.
    """
    until = observed_until(tables)
    first = history_start(tables)
    customers = tables["customers"]
    if custom is not None:
        rows, user_labels, floored = _custom_rows(customers, custom)
        cutoffs = sorted(user_labels["cutoff"].unique())
        labelled = label_rows(tables, rows, spec, until, spec.fallback).to_pandas()
        frame = _apply_user_labels(labelled, user_labels, spec)
        counts = {"candidate_rows": int(len(custom)), "custom_rows_given": int(len(custom)),
                  "custom_cutoffs_moved_to_midnight": floored,
                  "custom_rows_not_labelled": int(len(custom) - len(frame))}
        early = [c for c in cutoffs if c < first]
        warnings = [f"label times: {len(early)} cutoff(s) before the first row of data ({first:%Y-%m-%d}, the "
                    f"first day every activity table records), e.g. {_days(early)}: features there see no "
                    f"history"] if early else []
    else:
        grid_start = start or (first + timedelta(days=min_history_days))
        grid_end = end or until
        cutoffs = cutoff_grid(grid_start, grid_end, freq)
        if not cutoffs:
            raise ValueError(f"no cutoffs between {grid_start:%Y-%m-%d} and {grid_end:%Y-%m-%d} at freq {freq}")
        rows = candidates(customers, cutoffs)
        frame = label_rows(tables, rows, spec, until, spec.definition).to_pandas()
        counts = _not_observed(tables, rows, frame, spec.definition)
        early = [c for c in cutoffs if c < first]
        warnings = [f"labels.cutoffs.start {grid_start:%Y-%m-%d}: cutoff(s) {_days(early)} are before the first "
                    f"row of data ({first:%Y-%m-%d}, the first day every activity table records): nobody can "
                    f"look active there and features see no history"] if early else []
    warnings += _active_window_warnings(cutoffs, first, spec)
    for warning in warnings:
        log.warning(warning)

    summary = ObservationSummary(
        observed_until=f"{until:%Y-%m-%d}",
        cutoffs=[f"{pd.Timestamp(c):%Y-%m-%d}" for c in cutoffs],
        counts=counts,
        warnings=warnings,
    )
    summary.counts["observed"] = int(len(frame))
    churned_in_lead = frame["churned_in_lead"].astype(bool)
    summary.counts["excluded_churned_during_lead"] = int(churned_in_lead.sum())
    unknown = ~frame["label_known"].astype(bool) & ~churned_in_lead
    summary.counts["unlabelled_window_not_observed"] = int(unknown.sum())
    frame = frame[~churned_in_lead & ~unknown]

    frame, notes = split_by_cutoff(frame, split, custom is not None, horizon_days=spec.horizon_days)
    summary.warnings += notes
    summary.counts["purged_label_overlaps_test"] = int((frame["split"] == "purged").sum())
    frame = frame[frame["split"] != "purged"]
    frame = frame.sort_values(["cutoff", "customer_id"], kind="stable").reset_index(drop=True)
    out = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype("string"),
            "cutoff": pd.to_datetime(frame["cutoff"]).astype("datetime64[us]"),
            "label": frame["label"].astype("int8"),
            "split": frame["split"].astype("string"),
            "definition": frame["definition"].astype("string"),
        }
    )
    for name, part in out.groupby("split", sort=True):
        summary.by_split[str(name)] = {
            "rows": int(len(part)),
            "cutoffs": int(part["cutoff"].nunique()),
            "churn_rate": round(float(part["label"].mean()), 4),
        }
    return out, summary


NOT_OBSERVED = {"subscription": "not_observed_no_subscription_at_cutoff",
                "inactivity": "not_observed_inactive_before_cutoff"}


def _not_observed(tables: dict[str, ibis.Table], rows: ibis.Table, frame: pd.DataFrame, definition: str
                  ) -> dict[str, int]:
    """Candidate rows, and those the definition did not observe (not a customer at the cutoff), by reason."""
    total = int(rows.count().execute())
    if definition == "hybrid" and "subscriptions" in tables:
        tagged = contractual_rows(rows, tables["subscriptions"])
        by_subscription = int(tagged.filter(tagged.contractual).count().execute())
    else:
        by_subscription = total if definition == "subscription" else 0
    observed = frame["definition"].value_counts()
    return {
        "candidate_rows": total,
        NOT_OBSERVED["subscription"]: by_subscription - int(observed.get("subscription", 0)),
        NOT_OBSERVED["inactivity"]: total - by_subscription - int(observed.get("inactivity", 0)),
    }


def _active_window_warnings(cutoffs: list[datetime], first: datetime, spec: LabelSpec) -> list[str]:
    """A cutoff whose active window starts before the data: its customers may look inactive only
    because their activity was not recorded yet."""
    used = spec.fallback if spec.definition == "custom" else spec.definition
    if used == "subscription":
        return []
    reach = [c for c in cutoffs if pd.Timestamp(c) - pd.Timedelta(days=spec.active_window) < pd.Timestamp(first)]
    if not reach:
        return []
    setting = spec.active_window_days if spec.active_window_days else f"null, so horizon_days: {spec.horizon_days}"
    return [f"labels.inactivity.active_window_days ({setting}): at cutoff(s) {_days(reach)} the window before "
            f"the cutoff reaches back before the first row of data ({first:%Y-%m-%d}): customers active only "
            f"before then look inactive and are not observed; start the cutoffs later "
            f"(labels.cutoffs.min_history_days) or shorten the window"]


def _days(values: list[Any], most: int = 5) -> str:
    """Dates for a message: the first few, and how many in all."""
    names = ", ".join(f"{pd.Timestamp(v):%Y-%m-%d}" for v in values[:most])
    return names if len(values) <= most else f"{names} ... ({len(values)} in all)"


def _custom_rows(customers: ibis.Table, custom: pd.DataFrame) -> tuple[ibis.Table, pd.DataFrame, int]:
    """The user's rows as candidates, their labels, and how many cutoffs moved to midnight."""
    missing = {"customer_id", "cutoff"} - set(custom.columns)
    if missing:
        raise ValueError(f"label times: missing column(s) {sorted(missing)}; it needs customer_id, cutoff[, label]")
    # Cutoffs are dates: one with a time of day moves back to its midnight, so features use only
    # days wholly before it (fewer rows, never a leak); how many moved is in the summary.
    stamped = pd.to_datetime(custom["cutoff"]).astype("datetime64[us]")
    given = pd.DataFrame(
        {"customer_id": custom["customer_id"].astype("string"), "cutoff": stamped.dt.normalize()}
    )
    floored = int((stamped != stamped.dt.normalize()).sum())
    if custom.empty:
        raise ValueError("label times: no rows in the label-times file (labels.custom.path): it needs one row per "
                         "(customer_id, cutoff)")
    if "label" in custom.columns:
        given["user_label"] = pd.to_numeric(custom["label"], errors="coerce").astype("Float64")
        bad = given["user_label"].notna() & ~given["user_label"].isin([0, 1])
        bad |= given["user_label"].isna() & custom["label"].notna().to_numpy()
        if bad.any():
            raise ValueError(
                f"label times: column label must be 0, 1 or empty; {int(bad.sum())} rows are not, e.g.\n"
                f"{custom[bad.to_numpy()].head(5).to_string(index=False)}"
            )
    dupes = given.duplicated(["customer_id", "cutoff"])
    if dupes.any():
        raise ValueError(
            f"label times: {int(dupes.sum())} duplicate (customer_id, cutoff) rows, e.g.\n"
            f"{given[dupes].head(5).to_string(index=False)}"
        )
    known = set(customers.select("customer_id").filter(
        customers.customer_id.isin(list(given["customer_id"].unique()))).to_pandas()["customer_id"])
    unknown = given[~given["customer_id"].isin(known)]
    if not unknown.empty:
        raise ValueError(
            f"label times: {len(unknown)} rows for unknown customers (not in customers), e.g.\n"
            f"{unknown.head(5).to_string(index=False)}"
        )
    rows = ibis.memtable(given[["customer_id", "cutoff"]]).join(
        customers.select("customer_id", "signup_date"), "customer_id"
    )
    rows = rows.select("customer_id", "signup_date", "cutoff")
    return rows, given, floored


def _apply_user_labels(frame: pd.DataFrame, given: pd.DataFrame, spec: LabelSpec) -> pd.DataFrame:
    """User labels win; rows the fallback definition did not observe keep the user's label if any."""
    if "user_label" not in given.columns:
        return frame
    frame = frame.copy()
    frame["cutoff"] = pd.to_datetime(frame["cutoff"]).astype("datetime64[us]")
    merged = given.merge(frame, on=["customer_id", "cutoff"], how="left")
    has_user = merged["user_label"].notna()
    # whole columns, not cell writes: pandas 3 refuses to write the user's Float64 labels into
    # the fallback's int8 column, and rows the fallback did not observe have nulls to fill
    merged["label"] = merged["user_label"].where(has_user, merged["label"].astype("Float64"))
    merged["definition"] = merged["definition"].astype("string").mask(has_user, "custom")
    merged["label_known"] = has_user | merged["label_known"].astype("boolean").fillna(False).astype(bool)
    merged["churned_in_lead"] = ~has_user & merged["churned_in_lead"].astype("boolean").fillna(False).astype(bool)
    # the user's label window is unknown to us; assume the configured one for purging
    assumed = merged["cutoff"] + pd.Timedelta(days=spec.lead_days + spec.horizon_days)
    merged["label_known_at"] = merged["label_known_at"].where(merged["label_known_at"].notna(), assumed)
    merged = merged[merged["label"].notna()]
    return merged.drop(columns=["user_label"])
