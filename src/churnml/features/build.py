"""Point-in-time features: one implementation, for training and for scoring alike.

`build_features(tables, observations, spec)` returns one row per (customer_id, cutoff) with
features computed only from rows strictly before the cutoff. Cutoffs are midnights.

Each feature is defined once, below, as its catalog entry together with its expression over the
window aggregates of `churnml.features.windows` (one GROUP BY pass per activity table, whatever the
number of cutoffs). `plan_features` fixes everything data-dependent (event types, feedback
kinds, category levels) once, at training time; scoring reuses that `FeatureSpec`, so the
columns always match.

Values for customers with no rows: counts and sums are 0; recencies, means, minima, maxima,
shares, ratios and trends of nothing are missing (null), which XGBoost treats as its own case:
"never happened" is not "happened 0 days ago".
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from churnml.data import parquet, spark
from churnml.features import purchase_process
from churnml.features.catalog import FeatureInfo
from churnml.data.io import atomic_path, copy_parquet
from churnml.features.windows import SECONDS_PER_DAY, At, Grid, days_between, distinct_days, window_rows

log = logging.getLogger(__name__)

FAMILY_TABLE = {
    "engagement": "events",
    "purchase": "orders",
    "purchase_process": "orders",
    "feedback": "feedback",
    "subscription": "subscriptions",
    "profile": "customers",
}
CUSTOMER_KEYS = ["customer_id", "cutoff"]
# the trend compares the last 30 days with the 60 before; these windows are always computed
TREND_RECENT, TREND_SPAN = 30, 90
# NPS: promoters score 9-10, detractors 0-6 (on kind == "nps" rows)
NPS_PROMOTER, NPS_DETRACTOR = 9.0, 6.0
# observations with more distinct cutoffs than this are built in batches of cutoffs
MAX_CUTOFFS_PER_PASS = 12
AVG_MONTH_DAYS = 30.436875
# Sums of money, values, scores and squared gaps are taken in exact decimals: a parallel float sum
# depends on the order threads add in, so the same data could give features (and scores) that
# differ in the last bits from run to run. Decimal sums are exact, so every run agrees.
EXACT = "decimal(38, 9)"
WHOLE = "decimal(38, 0)"


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
    # features left out of the model (constant or a copy of another on the training rows): the
    # catalog, and so the design matrix, scoring and explanations, skip them
    dropped: list[str] = field(default_factory=list)
    # the label horizon: the purchase-process family predicts purchases over this many days
    horizon_days: int | None = None

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
    horizon_days: int | None = None,
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
    if "purchase_process" in enabled:
        if horizon_days is None:  # its features are about the label horizon: none given, none built
            log.info("features: no label horizon given, so no purchase_process features")
            spec.families.remove("purchase_process")
        elif int(horizon_days) <= 0:
            raise ValueError("features.families.purchase_process needs a positive label horizon in days "
                             f"(labels.horizon_days), got {horizon_days!r}")
        else:
            spec.horizon_days = int(horizon_days)
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


# ---------------------------------------------------------------- feature definitions
#
# A bucketed family is a prefix, its measures (aggregates per customer and bucket) and its
# features: (catalog entry, expression over `At`). The catalog is read off the same list, so a
# feature exists in both or in neither.

@dataclass(frozen=True)
class Feature:
    info: FeatureInfo
    expr: Callable[[At], ir.Value]
    # counts and sums are 0 for a customer with no rows at all; everything else is missing
    zero_if_absent: bool = False


@dataclass(frozen=True)
class Family:
    name: str
    table: str
    time_column: str
    prefix: str
    measures: Callable[[ir.Table], dict[str, ir.Scalar]]
    features: list[Feature]


def _ratio(num: ir.NumericValue, den: ir.NumericValue) -> ir.FloatingValue:
    return ibis.ifelse(den > 0, num.cast("float64") / den.cast("float64"), None)


def _trend(at: At, name: str) -> ir.FloatingValue:
    """(recent - before) / (recent + before), per 30 days: -1 stopped, 0 steady, +1 new; missing
    when there was nothing in either period."""
    recent = at.sum(name, TREND_RECENT).cast("float64")
    before = (at.sum(name, TREND_SPAN) - at.sum(name, TREND_RECENT)).cast("float64") * (
        TREND_RECENT / (TREND_SPAN - TREND_RECENT))
    return ibis.ifelse(recent + before > 0, (recent - before) / (recent + before), None)


def _f(name: str, family: str, window: int | None, template: str, fn: Callable[[At], ir.Value],
       unit: str = "", kind: str = "numeric") -> Feature:
    return Feature(FeatureInfo(name, family, window, kind, template, unit), fn)


def _n(name: str, family: str, window: int | None, template: str, fn: Callable[[At], ir.Value],
       unit: str = "") -> Feature:
    """A count or a sum: 0 when there is nothing."""
    return Feature(FeatureInfo(name, family, window, "numeric", template, unit, additive=window is not None),
                   fn, zero_if_absent=True)


def _engagement(spec: FeatureSpec) -> Family:
    types = {t: _slug(t) for t in spec.event_types}

    def measures(ev: ir.Table) -> dict[str, ir.Scalar]:
        m = {"n": ev.count(), "active": distinct_days(ev.timestamp), "last": ev.timestamp.max()}
        if spec.has_event_value:
            m["value"] = ev.value.cast(EXACT).sum()
        for t, s in types.items():
            is_t = ev.event_type == t
            m[f"t_{s}"] = is_t.cast("int64").sum()
            m[f"last_{s}"] = ibis.ifelse(is_t, ev.timestamp, None).max()
        return m

    fam, top = "engagement", max(spec.windows)
    feats: list[Feature] = []
    for w in spec.windows:
        feats.append(_n(f"eng_events_{w}d", fam, w, f"Activity events in the last {w} days: {{value}}",
                        lambda at, w=w: at.sum("n", w)))
        feats.append(_n(f"eng_active_days_{w}d", fam, w, f"Active days in the last {w} days: {{value}}",
                        lambda at, w=w: at.sum("active", w)))
        if spec.has_event_value:
            feats.append(_n(f"eng_value_{w}d", fam, w, f"Total event value in the last {w} days: {{value}}",
                            lambda at, w=w: at.sum("value", w)))
        for t, s in types.items():
            feats.append(_n(f"eng_{s}_{w}d", fam, w, f"'{t}' events in the last {w} days: {{value}}",
                            lambda at, w=w, s=s: at.sum(f"t_{s}", w)))
    feats.append(_f("eng_days_since_last_event", fam, None, "Time since the last activity: {value}",
                    lambda at: at.since(at.greatest("last")), "days"))
    feats.append(_f("eng_trend_30_60", fam, TREND_SPAN, "Change in activity, last 30 days against the 60 before: {value}",
                    lambda at: _trend(at, "n"), "ratio"))
    for t, s in types.items():
        feats.append(_f(f"eng_{s}_days_since_last", fam, None, f"Time since the last '{t}' event: {{value}}",
                        lambda at, s=s: at.since(at.greatest(f"last_{s}")), "days"))
        feats.append(_f(f"eng_{s}_trend_30_60", fam, TREND_SPAN, f"Change in '{t}' events, last 30 days against the 60 before: {{value}}",
                        lambda at, s=s: _trend(at, f"t_{s}"), "ratio"))
        feats.append(_f(f"eng_{s}_share_{top}d", fam, top, f"Share of '{t}' among events in the last {top} days: {{value}}",
                        lambda at, s=s: _ratio(at.sum(f"t_{s}", top), at.sum("n", top)), "share"))
    return Family(fam, "events", "timestamp", "e_", measures, feats)


def _purchase(spec: FeatureSpec) -> Family:
    def measures(orders: ir.Table) -> dict[str, ir.Scalar]:
        return {"n": orders.count(), "spend": orders.amount.cast(EXACT).sum(), "spend_max": orders.amount.max(),
                "last": orders.timestamp.max(), "first": orders.timestamp.min(),
                "gap_sq": (orders.gap_seconds * orders.gap_seconds).sum()}

    def mean_gap(at: At) -> ir.FloatingValue:
        n = at.sum("n")
        span = days_between(at.greatest("last"), at.least("first"))
        return ibis.ifelse(n >= 2, span / (n - 1).cast("float64"), None)

    def std_gap(at: At) -> ir.FloatingValue:
        gaps = (at.sum("n") - 1).cast("float64")
        mean = mean_gap(at)
        var = at.sum("gap_sq").cast("float64") / (SECONDS_PER_DAY * SECONDS_PER_DAY) / gaps - mean * mean
        return ibis.ifelse(gaps >= 2, ibis.greatest(var, 0.0).sqrt(), None)

    fam = "purchase"
    feats: list[Feature] = []
    for w in spec.windows:
        feats += [
            _n(f"pur_orders_{w}d", fam, w, f"Purchases in the last {w} days: {{value}}", lambda at, w=w: at.sum("n", w)),
            _n(f"pur_spend_{w}d", fam, w, f"Spend in the last {w} days: {{value}}", lambda at, w=w: at.sum("spend", w), "currency"),
            _f(f"pur_mean_spend_{w}d", fam, w, f"Average purchase in the last {w} days: {{value}}",
               lambda at, w=w: _ratio(at.sum("spend", w), at.sum("n", w)), "currency"),
            _f(f"pur_max_spend_{w}d", fam, w, f"Largest purchase in the last {w} days: {{value}}",
               lambda at, w=w: at.greatest("spend_max", w), "currency"),
        ]
    feats += [
        _n("pur_orders_total", fam, None, "Purchases ever: {value}", lambda at: at.sum("n")),
        _n("pur_spend_total", fam, None, "Total spend: {value}", lambda at: at.sum("spend"), "currency"),
        _f("pur_days_since_last_order", fam, None, "Time since the last purchase: {value}",
           lambda at: at.since(at.greatest("last")), "days"),
        _f("pur_days_since_first_order", fam, None, "Time since the first purchase: {value}",
           lambda at: at.since(at.least("first")), "days"),
        _f("pur_mean_gap_days", fam, None, "Usual time between purchases: {value}", mean_gap, "days"),
        _f("pur_std_gap_days", fam, None, "Spread of the time between purchases: {value}", std_gap, "days"),
        _f("pur_overdue_ratio", fam, None, "Time since the last purchase, in usual gaps between purchases: {value}",
           lambda at: ibis.ifelse(mean_gap(at) > 0, at.since(at.greatest("last")) / mean_gap(at), None)),
        _f("pur_spend_trend_30_60", fam, TREND_SPAN, "Change in spend, last 30 days against the 60 before: {value}",
           lambda at: _trend(at, "spend"), "ratio"),
    ]
    return Family(fam, "orders", "timestamp", "o_", measures, feats)


def _feedback(spec: FeatureSpec) -> Family:
    kinds = {k: _slug(k) for k in spec.feedback_kinds}
    threshold = spec.negative_score_threshold

    def measures(fb: ir.Table) -> dict[str, ir.Scalar]:
        scored = fb.score.notnull()
        negative = scored & (fb.score <= threshold)
        m = {"n": fb.count(), "score_n": scored.cast("int64").sum(), "score_sum": fb.score.cast(EXACT).sum(),
             "score_min": fb.score.min(), "negative": negative.cast("int64").sum(), "last": fb.timestamp.max(),
             "last_negative": ibis.ifelse(negative, fb.timestamp, None).max(),
             "last_score": fb.score.argmax(ibis.ifelse(scored, fb.timestamp, None))}
        for k, s in kinds.items():
            m[f"k_{s}"] = (fb.kind == k).cast("int64").sum()
        if "nps" in kinds:
            nps = (fb.kind == "nps") & scored
            m["promoters"] = (nps & (fb.score >= NPS_PROMOTER)).cast("int64").sum()
            m["detractors"] = (nps & (fb.score <= NPS_DETRACTOR)).cast("int64").sum()
        return m

    def mean_score(at: At, w: int | None) -> ir.FloatingValue:
        return _ratio(at.sum("score_sum", w), at.sum("score_n", w))

    def score_trend(at: At) -> ir.FloatingValue:
        before_n = at.sum("score_n", TREND_SPAN) - at.sum("score_n", TREND_RECENT)
        before = _ratio(at.sum("score_sum", TREND_SPAN) - at.sum("score_sum", TREND_RECENT), before_n)
        return mean_score(at, TREND_RECENT) - before

    fam, top = "feedback", max(spec.windows)
    feats: list[Feature] = []
    for w in spec.windows:
        feats += [
            _n(f"fb_count_{w}d", fam, w, f"Feedback given in the last {w} days: {{value}}", lambda at, w=w: at.sum("n", w)),
            _f(f"fb_mean_score_{w}d", fam, w, f"Average feedback score in the last {w} days: {{value}}",
               lambda at, w=w: mean_score(at, w)),
            _f(f"fb_min_score_{w}d", fam, w, f"Lowest feedback score in the last {w} days: {{value}}",
               lambda at, w=w: at.least("score_min", w)),
            _f(f"fb_negative_share_{w}d", fam, w, f"Share of negative scores in the last {w} days: {{value}}",
               lambda at, w=w: _ratio(at.sum("negative", w), at.sum("score_n", w)), "share"),
        ]
        for k, s in kinds.items():
            feats.append(_n(f"fb_{s}_{w}d", fam, w, f"'{k}' feedback in the last {w} days: {{value}}",
                            lambda at, w=w, s=s: at.sum(f"k_{s}", w)))
    feats += [
        _f("fb_last_score", fam, None, "Latest feedback score: {value}", lambda at: at.latest("last_score")),
        _f("fb_mean_score_all", fam, None, "Average feedback score ever: {value}", lambda at: mean_score(at, None)),
        _f("fb_days_since_last", fam, None, "Time since the last feedback: {value}",
           lambda at: at.since(at.greatest("last")), "days"),
        _f("fb_days_since_last_negative", fam, None, "Time since the last negative score: {value}",
           lambda at: at.since(at.greatest("last_negative")), "days"),
        _f("fb_score_trend_30_60", fam, TREND_SPAN, "Change in average score, last 30 days against the 60 before: {value}",
           score_trend),
    ]
    if "nps" in kinds:
        feats += [
            _n(f"fb_nps_promoter_{top}d", fam, top, f"NPS promoter answers in the last {top} days: {{value}}",
               lambda at: at.sum("promoters", top)),
            _n(f"fb_nps_detractor_{top}d", fam, top, f"NPS detractor answers in the last {top} days: {{value}}",
               lambda at: at.sum("detractors", top)),
        ]
    return Family(fam, "feedback", "timestamp", "f_", measures, feats)


BUCKETED = {"engagement": _engagement, "purchase": _purchase, "feedback": _feedback}


def _subscription_catalog(spec: FeatureSpec) -> list[FeatureInfo]:
    fam = "subscription"
    out = [FeatureInfo("sub_active", fam, None, "numeric", "Subscription running at the time (1 = yes): {value}"),
           FeatureInfo("sub_tenure_days", fam, None, "numeric", "Time since the first subscription: {value}", "days"),
           FeatureInfo("sub_mrr", fam, None, "numeric", "Current monthly recurring revenue: {value}", "currency")]
    if "sub_plan" in spec.levels:
        out.append(FeatureInfo("sub_plan", fam, None, "categorical", "Current plan: {value}"))
    out += [FeatureInfo("sub_plan_changes", fam, None, "numeric", "Plan changes so far: {value}"),
            FeatureInfo("sub_past_subscriptions", fam, None, "numeric", "Subscriptions ended before: {value}"),
            FeatureInfo("sub_days_to_renewal", fam, None, "numeric", "Time to the next monthly renewal: {value}", "days")]
    for w in spec.windows:
        out.append(FeatureInfo(f"sub_upgrades_{w}d", fam, w, "numeric", f"Upgrades in the last {w} days: {{value}}"))
        out.append(FeatureInfo(f"sub_downgrades_{w}d", fam, w, "numeric", f"Downgrades in the last {w} days: {{value}}"))
    return out


def _profile_catalog(spec: FeatureSpec) -> list[FeatureInfo]:
    out = [FeatureInfo("prof_days_since_signup", "profile", None, "numeric", "Customer for {value}", "days")]
    for name, kind in spec.attributes.items():
        out.append(FeatureInfo(f"prof_{_slug(name)}", "profile", None, kind, f"{name.replace('_', ' ').capitalize()}: {{value}}"))
    return out


def feature_catalog(spec: FeatureSpec) -> list[FeatureInfo]:
    """Every feature `build_features` makes for this spec, in column order, less `spec.dropped`."""
    out: list[FeatureInfo] = []
    for family in spec.families:
        if family in BUCKETED:
            out += [feature.info for feature in BUCKETED[family](spec).features]
        elif family == "subscription":
            out += _subscription_catalog(spec)
        elif family == "profile":
            out += _profile_catalog(spec)
        elif family == "purchase_process":
            out += purchase_process.catalog(int(spec.horizon_days))
    if not spec.dropped:
        return out
    unknown = sorted(set(spec.dropped) - {info.name for info in out})
    if unknown:
        raise ValueError(f"feature spec: dropped features {unknown} are not features of this spec")
    return [info for info in out if info.name not in set(spec.dropped)]


# ---------------------------------------------------------------- compatibility


# the columns each family always reads, and the kind of values it needs in them
FAMILY_COLUMNS: dict[str, dict[str, str]] = {
    "engagement": {"customer_id": "any", "timestamp": "timestamp", "event_type": "any"},
    "purchase": {"customer_id": "any", "timestamp": "timestamp", "amount": "numeric"},
    "purchase_process": {"customer_id": "any", "timestamp": "timestamp"},
    "feedback": {"customer_id": "any", "timestamp": "timestamp", "score": "numeric"},
    "subscription": {"customer_id": "any", "start_date": "timestamp", "end_date": "timestamp"},
    "profile": {"customer_id": "any", "signup_date": "timestamp"},
}


def _needed_columns(spec: FeatureSpec) -> dict[str, dict[str, str]]:
    """family -> column of its table -> the kind of values the features built from it need."""
    optional = {  # read only when the trained spec has the features built from them
        "engagement": {"value": "numeric"} if spec.has_event_value else {},
        "feedback": {"kind": "any"} if spec.feedback_kinds else {},
        "subscription": {"plan": "any"} if "sub_plan" in spec.levels else {},
        "profile": dict(spec.attributes),
    }
    return {family: {**FAMILY_COLUMNS[family], **optional.get(family, {})}
            for family in FAMILY_COLUMNS if family in spec.families}


def check_compatible(spec: FeatureSpec, tables: dict[str, ir.Table]) -> None:
    """Fail before any work when this data cannot give the model its features: a table or column
    missing, or a column whose type differs from training (a numeric attribute that is now text,
    a categorical one that is now a number). The message names the features affected."""
    problems = []
    for family, columns in _needed_columns(spec).items():
        table = FAMILY_TABLE[family]
        names = [info.name for info in feature_catalog(spec) if info.family == family]
        if table not in tables:
            problems.append(f"table '{table}' is missing, needed by {len(names)} {family} features "
                            f"(e.g. {', '.join(names[:3])})")
            continue
        schema = tables[table].schema()
        for column, kind in columns.items():
            affected = [n for n in names if n == f"prof_{_slug(column)}"] or names[:3]
            if column not in schema:
                problems.append(f"{table}.{column} is missing, needed by {', '.join(affected)}")
                continue
            dtype = schema[column]
            wrong = ((kind == "numeric" and not (dtype.is_numeric() or dtype.is_boolean()))
                     or (kind == "timestamp" and not (dtype.is_timestamp() or dtype.is_date()))
                     or (kind == "categorical" and (dtype.is_numeric() or dtype.is_boolean())))
            if wrong:
                problems.append(f"{table}.{column} is {dtype} but the model was trained with it as {kind} "
                                f"(features: {', '.join(affected)})")
    if problems:
        raise ValueError("this data does not fit the model's features:\n  " + "\n  ".join(problems))


# ---------------------------------------------------------------- building


def build_features(tables: dict[str, ir.Table], observations: ir.Table, spec: FeatureSpec,
                   population: purchase_process.Population | None = None) -> ir.Table:
    """One row per distinct observation (customer_id, cutoff), with every feature of the catalog.

    Cutoffs must be midnights. Many distinct cutoffs (custom label times) are built in batches;
    each batch is one pass over each activity table.

    `population`: the purchase-process model fitted per cutoff (`purchase_process.fit_population`)
    on every customer in the orders table. Cutoffs it lacks are fitted here, on `tables["orders"]`:
    a caller building a slice of the customers must fit on all of them first and pass it, or the
    features would depend on the slicing.
    """
    for family in spec.families:
        if FAMILY_TABLE[family] not in tables:
            raise ValueError(f"the model was built with {family} features but this dataset has no "
                             f"{FAMILY_TABLE[family]} table")
    obs = observations.select(
        customer_id=observations.customer_id.cast("string"), cutoff=observations.cutoff.cast("timestamp"),
    ).distinct()
    cutoffs = sorted(pd.Timestamp(c).to_pydatetime() for c in obs.select("cutoff").distinct().to_pandas()["cutoff"])
    if not cutoffs:
        empty = {"customer_id": "string", "cutoff": "timestamp"}
        types = {info.name: ("string" if info.kind == "categorical" else "float64") for info in feature_catalog(spec)}
        return ibis.memtable(pd.DataFrame(columns=[*empty, *types]), schema={**empty, **types})
    batches = [cutoffs[i:i + MAX_CUTOFFS_PER_PASS] for i in range(0, len(cutoffs), MAX_CUTOFFS_PER_PASS)]
    parts = [_build_batch(tables, obs, spec, batch, restrict=len(batches) > 1) for batch in batches]
    result = parts[0] if len(parts) == 1 else ibis.union(*parts, distinct=False)
    if "purchase_process" in spec.families:
        result = _with_purchase_process(result, tables["orders"], obs, spec, cutoffs, population)
    # types come from the catalog, never from the data: every chunk and every run agree
    return result.select(*CUSTOMER_KEYS, **{
        info.name: result[info.name].cast("string" if info.kind == "categorical" else "float64")
        for info in feature_catalog(spec)})


def _with_purchase_process(result: ir.Table, orders: ir.Table, obs: ir.Table, spec: FeatureSpec,
                           cutoffs: list[datetime], population: purchase_process.Population | None) -> ir.Table:
    """Left join of the purchase-process features (one row per observation with a purchase before
    it): the model's closed forms run in numpy, batch by batch (`purchase_process.features`)."""
    population = dict(population or {})
    missing = [c for c in cutoffs if c not in population]
    if missing:
        population.update(purchase_process.fit_population(orders, missing))
    ppr = purchase_process.features(orders, obs, int(spec.horizon_days), population)
    joined = result.left_join(ppr, CUSTOMER_KEYS)
    return joined.drop("customer_id_right", "cutoff_right")


