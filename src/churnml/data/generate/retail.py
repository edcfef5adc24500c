"""The ``orders`` shape: a retailer, whose customers buy when they like and leave without a word.

In the spirit of Pareto/NBD and Pareto/GGG (Platzer & Reutterer 2016), not the weekly latent loop:

- each customer buys at their own rate, lambda ~ Gamma (shape below 1: many light buyers, a few heavy);
- the gaps between a customer's orders are Gamma(k, mean 1/lambda) with the regularity k drawn per
  customer, so some buy in bursts (k < 1) and some on a rhythm (k > 2);
- each customer dies at an unseen time, Exponential(mu) after signing up, with mu ~ Gamma scaled by
  the acquisition channel; nothing marks the death, the orders simply stop;
- a share of deaths fade first: in the weeks before, the gaps stretch by exp(strength * progress);
- spend per order is Gamma around the customer's own mean (lognormal), independent of frequency.

The first order is on the signup day (a retailer knows a customer from the first order). Gaps are
drawn round by round for the customers still alive and inside the window, vectorised over the chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnml.data.generate import tables
from churnml.data.generate.chunk import Chunk
from churnml.data.generate.orders import Orders
from churnml.data.generate.parameters import GenerationParams
from churnml.data.generate.population import Population, signup_days
from churnml.data.generate.timeline import NEVER, sort_rows, time_of_day
from churnml.data.generate.vocab import CHANNEL_SHARE, CHANNELS, COUNTRIES, COUNTRY_SHARE, DISENGAGEMENT, PAYG, RANDOM

MONTH_DAYS = 365.25 / 12


@dataclass(frozen=True)
class RetailParams:
    """Every number the retail simulation uses; written to ground_truth.json as is."""

    initial_share: float = 0.35  # customers already signed up when the window opens (up to 3 years before)
    growth: float = 1.0  # signup density rises linearly by this factor over the window
    rate_shape: float = 0.8  # Gamma shape of lambda across customers
    orders_per_week: float = 0.22  # mean lambda: about one order every 4.5 weeks
    regularity_median: float = 1.5  # median Gamma shape k of a customer's gaps (lognormal across customers)
    regularity_sigma: float = 0.7
    dropout_shape: float = 1.5  # Gamma shape of mu across customers
    dropout_per_month: float = 0.035  # mean mu before the channel multiplier
    channel_dropout_multiplier: tuple[float, ...] = (1.0, 1.4, 0.7, 0.9, 1.3)  # by CHANNELS
    fade_share: float = 0.4  # of deaths are preceded by a visible slowdown
    fade_weeks: tuple[float, float] = (6.0, 20.0)  # uniform length of the slowdown
    fade_strength: float = 1.5  # gaps x exp(fade_strength * progress through the slowdown)
    spend_median: float = 35.0  # per-customer mean spend per order (lognormal)
    spend_sigma: float = 0.6
    amount_shape: float = 6.0  # per-order amount ~ Gamma(shape, mean = the customer's mean spend)
    extra_items: float = 0.6  # quantity = 1 + Poisson(extra_items)


@dataclass(frozen=True)
class Buyers:
    """One entry per customer of the chunk: the hidden purchase and dropout process."""

    pop: Population
    lam: np.ndarray  # orders per day while alive
    k: np.ndarray  # regularity: Gamma shape of the gaps
    death_day: np.ndarray  # days since the window opened; the first day without the customer
    faded: np.ndarray  # the death is preceded by a slowdown
    fade_days: np.ndarray
    spend: np.ndarray  # mean amount per order


def simulate_retail_chunk(
    rng: np.random.Generator, first: int, n: int, n_days: int, base_us: int, id_width: int, order_offset: int,
    p: RetailParams,
) -> Chunk:
    """Customers first+1 .. first+n over `n_days` days from `base_us`: customers, orders, churn_truth.
    Do not reorder the draws: their order keeps a seed's output byte-identical."""
    buyers = draw_buyers(rng, n, n_days, p)
    cust, t, before = purchase_times(rng, buyers, n_days, p.fade_strength)
    orders = draw_baskets(rng, cust, t, buyers.spend, p)
    churned = buyers.death_day < n_days
    cause = np.where(churned, np.where(buyers.faded, DISENGAGEMENT, RANDOM), -1)
    cid = tables.customer_ids(first, n, id_width)
    chunk_tables = {
        # list_price of payg is 0, ratio 1: monthly_price 0
        "customers": tables.customers_table(cid, base_us, buyers.pop, GenerationParams()),
        "orders": tables.orders_table(cid, base_us, orders, order_offset),
        "churn_truth": tables.truth_rows(
            cid, base_us, np.where(churned, buyers.death_day, NEVER), cause, buyers.pop.bill, np.full(n, NEVER)
        ),
    }
    return Chunk(chunk_tables, retail_stats(buyers, n_days, before))


