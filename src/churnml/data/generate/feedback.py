"""The feedback table: surveys (rating, NPS, CSAT) whose scores fall with d_srv, d_eng, d_noise and
the price term; tickets that pile up with d_srv; service and price complaints; and a last complaint
just before some service and price churners leave."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnml.data.generate.activity import Grid, scatter
from churnml.data.generate.parameters import GenerationParams
from churnml.data.generate.timeline import sort_rows, time_of_day
from churnml.data.generate.vocab import (
    COMPLAINT,
    PRICE,
    PRICE0,
    PRICE_COMPLAINTS,
    SERVICE,
    SERVICE0,
    SERVICE_COMPLAINTS,
    TICKET,
    TICKET0,
    TICKET_TEXT,
)
from churnml.data.generate.weekly import History, Trace


@dataclass(frozen=True)
class Feedback:
    """Rows sorted by customer and time."""

    cust: np.ndarray  # customer row in the chunk
    us: np.ndarray  # microseconds since the window opened
    score: np.ndarray  # NaN: none
    kind: np.ndarray  # index into FEEDBACK_KINDS
    text: np.ndarray  # index into FEEDBACK_TEXT, -1: none


def draw_feedback(
    rng: np.random.Generator,
    grid: Grid,
    lam_f: np.ndarray,
    signup_day: np.ndarray,
    hist: History,
    p: GenerationParams,
) -> Feedback:
    """Plant the service signal (and a little of the others) in feedback: surveys, tickets and
    complaints are placed first, then given their scores and texts, then the final complaints."""
    trace = hist.trace
    cells_sv, sv_day, sv_sec = scatter(rng, grid, lam_f[:, None] * np.exp(0.25 * trace.srv))
    cells_tk, tk_day, tk_sec = scatter(rng, grid, p.tickets_per_week * np.exp(p.ticket_growth * trace.srv))
    srv_rate = p.complaints_per_week * np.exp(p.complaint_growth * trace.srv)
    prc_rate = p.complaint_price * trace.price
    cells_cp, cp_day, cp_sec = scatter(rng, grid, srv_rate + prc_rate)
    sv_score, sv_kind, sv_text = _surveys(rng, trace, cells_sv, p)
    tk_score, tk_text = _tickets(rng, trace, cells_tk, p)
    price_share = prc_rate.ravel()[cells_cp] / (srv_rate.ravel()[cells_cp] + prc_rate.ravel()[cells_cp])
    cp_text = _complaint_text(rng, rng.random(cells_cp.size) < price_share)
    fc_cust, fc_day, fc_text, fc_sec = _final_complaints(rng, signup_day, hist, p)
    n_cp = cells_cp.size + fc_cust.size
    rows = sort_rows(
        np.concatenate([grid.customer(cells_sv), grid.customer(cells_tk), grid.customer(cells_cp), fc_cust]),
        np.concatenate([sv_day, tk_day, cp_day, fc_day]),
        np.concatenate([sv_sec, tk_sec, cp_sec, fc_sec]),
    )
    order = rows["order"]
    score = np.concatenate([sv_score, tk_score, np.full(n_cp, np.nan)])
    kind = np.concatenate([sv_kind, np.full(cells_tk.size, TICKET), np.full(n_cp, COMPLAINT)])
    text = np.concatenate([sv_text, tk_text, cp_text, fc_text])
    return Feedback(rows["cust"], rows["us"], score[order], kind[order], text[order])


def _mean_score(trace: Trace, cells: np.ndarray, p: GenerationParams) -> np.ndarray:
    """The expected survey score of each cell: score_mean less the drops for d_srv, d_eng, d_noise
    and the positive part of the price term."""
    return (
        p.score_mean
        - p.score_drop_service * trace.srv.ravel()[cells]
        - p.score_drop_engagement * trace.eng.ravel()[cells]
        - p.score_drop_noise * trace.noise.ravel()[cells]
        - p.score_drop_price * trace.price.ravel()[cells]
    )


def _surveys(
    rng: np.random.Generator, trace: Trace, cells: np.ndarray, p: GenerationParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Survey score (0-10; CSAT to one decimal, rating and NPS whole), kind and, for a quarter of
    them, a text matching the score; returns (score, kind, text)."""
    score = np.clip(_mean_score(trace, cells, p) + rng.normal(0.0, p.score_sd, cells.size), 0.0, 10.0)
    kind = rng.choice(3, cells.size, p=np.array([0.5, 0.3, 0.2]))
    score = np.where(kind == 2, np.round(score, 1), np.round(score))
    bucket = np.searchsorted(np.array([4.0, 6.0, 7.5, 9.0]), score, side="right")
    text = np.where(rng.random(cells.size) < 0.25, 4 - bucket, -1)
    return score, kind, text


def _tickets(
    rng: np.random.Generator, trace: Trace, cells: np.ndarray, p: GenerationParams
) -> tuple[np.ndarray, np.ndarray]:
    """A ticket's score (two points below a survey's; half of them none) and its text."""
    score = np.clip(_mean_score(trace, cells, p) - 2.0 + rng.normal(0.0, p.score_sd, cells.size), 0.0, 10.0)
    score = np.where(rng.random(cells.size) < 0.5, np.nan, np.round(score))
    text = TICKET0 + rng.integers(0, len(TICKET_TEXT), cells.size)
    return score, text


def _complaint_text(rng: np.random.Generator, is_price: np.ndarray) -> np.ndarray:
    """A price complaint's text where `is_price`, a service complaint's elsewhere."""
    return np.where(
        is_price,
        PRICE0 + rng.integers(0, len(PRICE_COMPLAINTS), is_price.size),
        SERVICE0 + rng.integers(0, len(SERVICE_COMPLAINTS), is_price.size),
    )


def _final_complaints(
    rng: np.random.Generator, signup_day: np.ndarray, hist: History, p: GenerationParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Plant a last complaint 1-3 days before leaving for a share of service and price churners
    (``p.final_complaint``); returns (customer, day, text, second of the day)."""
    cause = hist.cause
    chance = np.where(cause == SERVICE, p.final_complaint[0], np.where(cause == PRICE, p.final_complaint[1], 0.0))
    day = hist.churn_day - 1 - rng.integers(0, 3, cause.size)
    final = hist.churned & (rng.random(cause.size) < chance) & (day >= np.maximum(signup_day, 0))
    cust = np.flatnonzero(final)
    text = _complaint_text(rng, cause[final] == PRICE)
    return cust, day[final], text, time_of_day(rng, cust.size)

