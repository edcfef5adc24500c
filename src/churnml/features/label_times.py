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
import numpy as np
import pandas as pd

# the split lives in its own module; these names stay importable from here for existing callers
from churnml.features.splits import SplitSpec, split_by_cutoff, split_spec  # noqa: F401
from churnml.features.splits import decide_split, split_column, split_of
from churnml.features.windows import Grid

log = logging.getLogger(__name__)

Definition = Literal["subscription", "inactivity", "hybrid", "custom"]
EVENTLIKE_TABLES = ("events", "orders", "feedback")
# label times with more distinct cutoffs than this are labelled in batches of cutoffs
CUTOFFS_PER_PASS = 12


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
    """Observed rows under the inactivity definition, with label and label_known.

    Observed: active in the `active_window` days before the cutoff (or signed up within them).
    Label 1: no activity in [cutoff + lead, cutoff + lead + horizon)."""
    counted = activity_in_windows(rows.select("customer_id", "signup_date", "cutoff"), activity, spec)
    since = counted.cutoff - ibis.interval(days=spec.active_window)
    active = counted.filter((counted.before > 0) | (counted.signup_date >= since))
    window_end = active.cutoff + ibis.interval(days=spec.lead_days + spec.horizon_days)
    return active.select(
        "customer_id",
        "cutoff",
        label=ibis.ifelse(active.within > 0, 0, 1),
        churned_in_lead=ibis.literal(False),
        label_known_at=window_end,
        definition=ibis.literal("inactivity"),
    ).mutate(label_known=lambda t: t.label_known_at <= ibis.literal(until))


def activity_in_windows(rows: ibis.Table, activity: ibis.Table, spec: LabelSpec) -> ibis.Table:
    """`rows` with `before`, the activity in [cutoff - active_window, cutoff), and `within`, the
    activity in the label window [cutoff + lead, cutoff + lead + horizon).

    The window bounds of a batch of cutoffs cut time into buckets; activity is counted once per
    (customer, bucket), a GROUP BY with few groups, and the buckets are summed per window through
    a small membership table: no sort of the activity and no join of it to the cutoffs, on DuckDB
    and Spark alike. Many distinct cutoffs (user label times) go in batches, one pass each."""
    cutoffs = sorted(pd.Timestamp(c).to_pydatetime() for c in rows.select("cutoff").distinct().to_pandas()["cutoff"])
    if not cutoffs:  # no rows: nothing to count, and the columns keep their types
        return rows.mutate(before=ibis.literal(0, type="int64"), within=ibis.literal(0, type="int64"))
    batches = [cutoffs[i:i + CUTOFFS_PER_PASS] for i in range(0, len(cutoffs), CUTOFFS_PER_PASS)]
    parts = []
    for batch in batches:
        windows = {c: {"before": (c - timedelta(days=spec.active_window), c),
                       "within": (c + timedelta(days=spec.lead_days),
                                  c + timedelta(days=spec.lead_days + spec.horizon_days))} for c in batch}
        probes = sorted({bound for spans in windows.values() for span in spans.values() for bound in span})
        grid = Grid(cutoffs=tuple(batch), windows=(), probes=tuple(probes))
        members = pd.DataFrame([
            {"_cutoff": c, "_bucket": b, **{name: int(b in span) for name, span in spans.items()}}
            for c, spans in ((c, {n: range(probes.index(lo) + 1, probes.index(hi) + 1) for n, (lo, hi) in w.items()})
                             for c, w in windows.items())
            for b in sorted(set().union(*spans.values()))
        ])
        members["_cutoff"] = members["_cutoff"].astype("datetime64[us]")
        near = activity.filter(activity.ts >= ibis.literal(probes[0]), activity.ts < ibis.literal(probes[-1]))
        if len(batches) > 1:  # a batch of user label times concerns only some customers
            near = near.semi_join(rows.filter(rows.cutoff.isin([ibis.literal(c) for c in batch])), "customer_id")
        per_bucket = near.mutate(_bucket=grid.bucket_of(near.ts)).group_by(["customer_id", "_bucket"]).aggregate(
            n=lambda t: t.count())
        joined = per_bucket.join(ibis.memtable(members), "_bucket")
        parts.append(joined.group_by(["customer_id", "_cutoff"]).aggregate(
            before=(joined.n * joined.before).sum(), within=(joined.n * joined.within).sum()))
    counts = parts[0] if len(parts) == 1 else ibis.union(*parts, distinct=False)
    out = rows.left_join(counts, (rows.customer_id == counts.customer_id) & (rows.cutoff == counts._cutoff))
    return out.select(*rows.columns, before=out.before.fill_null(0), within=out.within.fill_null(0))


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


