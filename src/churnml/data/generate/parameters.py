"""The simulation's parameters: shares, rates, latent dynamics, signal and hazard coefficients."""

from __future__ import annotations

from dataclasses import dataclass


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