def _build_batch(tables: dict[str, ir.Table], obs: ir.Table, spec: FeatureSpec,
                 cutoffs: list[datetime], restrict: bool) -> ir.Table:
    grid = Grid.for_cutoffs(cutoffs, [*spec.windows, TREND_RECENT, TREND_SPAN])
    batch = obs.filter(obs.cutoff.isin([ibis.literal(c) for c in cutoffs]))
    out = batch
    for family in (BUCKETED[f](spec) for f in spec.families if f in BUCKETED):
        table = _prepared(family.table, tables[family.table])
        if restrict:  # a batch of custom cutoffs concerns only some customers
            table = table.semi_join(batch.select("customer_id").distinct(), "customer_id")
        rows = window_rows(table, family.time_column, grid, family.measures)
        at = At(rows)
        agg = rows.group_by(["customer_id", "_cutoff"]).aggregate(
            **{f.info.name: f.expr(at) for f in family.features})
        out = out.left_join(agg, (out.customer_id == agg.customer_id) & (out.cutoff == agg._cutoff))
        out = out.select(*[c for c in out.columns if c not in ("customer_id_right", "_cutoff")])
        out = out.mutate(**{f.info.name: out[f.info.name].fill_null(0) for f in family.features if f.zero_if_absent})
    if "subscription" in spec.families:
        out = out.left_join(_subscription(tables["subscriptions"], batch, spec), CUSTOMER_KEYS)
        out = out.drop("customer_id_right", "cutoff_right")
    if "profile" in spec.families:
        out = out.left_join(_profile(tables["customers"], batch, spec), CUSTOMER_KEYS)
        out = out.drop("customer_id_right", "cutoff_right")
    return out


