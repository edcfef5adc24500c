"""The customer population of a chunk: billing, plan, country, channel, price paid, signup day
and each customer's base activity rates. Fixed for the whole simulation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnml.data.generate.parameters import GenerationParams
from churnml.data.generate.vocab import CHANNEL_SHARE, CHANNELS, COUNTRIES, COUNTRY_SHARE, PAYG


@dataclass(frozen=True)
class Population:
    """One entry per customer of the chunk."""

    sub: np.ndarray  # billed by subscription (else pay as you go)
    bill: np.ndarray  # index into BILLING
    plan0: np.ndarray  # plan at signup, index into PLANS
    country: np.ndarray  # index into COUNTRIES
    channel: np.ndarray  # acquisition channel, index into CHANNELS
    ratio: np.ndarray  # price paid / list price (legacy above, promo below)
    signup_day: np.ndarray  # days since the window opened; negative: signed up before it
    lam_e: np.ndarray  # base events per active week
    lam_o: np.ndarray  # base orders per active week
    lam_f: np.ndarray  # base surveys per active week
    onset_mult: np.ndarray  # the channel's multiplier on the disengagement onset

    @property
    def n(self) -> int:
        return int(self.sub.size)


def draw_population(rng: np.random.Generator, n: int, n_days: int, p: GenerationParams) -> Population:
    """Plant who the customers are: the profile, the price paid, when they sign up, how active they are.

    The channel sets the disengagement onset (``p.channel_onset_multiplier``), the price ratio feeds
    the price cause; a growing share of signups fall late in the window (``p.growth``).
    """
    sub = rng.random(n) < p.subscription_share
    plan0 = np.where(sub, rng.choice(3, n, p=np.array(p.plan_share)), PAYG).astype(np.int64)
    country = rng.choice(len(COUNTRIES), n, p=np.array(COUNTRY_SHARE))
    channel = rng.choice(len(CHANNELS), n, p=np.array(CHANNEL_SHARE))
    ratio = _price_ratio(rng, n, p)
    signup_day = _signup_day(rng, n, n_days, p)
    bill = np.where(sub, 0, 1)
    lam_e = np.array(p.events_per_week)[bill] * np.exp(rng.normal(0.0, 0.5, n))
    lam_o = np.array(p.orders_per_week)[bill] * np.exp(rng.normal(0.0, np.where(sub, 0.5, 0.4), n))
    lam_f = p.surveys_per_week * np.exp(rng.normal(0.0, 0.3, n))
    onset_mult = np.array(p.channel_onset_multiplier)[channel]
    return Population(sub, bill, plan0, country, channel, ratio, signup_day, lam_e, lam_o, lam_f, onset_mult)


def _price_ratio(rng: np.random.Generator, n: int, p: GenerationParams) -> np.ndarray:
    """Price paid / list price: legacy customers pay 10-35% above it, promo customers 10-25% below."""
    u = rng.random(n)
    return np.where(
        u < p.legacy_share,
        np.round(rng.uniform(1.10, 1.35, n), 2),
        np.where(u < p.legacy_share + p.promo_share, np.round(rng.uniform(0.75, 0.90, n), 2), 1.0),
    )


def _signup_day(rng: np.random.Generator, n: int, n_days: int, p: GenerationParams) -> np.ndarray:
    return signup_days(rng, n, n_days, p.initial_share, p.growth)


def signup_days(rng: np.random.Generator, n: int, n_days: int, initial_share: float, growth: float) -> np.ndarray:
    """Days since the window opened: a share signed up up to three years before it, the rest in it,
    with a density rising linearly by `growth` over the window."""
    pre = rng.random(n) < initial_share
    g = growth
    x = (np.sqrt(1.0 + 2.0 * g * rng.random(n) * (1.0 + g / 2.0)) - 1.0) / g if g > 0 else rng.random(n)
    return np.where(
        pre, -rng.integers(1, 3 * 365 + 1, n), np.minimum((x * n_days).astype(np.int64), n_days - 1)
    ).astype(np.int64)
