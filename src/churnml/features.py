"""Point-in-time features: one implementation, for training and for scoring alike.

`build_features(tables, observations, spec)` returns one row per (customer_id, cutoff) with
features computed only from rows strictly before the cutoff. Cutoffs are midnights, so a day
either lies wholly before a cutoff or not at all.

How it stays fast and out of core: each activity table is first reduced to one row per
customer and day; running (cumulative) totals are taken per customer in time order; then a
single ASOF join reads those totals just before the cutoff and just before `cutoff - w` for every
window w. A window's count is the difference of two running totals. No event is joined to more
than one cutoff, so the work grows with the events plus the observations, not their product.

`plan_features` fixes everything data-dependent (event types, feedback kinds, category levels)
once, at training time; scoring reuses that `FeatureSpec`, so the columns always match.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir

from churnml.catalog import FeatureInfo

log = logging.getLogger(__name__)

FAMILY_TABLE = {
    "engagement": "events",
    "purchase": "orders",
    "feedback": "feedback",
    "subscription": "subscriptions",
    "profile": "customers",
}
CUSTOMER_KEYS = ["customer_id", "cutoff"]
# feedback kinds whose rows count as complaints whatever their score
COMPLAINT_KINDS = ("complaint", "ticket")
SECONDS_PER_DAY = 86400.0


@dataclass
class FeatureSpec:
    """Everything `build_features` needs besides the data; saved with the model."""

    families: list[str]
    windows: list[int]
    negative_score_threshold: float = 6.0
    event_types: list[str] = field(default_factory=list)
    feedback_kinds: list[str] = field(default_factory=list)
    has_event_value: bool = False
    # customer attribute -> "numeric" | "categorical"
    attributes: dict[str, str] = field(default_factory=dict)
    # categorical feature -> the levels seen in training (others become missing)
    levels: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> FeatureSpec:
        return cls(**payload)


# ---------------------------------------------------------------- planning


def plan_features(
    tables: dict[str, ir.Table],
    *,
    families: dict[str, bool],
    windows: list[int],
    negative_score_threshold: float = 6.0,
    event_types: list[str] | None = None,
    feedback_kinds: list[str] | None = None,
    attributes: list[str] | None = None,
    max_levels: int = 12,
) -> FeatureSpec:
    """Decide which features exist for this dataset: enabled families whose table is present."""
    enabled = []
    for family, on in families.items():
        if family not in FAMILY_TABLE:
            raise ValueError(f"features.families: unknown family '{family}' (known: {sorted(FAMILY_TABLE)})")
        if not on:
            continue
        if FAMILY_TABLE[family] not in tables:
            log.info("features: no %s table, so no %s features", FAMILY_TABLE[family], family)
            continue
        enabled.append(family)
    spec = FeatureSpec(
        families=enabled,
        windows=sorted({int(w) for w in windows}),
        negative_score_threshold=float(negative_score_threshold),
    )
    if "engagement" in enabled:
        events = tables["events"]
        spec.event_types = list(event_types) if event_types else _top_levels(events.event_type, max_levels)
        spec.has_event_value = "value" in events.columns
    if "feedback" in enabled and "kind" in tables["feedback"].columns:
        fb = tables["feedback"]
        spec.feedback_kinds = list(feedback_kinds) if feedback_kinds else _top_levels(fb.kind, max_levels)
    if "profile" in enabled:
        customers = tables["customers"]
        names = attributes if attributes is not None else [
            c for c in customers.columns if c not in ("customer_id", "signup_date")
        ]
        for name in names:
            if name not in customers.columns:
                raise ValueError(f"data.tables.customers.attributes: no column '{name}' in customers")
            dtype = customers[name].type()
            if dtype.is_numeric() or dtype.is_boolean():
                spec.attributes[name] = "numeric"
            else:
                spec.attributes[name] = "categorical"
                spec.levels[f"prof_{_slug(name)}"] = _top_levels(customers[name].cast("string"), max_levels)
    if "subscription" in enabled and "plan" in tables["subscriptions"].columns:
        spec.levels["sub_plan"] = _top_levels(tables["subscriptions"].plan.cast("string"), max_levels)
    return spec


def _top_levels(column: ir.Column, limit: int) -> list[str]:
    counts = column.value_counts().to_pandas()
    counts.columns = ["level", "n"]
    counts = counts.dropna(subset=["level"]).sort_values(["n", "level"], ascending=[False, True])
    return [str(v) for v in counts["level"].head(limit)]


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in str(text).lower()).strip("_") or "blank"


# ---------------------------------------------------------------- the catalog


def feature_catalog(spec: FeatureSpec) -> list[FeatureInfo]:
    """Every feature `build_features` makes for this spec, in column order."""
    out: list[FeatureInfo] = []
    w_all = spec.windows
    if "engagement" in spec.families:
        for w in w_all:
            out.append(FeatureInfo(f"eng_events_{w}d", "engagement", w, "numeric", f"Activity events in the last {w} days: {{value}}"))
            out.append(FeatureInfo(f"eng_active_days_{w}d", "engagement", w, "numeric", f"Active days in the last {w} days: {{value}}"))
            for t in spec.event_types:
                out.append(FeatureInfo(f"eng_{_slug(t)}_{w}d", "engagement", w, "numeric", f"'{t}' events in the last {w} days: {{value}}"))
            if spec.has_event_value:
                out.append(FeatureInfo(f"eng_value_{w}d", "engagement", w, "numeric", f"Total event value in the last {w} days: {{value}}"))
        out.append(FeatureInfo("eng_trend_30_60", "engagement", 90, "numeric",
                               "Change in activity, last 30 days against the 60 before: {value}", "ratio"))
        out.append(FeatureInfo("eng_days_since_last_event", "engagement", None, "numeric", "Time since the last activity: {value}", "days"))
    if "purchase" in spec.families:
        for w in w_all:
            out.append(FeatureInfo(f"pur_orders_{w}d", "purchase", w, "numeric", f"Purchases in the last {w} days: {{value}}"))
            out.append(FeatureInfo(f"pur_spend_{w}d", "purchase", w, "numeric", f"Spend in the last {w} days: {{value}}", "currency"))
        out.append(FeatureInfo("pur_orders_total", "purchase", None, "numeric", "Purchases ever: {value}"))
        out.append(FeatureInfo("pur_spend_total", "purchase", None, "numeric", "Total spend: {value}", "currency"))
        out.append(FeatureInfo("pur_days_since_last_order", "purchase", None, "numeric", "Time since the last purchase: {value}", "days"))
        out.append(FeatureInfo("pur_days_since_first_order", "purchase", None, "numeric", "Time since the first purchase: {value}", "days"))
        out.append(FeatureInfo("pur_mean_gap_days", "purchase", None, "numeric", "Usual time between purchases: {value}", "days"))
        out.append(FeatureInfo("pur_overdue_ratio", "purchase", None, "numeric",
                               "Time since the last purchase, in usual gaps between purchases: {value}"))
    if "feedback" in spec.families:
        for w in w_all:
            out.append(FeatureInfo(f"fb_count_{w}d", "feedback", w, "numeric", f"Feedback given in the last {w} days: {{value}}"))
            out.append(FeatureInfo(f"fb_mean_score_{w}d", "feedback", w, "numeric", f"Average feedback score in the last {w} days: {{value}}"))
            out.append(FeatureInfo(f"fb_negative_{w}d", "feedback", w, "numeric", f"Negative scores in the last {w} days: {{value}}"))
            if spec.feedback_kinds:
                out.append(FeatureInfo(f"fb_complaints_{w}d", "feedback", w, "numeric", f"Complaints and tickets in the last {w} days: {{value}}"))
        out.append(FeatureInfo("fb_last_score", "feedback", None, "numeric", "Latest feedback score: {value}"))
        out.append(FeatureInfo("fb_mean_score_all", "feedback", None, "numeric", "Average feedback score ever: {value}"))
        out.append(FeatureInfo("fb_days_since_last", "feedback", None, "numeric", "Time since the last feedback: {value}", "days"))
    if "subscription" in spec.families:
        out.append(FeatureInfo("sub_active", "subscription", None, "numeric", "Subscription active at the time (1 = yes): {value}"))
        out.append(FeatureInfo("sub_tenure_days", "subscription", None, "numeric", "Time since the first subscription: {value}", "days"))
        out.append(FeatureInfo("sub_count", "subscription", None, "numeric", "Subscriptions started so far: {value}"))
        if "sub_plan" in spec.levels:
            out.append(FeatureInfo("sub_plan", "subscription", None, "categorical", "Current plan: {value}"))
        out.append(FeatureInfo("sub_mrr", "subscription", None, "numeric", "Current monthly recurring revenue: {value}", "currency"))
    if "profile" in spec.families:
        out.append(FeatureInfo("prof_days_since_signup", "profile", None, "numeric", "Customer for {value}", "days"))
        for name, kind in spec.attributes.items():
            out.append(FeatureInfo(f"prof_{_slug(name)}", "profile", None, kind, f"{name.replace('_', ' ').capitalize()}: {{value}}"))
    return out


# ---------------------------------------------------------------- building


def build_features(tables: dict[str, ir.Table], observations: ir.Table, spec: FeatureSpec) -> ir.Table:
    """One row per observation (customer_id, cutoff) with every feature in `feature_catalog(spec)`.

    Customers with no rows in a table get 0 for counts and sums and missing (null) for
    recencies, means, ratios and current values: "never happened" is not "happened 0 days ago".
    """
    obs = observations.select(
        customer_id=observations.customer_id.cast("string"),
        cutoff=observations.cutoff.cast("timestamp"),
    ).distinct()
    parts: list[ir.Table] = []
    builders = {
        "engagement": _engagement,
        "purchase": _purchase,
        "feedback": _feedback,
        "subscription": _subscription,
        "profile": _profile,
    }
    for family in spec.families:
        table_name = FAMILY_TABLE[family]
        if table_name not in tables:
            raise ValueError(
                f"the model was built with {family} features but this dataset has no {table_name} table"
            )
        parts.append(builders[family](tables[table_name], obs, spec))
    result = obs
    for part in parts:
        result = result.left_join(part, CUSTOMER_KEYS).drop("customer_id_right", "cutoff_right")
    names = [info.name for info in feature_catalog(spec)]
    return result.select(*CUSTOMER_KEYS, *names).order_by(CUSTOMER_KEYS)


def _days_between(later: ir.TimestampValue, earlier: ir.TimestampValue) -> ir.FloatingValue:
    return later.delta(earlier, unit="second") / SECONDS_PER_DAY


def _running_totals(daily: ir.Table, measures: list[str]) -> ir.Table:
    """Per customer, in day order: running sums of `measures` (one row per customer and day)."""
    upto_here = ibis.window(group_by="customer_id", order_by="day", preceding=None, following=0)
    first = ibis.window(group_by="customer_id")
    return daily.mutate(
        **{f"cum_{m}": daily[m].sum().over(upto_here) for m in measures},
        first_ts=daily.first_ts.min().over(first),
    )


def _at_offsets(obs: ir.Table, running: ir.Table, offsets: list[int], measures: list[str],
                point_values: list[str]) -> ir.Table:
    """Running totals just before `cutoff - offset` for each offset, pivoted to one row per observation.

    Columns: `<measure>__<offset>` for every measure and offset; `last_ts`, `first_ts` and each of
    `point_values` as of the last day before the cutoff (offset 0).
    """
    probes = ibis.union(
        *[obs.mutate(offset=ibis.literal(o), probe=obs.cutoff - ibis.interval(days=o)) for o in offsets],
        distinct=False,
    )
    right = running.select(
        r_customer=running.customer_id, day=running.day, last_ts=running.last_ts, first_ts=running.first_ts,
        *[running[f"cum_{m}"] for m in measures], *[running[v] for v in point_values],
    )
    # strict: a day counts only if it lies wholly before the probe (probes are midnights)
    joined = probes.asof_join(right, on=probes.probe > right.day, predicates=probes.customer_id == right.r_customer)
    aggs: dict[str, ir.Value] = {}
    for m in measures:
        for o in offsets:
            aggs[f"{m}__{o}"] = ibis.ifelse(joined.offset == o, joined[f"cum_{m}"], None).max().fill_null(0)
    at_cutoff = joined.offset == 0
    aggs["last_ts"] = ibis.ifelse(at_cutoff, joined.last_ts, None).max()
    aggs["first_ts"] = ibis.ifelse(at_cutoff, joined.first_ts, None).max()
    for v in point_values:
        aggs[v] = ibis.ifelse(at_cutoff, joined[v], None).max()
    return joined.group_by(CUSTOMER_KEYS).aggregate(**aggs)


def _in_window(t: ir.Table, measure: str, window: int) -> ir.NumericValue:
    return t[f"{measure}__0"] - t[f"{measure}__{window}"]


def _daily(table: ir.Table, **measures: ir.Value) -> ir.Table:
    """One row per customer and day: the unit the running totals advance by."""
    day = table.timestamp.truncate("D")
    return table.group_by(["customer_id", day.name("day")]).aggregate(
        first_ts=table.timestamp.min(), last_ts=table.timestamp.max(), **measures
    )


def _engagement(events: ir.Table, obs: ir.Table, spec: FeatureSpec) -> ir.Table:
    measures: dict[str, ir.Value] = {"n": events.count(), "active": (events.count() > 0).cast("int64")}  # 1 per active day
    for t in spec.event_types:
        measures[f"t_{_slug(t)}"] = (events.event_type == t).cast("int64").sum()
    if spec.has_event_value:
        measures["value"] = events.value.sum().fill_null(0)
    daily = _daily(events, **measures)
    names = list(measures)
    offsets = sorted({0, 30, 90, *spec.windows})
    at = _at_offsets(obs, _running_totals(daily, names), offsets, names, [])
    cols: dict[str, ir.Value] = {}
    for w in spec.windows:
        cols[f"eng_events_{w}d"] = _in_window(at, "n", w)
        cols[f"eng_active_days_{w}d"] = _in_window(at, "active", w)
        for t in spec.event_types:
            cols[f"eng_{_slug(t)}_{w}d"] = _in_window(at, f"t_{_slug(t)}", w)
        if spec.has_event_value:
            cols[f"eng_value_{w}d"] = _in_window(at, "value", w)
    recent = _in_window(at, "n", 30).cast("float64")
    prior = (at["n__30"] - at["n__90"]).cast("float64") / 2.0  # per 30 days
    # (recent - prior) / (recent + prior): -1 stopped, 0 steady, +1 new; 0 when both are zero
    cols["eng_trend_30_60"] = ibis.ifelse(recent + prior > 0, (recent - prior) / (recent + prior), 0.0)
    cols["eng_days_since_last_event"] = _days_between(at.cutoff, at.last_ts)
    return at.select(*CUSTOMER_KEYS, **cols)


def _purchase(orders: ir.Table, obs: ir.Table, spec: FeatureSpec) -> ir.Table:
    measures = {"n": orders.count(), "spend": orders.amount.sum().fill_null(0)}
    daily = _daily(orders, **measures)
    offsets = sorted({0, *spec.windows})
    at = _at_offsets(obs, _running_totals(daily, list(measures)), offsets, list(measures), [])
    cols: dict[str, ir.Value] = {}
    for w in spec.windows:
        cols[f"pur_orders_{w}d"] = _in_window(at, "n", w)
        cols[f"pur_spend_{w}d"] = _in_window(at, "spend", w)
    cols["pur_orders_total"] = at["n__0"]
    cols["pur_spend_total"] = at["spend__0"]
    since_last = _days_between(at.cutoff, at.last_ts)
    cols["pur_days_since_last_order"] = since_last
    cols["pur_days_since_first_order"] = _days_between(at.cutoff, at.first_ts)
    mean_gap = ibis.ifelse(at["n__0"] >= 2, _days_between(at.last_ts, at.first_ts) / (at["n__0"] - 1), None)
    cols["pur_mean_gap_days"] = mean_gap
    cols["pur_overdue_ratio"] = ibis.ifelse(mean_gap > 0, since_last / mean_gap, None)
    return at.select(*CUSTOMER_KEYS, **cols)


def _feedback(feedback: ir.Table, obs: ir.Table, spec: FeatureSpec) -> ir.Table:
    scored = feedback.score.notnull()
    measures: dict[str, ir.Value] = {
        "n": feedback.count(),
        "score_n": scored.cast("int64").sum(),
        "score_sum": feedback.score.sum().fill_null(0),
        "negative": (scored & (feedback.score <= spec.negative_score_threshold)).cast("int64").sum(),
    }
    if spec.feedback_kinds:
        measures["complaints"] = feedback.kind.isin(list(COMPLAINT_KINDS)).cast("int64").sum()
    last_score = feedback.score.argmax(ibis.ifelse(scored, feedback.timestamp, None))
    daily = _daily(feedback, last_score=last_score, **measures)
    names = list(measures)
    offsets = sorted({0, *spec.windows})
    running = _running_totals(daily, names)
    # the latest score so far, carried forward over days whose feedback had no score
    upto_here = ibis.window(group_by="customer_id", order_by="day", preceding=None, following=0)
    running = running.mutate(last_score_so_far=running.last_score.argmax(
        ibis.ifelse(running.last_score.notnull(), running.day, None)).over(upto_here))
    at = _at_offsets(obs, running, offsets, names, ["last_score_so_far"])
    cols: dict[str, ir.Value] = {}
    for w in spec.windows:
        cols[f"fb_count_{w}d"] = _in_window(at, "n", w)
        n_scored = _in_window(at, "score_n", w)
        cols[f"fb_mean_score_{w}d"] = ibis.ifelse(n_scored > 0, _in_window(at, "score_sum", w) / n_scored, None)
        cols[f"fb_negative_{w}d"] = _in_window(at, "negative", w)
        if spec.feedback_kinds:
            cols[f"fb_complaints_{w}d"] = _in_window(at, "complaints", w)
    cols["fb_last_score"] = at.last_score_so_far
    cols["fb_mean_score_all"] = ibis.ifelse(at["score_n__0"] > 0, at["score_sum__0"] / at["score_n__0"], None)
    cols["fb_days_since_last"] = _days_between(at.cutoff, at.last_ts)
    return at.select(*CUSTOMER_KEYS, **cols)


def _subscription(subs: ir.Table, obs: ir.Table, spec: FeatureSpec) -> ir.Table:
    # Only what was known at the cutoff: rows started before it, and of their end dates only
    # whether they had already passed (an end after the cutoff is the future).
    joined = obs.join(subs, obs.customer_id == subs.customer_id).filter(lambda t: t.start_date < t.cutoff)
    joined = joined.mutate(
        running_now=joined.end_date.isnull() | (joined.end_date >= joined.cutoff),
    )
    latest_active_start = ibis.ifelse(joined.running_now, joined.start_date, None)
    cols: dict[str, ir.Value] = {
        "sub_active": joined.running_now.cast("int64").max(),
        "first_start": joined.start_date.min(),
        "sub_count": joined.count(),
    }
    if "sub_plan" in spec.levels:
        cols["sub_plan"] = joined.plan.cast("string").argmax(latest_active_start)
    if "mrr" in subs.columns:
        cols["sub_mrr"] = ibis.ifelse(joined.running_now, joined.mrr, 0.0).sum()
    else:
        cols["sub_mrr"] = ibis.literal(None, type="float64").max()
    agg = joined.group_by(CUSTOMER_KEYS).aggregate(**cols)
    out = {
        "sub_active": agg.sub_active.fill_null(0),
        "sub_tenure_days": _days_between(agg.cutoff, agg.first_start),
        "sub_count": agg.sub_count,
    }
    if "sub_plan" in spec.levels:
        out["sub_plan"] = agg.sub_plan
    out["sub_mrr"] = agg.sub_mrr
    full = obs.left_join(agg.select(*CUSTOMER_KEYS, **out), CUSTOMER_KEYS)
    return full.select(
        *[full[k] for k in CUSTOMER_KEYS],
        sub_active=full.sub_active.fill_null(0),
        sub_tenure_days=full.sub_tenure_days,
        sub_count=full.sub_count.fill_null(0),
        **({"sub_plan": full.sub_plan} if "sub_plan" in spec.levels else {}),
        sub_mrr=full.sub_mrr.fill_null(0.0),
    )


def _profile(customers: ir.Table, obs: ir.Table, spec: FeatureSpec) -> ir.Table:
    joined = obs.join(customers, obs.customer_id == customers.customer_id)
    cols: dict[str, ir.Value] = {"prof_days_since_signup": _days_between(joined.cutoff, joined.signup_date)}
    for name, kind in spec.attributes.items():
        column = joined[name]
        cols[f"prof_{_slug(name)}"] = column.cast("float64") if kind == "numeric" else column.cast("string")
    return joined.select(obs.customer_id, obs.cutoff, **cols)