def _prepared(name: str, table: ir.Table) -> ir.Table:
    """Per-row inputs a family's measures need beyond the raw columns."""
    if name == "orders":
        previous = table.timestamp.lag().over(ibis.window(group_by="customer_id", order_by="timestamp"))
        # whole seconds, as an exact decimal: their squares sum exactly on every engine, where a
        # float gap in days cast to a decimal rounds differently on DuckDB and on Spark
        return table.mutate(gap_seconds=table.timestamp.delta(previous, unit="second").cast(WHOLE))
    return table


def _differs(value: ir.Value, previous: ir.Value) -> ir.BooleanValue:
    """value IS DISTINCT FROM previous, in portable Ibis: a value appearing or vanishing is a
    difference, two missing values are not."""
    return (value != previous).fill_null(value.isnull() != previous.isnull())


def _subscription(subs: ir.Table, obs: ir.Table, spec: FeatureSpec) -> ir.Table:
    """Subscriptions are few per customer: a direct join to the observations is cheap.

    Only what was known at the cutoff is used: rows started before it, and of an end date only
    whether it had passed (an end after the cutoff is the future). A plan change is a row whose
    plan or MRR differs from the customer's previous row: many products write one row per billing
    period, and a renewal on the same plan and price is not a change (counting rows made this
    feature a copy of tenure). An upgrade is a row that starts on the day the previous one ended
    with a higher MRR, a downgrade one with a lower MRR.
    """
    by_customer = ibis.window(group_by="customer_id", order_by=["start_date", "end_date"])
    has_mrr = "mrr" in subs.columns
    mrr = subs.mrr if has_mrr else ibis.literal(None, type="float64")
    # the plan is read only when the trained spec has it, as check_compatible requires
    has_plan = "sub_plan" in spec.levels
    plan = subs.plan.cast("string") if has_plan else ibis.literal(None, type="string")
    subs = subs.mutate(
        _prev_start=subs.start_date.lag().over(by_customer),
        _prev_end=subs.end_date.lag().over(by_customer),
        _prev_mrr=mrr.lag().over(by_customer) if has_mrr else mrr,
        _prev_plan=plan.lag().over(by_customer) if has_plan else plan,
        _next_start=subs.start_date.lead().over(by_customer),
        _mrr=mrr,
        _plan=plan,
    )
    back_to_back = subs._prev_end.notnull() & (subs._prev_end.truncate("D") == subs.start_date.truncate("D"))
    subs = subs.mutate(
        _change=subs._prev_start.notnull() & (_differs(subs._plan, subs._prev_plan) | _differs(subs._mrr, subs._prev_mrr)),
        _upgrade=back_to_back & (subs._mrr > subs._prev_mrr),
        _downgrade=back_to_back & (subs._mrr < subs._prev_mrr),
        # ended for good: no row starts on the day it ended (known once the end has passed)
        _terminated=subs.end_date.notnull() & (
            subs._next_start.isnull() | (subs._next_start.truncate("D") != subs.end_date.truncate("D"))),
    )
    joined = obs.join(subs, obs.customer_id == subs.customer_id).filter(lambda t: t.start_date < t.cutoff)
    running = joined.end_date.isnull() | (joined.end_date >= joined.cutoff)
    running_start = ibis.ifelse(running, joined.start_date, None)
    aggs: dict[str, ir.Value] = {
        "sub_active": running.cast("int64").max(),
        "first_start": joined.start_date.min(),
        "current_start": running_start.max(),
        "sub_mrr": ibis.ifelse(running, joined._mrr, 0.0).cast(EXACT).sum(),
        "sub_plan_changes": joined._change.cast("int64").sum(),
        "sub_past_subscriptions": (joined._terminated & (joined.end_date < joined.cutoff)).cast("int64").sum(),
    }
    if "sub_plan" in spec.levels:
        # the plan of a running row only: where nothing runs, DuckDB's arg_max and Spark's max_by
        # disagree on which row they take, and the answer is no plan
        aggs["sub_plan"] = ibis.ifelse(running, joined.plan.cast("string"), None).argmax(running_start)
    for w in spec.windows:
        recent = joined.start_date >= joined.cutoff - ibis.interval(days=w)
        aggs[f"sub_upgrades_{w}d"] = (joined._upgrade & recent).cast("int64").sum()
        aggs[f"sub_downgrades_{w}d"] = (joined._downgrade & recent).cast("int64").sum()
    agg = joined.group_by(CUSTOMER_KEYS).aggregate(**aggs)
    full = obs.left_join(agg, CUSTOMER_KEYS)
    into_cycle = days_between(full.cutoff, full.current_start)
    cols: dict[str, ir.Value] = {
        "sub_active": full.sub_active.fill_null(0),
        "sub_tenure_days": days_between(full.cutoff, full.first_start),
        "sub_mrr": full.sub_mrr.fill_null(0.0) if has_mrr else full.sub_mrr,
    }
    if "sub_plan" in spec.levels:
        cols["sub_plan"] = full.sub_plan
    cols["sub_plan_changes"] = full.sub_plan_changes.fill_null(0)
    cols["sub_past_subscriptions"] = full.sub_past_subscriptions.fill_null(0)
    # monthly billing from the current row's start: days left in the running cycle
    cols["sub_days_to_renewal"] = AVG_MONTH_DAYS - (into_cycle - (into_cycle / AVG_MONTH_DAYS).floor() * AVG_MONTH_DAYS)
    for w in spec.windows:
        cols[f"sub_upgrades_{w}d"] = full[f"sub_upgrades_{w}d"].fill_null(0)
        cols[f"sub_downgrades_{w}d"] = full[f"sub_downgrades_{w}d"].fill_null(0)
    return full.select(full.customer_id, full.cutoff, **cols)