def observation_table(
    tables: dict[str, ibis.Table],
    spec: LabelSpec,
    split: SplitSpec,
    *,
    freq: str = "MS",
    start: datetime | None = None,
    end: datetime | None = None,
    min_history_days: int = 60,
    custom: pd.DataFrame | ibis.Table | None = None,
) -> tuple[ibis.Table, ObservationSummary]:
    """The label-times table as an engine table, unsorted, and a summary of what happened to every
    candidate row.

    Columns: customer_id (string), cutoff (timestamp), label (int8), split and definition (string).
    No row is collected: the counts and the split come from aggregates per cutoff and definition,
    and the split is then applied to the rows by the engine. With `custom` (customer_id,
    cutoff[, label]; a pandas frame or an engine table) the rows are the user's, cutoffs may differ
    per customer, and rows without a label are labelled by `spec.fallback`.
    """
    until = observed_until(tables)
    first = history_start(tables)
    customers = tables["customers"]
    if custom is not None:
        given, counts = _custom_rows(customers, custom)
        cutoffs = sorted(pd.to_datetime(given.select("cutoff").distinct().to_pandas()["cutoff"]))
        rows = given.select("customer_id", "cutoff").join(customers.select("customer_id", "signup_date"), "customer_id")
        rows = rows.select("customer_id", "signup_date", "cutoff")
        frame = _apply_user_labels(label_rows(tables, rows, spec, until, spec.fallback), given, spec)
        outcomes = _outcomes(frame)
        counts["custom_rows_not_labelled"] = counts["custom_rows_given"] - int(outcomes["rows"].sum())
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
        frame = label_rows(tables, rows, spec, until, spec.definition)
        outcomes = _outcomes(frame)
        counts = _not_observed(tables, rows, outcomes, spec.definition)
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
    summary.counts["observed"] = int(outcomes["rows"].sum())
    churned_in_lead = outcomes["churned_in_lead"]
    summary.counts["excluded_churned_during_lead"] = int(outcomes.loc[churned_in_lead, "rows"].sum())
    unknown = ~outcomes["label_known"] & ~churned_in_lead
    summary.counts["unlabelled_window_not_observed"] = int(outcomes.loc[unknown, "rows"].sum())
    kept = outcomes[~churned_in_lead & ~unknown]

    per_cutoff = kept.groupby(["cutoff", "label_known_at"], dropna=False)[["rows"]].sum().reset_index()
    decision, notes = decide_split(per_cutoff, split, custom is not None, horizon_days=spec.horizon_days)
    summary.warnings += notes
    kept = kept.assign(split=split_of(kept, decision) if decision else "train")
    summary.counts["purged_label_overlaps_test"] = int(kept.loc[kept["split"] == "purged", "rows"].sum())
    for name, part in kept[kept["split"] != "purged"].groupby("split", sort=True):
        summary.by_split[str(name)] = {
            "rows": int(part["rows"].sum()),
            "cutoffs": int(part["cutoff"].nunique()),
            # the mean of the 0/1 labels, as pandas takes it: a float64 sum over the count
            "churn_rate": round(float(part["positives"].sum()) / float(part["rows"].sum()), 4),
        }

    rows_kept = frame.filter(~frame.churned_in_lead & frame.label_known)
    rows_kept = rows_kept.mutate(split=split_column(rows_kept, decision))
    rows_kept = rows_kept.filter(rows_kept.split != "purged")
    table = rows_kept.select(
        customer_id=rows_kept.customer_id.cast("string"),
        cutoff=rows_kept.cutoff.cast("timestamp(6)"),
        # Ibis drops a cast to the type it infers (int8 for ifelse(.., 1, 0)), but the engine
        # computes an INTEGER there and would write that: cast through int16 so int8 is written
        label=rows_kept.label.cast("int16").cast("int8"),
        split=rows_kept.split.cast("string"),
        definition=rows_kept.definition.cast("string"),
    )
    return table, summary


def build_observations(tables: dict[str, ibis.Table], spec: LabelSpec, split: SplitSpec, **options: Any
                       ) -> tuple[pd.DataFrame, ObservationSummary]:
    """`observation_table(tables, spec, split, **options)` collected: a frame sorted by cutoff and
    customer_id, and the summary. The options (freq, start, end, min_history_days, custom) are
    `observation_table`'s, written once there."""
    table, summary = observation_table(tables, spec, split, **options)
    frame = table.to_pandas().sort_values(["cutoff", "customer_id"], kind="stable").reset_index(drop=True)
    out = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype("string"),
            "cutoff": pd.to_datetime(frame["cutoff"]).astype("datetime64[us]"),
            "label": frame["label"].astype("int8"),
            "split": frame["split"].astype("string"),
            "definition": frame["definition"].astype("string"),
        }
    )
    return out, summary


