"""The subscriptions table: one spell per stretch of unchanged plan and price. A spell opens at
signup, a plan change, a price increase, a restart after a failed payment or a return, and closes at
the next change, the failed payment or churn; pay-as-you-go customers have none."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnml.data.generate.parameters import GenerationParams
from churnml.data.generate.population import Population
from churnml.data.generate.timeline import NEVER
from churnml.data.generate.weekly import History


@dataclass(frozen=True)
class Spells:
    """Rows sorted by customer and start."""

    cust: np.ndarray  # customer row in the chunk
    start: np.ndarray  # day
    end: np.ndarray  # day; meaningless where not has_end
    has_end: np.ndarray
    plan: np.ndarray  # index into PLANS
    mrr: np.ndarray
    lapsed: np.ndarray  # per customer: had a failed payment


def draw_subscriptions(
    rng: np.random.Generator, pop: Population, hist: History, n_days: int, p: GenerationParams
) -> Spells:
    """Plant failed payments, then cut each subscription customer's time into spells priced at list
    price x price ratio x any increase."""
    pp = hist.pp
    changed = pp.change_day < NEVER
    increased = pp.inc_day < NEVER
    lapse, lapse_day, restart = _draw_lapses(rng, pop, hist, n_days, p)
    sub = pop.sub
    back_sub = sub & hist.returned
    open_c = np.concatenate(
        [np.flatnonzero(sub), np.flatnonzero(changed), np.flatnonzero(increased),
         np.flatnonzero(lapse), np.flatnonzero(back_sub)]
    )
    open_d = np.concatenate(
        [pop.signup_day[sub], pp.change_day[changed], pp.inc_day[increased], restart[lapse], hist.return_day[back_sub]]
    )
    gone_sub = sub & hist.churned
    close_c = np.concatenate(
        [np.flatnonzero(changed), np.flatnonzero(increased), np.flatnonzero(lapse), np.flatnonzero(gone_sub)]
    )
    close_d = np.concatenate(
        [pp.change_day[changed], pp.inc_day[increased], lapse_day[lapse], hist.churn_day[gone_sub]]
    )
    open_c, open_d, has_end, end_d = _pair_spells(open_c, open_d, close_c, close_d)
    row_plan = np.where(changed[open_c] & (open_d >= pp.change_day[open_c]), pp.plan[open_c], pp.plan_before[open_c])
    row_inc = np.where(increased[open_c] & (open_d >= pp.inc_day[open_c]), pp.incf[open_c], 1.0)
    mrr = np.round(np.array(p.list_price)[row_plan] * pop.ratio[open_c] * row_inc, 2)
    return Spells(open_c, open_d, end_d, has_end, row_plan, mrr, lapse)


def _draw_lapses(
    rng: np.random.Generator, pop: Population, hist: History, n_days: int, p: GenerationParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plant failed payments: a share of subscription customers lapse on a day after signup and
    restart 1-7 days later, before churn and away from a plan change or price increase; returns
    (lapsed, lapse day, restart day)."""
    n = pop.n
    pp = hist.pp
    lapse_day = np.maximum(pop.signup_day, 0) + 1 + (rng.random(n) * n_days).astype(np.int64)
    restart = lapse_day + rng.integers(1, 8, n)
    limit = np.minimum(hist.churn_day, n_days) - 1
    lapse = (
        pop.sub
        & (rng.random(n) < p.lapse_share)
        & (restart < limit)
        & ~((pp.change_day >= lapse_day - 1) & (pp.change_day <= restart + 1))
        & ~((pp.inc_day >= lapse_day - 1) & (pp.inc_day <= restart + 1))
    )
    return lapse, lapse_day, restart


def _pair_spells(
    open_c: np.ndarray, open_d: np.ndarray, close_c: np.ndarray, close_d: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Match each customer's k-th opening (by day) with their k-th closing; returns the openings
    sorted by (customer, day) with whether they end and the day they do."""
    oo = np.lexsort((open_d, open_c))
    open_c, open_d = open_c[oo], open_d[oo]
    co = np.lexsort((close_d, close_c))
    close_c, close_d = close_c[co], close_d[co]
    open_rank = np.arange(open_c.size) - np.searchsorted(open_c, open_c, side="left")
    close_rank = np.arange(close_c.size) - np.searchsorted(close_c, close_c, side="left")
    key_open = open_c * 64 + open_rank
    key_close = close_c * 64 + close_rank
    if key_close.size:
        pos = np.minimum(np.searchsorted(key_close, key_open), key_close.size - 1)
        has_end = key_close[pos] == key_open
        end_d = np.where(has_end, close_d[pos], 0)
    else:
        has_end = np.zeros(open_c.size, bool)
        end_d = np.zeros(open_c.size, np.int64)
    return open_c, open_d, has_end, end_d
