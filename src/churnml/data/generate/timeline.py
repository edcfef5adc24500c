"""Time in the simulation: days since the window opened, weeks of the grid, microseconds for
the tables, a daytime / evening time of day, and rows sorted by customer then time."""

from __future__ import annotations

import numpy as np

DAY_US = 86_400_000_000
SEC_US = 1_000_000
NEVER = np.int64(1 << 40)  # the day of something that does not happen


def weeks(n_days: int) -> int:
    """How many (the last one possibly short) weeks cover `n_days` days."""
    return -(-n_days // 7)


def time_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds since midnight: a daytime peak and an evening peak."""
    evening = rng.random(n) < 0.3
    hours = np.where(evening, rng.normal(20.5, 1.8, n), rng.normal(13.5, 3.2, n))
    return (np.mod(hours, 24.0) * 3600.0).astype(np.int64).clip(0, 86_399)


def sort_rows(cust: np.ndarray, day: np.ndarray, sec: np.ndarray) -> dict[str, np.ndarray]:
    """Sort rows by (customer, time); return the order and the sorted customer and time (us)."""
    sec_total = day.astype(np.int64) * 86_400 + sec.astype(np.int64)
    us = sec_total * SEC_US
    # rows arrive grouped by customer and by week, so a stable sort on this key is cheap
    span = int(sec_total.max()) + 1 if sec_total.size else 1
    key = cust.astype(np.int64) * np.int64(span) + sec_total
    order = np.argsort(key, kind="stable")
    return {"order": order, "cust": cust[order].astype(np.int64), "us": us[order]}
