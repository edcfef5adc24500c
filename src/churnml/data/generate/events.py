"""The events table: logins, feature use, content views and support visits, fewer as d_eng (and a
little d_srv and d_noise) rises, support visits more common with d_srv, shorter sessions with d_eng."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnml.data.generate.activity import Grid, scatter
from churnml.data.generate.parameters import GenerationParams
from churnml.data.generate.timeline import sort_rows
from churnml.data.generate.vocab import LOGIN, SUPPORT_VISIT
from churnml.data.generate.weekly import Trace


@dataclass(frozen=True)
class Events:
    """Rows sorted by customer and time."""

    cust: np.ndarray  # customer row in the chunk
    us: np.ndarray  # microseconds since the window opened
    kind: np.ndarray  # index into EVENT_TYPES
    minutes: np.ndarray  # session minutes; meaningless where no_value
    no_value: np.ndarray  # logins and support visits carry no value


def draw_events(
    rng: np.random.Generator, grid: Grid, lam_e: np.ndarray, trace: Trace, p: GenerationParams
) -> Events:
    """Plant the disengagement signal in events: per week, base * exp(-events_decay * (d_eng +
    0.25 d_srv + 0.5 d_noise)); the service signal in the support-visit share."""
    eng_state = trace.eng + 0.25 * trace.srv + 0.5 * trace.noise.astype(np.float64)
    cells, day, sec = scatter(rng, grid, lam_e[:, None] * np.exp(-p.events_decay * eng_state))
    kind = _event_kind(rng, trace.srv.ravel()[cells], p)
    minutes = _session_minutes(rng, trace.eng.ravel()[cells])
    rows = sort_rows(grid.customer(cells), day, sec)
    order = rows["order"]
    kind = kind[order]
    return Events(rows["cust"], rows["us"], kind, minutes[order], (kind == LOGIN) | (kind == SUPPORT_VISIT))


def _event_kind(rng: np.random.Generator, d_srv: np.ndarray, p: GenerationParams) -> np.ndarray:
    """A support visit with a share rising with d_srv (at most 0.3); otherwise login, feature use or
    content view (40 / 35 / 25%)."""
    p_support = np.minimum(p.support_visit_share * np.exp(0.5 * d_srv), 0.3)
    u = rng.random(d_srv.size)
    rest = (u - p_support) / (1.0 - p_support)
    return np.where(u < p_support, SUPPORT_VISIT, np.searchsorted(np.array([0.40, 0.75]), rest, side="right"))


def _session_minutes(rng: np.random.Generator, d_eng: np.ndarray) -> np.ndarray:
    """Lognormal minutes around 6, shorter as d_eng rises; at least 0.1."""
    minutes = np.round(np.exp(rng.normal(np.log(6.0), 0.7, d_eng.size)) * np.exp(-0.15 * d_eng), 1)
    return np.maximum(minutes, 0.1)
