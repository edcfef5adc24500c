"""What ground_truth.json says was planted: the parameters, each cause with its observable effects
and coefficients, how the hazard and the cause attribution work, notes and the summary."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from churnml.data.generate.hazard import sigmoid
from churnml.data.generate.parameters import GenerationParams
from churnml.data.generate.vocab import BILLING, CHANNELS, PLANS


def ground_truth(
    generator: str, parameters: dict[str, Any], params: GenerationParams, summary: dict[str, Any]
) -> dict[str, Any]:
    """The document: `generator` (the module that wrote it), the call's `parameters`, the causes,
    hazard, attribution, every simulation number, notes and `summary`."""
    return {
        "generator": generator,
        "parameters": parameters,
        "causes": causes_doc(params),
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


def causes_doc(p: GenerationParams) -> list[dict[str, Any]]:
    """Each cause: what it is, the tables that show it, its formulas and coefficients."""
    return [_disengagement(p), _service(p), _price(p), _random(p)]


def _disengagement(p: GenerationParams) -> dict[str, Any]:
    """Disengagement: its episodes, the event and order signals, coefficient and onset rates."""
    return {
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
    }


def _service(p: GenerationParams) -> dict[str, Any]:
    """Service failure: its episodes, the feedback and support-visit signals, coefficient and onset rate."""
    return {
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
    }


def _price(p: GenerationParams) -> dict[str, Any]:
    """Price: the plan, price-ratio and price-increase terms and where they show."""
    return {
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
    }


def _random(p: GenerationParams) -> dict[str, Any]:
    """Random: the baseline and constant hazards, which nothing observable predicts."""
    return {
        "name": "random",
        "description": (
            "Leaves for no visible reason: the constant random hazard plus the baseline hazard "
            "sigmoid(h0). Not predictable by design."
        ),
        "signals": [],
        "random_hazard_per_week": p.random_hazard,
        "baseline_hazard_per_week": {b: float(sigmoid(np.array(h))) for b, h in zip(BILLING, p.h0)},
    }
