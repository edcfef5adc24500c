"""The week-by-week simulation of a chunk: customers sign up, their dissatisfaction moves, plans
and prices change, some churn and some of those come back; the latent state is kept per week."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnml.data.generate.hazard import Baseline, cause_terms, draw_churn, draw_return
from churnml.data.generate.latent import Latent, advance_latent
from churnml.data.generate.life_events import Candidates, PlanAndPrice, life_events_of_week
from churnml.data.generate.parameters import GenerationParams
from churnml.data.generate.population import Population
from churnml.data.generate.timeline import NEVER, weeks

WAITING, ACTIVE, CHURNED, BACK = 0, 1, 2, 3  # not signed up yet, active, churned, came back


@dataclass(frozen=True)
class Trace:
    """The latent state and the positive part of the price term, customers x weeks (float32)."""

    eng: np.ndarray
    srv: np.ndarray
    noise: np.ndarray
    price: np.ndarray

    @classmethod
    def empty(cls, n: int, n_weeks: int) -> Trace:
        return cls(*(np.empty((n, n_weeks), np.float32) for _ in range(4)))


@dataclass
class History:
    """What a chunk's customers went through: plan and price, churn and return, the latent trace."""

    pp: PlanAndPrice
    churn_day: np.ndarray  # NEVER: did not churn
    return_day: np.ndarray  # NEVER: did not come back
    cause: np.ndarray  # index into CAUSES, -1 when no churn
    trace: Trace

    @property
    def churned(self) -> np.ndarray:
        return self.churn_day < NEVER

    @property
    def returned(self) -> np.ndarray:
        return self.return_day < NEVER


def simulate_weeks(
    rng: np.random.Generator, pop: Population, cand: Candidates, n_days: int, p: GenerationParams
) -> History:
    """Run every week of the window over the chunk (the latent noise starts first)."""
    n, n_weeks = pop.n, weeks(n_days)
    status = np.zeros(n, np.int8)
    lat = Latent.start(rng, n, p)
    hist = History(
        pp=PlanAndPrice.at_signup(pop.plan0, pop.signup_day),
        churn_day=np.full(n, NEVER),
        return_day=np.full(n, NEVER),
        cause=np.full(n, -1, np.int64),
        trace=Trace.empty(n, n_weeks),
    )
    base = Baseline.of(pop, p)
    for w in range(n_weeks):
        _simulate_week(rng, w, status, lat, hist, pop, cand, base, n_days, p)
    return hist


def _simulate_week(
    rng: np.random.Generator,
    w: int,
    status: np.ndarray,
    lat: Latent,
    hist: History,
    pop: Population,
    cand: Candidates,
    base: Baseline,
    n_days: int,
    p: GenerationParams,
) -> None:
    """Week `w`: latent state, life events, churn and returns, in that draw order."""
    w1 = min(7 * w + 7, n_days)  # the day after the week (the last week may be short)
    active = _arrivals(status, lat, pop.signup_day, hist.return_day, w1)
    advance_latent(rng, lat, active, pop.onset_mult, p)
    first_day = np.maximum(7 * w, pop.signup_day + 1)
    unhappy = (lat.eng.level + lat.srv.level) > 1.0
    life_events_of_week(rng, hist.pp, cand, active, first_day, unhappy, w, w1)
    terms = cause_terms(lat, hist.pp, base, w, p)
    lo = np.maximum(first_day, hist.pp.last_event_day + 1)
    go, day, cause = draw_churn(rng, terms, base, active, lo, np.maximum(w1 - lo, 0), p)
    hist.churn_day = np.where(go, day, hist.churn_day)
    hist.cause = np.where(go, cause, hist.cause)
    hist.return_day = draw_return(rng, go, day, hist.return_day, n_days, p)
    status[go] = CHURNED
    hist.trace.eng[:, w] = lat.eng.level
    hist.trace.srv[:, w] = lat.srv.level
    hist.trace.noise[:, w] = lat.noise
    hist.trace.price[:, w] = np.maximum(terms.price, 0.0)


def _arrivals(
    status: np.ndarray, lat: Latent, signup_day: np.ndarray, return_day: np.ndarray, w1: int
) -> np.ndarray:
    """Customers who signed up before `w1` become active, churners due back come back with no episode
    running; returns who is active (came-back customers are not: they no longer churn)."""
    status[(status == WAITING) & (signup_day < w1)] = ACTIVE
    back = (status == CHURNED) & (return_day < w1)
    status[back] = BACK
    lat.eng.reset(back)
    lat.srv.reset(back)
    return status == ACTIVE