def _profile(customers: ir.Table, obs: ir.Table, spec: FeatureSpec) -> ir.Table:
    joined = obs.join(customers, obs.customer_id == customers.customer_id)
    cols: dict[str, ir.Value] = {"prof_days_since_signup": days_between(joined.cutoff, joined.signup_date)}
    for name, kind in spec.attributes.items():
        column = joined[name]
        cols[f"prof_{_slug(name)}"] = column.cast("float64") if kind == "numeric" else column.cast("string")
    return joined.select(obs.customer_id, obs.cutoff, **cols)


# ---------------------------------------------------------------- bounded-memory output


def customer_slice(table: ir.Table, slices: int, k: int) -> ir.Table:
    """The rows of customers whose id hashes to slice k of `slices` (the same slice in every table)."""
    if slices == 1:
        return table
    h = table.customer_id.cast("string").hash()
    return table.filter(((h % slices) + slices) % slices == k)


def fit_population(spec: FeatureSpec, tables: dict[str, ir.Table],
                   cutoffs: list[datetime]) -> purchase_process.Population | None:
    """The purchase-process model at each cutoff, fitted on ALL customers: callers that build
    slices of the customers fit it once, before slicing, and pass it to every `build_features`,
    so the features do not depend on the chunking. None when the spec has no such family."""
    if "purchase_process" not in spec.families or "orders" not in tables:
        return None
    return purchase_process.fit_population(tables["orders"], sorted(set(cutoffs)))