def draw_buyers(rng: np.random.Generator, n: int, n_days: int, p: RetailParams) -> Buyers:
    """Profile, signup, purchase rate and regularity, death, fade and spend of each customer."""
    country = rng.choice(len(COUNTRIES), n, p=np.array(COUNTRY_SHARE))
    channel = rng.choice(len(CHANNELS), n, p=np.array(CHANNEL_SHARE))
    signup = signup_days(rng, n, n_days, p.initial_share, p.growth)
    lam = rng.gamma(p.rate_shape, p.orders_per_week / p.rate_shape, n) / 7.0
    k = np.exp(rng.normal(np.log(p.regularity_median), p.regularity_sigma, n))
    mult = np.array(p.channel_dropout_multiplier)[channel]
    mu = rng.gamma(p.dropout_shape, p.dropout_per_month / p.dropout_shape, n) * mult / MONTH_DAYS
    # at least a day after signup, so the first order (on the signup day) is always made; capped so
    # that a near-zero mu cannot overflow the day count
    life = np.minimum(rng.exponential(1.0, n) / mu, 1e7)
    death_day = signup + 1 + life.astype(np.int64)
    faded = rng.random(n) < p.fade_share
    fade_days = 7.0 * rng.uniform(p.fade_weeks[0], p.fade_weeks[1], n)
    spend = np.exp(rng.normal(np.log(p.spend_median), p.spend_sigma, n))
    zeros = np.zeros(n)
    pop = Population(
        sub=np.zeros(n, bool), bill=np.ones(n, np.int64), plan0=np.full(n, PAYG, np.int64), country=country,
        channel=channel, ratio=np.ones(n), signup_day=signup, lam_e=zeros, lam_o=7.0 * lam, lam_f=zeros,
        onset_mult=mult,
    )
    return Buyers(pop, lam, k, death_day, faded, fade_days, spend)


def purchase_times(
    rng: np.random.Generator, b: Buyers, n_days: int, strength: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Every order inside the window as (customer, day as a float); and how many orders fell before
    the window opened (simulated, since a customer's history starts at signup, but not written).

    One round draws the next gap of every customer still alive and inside the window, so the loop
    runs as many rounds as the busiest customer has orders, over a shrinking set.
    """
    idx = np.arange(b.pop.n)
    t = b.pop.signup_day.astype(np.float64)
    custs, times, before = [], [], 0
    while idx.size:
        inside = t >= 0
        custs.append(idx[inside])
        times.append(t[inside])
        before += int((~inside).sum())
        fade_start = b.death_day[idx] - b.fade_days[idx]
        progress = np.where(b.faded[idx], np.clip((t - fade_start) / b.fade_days[idx], 0.0, 1.0), 0.0)
        k = b.k[idx]
        t = t + rng.gamma(k, 1.0 / (k * b.lam[idx])) * np.exp(strength * progress)
        alive = (t < b.death_day[idx]) & (t < n_days)
        idx, t = idx[alive], t[alive]
    return np.concatenate(custs), np.concatenate(times), before


def draw_baskets(
    rng: np.random.Generator, cust: np.ndarray, t: np.ndarray, spend: np.ndarray, p: RetailParams
) -> Orders:
    """Time of day, amount and quantity of each order; rows sorted by customer and time."""
    sec = time_of_day(rng, cust.size)
    amount = rng.gamma(p.amount_shape, spend[cust] / p.amount_shape)
    qty = 1 + rng.poisson(p.extra_items, cust.size)
    rows = sort_rows(cust, np.floor(t).astype(np.int64), sec)
    order = rows["order"]
    return Orders(rows["cust"], rows["us"], np.maximum(np.round(amount, 2), 0.5)[order], qty[order])


def retail_stats(b: Buyers, n_days: int, orders_before: int) -> dict[str, int | dict[str, int]]:
    """A chunk's customers, deaths (before and inside the window), by cause, and days alive in the window."""
    death, signup = b.death_day, b.pop.signup_day
    churned = death < n_days
    exposure = np.clip(np.minimum(death, n_days) - np.maximum(signup, 0), 0, None)
    return {
        "customers": int(b.pop.n),
        "churned": int(churned.sum()),
        "churned_before_window": int((death < 0).sum()),
        "churn_by_cause": {
            "disengagement": int((churned & b.faded).sum()),
            "random": int((churned & ~b.faded).sum()),
        },
        "exposure_days": int(exposure.sum()),
        "orders_before_window": orders_before,
    }
