"""A seeded synthetic dataset in the raw contract, with churn driven by planted, visible causes.

Customers are simulated week by week, vectorised with numpy over a chunk of customers
(a customers x weeks grid). Each customer carries a hidden dissatisfaction made of three parts:

- ``d_eng``: disengagement episodes (a drift that builds over a few weeks, then recovers);
- ``d_srv``: service-failure episodes (the same shape, but they show up in feedback);
- ``d_noise``: a mean-reverting random walk shared by every signal.

The observable tables follow it: events per week = base * exp(-a * d), orders per week =
base * exp(-b * d), survey scores fall and tickets / complaints rise with ``d_srv``. Plan and price
(basic plan, paying above list price, a recent price increase) add a direct term to the hazard.
The weekly churn hazard is ``sigmoid(h0 + k_eng*d_eng + k_srv*d_srv + k_noise*d_noise + price)``
plus a small constant random hazard, and each churn records which cause dominated it.

Chunks of customers are independent (each has its own seed derived from ``(seed, chunk index)``)
and are appended to the Parquet files as they are made, so memory stays bounded at any size.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnml.io import atomic_path

__all__ = ["generate_dataset", "GenerationParams", "SCHEMAS", "CAUSES"]

DAY_US = 86_400_000_000
SEC_US = 1_000_000

PLANS = ("basic", "standard", "premium", "payg")
BASIC, STANDARD, PREMIUM, PAYG = 0, 1, 2, 3
BILLING = ("subscription", "payg")
COUNTRIES = ("US", "GB", "DE", "FR", "IN", "BR", "CA", "AU")
COUNTRY_SHARE = (0.38, 0.14, 0.12, 0.09, 0.10, 0.08, 0.05, 0.04)
CHANNELS = ("organic", "paid_search", "referral", "partner", "social")
CHANNEL_SHARE = (0.40, 0.25, 0.15, 0.10, 0.10)
EVENT_TYPES = ("login", "feature_use", "content_view", "support_visit")
FEEDBACK_KINDS = ("rating", "nps", "csat", "ticket", "complaint")
CAUSES = ("disengagement", "service", "price", "random")

SURVEY_TEXT = ("love it", "works well", "it is fine", "could be better", "disappointed")
TICKET_TEXT = (
    "cannot log in",
    "billing question",
    "bug report",
    "how do I export data",
    "sync not working",
    "slow performance",
)
SERVICE_COMPLAINTS = (
    "app keeps crashing",
    "support never answered",
    "data lost after update",
    "constant outages",
)
PRICE_COMPLAINTS = ("too expensive", "price increase not acceptable", "found a cheaper alternative")
FEEDBACK_TEXT = SURVEY_TEXT + TICKET_TEXT + SERVICE_COMPLAINTS + PRICE_COMPLAINTS
_TICKET0 = len(SURVEY_TEXT)
_SERVICE0 = _TICKET0 + len(TICKET_TEXT)
_PRICE0 = _SERVICE0 + len(SERVICE_COMPLAINTS)


@dataclass(frozen=True)
class GenerationParams:
    """Every number the simulation uses; written to ground_truth.json as is."""

    subscription_share: float = 0.60
    plan_share: tuple[float, float, float] = (0.45, 0.35, 0.20)  # basic, standard, premium
    list_price: tuple[float, float, float, float] = (19.0, 39.0, 79.0, 0.0)  # payg: no monthly fee
    legacy_share: float = 0.18  # pay 10-35% above list price
    promo_share: float = 0.12  # pay 10-25% below list price
    initial_share: float = 0.35  # customers already signed up when the window opens
    growth: float = 1.0  # signup density rises linearly by this factor over the window
    # base activity per active week (lognormal around these medians)
    events_per_week: tuple[float, float] = (2.8, 2.2)  # subscription, payg
    orders_per_week: tuple[float, float] = (0.12, 0.45)  # subscription add-ons, payg purchases
    surveys_per_week: float = 0.08
    tickets_per_week: float = 0.015
    complaints_per_week: float = 0.003
    # latent dissatisfaction
    noise_rho: float = 0.85
    noise_sigma: float = 0.20
    recovery_rho: float = 0.80  # per-week decay of an episode's drift once it ends
    disengagement_onset: float = 0.014  # weekly chance an active customer starts an episode
    service_onset: float = 0.008
    episode_slope: tuple[float, float] = (0.15, 0.35)  # drift per week
    episode_weeks: tuple[int, int] = (4, 16)
    channel_onset_multiplier: tuple[float, ...] = (1.0, 1.35, 0.7, 0.9, 1.2)
    # how the signals follow the latent state
    events_decay: float = 0.65  # events/week = base * exp(-a * (d_eng + 0.25 d_srv + 0.5 d_noise))
    orders_decay: float = 0.90  # orders/week = base * exp(-b * (d_eng + 0.3 d_noise))
    score_mean: float = 8.4
    score_drop_service: float = 1.2  # survey score = 8.4 - 1.2 d_srv - 0.35 d_eng - 0.3 d_noise - 0.6 price
    score_drop_engagement: float = 0.35
    score_drop_noise: float = 0.30
    score_drop_price: float = 0.60
    score_sd: float = 1.1
    ticket_growth: float = 0.9  # tickets/week = 0.015 exp(0.9 d_srv)
    complaint_growth: float = 1.0  # complaints/week = 0.003 exp(1.0 d_srv) + 0.02 price+
    complaint_price: float = 0.02
    support_visit_share: float = 0.03  # share of events, times exp(0.5 d_srv), capped at 0.3
    # hazard
    h0: tuple[float, float] = (-8.0, -7.7)  # subscription, payg
    k_engagement: float = 2.0
    k_service: float = 2.0
    k_noise: float = 0.8
    plan_term: tuple[float, float, float, float] = (0.8, 0.0, -0.6, 0.0)
    k_price_ratio: float = 4.0  # times log(price paid / list price)
    k_increase: float = 3.0  # times (factor - 1) / 0.15, decaying with weeks since the increase
    increase_tau_weeks: float = 8.0
    random_hazard: float = 0.0005  # per week, on top of everything: leaves for no visible reason
    # subscription life events
    plan_change_share: float = 0.25  # of subscription customers get a candidate week
    price_increase_share: float = 0.30
    price_increase: tuple[float, float] = (1.08, 1.25)
    lapse_share: float = 0.06  # failed payment, restarted within 1-7 days
    return_share: float = 0.12  # of churners come back after a long gap
    return_gap_weeks: tuple[int, int] = (6, 40)
    final_complaint: tuple[float, float] = (0.5, 0.3)  # chance for service / price churners


def _window(end_date: str, months: int) -> tuple[date, date]:
    """(first day, day after the last) of `months` months ending at `end_date` inclusive."""
    end_excl = date.fromisoformat(str(end_date)[:10]) + timedelta(days=1)
    total = end_excl.year * 12 + (end_excl.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    day = min(end_excl.day, calendar.monthrange(year, month)[1])
    return date(year, month, day), end_excl


TS = pa.timestamp("us")
SCHEMAS: dict[str, pa.Schema] = {
    "customers": pa.schema(
        [
            ("customer_id", pa.string()),
            ("signup_date", TS),
            ("plan", pa.string()),
            ("billing", pa.string()),
            ("country", pa.string()),
            ("channel", pa.string()),
            ("monthly_price", pa.float64()),
        ]
    ),
    "events": pa.schema(
        [
            ("customer_id", pa.string()),
            ("timestamp", TS),
            ("event_type", pa.string()),
            ("value", pa.float64()),
        ]
    ),
    "orders": pa.schema(
        [
            ("customer_id", pa.string()),
            ("timestamp", TS),
            ("amount", pa.float64()),
            ("order_id", pa.string()),
            ("quantity", pa.int64()),
        ]
    ),
    "feedback": pa.schema(
        [
            ("customer_id", pa.string()),
            ("timestamp", TS),
            ("score", pa.float64()),
            ("kind", pa.string()),
            ("text", pa.string()),
        ]
    ),
    "subscriptions": pa.schema(
        [
            ("customer_id", pa.string()),
            ("start_date", TS),
            ("end_date", TS),
            ("plan", pa.string()),
            ("mrr", pa.float64()),
        ]
    ),
    "churn_truth": pa.schema(
        [
            ("customer_id", pa.string()),
            ("churned", pa.bool_()),
            ("churn_date", TS),
            ("churn_cause", pa.string()),
            ("billing", pa.string()),
            ("return_date", TS),
        ]
    ),
}
_WRITER_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_size": 1 << 20,
}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _strings(vocab: tuple[str, ...], idx: np.ndarray) -> pa.Array:
    """vocab[idx] as an Arrow string array; a negative index gives null."""
    idx = np.asarray(idx)
    indices = pa.array(idx.astype(np.int32), mask=idx < 0)
    return pa.array(vocab, pa.string()).take(indices)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pa.array(numbers.astype(np.int64)).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _timestamps(us: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(us.astype(np.int64), type=TS, mask=mask)


def _time_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds since midnight: a daytime peak and an evening peak."""
    evening = rng.random(n) < 0.3
    hours = np.where(evening, rng.normal(20.5, 1.8, n), rng.normal(13.5, 3.2, n))
    return (np.mod(hours, 24.0) * 3600.0).astype(np.int64).clip(0, 86_399)