def _outcomes(frame: ibis.Table) -> pd.DataFrame:
    """Labelled rows counted per cutoff, definition and fate (a few rows per cutoff), with their labels summed."""
    keys = ["cutoff", "label_known_at", "definition", "churned_in_lead", "label_known"]
    counted = frame.group_by(keys).aggregate(rows=frame.count(), positives=frame.label.cast("int64").sum())
    out = counted.to_pandas()
    return out.assign(
        cutoff=pd.to_datetime(out["cutoff"]), label_known_at=pd.to_datetime(out["label_known_at"]),
        churned_in_lead=out["churned_in_lead"].astype(bool), label_known=out["label_known"].astype(bool),
        rows=out["rows"].astype("int64"), positives=out["positives"].fillna(0).astype("int64"),
    )


NOT_OBSERVED = {"subscription": "not_observed_no_subscription_at_cutoff",
                "inactivity": "not_observed_inactive_before_cutoff"}


def _not_observed(tables: dict[str, ibis.Table], rows: ibis.Table, outcomes: pd.DataFrame, definition: str
                  ) -> dict[str, int]:
    """Candidate rows, and those the definition did not observe (not a customer at the cutoff), by reason."""
    if definition == "hybrid" and "subscriptions" in tables:
        tagged = contractual_rows(rows, tables["subscriptions"])
        both = tagged.aggregate(total=tagged.count(), contractual=tagged.contractual.cast("int64").sum()).to_pandas()
        total, by_subscription = int(both["total"].iloc[0]), int(both["contractual"].fillna(0).iloc[0])
    else:
        total = int(rows.count().execute())
        by_subscription = total if definition == "subscription" else 0
    observed = outcomes.groupby("definition")["rows"].sum()
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


def _custom_rows(customers: ibis.Table, custom: pd.DataFrame | ibis.Table) -> tuple[ibis.Table, dict[str, int]]:
    """The user's label times, checked, as a table (customer_id, cutoff[, user_label]), and their counts.

    Every check is a query on the engine; a refusal shows example rows: a pandas frame's first in
    file order, an engine table's first by customer and cutoff.
    """
    missing = {"customer_id", "cutoff"} - set(custom.columns)
    if missing:
        raise ValueError(f"label times: missing column(s) {sorted(missing)}; it needs customer_id, cutoff[, label]")
    has_label = "label" in custom.columns
    given = _given_frame(custom) if isinstance(custom, pd.DataFrame) else _given_table(custom)
    totals = given.aggregate(
        rows=given.count(),
        # Cutoffs are dates: one with a time of day moves back to its midnight, so features use only
        # days wholly before it (fewer rows, never a leak); how many moved is in the summary.
        floored=(given.stamped != given.cutoff).cast("int64").sum(),
        bad=given.bad_label.cast("int64").sum() if has_label else ibis.literal(0),
    ).to_pandas().fillna(0).iloc[0]
    if not totals["rows"]:
        raise ValueError("label times: no rows in the label-times file (labels.custom.path): it needs one row per "
                         "(customer_id, cutoff)")
    shown = ["customer_id", "cutoff", "user_label"] if has_label else ["customer_id", "cutoff"]
    if totals["bad"]:
        if isinstance(custom, pd.DataFrame):
            example = custom.iloc[_first(given.filter(given.bad_label))["_row"].to_numpy()]
        else:
            example = _first(custom.filter(_user_label(custom.label)[1]))
        raise ValueError(
            f"label times: column label must be 0, 1 or empty; {int(totals['bad'])} rows are not, e.g.\n"
            f"{example.to_string(index=False)}"
        )
    keys = ["customer_id", "cutoff"]
    groups = given.group_by(keys).aggregate(n=given.count())
    repeated = groups.filter(groups.n > 1)
    dupes = int(repeated.aggregate(extra=(repeated.n - 1).sum()).to_pandas()["extra"].fillna(0).iloc[0])
    if dupes:
        order = ["_row"] if "_row" in given.columns else ["user_label"] if has_label else keys
        ranked = given.mutate(_nth=ibis.row_number().over(group_by=keys, order_by=order))
        raise ValueError(
            f"label times: {dupes} duplicate (customer_id, cutoff) rows, e.g.\n"
            f"{_as_given(_first(ranked.filter(ranked._nth > 0)))[shown].to_string(index=False)}"
        )
    unknown = given.anti_join(customers.select("customer_id"), "customer_id")
    unknown_rows = int(unknown.count().execute())
    if unknown_rows:
        raise ValueError(
            f"label times: {unknown_rows} rows for unknown customers (not in customers), e.g.\n"
            f"{_as_given(_first(unknown))[shown].to_string(index=False)}"
        )
    rows, floored = int(totals["rows"]), int(totals["floored"])
    counts = {"candidate_rows": rows, "custom_rows_given": rows, "custom_cutoffs_moved_to_midnight": floored}
    return given.select(*[c for c in shown]), counts


