"""Subscription life events: plan changes (down when unhappy, otherwise up or none) and price
increases, each on a candidate week drawn up front and placed on a day of that week."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnml.data.generate.parameters import GenerationParams
from churnml.data.generate.timeline import NEVER
from churnml.data.generate.vocab import BASIC, PREMIUM


@dataclass(frozen=True)
class Candidates:
    """The week each subscription customer may change plan or get a price increase (-1: none)."""

    change_week: np.ndarray
    increase_week: np.ndarray
    increase_factor: np.ndarray  # the new price / the old one, should the increase happen


@dataclass
class PlanAndPrice:
    """Each customer's plan and price as the weeks go by, and the days they changed."""

    plan: np.ndarray
    plan_before: np.ndarray  # the plan before the change (the signup plan when none)
    change_day: np.ndarray  # NEVER: no plan change
    inc_day: np.ndarray  # NEVER: no price increase
    inc_week: np.ndarray  # -1: no price increase
    incf: np.ndarray  # price increase factor, 1.0 when none
    last_event_day: np.ndarray  # signup or the latest change / increase: no churn on or before it

    @classmethod
    def at_signup(cls, plan0: np.ndarray, signup_day: np.ndarray) -> PlanAndPrice:
        n = plan0.size
        return cls(
            plan=plan0.copy(),
            plan_before=plan0.copy(),
            change_day=np.full(n, NEVER),
            inc_day=np.full(n, NEVER),
            inc_week=np.full(n, -1),
            incf=np.ones(n),
            last_event_day=signup_day.copy(),
        )


def draw_candidates(rng: np.random.Generator, sub: np.ndarray, n_weeks: int, p: GenerationParams) -> Candidates:
    """Plant which subscription customers get a plan change and a price increase, and in which week."""
    n = sub.size
    change_week = np.where(sub & (rng.random(n) < p.plan_change_share), rng.integers(0, n_weeks, n), -1)
    inc_week_cand = np.where(sub & (rng.random(n) < p.price_increase_share), rng.integers(0, n_weeks, n), -1)
    inc_factor_cand = rng.uniform(*p.price_increase, n)
    return Candidates(change_week, inc_week_cand, inc_factor_cand)


def life_events_of_week(
    rng: np.random.Generator,
    pp: PlanAndPrice,
    cand: Candidates,
    active: np.ndarray,
    first_day: np.ndarray,
    unhappy: np.ndarray,
    w: int,
    w1: int,
) -> None:
    """Plant week `w`'s plan changes and price increases (on a day from `first_day` to `w1`) in `pp`.

    A customer whose week holds both keeps only the plan change.
    """
    room = first_day < w1
    day = first_day + (rng.random(first_day.size) * np.maximum(w1 - first_day, 0)).astype(np.int64)
    changed = _change_plan(rng, pp, active & room & (cand.change_week == w), unhappy, day)
    raised = active & room & (cand.increase_week == w) & ~changed
    pp.inc_day = np.where(raised, day, pp.inc_day)
    pp.inc_week = np.where(raised, w, pp.inc_week)
    pp.incf = np.where(raised, cand.increase_factor, pp.incf)
    pp.last_event_day = np.where(changed | raised, day, pp.last_event_day)


def _change_plan(
    rng: np.random.Generator, pp: PlanAndPrice, due: np.ndarray, unhappy: np.ndarray, day: np.ndarray
) -> np.ndarray:
    """Plant plan changes for the `due` customers: one plan down when unhappy, else up half of the
    time; return who actually changed."""
    plan = pp.plan
    new_plan = np.where(
        unhappy, np.maximum(plan - 1, BASIC), np.where(rng.random(plan.size) < 0.5, np.minimum(plan + 1, PREMIUM), plan)
    )
    changed = due & (new_plan != plan)
    pp.plan_before = np.where(changed, plan, pp.plan_before)
    pp.plan = np.where(changed, new_plan, plan)
    pp.change_day = np.where(changed, day, pp.change_day)
    return changed