@dataclass
class _Chunk:
    tables: dict[str, pa.Table]
    stats: dict[str, Any]


def _simulate_chunk(
    rng: np.random.Generator,
    first: int,
    n: int,
    n_days: int,
    base_us: int,
    id_width: int,
    order_offset: int,
    p: GenerationParams,
) -> _Chunk:
    W = -(-n_days // 7)
    # ---------------------------------------------------------------- profile
    sub = rng.random(n) < p.subscription_share
    plan0 = np.where(sub, rng.choice(3, n, p=np.array(p.plan_share)), PAYG).astype(np.int64)
    country = rng.choice(len(COUNTRIES), n, p=np.array(COUNTRY_SHARE))
    channel = rng.choice(len(CHANNELS), n, p=np.array(CHANNEL_SHARE))
    u = rng.random(n)
    ratio = np.where(
        u < p.legacy_share,
        np.round(rng.uniform(1.10, 1.35, n), 2),
        np.where(u < p.legacy_share + p.promo_share, np.round(rng.uniform(0.75, 0.90, n), 2), 1.0),
    )
    list_price = np.array(p.list_price)
    pre = rng.random(n) < p.initial_share
    g = p.growth
    x = (np.sqrt(1.0 + 2.0 * g * rng.random(n) * (1.0 + g / 2.0)) - 1.0) / g if g > 0 else rng.random(n)
    signup_day = np.where(
        pre, -rng.integers(1, 3 * 365 + 1, n), np.minimum((x * n_days).astype(np.int64), n_days - 1)
    ).astype(np.int64)
    bill = np.where(sub, 0, 1)
    lam_e = np.array(p.events_per_week)[bill] * np.exp(rng.normal(0.0, 0.5, n))
    lam_o = np.array(p.orders_per_week)[bill] * np.exp(rng.normal(0.0, np.where(sub, 0.5, 0.4), n))
    lam_f = p.surveys_per_week * np.exp(rng.normal(0.0, 0.3, n))
    onset_mult = np.array(p.channel_onset_multiplier)[channel]
    change_week = np.where(sub & (rng.random(n) < p.plan_change_share), rng.integers(0, W, n), -1)
    inc_week_cand = np.where(sub & (rng.random(n) < p.price_increase_share), rng.integers(0, W, n), -1)
    inc_factor_cand = rng.uniform(*p.price_increase, n)

    # ---------------------------------------------------------------- weekly simulation
    BIG = np.int64(1 << 40)
    status = np.zeros(n, np.int8)  # 0 not signed up, 1 active, 2 churned, 3 came back
    d_e = np.zeros(n)
    d_s = np.zeros(n)
    d_n = rng.normal(0.0, p.noise_sigma / np.sqrt(1 - p.noise_rho**2), n)
    e_left = np.zeros(n, np.int64)
    s_left = np.zeros(n, np.int64)
    e_slope = np.zeros(n)
    s_slope = np.zeros(n)
    plan = plan0.copy()
    plan_before = plan0.copy()
    change_day = np.full(n, BIG)
    inc_day = np.full(n, BIG)
    inc_week = np.full(n, -1)
    incf = np.ones(n)
    last_event_day = signup_day.copy()
    churn_day = np.full(n, BIG)
    return_day = np.full(n, BIG)
    cause = np.full(n, -1, np.int64)
    D_e = np.empty((n, W), np.float32)
    D_s = np.empty((n, W), np.float32)
    D_n = np.empty((n, W), np.float32)
    C_p = np.empty((n, W), np.float32)
    h0 = np.array(p.h0)[bill]
    plan_term = np.array(p.plan_term)
    k_ratio = p.k_price_ratio * np.log(ratio)
    lo_e, hi_e = p.episode_weeks
    for w in range(W):
        w0, w1 = 7 * w, min(7 * w + 7, n_days)
        status[(status == 0) & (signup_day < w1)] = 1
        back = (status == 2) & (return_day < w1)
        status[back] = 3
        d_e[back] = 0.0
        d_s[back] = 0.0
        e_left[back] = 0
        s_left[back] = 0
        act = status == 1

        d_n = p.noise_rho * d_n + rng.normal(0.0, p.noise_sigma, n)
        new_e = act & (e_left == 0) & (rng.random(n) < p.disengagement_onset * onset_mult)
        new_s = act & (s_left == 0) & (rng.random(n) < p.service_onset)
        e_left = np.where(new_e, rng.integers(lo_e, hi_e + 1, n), e_left)
        e_slope = np.where(new_e, rng.uniform(*p.episode_slope, n), e_slope)
        s_left = np.where(new_s, rng.integers(lo_e, hi_e + 1, n), s_left)
        s_slope = np.where(new_s, rng.uniform(*p.episode_slope, n), s_slope)
        in_e, in_s = e_left > 0, s_left > 0
        d_e = np.where(in_e, d_e + e_slope, d_e * p.recovery_rho)
        d_s = np.where(in_s, d_s + s_slope, d_s * p.recovery_rho)
        e_left = np.maximum(e_left - 1, 0)
        s_left = np.maximum(s_left - 1, 0)

        # subscription life events: a day in this week after signup
        first_day = np.maximum(w0, signup_day + 1)
        room = first_day < w1
        ev_day = first_day + (rng.random(n) * np.maximum(w1 - first_day, 0)).astype(np.int64)
        ch = act & room & (change_week == w)
        unhappy = (d_e + d_s) > 1.0
        new_plan = np.where(
            unhappy, np.maximum(plan - 1, BASIC), np.where(rng.random(n) < 0.5, np.minimum(plan + 1, PREMIUM), plan)
        )
        ch &= new_plan != plan
        plan_before = np.where(ch, plan, plan_before)
        plan = np.where(ch, new_plan, plan)
        change_day = np.where(ch, ev_day, change_day)
        inc = act & room & (inc_week_cand == w) & ~ch
        inc_day = np.where(inc, ev_day, inc_day)
        inc_week = np.where(inc, w, inc_week)
        incf = np.where(inc, inc_factor_cand, incf)
        last_event_day = np.where(ch | inc, ev_day, last_event_day)

        since = w - inc_week
        recent = np.where(inc_week >= 0, np.exp(-since / p.increase_tau_weeks), 0.0)
        c_price = plan_term[plan] + k_ratio + p.k_increase * (incf - 1.0) / 0.15 * recent
        c_eng = p.k_engagement * d_e + p.k_noise * d_n
        c_srv = p.k_service * d_s
        base = _sigmoid(h0) + p.random_hazard
        hazard = _sigmoid(h0 + c_eng + c_srv + c_price) + p.random_hazard
        lo_c = np.maximum(first_day, last_event_day + 1)
        span = np.maximum(w1 - lo_c, 0)
        hazard_week = 1.0 - (1.0 - hazard) ** (span / 7.0)
        go = act & (span > 0) & (rng.random(n) < hazard_week)
        day = lo_c + (rng.random(n) * span).astype(np.int64)
        random_cause = rng.random(n) < base / hazard
        parts = np.stack([c_eng, c_srv, c_price])
        dominant = np.argmax(parts, axis=0)
        random_cause |= parts.max(axis=0) <= 0.0
        churn_day = np.where(go, day, churn_day)
        cause = np.where(go, np.where(random_cause, 3, dominant), cause)
        comes_back = go & (rng.random(n) < p.return_share)
        gap = rng.integers(p.return_gap_weeks[0], p.return_gap_weeks[1] + 1, n) * 7 + rng.integers(0, 7, n)
        return_day = np.where(comes_back & (day + gap < n_days), day + gap, return_day)
        status[go] = 2

        D_e[:, w] = d_e
        D_s[:, w] = d_s
        D_n[:, w] = d_n
        C_p[:, w] = np.maximum(c_price, 0.0)

    churned = churn_day < BIG
    returned = return_day < BIG

    # ---------------------------------------------------------------- active days per week
    ws = (7 * np.arange(W, dtype=np.int64))[None, :]
    we = np.minimum(ws + 7, n_days)
    a1 = np.maximum(signup_day, 0)[:, None]
    b1 = np.minimum(churn_day, n_days)[:, None]
    lo1 = np.maximum(ws, a1)
    len1 = np.clip(np.minimum(we, b1) - lo1, 0, None)
    lo2 = np.maximum(ws, np.minimum(return_day, n_days)[:, None])
    len2 = np.clip(we - lo2, 0, None)
    cell_lo = np.where(len1 > 0, lo1, lo2).ravel()
    cell_len = (len1 + len2).ravel()
    frac = cell_len / 7.0
    del lo1, lo2, len1, len2

    def expand(rate: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        counts = rng.poisson(rate.ravel() * frac)
        cells = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
        day = cell_lo[cells] + (rng.random(cells.size) * cell_len[cells]).astype(np.int64)
        return cells, day, _time_of_day(rng, cells.size)

    Dn = D_n.astype(np.float64)
    # ---------------------------------------------------------------- events
    eng_state = D_e + 0.25 * D_s + 0.5 * Dn
    cells, ev_day_r, ev_sec = expand(lam_e[:, None] * np.exp(-p.events_decay * eng_state))
    ds_row = D_s.ravel()[cells]
    p_support = np.minimum(p.support_visit_share * np.exp(0.5 * ds_row), 0.3)
    u = rng.random(cells.size)
    rest = (u - p_support) / (1.0 - p_support)
    ev_type = np.where(u < p_support, 3, np.searchsorted(np.array([0.40, 0.75]), rest, side="right"))
    minutes = np.round(
        np.exp(rng.normal(np.log(6.0), 0.7, cells.size)) * np.exp(-0.15 * D_e.ravel()[cells]), 1
    )
    minutes = np.maximum(minutes, 0.1)
    events = _rows(cells // W, ev_day_r, ev_sec)
    e_order = events.pop("order")
    ev_cust = events["cust"]
    ev_type = ev_type[e_order]
    minutes = minutes[e_order]
    no_value = (ev_type == 0) | (ev_type == 3)

    # ---------------------------------------------------------------- orders
    ord_state = D_e + 0.3 * Dn
    cells, o_day, o_sec = expand(lam_o[:, None] * np.exp(-p.orders_decay * ord_state))
    oc = cells // W
    qty = 1 + rng.poisson(np.where(sub[oc], 0.3, 1.0))
    unit = np.where(
        sub[oc],
        np.exp(rng.normal(np.log(12.0), 0.4, oc.size)),
        9.0 * ratio[oc] * np.exp(rng.normal(0.0, 0.15, oc.size)),
    )
    amount = np.maximum(np.round(qty * unit, 2), 0.5)
    orders = _rows(oc, o_day, o_sec)
    o_order = orders.pop("order")
    qty, amount = qty[o_order], amount[o_order]

    # ---------------------------------------------------------------- feedback
    cells_sv, sv_day, sv_sec = expand(lam_f[:, None] * np.exp(0.25 * D_s))
    cells_tk, tk_day, tk_sec = expand(p.tickets_per_week * np.exp(p.ticket_growth * D_s))
    srv_rate = p.complaints_per_week * np.exp(p.complaint_growth * D_s)
    prc_rate = p.complaint_price * C_p
    cells_cp, cp_day, cp_sec = expand(srv_rate + prc_rate)

    def mean_score(cells: np.ndarray) -> np.ndarray:
        return (
            p.score_mean
            - p.score_drop_service * D_s.ravel()[cells]
            - p.score_drop_engagement * D_e.ravel()[cells]
            - p.score_drop_noise * D_n.ravel()[cells]
            - p.score_drop_price * C_p.ravel()[cells]
        )

    sv_score = np.clip(mean_score(cells_sv) + rng.normal(0.0, p.score_sd, cells_sv.size), 0.0, 10.0)
    sv_kind = rng.choice(3, cells_sv.size, p=np.array([0.5, 0.3, 0.2]))
    sv_score = np.where(sv_kind == 2, np.round(sv_score, 1), np.round(sv_score))
    bucket = np.searchsorted(np.array([4.0, 6.0, 7.5, 9.0]), sv_score, side="right")
    sv_text = np.where(rng.random(cells_sv.size) < 0.25, 4 - bucket, -1)
    tk_score = np.clip(mean_score(cells_tk) - 2.0 + rng.normal(0.0, p.score_sd, cells_tk.size), 0.0, 10.0)
    tk_score = np.where(rng.random(cells_tk.size) < 0.5, np.nan, np.round(tk_score))
    tk_text = _TICKET0 + rng.integers(0, len(TICKET_TEXT), cells_tk.size)
    price_share = prc_rate.ravel()[cells_cp] / (srv_rate.ravel()[cells_cp] + prc_rate.ravel()[cells_cp])
    is_price = rng.random(cells_cp.size) < price_share
    cp_text = np.where(
        is_price,
        _PRICE0 + rng.integers(0, len(PRICE_COMPLAINTS), cells_cp.size),
        _SERVICE0 + rng.integers(0, len(SERVICE_COMPLAINTS), cells_cp.size),
    )
    # a last complaint just before leaving, for some service and price churners
    chance = np.where(cause == 1, p.final_complaint[0], np.where(cause == 2, p.final_complaint[1], 0.0))
    fc_day = churn_day - 1 - rng.integers(0, 3, n)
    final = churned & (rng.random(n) < chance) & (fc_day >= np.maximum(signup_day, 0))
    fc_cust = np.flatnonzero(final)
    fc_day = fc_day[final]
    fc_text = np.where(
        cause[final] == 2,
        _PRICE0 + rng.integers(0, len(PRICE_COMPLAINTS), fc_cust.size),
        _SERVICE0 + rng.integers(0, len(SERVICE_COMPLAINTS), fc_cust.size),
    )
    fc_sec = _time_of_day(rng, fc_cust.size)
    fb_cust = np.concatenate([cells_sv // W, cells_tk // W, cells_cp // W, fc_cust])
    fb_day = np.concatenate([sv_day, tk_day, cp_day, fc_day])
    fb_sec = np.concatenate([sv_sec, tk_sec, cp_sec, fc_sec])
    n_cp = cells_cp.size + fc_cust.size
    fb_score = np.concatenate([sv_score, tk_score, np.full(n_cp, np.nan)])
    fb_kind = np.concatenate([sv_kind, np.full(cells_tk.size, 3), np.full(n_cp, 4)])
    fb_text = np.concatenate([sv_text, tk_text, cp_text, fc_text])
    feedback = _rows(fb_cust, fb_day, fb_sec)
    f_order = feedback.pop("order")
    fb_score, fb_kind, fb_text = fb_score[f_order], fb_kind[f_order], fb_text[f_order]

    # ---------------------------------------------------------------- subscriptions
    changed = change_day < BIG
    increased = inc_day < BIG
    lapse_day = np.maximum(signup_day, 0) + 1 + (rng.random(n) * n_days).astype(np.int64)
    restart = lapse_day + rng.integers(1, 8, n)
    limit = np.minimum(churn_day, n_days) - 1
    lapse = (
        sub
        & (rng.random(n) < p.lapse_share)
        & (restart < limit)
        & ~((change_day >= lapse_day - 1) & (change_day <= restart + 1))
        & ~((inc_day >= lapse_day - 1) & (inc_day <= restart + 1))
    )
    back_sub = sub & returned
    open_c = np.concatenate(
        [np.flatnonzero(sub), np.flatnonzero(changed), np.flatnonzero(increased),
         np.flatnonzero(lapse), np.flatnonzero(back_sub)]
    )
    open_d = np.concatenate(
        [signup_day[sub], change_day[changed], inc_day[increased], restart[lapse], return_day[back_sub]]
    )
    gone_sub = sub & churned
    close_c = np.concatenate(
        [np.flatnonzero(changed), np.flatnonzero(increased), np.flatnonzero(lapse), np.flatnonzero(gone_sub)]
    )
    close_d = np.concatenate([change_day[changed], inc_day[increased], lapse_day[lapse], churn_day[gone_sub]])
    oo = np.lexsort((open_d, open_c))
    open_c, open_d = open_c[oo], open_d[oo]
    co = np.lexsort((close_d, close_c))
    close_c, close_d = close_c[co], close_d[co]
    open_rank = np.arange(open_c.size) - np.searchsorted(open_c, open_c, side="left")
    close_rank = np.arange(close_c.size) - np.searchsorted(close_c, close_c, side="left")
    key_open = open_c * 64 + open_rank
    key_close = close_c * 64 + close_rank
    if key_close.size:
        pos = np.minimum(np.searchsorted(key_close, key_open), key_close.size - 1)
        has_end = key_close[pos] == key_open
        end_d = np.where(has_end, close_d[pos], 0)
    else:
        has_end = np.zeros(open_c.size, bool)
        end_d = np.zeros(open_c.size, np.int64)
    row_plan = np.where(changed[open_c] & (open_d >= change_day[open_c]), plan[open_c], plan_before[open_c])
    row_inc = np.where(increased[open_c] & (open_d >= inc_day[open_c]), incf[open_c], 1.0)
    mrr = np.round(list_price[row_plan] * ratio[open_c] * row_inc, 2)

    # ---------------------------------------------------------------- tables
    cust_num = first + np.arange(n, dtype=np.int64) + 1
    cid = _ids("C", cust_num, id_width)
    cust_ts = base_us + signup_day * DAY_US
    tables = {
        "customers": pa.table(
            {
                "customer_id": cid,
                "signup_date": _timestamps(cust_ts),
                "plan": _strings(PLANS, plan0),
                "billing": _strings(BILLING, bill),
                "country": _strings(COUNTRIES, country),
                "channel": _strings(CHANNELS, channel),
                "monthly_price": np.round(list_price[plan0] * ratio, 2),
            },
            schema=SCHEMAS["customers"],
        ),
        "events": pa.table(
            {
                "customer_id": cid.take(pa.array(ev_cust)),
                "timestamp": _timestamps(events["us"] + base_us),
                "event_type": _strings(EVENT_TYPES, ev_type),
                "value": pa.array(minutes, pa.float64(), mask=no_value),
            },
            schema=SCHEMAS["events"],
        ),
        "orders": pa.table(
            {
                "customer_id": cid.take(pa.array(orders["cust"])),
                "timestamp": _timestamps(orders["us"] + base_us),
                "amount": amount.astype(np.float64),
                "order_id": _ids("O", order_offset + np.arange(amount.size, dtype=np.int64) + 1, 10),
                "quantity": qty.astype(np.int64),
            },
            schema=SCHEMAS["orders"],
        ),
        "feedback": pa.table(
            {
                "customer_id": cid.take(pa.array(feedback["cust"])),
                "timestamp": _timestamps(feedback["us"] + base_us),
                "score": pa.array(fb_score, pa.float64(), from_pandas=True),
                "kind": _strings(FEEDBACK_KINDS, fb_kind),
                "text": _strings(FEEDBACK_TEXT, fb_text),
            },
            schema=SCHEMAS["feedback"],
        ),
        "subscriptions": pa.table(
            {
                "customer_id": cid.take(pa.array(open_c)),
                "start_date": _timestamps(base_us + open_d * DAY_US),
                "end_date": _timestamps(base_us + end_d * DAY_US, mask=~has_end),
                "plan": _strings(PLANS, row_plan),
                "mrr": mrr.astype(np.float64),
            },
            schema=SCHEMAS["subscriptions"],
        ),
        "churn_truth": pa.table(
            {
                "customer_id": cid,
                "churned": churned,
                "churn_date": _timestamps(base_us + np.where(churned, churn_day, 0) * DAY_US, mask=~churned),
                "churn_cause": _strings(CAUSES, cause),
                "billing": _strings(BILLING, bill),
                "return_date": _timestamps(base_us + np.where(returned, return_day, 0) * DAY_US, mask=~returned),
            },
            schema=SCHEMAS["churn_truth"],
        ),
    }
    exposure = cell_len.reshape(n, W).sum(axis=1)
    stats = {
        "customers": {b: int((bill == i).sum()) for i, b in enumerate(BILLING)},
        "churned": {b: int((churned & (bill == i)).sum()) for i, b in enumerate(BILLING)},
        "exposure_days": {b: int(exposure[bill == i].sum()) for i, b in enumerate(BILLING)},
        "churn_by_cause": {c: int((cause == i).sum()) for i, c in enumerate(CAUSES)},
        "churn_by_cause_billing": {
            b: {c: int(((cause == i) & (bill == j)).sum()) for i, c in enumerate(CAUSES)}
            for j, b in enumerate(BILLING)
        },
        "returned": int(returned.sum()),
        "plan_changes": int(changed.sum()),
        "price_increases": int(increased.sum()),
        "payment_lapses": int(lapse.sum()),
    }
    return _Chunk(tables, stats)


def _rows(cust: np.ndarray, day: np.ndarray, sec: np.ndarray) -> dict[str, np.ndarray]:
    """Sort rows by (customer, time); return the order and the sorted customer and time (us)."""
    sec_total = day.astype(np.int64) * 86_400 + sec.astype(np.int64)
    us = sec_total * SEC_US
    # rows arrive grouped by customer and by week, so a stable sort on this key is cheap
    span = int(sec_total.max()) + 1 if sec_total.size else 1
    key = cust.astype(np.int64) * np.int64(span) + sec_total
    order = np.argsort(key, kind="stable")
    return {"order": order, "cust": cust[order].astype(np.int64), "us": us[order]}


def _causes_doc(p: GenerationParams) -> list[dict[str, Any]]:
    return [
        {
            "name": "disengagement",
            "description": (
                "A disengagement episode: latent d_eng drifts up for a few weeks, so events per week "
                "fall and orders space out well before the customer leaves."
            ),
            "signals": ["events", "orders"],
            "observable_effects": {
                "events_per_week": f"base * exp(-{p.events_decay} * (d_eng + 0.25 d_srv + 0.5 d_noise))",
                "orders_per_week": f"base * exp(-{p.orders_decay} * (d_eng + 0.3 d_noise))",
                "session_minutes": "lognormal(median 6) * exp(-0.15 d_eng)",
                "survey_score": f"-{p.score_drop_engagement} * d_eng",
            },
            "hazard_coefficient": p.k_engagement,
            "onset_per_week": p.disengagement_onset,
            "onset_multiplier_by_channel": dict(zip(CHANNELS, p.channel_onset_multiplier)),
        },
        {
            "name": "service",
            "description": (
                "A service-failure episode: latent d_srv drifts up, survey scores fall, tickets, "
                "complaints and support visits pile up; engagement dips a little."
            ),
            "signals": ["feedback", "events"],
            "observable_effects": {
                "survey_score": f"{p.score_mean} - {p.score_drop_service} * d_srv (+ noise sd {p.score_sd})",
                "tickets_per_week": f"{p.tickets_per_week} * exp({p.ticket_growth} * d_srv)",
                "complaints_per_week": f"{p.complaints_per_week} * exp({p.complaint_growth} * d_srv)",
                "support_visit_share": f"{p.support_visit_share} * exp(0.5 d_srv), at most 0.3",
                "events_per_week": f"exp(-{p.events_decay} * 0.25 * d_srv)",
            },
            "hazard_coefficient": p.k_service,
            "onset_per_week": p.service_onset,
            "final_complaint_chance": p.final_complaint[0],
        },
        {
            "name": "price",
            "description": (
                "Plan and price: the basic plan, paying above list price and a recent price increase "
                "raise the hazard directly (premium lowers it); price complaints follow."
            ),
            "signals": ["customers", "subscriptions", "feedback", "orders"],
            "observable_effects": {
                "hazard_logit": (
                    f"plan term {dict(zip(PLANS, p.plan_term))} + {p.k_price_ratio} * log(price / list price) "
                    f"+ {p.k_increase} * (increase factor - 1) / 0.15 * exp(-weeks since increase / "
                    f"{p.increase_tau_weeks})"
                ),
                "complaints_per_week": f"+ {p.complaint_price} * max(price term, 0)",
                "survey_score": f"-{p.score_drop_price} * max(price term, 0)",
                "payg_order_amount": "unit price 9.0 * price ratio",
            },
            "plan_term": dict(zip(PLANS, p.plan_term)),
            "k_price_ratio": p.k_price_ratio,
            "k_increase": p.k_increase,
            "final_complaint_chance": p.final_complaint[1],
        },
        {
            "name": "random",
            "description": (
                "Leaves for no visible reason: the constant random hazard plus the baseline hazard "
                "sigmoid(h0). Not predictable by design."
            ),
            "signals": [],
            "random_hazard_per_week": p.random_hazard,
            "baseline_hazard_per_week": {b: float(_sigmoid(np.array(h))) for b, h in zip(BILLING, p.h0)},
        },
    ]


def _merge(total: dict[str, Any], part: dict[str, Any]) -> None:
    for k, v in part.items():
        if isinstance(v, dict):
            _merge(total.setdefault(k, {}), v)
        else:
            total[k] = total.get(k, 0) + v


def generate_dataset(
    out_dir: Path,
    n_customers: int = 5000,
    months: int = 18,
    end_date: str = "2026-06-30",
    seed: int = 42,
    chunk_size: int = 50_000,
) -> dict:
    """Write a synthetic raw dataset (five contract tables plus the planted truth) into `out_dir`.

    The folder is replaced atomically. The same arguments give byte-identical files. Returns the
    summary also stored under ``summary`` in ``ground_truth.json``.
    """
    if n_customers < 1:
        raise ValueError("n_customers must be at least 1")
    if months < 1:
        raise ValueError("months must be at least 1")
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    params = GenerationParams()
    start, end_excl = _window(end_date, months)
    n_days = (end_excl - start).days
    base_us = int(np.datetime64(start.isoformat(), "us").astype(np.int64))
    id_width = max(7, len(str(n_customers)))
    stats: dict[str, Any] = {}
    rows = dict.fromkeys(SCHEMAS, 0)

    with atomic_path(Path(out_dir)) as tmp:
        tmp.mkdir(parents=True)
        writers = {
            name: pq.ParquetWriter(tmp / f"{name}.parquet", schema, **_WRITER_OPTIONS)
            for name, schema in SCHEMAS.items()
        }
        try:
            for k, first in enumerate(range(0, n_customers, chunk_size)):
                n = min(chunk_size, n_customers - first)
                rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))
                chunk = _simulate_chunk(rng, first, n, n_days, base_us, id_width, rows["orders"], params)
                for name, table in chunk.tables.items():
                    writers[name].write_table(table)
                    rows[name] += table.num_rows
                _merge(stats, chunk.stats)
                del chunk
        finally:
            for writer in writers.values():
                writer.close()

        summary = _summary(stats, rows)
        truth = {
            "generator": "churnml.generate",
            "parameters": {
                "n_customers": n_customers,
                "months": months,
                "start_date": start.isoformat(),
                "end_date": (end_excl - timedelta(days=1)).isoformat(),
                "seed": seed,
                "chunk_size": chunk_size,
            },
            "causes": _causes_doc(params),
            "hazard": (
                "weekly P(churn) = sigmoid(h0[billing] + k_engagement*d_eng + k_service*d_srv + "
                "k_noise*d_noise + price term) + random_hazard"
            ),
            "cause_attribution": (
                "random with probability (sigmoid(h0) + random_hazard) / hazard, otherwise the largest "
                "of k_engagement*d_eng + k_noise*d_noise, k_service*d_srv and the price term "
                "(random too when none of them is positive)"
            ),
            "simulation": asdict(params),
            "notes": [
                "customers.plan and customers.monthly_price are the plan and price at signup.",
                "Subscription rows change on plan changes and price increases, close on churn or a "
                "failed payment (restarted within 1-7 days), and reopen when a churned customer comes back.",
                "After a churn a customer has no events, orders or feedback until they come back "
                "(churn_truth.return_date); payg churners simply stop.",
                "Each chunk of chunk_size customers is simulated from SeedSequence(seed, spawn_key=(chunk,)); "
                "a different chunk_size gives a different (equally valid) dataset.",
            ],
            "summary": summary,
        }
        (tmp / "ground_truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    return summary


def _summary(stats: dict[str, Any], rows: dict[str, int]) -> dict[str, Any]:
    month_days = 365.25 / 12
    n_total = sum(stats["customers"].values())
    churned_total = sum(stats["churned"].values())
    exposure_total = sum(stats["exposure_days"].values())
    return {
        "rows": dict(rows),
        "customers_by_billing": stats["customers"],
        "churned": churned_total,
        "churned_by_billing": stats["churned"],
        "churn_by_cause": stats["churn_by_cause"],
        "churn_by_cause_and_billing": stats["churn_by_cause_billing"],
        "churn_rate": round(churned_total / n_total, 4),
        "churn_rate_by_billing": {
            b: round(stats["churned"][b] / c, 4) if c else None for b, c in stats["customers"].items()
        },
        "monthly_churn_rate": round(churned_total / (exposure_total / month_days), 4) if exposure_total else None,
        "monthly_churn_rate_by_billing": {
            b: round(stats["churned"][b] / (e / month_days), 4) if e else None
            for b, e in stats["exposure_days"].items()
        },
        "returned_after_churn": stats["returned"],
        "plan_changes": stats["plan_changes"],
        "price_increases": stats["price_increases"],
        "payment_lapses": stats["payment_lapses"],
    }
