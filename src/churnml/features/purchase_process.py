"""Purchase-process features for non-contractual data ("buy till you die").

At each cutoff a customer with orders before it is summarised on purchase DAYS (several orders on
one day are one purchase, as in the BTYD literature): x = repeat purchases (distinct purchase days
- 1), t_x = days from the first purchase day to the last, T = days from the first purchase day to
the cutoff. A BG/NBD model (`churnml.features.btyd`) is fitted on every customer who bought before
that cutoff, so its parameters use nothing at or after it; its closed forms then give each observed
customer P(alive), the expected purchases in the label horizon and P(no purchase in the horizon).
Two model-free measures sit beside them, from the customer's own gaps between purchase days.

The summaries are Ibis (portable: DuckDB or Spark); the four-parameter fit and the closed forms
run in numpy on the per-customer summary, one row per observation, and are joined back.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from churnml.data.engine import map_batches
from churnml.features import btyd
from churnml.features.catalog import FeatureInfo
from churnml.features.windows import At, Grid, days_between, window_rows

log = logging.getLogger(__name__)

FAMILY = "purchase_process"
# one population fit per cutoff, on a point-in-time summary: None when nobody bought before it
Population = dict[datetime, "btyd.BgNbd | None"]


def catalog(horizon_days: int) -> list[FeatureInfo]:
    h = int(horizon_days)

    def info(name: str, template: str, unit: str = "") -> FeatureInfo:
        return FeatureInfo(name, FAMILY, None, "numeric", template, unit)

    return [
        info("ppr_repeat_purchases", "Repeat purchases so far (days with a purchase after the first): {value}"),
        info("ppr_days_first_to_last", "Time from the first purchase to the latest: {value}", "days"),
        info("ppr_days_since_first", "Time since the first purchase: {value}", "days"),
        info("ppr_p_alive", "Chance the customer still buys at all (BG/NBD model): {value}", "share"),
        info(f"ppr_expected_purchases_{h}d", f"Purchases the BG/NBD model expects in the next {h} days: {{value}}"),
        info(f"ppr_p_no_purchase_{h}d", f"Chance of no purchase in the next {h} days (BG/NBD model): {{value}}", "share"),
        # (T - t_x) / (t_x / x): like pur_overdue_ratio but on purchase days, the BTYD unit
        info("ppr_overdue_ratio", "Time since the last purchase, in the customer's usual gaps between purchase days: {value}"),
        # P(gap <= s + h | gap > s) over the customer's own past gaps between purchase days, s = days
        # since the last one; missing with fewer than 2 gaps; 0 when no past gap was longer than s
        info(f"ppr_own_gap_p_next_{h}d",
             f"Chance of a purchase in the next {h} days judged by the customer's own past gaps: {{value}}", "share"),
    ]


def purchase_days(orders: ir.Table) -> ir.Table:
    """(customer_id, day): one row per customer and day with an order."""
    return orders.select(customer_id=orders.customer_id.cast("string"),
                         day=orders.timestamp.cast("timestamp").truncate("D")).distinct()


def population_summary(orders: ir.Table, cutoffs: list[datetime]) -> pd.DataFrame:
    """(cutoff, x, t_x, T, customers): how many customers share each (x, t_x, T) at each cutoff,
    over every customer with a purchase before it. One bucketed pass (`window_rows`), no join of
    orders to cutoffs; day-level triples repeat a lot, so this frame stays small."""
    grid = Grid.for_cutoffs(cutoffs, [])
    rows = window_rows(purchase_days(orders), "day", grid,
                       lambda d: {"n": d.count(), "first": d.day.min(), "last": d.day.max()})
    at = At(rows)
    per = rows.group_by(["customer_id", "_cutoff"]).aggregate(
        x=at.sum("n") - 1, t_x=days_between(at.greatest("last"), at.least("first")), T=at.since(at.least("first")))
    out = per.group_by(["_cutoff", "x", "t_x", "T"]).aggregate(customers=per.count()).to_pandas()
    # a fixed row order: the likelihood is a float sum, and the fit must not depend on thread timing
    out = out.rename(columns={"_cutoff": "cutoff"}).sort_values(["cutoff", "x", "t_x", "T"], kind="stable")
    return out.reset_index(drop=True)


def fit_population(orders: ir.Table, cutoffs: list[datetime]) -> Population:
    """BG/NBD parameters at each cutoff, fitted on everyone who bought before it."""
    if not cutoffs:
        return {}
    summary = population_summary(orders, cutoffs)
    fitted: Population = {}
    for cutoff in cutoffs:
        rows = summary[summary["cutoff"] == pd.Timestamp(cutoff)]
        if rows.empty:
            log.info("purchase process: no purchases before %s, so no BG/NBD features there", cutoff)
            fitted[cutoff] = None
            continue
        fitted[cutoff] = btyd.fit(rows["x"].to_numpy(), rows["t_x"].to_numpy(), rows["T"].to_numpy(),
                                  rows["customers"].to_numpy())
        log.info("purchase process: BG/NBD at %s on %d customers: %s", cutoff.date(),
                 int(rows["customers"].sum()), fitted[cutoff])
    return fitted


def customer_summary(orders: ir.Table, obs: ir.Table, horizon_days: int) -> ir.Table:
    """Per observed (customer_id, cutoff) with a purchase before the cutoff: x, t_x, T, days since
    the last purchase day, and the counts of past gaps the own-gap probability needs.

    The purchase days are joined to the observations, like subscriptions: a customer has far fewer
    purchase days than events, and the gap condition depends on each cutoff's recency."""
    days = purchase_days(orders)
    previous = days.day.lag().over(ibis.window(group_by="customer_id", order_by="day"))
    days = days.mutate(gap=days_between(days.day, previous))  # a gap ends on a purchase day: point in time
    joined = obs.join(days, "customer_id").filter(lambda t: t.day < t.cutoff)
    last = joined.day.max().over(ibis.window(group_by=["customer_id", "cutoff"]))
    joined = joined.mutate(since=days_between(joined.cutoff, last))
    longer = joined.gap > joined.since
    return joined.group_by(["customer_id", "cutoff"]).aggregate(
        x=joined.count() - 1,
        t_x=days_between(joined.day.max(), joined.day.min()),
        T=days_between(joined.cutoff.max(), joined.day.min()),
        since=joined.since.max(),
        gaps=joined.gap.count(),
        longer=longer.cast("int64").sum(),
        within=(longer & (joined.gap <= joined.since + float(horizon_days))).cast("int64").sum(),
    )


