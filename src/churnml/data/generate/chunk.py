"""One chunk of customers end to end: every step in the order it draws from the chunk's generator,
then its tables and its counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from churnml.data.generate import tables
from churnml.data.generate.activity import active_days
from churnml.data.generate.events import draw_events
from churnml.data.generate.feedback import draw_feedback
from churnml.data.generate.life_events import draw_candidates
from churnml.data.generate.orders import draw_orders
from churnml.data.generate.parameters import GenerationParams
from churnml.data.generate.population import draw_population
from churnml.data.generate.subscriptions import draw_subscriptions
from churnml.data.generate.summary import chunk_stats
from churnml.data.generate.timeline import weeks
from churnml.data.generate.weekly import simulate_weeks


@dataclass
class Chunk:
    tables: dict[str, pa.Table]
    stats: dict[str, Any]


def simulate_chunk(
    rng: np.random.Generator,
    first: int,
    n: int,
    n_days: int,
    base_us: int,
    id_width: int,
    order_offset: int,
    p: GenerationParams,
) -> Chunk:
    """Simulate customers first+1 .. first+n over `n_days` days from `base_us`.

    Do not reorder these calls: each draws from `rng`, and the order is what makes a seed's output
    byte-identical from one version to the next.
    """
    pop = draw_population(rng, n, n_days, p)
    cand = draw_candidates(rng, pop.sub, weeks(n_days), p)
    hist = simulate_weeks(rng, pop, cand, n_days, p)
    grid = active_days(pop.signup_day, hist.churn_day, hist.return_day, n_days)
    events = draw_events(rng, grid, pop.lam_e, hist.trace, p)
    orders = draw_orders(rng, grid, pop, hist.trace, p)
    feedback = draw_feedback(rng, grid, pop.lam_f, pop.signup_day, hist, p)
    spells = draw_subscriptions(rng, pop, hist, n_days, p)
    cid = tables.customer_ids(first, n, id_width)
    chunk_tables = {
        "customers": tables.customers_table(cid, base_us, pop, p),
        "events": tables.events_table(cid, base_us, events),
        "orders": tables.orders_table(cid, base_us, orders, order_offset),
        "feedback": tables.feedback_table(cid, base_us, feedback),
        "subscriptions": tables.subscriptions_table(cid, base_us, spells),
        "churn_truth": tables.churn_truth_table(cid, base_us, pop, hist),
    }
    return Chunk(chunk_tables, chunk_stats(pop, hist, grid, spells))
