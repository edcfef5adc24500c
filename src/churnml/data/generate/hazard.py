"""The weekly churn hazard and its causes: disengagement (d_eng and the noise), service (d_srv),
price (plan, price paid, a recent increase) and random (the baseline plus a constant hazard);
who churns on which day, which cause dominated, and who comes back after a long gap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from churnml.data.generate.latent import Latent
from churnml.data.generate.life_events import PlanAndPrice
from churnml.data.generate.parameters import GenerationParams
from churnml.data.generate.population import Population
from churnml.data.generate.vocab import RANDOM


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Baseline:
    """The parts of the hazard fixed per customer: the intercept by billing, the plan terms and the
    price-ratio term."""

    h0: np.ndarray
    plan_term: np.ndarray  # by plan
    k_ratio: np.ndarray  # k_price_ratio * log(price paid / list price)

    @classmethod
    def of(cls, pop: Population, p: GenerationParams) -> Baseline:
        return cls(np.array(p.h0)[pop.bill], np.array(p.plan_term), p.k_price_ratio * np.log(pop.ratio))


class CauseTerms(NamedTuple):
    """Each visible cause's term in the hazard logit, per customer, this week."""

    eng: np.ndarray  # disengagement: k_engagement * d_eng + k_noise * d_noise
    srv: np.ndarray  # service: k_service * d_srv
    price: np.ndarray  # plan, price paid and a recent price increase


def cause_terms(lat: Latent, pp: PlanAndPrice, base: Baseline, w: int, p: GenerationParams) -> CauseTerms:
    """The disengagement, service and price terms of week `w`."""
    c_price = price_term(pp, base, w, p)
    c_eng = p.k_engagement * lat.eng.level + p.k_noise * lat.noise
    c_srv = p.k_service * lat.srv.level
    return CauseTerms(c_eng, c_srv, c_price)


def price_term(pp: PlanAndPrice, base: Baseline, w: int, p: GenerationParams) -> np.ndarray:
    """Plant the price cause: the plan's term, the price-ratio term and a price increase's term that
    decays with the weeks since it (time constant ``p.increase_tau_weeks``)."""
    since = w - pp.inc_week
    recent = np.where(pp.inc_week >= 0, np.exp(-since / p.increase_tau_weeks), 0.0)
    return base.plan_term[pp.plan] + base.k_ratio + p.k_increase * (pp.incf - 1.0) / 0.15 * recent


def draw_churn(
    rng: np.random.Generator,
    terms: CauseTerms,
    base: Baseline,
    active: np.ndarray,
    lo: np.ndarray,
    span: np.ndarray,
    p: GenerationParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plant this week's churns: who leaves (the weekly hazard scaled to the `span` days open to a
    churn from day `lo`), on which day and for which cause; returns (churns, day, cause)."""
    floor = sigmoid(base.h0) + p.random_hazard
    # the constant random hazard on top of a sigmoid near 1 would pass 1, and (1 - hazard) ** x
    # of a negative number is NaN: such a customer never churned at all
    hazard = np.minimum(sigmoid(base.h0 + terms.eng + terms.srv + terms.price) + p.random_hazard, 1.0)
    hazard_week = 1.0 - (1.0 - hazard) ** (span / 7.0)
    go = active & (span > 0) & (rng.random(active.size) < hazard_week)
    day = lo + (rng.random(active.size) * span).astype(np.int64)
    return go, day, _attribute_cause(rng, terms, floor / hazard)


def _attribute_cause(rng: np.random.Generator, terms: CauseTerms, random_share: np.ndarray) -> np.ndarray:
    """Plant the random cause with probability `random_share` (the baseline's share of the hazard) or
    when no visible term is positive; otherwise the cause with the largest term."""
    random_cause = rng.random(random_share.size) < random_share
    parts = np.stack([terms.eng, terms.srv, terms.price])
    dominant = np.argmax(parts, axis=0)
    random_cause |= parts.max(axis=0) <= 0.0
    return np.where(random_cause, RANDOM, dominant)


def draw_return(
    rng: np.random.Generator,
    churns: np.ndarray,
    day: np.ndarray,
    return_day: np.ndarray,
    n_days: int,
    p: GenerationParams,
) -> np.ndarray:
    """Plant returns: a share of this week's churners come back after ``p.return_gap_weeks`` (plus
    0-6 days), when that falls in the window; returns the updated `return_day`."""
    n = churns.size
    comes_back = churns & (rng.random(n) < p.return_share)
    gap = rng.integers(p.return_gap_weeks[0], p.return_gap_weeks[1] + 1, n) * 7 + rng.integers(0, 7, n)
    return np.where(comes_back & (day + gap < n_days), day + gap, return_day)