def _given_frame(custom: pd.DataFrame) -> ibis.Table:
    """A pandas label-times frame as a table: customer_id, cutoff (midnight), stamped (as given),
    user_label and bad_label (with a label column), _row (the file order, for examples)."""
    stamped = pd.to_datetime(custom["cutoff"]).astype("datetime64[us]")
    given = pd.DataFrame({"customer_id": custom["customer_id"].astype("string").to_numpy(),
                          "cutoff": stamped.dt.normalize().to_numpy(), "stamped": stamped.to_numpy()})
    if "label" in custom.columns:
        user = pd.to_numeric(custom["label"], errors="coerce").astype("Float64")
        bad = (user.notna() & ~user.isin([0, 1])).to_numpy(dtype=bool, na_value=False)
        bad |= user.isna().to_numpy() & custom["label"].notna().to_numpy()
        given["user_label"], given["bad_label"] = user.to_numpy(dtype="float64", na_value=np.nan), bad
    given["_row"] = np.arange(len(given), dtype="int64")
    table = ibis.memtable(given)
    if "user_label" in given.columns:  # NaN here is an empty label
        table = table.mutate(user_label=ibis.ifelse(table.user_label.isnan(), ibis.null("float64"),
                                                    table.user_label))
    return table


def _given_table(custom: ibis.Table) -> ibis.Table:
    """An engine label-times table in the shape of `_given_frame`, without _row."""
    stamped = custom.cutoff.cast("timestamp")
    columns = {"customer_id": custom.customer_id.cast("string"), "cutoff": stamped.truncate("D"), "stamped": stamped}
    if "label" in custom.columns:
        columns["user_label"], columns["bad_label"] = _user_label(custom.label)
    return custom.select(**columns)


def _user_label(label: ibis.Column) -> tuple[ibis.Value, ibis.Value]:
    """The user's label as a float (null when empty), and whether it is something other than 0, 1 or empty."""
    if label.type().is_string():
        text = label.strip()
        value = ibis.ifelse(text == "", ibis.null("float64"), text.try_cast("float64"))
        empty = label.isnull() | (text == "")
    else:
        value = label.cast("float64")
        value = ibis.ifelse(value.isnan(), ibis.null("float64"), value) if label.type().is_floating() else value
        empty = value.isnull()
    bad = ibis.ifelse(value.isnull(), ~empty, ~value.isin([0.0, 1.0]))
    return value, bad


def _first(table: ibis.Table, most: int = 5) -> pd.DataFrame:
    """A few rows for a message: a pandas frame's first in file order, an engine table's by customer and cutoff."""
    order = ["_row"] if "_row" in table.columns else ["customer_id", "cutoff"]
    return table.order_by(order).limit(most).to_pandas()


def _as_given(frame: pd.DataFrame) -> pd.DataFrame:
    """Example rows with the types the messages have always shown."""
    frame = frame.assign(customer_id=frame["customer_id"].astype("string"),
                         cutoff=pd.to_datetime(frame["cutoff"]).astype("datetime64[us]"))
    if "user_label" in frame.columns:
        frame["user_label"] = frame["user_label"].astype("Float64")
    return frame


def _apply_user_labels(frame: ibis.Table, given: ibis.Table, spec: LabelSpec) -> ibis.Table:
    """User labels win; rows the fallback definition did not observe keep the user's label if any."""
    if "user_label" not in given.columns:
        return frame
    joined = given.left_join(frame, [given.customer_id == frame.customer_id, given.cutoff == frame.cutoff])
    joined = joined.select(given.customer_id, given.cutoff, given.user_label, fallback=frame.label,
                           churned=frame.churned_in_lead, known_at=frame.label_known_at, known=frame.label_known,
                           fallback_definition=frame.definition)
    has_user = joined.user_label.notnull()
    # the user's label window is unknown to us; assume the configured one for purging
    assumed = joined.cutoff + ibis.interval(days=spec.lead_days + spec.horizon_days)
    merged = joined.select(
        "customer_id",
        "cutoff",
        label=ibis.ifelse(has_user, joined.user_label, joined.fallback.cast("float64")),
        churned_in_lead=~has_user & joined.churned.fill_null(False),
        label_known_at=joined.known_at.fill_null(assumed),
        definition=ibis.ifelse(has_user, ibis.literal("custom"), joined.fallback_definition),
        label_known=has_user | joined.known.fill_null(False),
    )
    return merged.filter(merged.label.notnull())
