"""The orders table: subscription add-ons and pay-as-you-go purchases, spacing out as d_eng (and a
little d_noise) rises; pay-as-you-go unit prices follow the customer's price ratio."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnml.data.generate.activity import Grid, scatter
from churnml.data.generate.parameters import GenerationParams
from churnml.data.generate.population import Population
from churnml.data.generate.timeline import sort_rows
from churnml.data.generate.weekly import Trace


@dataclass(frozen=True)
class Orders:
    """Rows sorted by customer and time."""

    cust: np.ndarray  # customer row in the chunk
    us: np.ndarray  # microseconds since the window opened
    amount: np.ndarray
    qty: np.ndarray


def draw_orders(rng: np.random.Generator, grid: Grid, pop: Population, trace: Trace, p: GenerationParams) -> Orders:
    """Plant the disengagement signal in orders: per week, base * exp(-orders_decay * (d_eng +
    0.3 d_noise)); quantities and amounts by billing."""
    ord_state = trace.eng + 0.3 * trace.noise.astype(np.float64)
    cells, day, sec = scatter(rng, grid, pop.lam_o[:, None] * np.exp(-p.orders_decay * ord_state))
    oc = grid.customer(cells)
    sub = pop.sub[oc]
    qty = 1 + rng.poisson(np.where(sub, 0.3, 1.0))
    unit = np.where(
        sub,
        np.exp(rng.normal(np.log(12.0), 0.4, oc.size)),
        9.0 * pop.ratio[oc] * np.exp(rng.normal(0.0, 0.15, oc.size)),
    )
    amount = np.maximum(np.round(qty * unit, 2), 0.5)
    rows = sort_rows(oc, day, sec)
    order = rows["order"]
    return Orders(rows["cust"], rows["us"], amount[order], qty[order])
