"""When a customer can be active: the active days of each customer x week cell (after signup, before
churn, again after a return), and rows scattered over those days at a given weekly rate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnml.data.generate.timeline import time_of_day, weeks


@dataclass(frozen=True)
class Grid:
    """The customers x weeks cells, flattened row by row."""

    n_weeks: int
    lo: np.ndarray  # each cell's first active day
    length: np.ndarray  # its number of active days (0 to 7)
    frac: np.ndarray  # length / 7: the share of a weekly rate the cell gets

    def customer(self, cells: np.ndarray) -> np.ndarray:
        """The customer (row) of each cell."""
        return cells // self.n_weeks


def active_days(signup_day: np.ndarray, churn_day: np.ndarray, return_day: np.ndarray, n_days: int) -> Grid:
    """Each cell's active days: from signup to churn, and from a return to the end of the window."""
    ws = (7 * np.arange(weeks(n_days), dtype=np.int64))[None, :]
    we = np.minimum(ws + 7, n_days)
    a1 = np.maximum(signup_day, 0)[:, None]
    b1 = np.minimum(churn_day, n_days)[:, None]
    lo1 = np.maximum(ws, a1)
    len1 = np.clip(np.minimum(we, b1) - lo1, 0, None)
    lo2 = np.maximum(ws, np.minimum(return_day, n_days)[:, None])
    len2 = np.clip(we - lo2, 0, None)
    cell_lo = np.where(len1 > 0, lo1, lo2).ravel()
    cell_len = (len1 + len2).ravel()
    return Grid(weeks(n_days), cell_lo, cell_len, cell_len / 7.0)


def scatter(rng: np.random.Generator, grid: Grid, rate: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows at `rate` per active week (customers x weeks): a Poisson count per cell, each row on a
    uniform active day of its cell at a time of day; returns (cell, day, second of the day)."""
    counts = rng.poisson(rate.ravel() * grid.frac)
    cells = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    day = grid.lo[cells] + (rng.random(cells.size) * grid.length[cells]).astype(np.int64)
    return cells, day, time_of_day(rng, cells.size)