def features(orders: ir.Table, obs: ir.Table, horizon_days: int, population: Population) -> ir.Table:
    """(customer_id, cutoff, ppr_*) for the observations with a purchase before their cutoff; the
    others get missing values from the caller's left join (no purchase, no purchase process).

    The closed forms run in numpy on batches of the per-customer summary: in process on DuckDB,
    on the executors on Spark, so the summary is never collected there."""
    h = int(horizon_days)
    schema = ibis.schema({"customer_id": "string", "cutoff": "timestamp",
                          **{info.name: "float64" for info in catalog(h)}})
    return map_batches(customer_summary(orders, obs, h), partial(summary_features, horizon_days=h,
                                                                 population=population), schema)


def summary_features(s: pd.DataFrame, horizon_days: int, population: Population) -> pd.DataFrame:
    """The ppr_* features of rows of `customer_summary`, row by row."""
    h = int(horizon_days)
    names = [info.name for info in catalog(h)]
    out = pd.DataFrame({"customer_id": s["customer_id"].astype("string"),
                        "cutoff": pd.to_datetime(s["cutoff"])})
    x, t_x, T = (s[c].astype("float64").to_numpy() for c in ("x", "t_x", "T"))
    out["ppr_repeat_purchases"], out["ppr_days_first_to_last"], out["ppr_days_since_first"] = x, t_x, T
    for column in names[3:6]:
        out[column] = np.nan
    for cutoff, index in out.groupby("cutoff").groups.items():
        params = population.get(pd.Timestamp(cutoff).to_pydatetime())
        if params is None:
            continue
        rows = out.index.get_indexer(index)
        out.loc[index, "ppr_p_alive"] = btyd.p_alive(params, x[rows], t_x[rows], T[rows])
        out.loc[index, names[4]] = btyd.expected_purchases(params, h, x[rows], t_x[rows], T[rows])
        out.loc[index, names[5]] = btyd.p_no_purchase(params, h, x[rows], t_x[rows], T[rows])
    since = s["since"].astype("float64").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ppr_overdue_ratio"] = np.where(x > 0, since / (t_x / x), np.nan)
        longer, within = s["longer"].astype("float64").to_numpy(), s["within"].astype("float64").to_numpy()
        own = np.where(longer > 0, within / longer, 0.0)
    out[names[7]] = np.where(s["gaps"].to_numpy() >= 2, own, np.nan)
    return out[["customer_id", "cutoff", *names]]