def write_features(con: ibis.BaseBackend, tables: dict[str, ir.Table], observations: ir.Table,
                   spec: FeatureSpec, target: parquet.Location, customers_per_chunk: int = 250_000) -> int:
    """Build the features chunk by chunk of customers and write them atomically to `target`.

    Customers are independent, so each chunk is a complete build on a slice of every table; the
    largest hash tables then hold one chunk, and memory stays bounded whatever the base size.
    On Spark (or to a URI) the build is one job, written as a Parquet folder. Returns the number
    of chunks. Rows are sorted by (customer_id, cutoff), so the file is the same
    bytes whatever the threads or the chunking: a rerun on unchanged inputs changes nothing downstream.
    """
    cutoffs = observations.select(cutoff=observations.cutoff.cast("timestamp")).distinct().to_pandas()["cutoff"]
    population = fit_population(spec, tables, [pd.Timestamp(c).to_pydatetime() for c in cutoffs])
    if spark.is_spark(con) or parquet.is_remote(target):
        # Spark bounds memory itself, per partition; its executors write a Parquet folder
        parquet.write(con, build_features(tables, observations, spec, population), target, CUSTOMER_KEYS)
        return 1
    customers = int(observations.select("customer_id").distinct().count().execute())
    slices = max(1, math.ceil(customers / max(1, customers_per_chunk)))
    with atomic_path(Path(target)) as tmp:
        if slices == 1:
            copy_parquet(con, build_features(tables, observations, spec, population), tmp, CUSTOMER_KEYS)
            return 1
        parts = tmp.with_name(tmp.name + ".parts")
        parts.mkdir()
        try:
            for k in range(slices):
                log.info("features: chunk %d of %d", k + 1, slices)
                chunk = {name: customer_slice(t, slices, k) for name, t in tables.items()}
                con.to_parquet(build_features(chunk, customer_slice(observations, slices, k), spec, population),
                               str(parts / f"part-{k:04d}.parquet"))
            # the parts come in hash order; only the merged file needs the fixed order
            copy_parquet(con, con.read_parquet(str(parts / "*.parquet")), tmp, CUSTOMER_KEYS)
        finally:
            shutil.rmtree(parts, ignore_errors=True)
    return slices
