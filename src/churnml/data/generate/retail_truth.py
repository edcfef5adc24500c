"""What ground_truth.json says for the ``orders`` (retail) shape: the process, the two causes,
every simulation number, notes and the summary."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from churnml.data.generate.retail import MONTH_DAYS, RetailParams
from churnml.data.generate.vocab import CHANNELS


def retail_summary(stats: dict[str, Any], rows: dict[str, int]) -> dict[str, Any]:
    """Rows per table, customers, churners (all, and those who left before the window opened), churn
    by cause, the share churned and the monthly churn rate among live customers inside the window."""
    n, churned, before = stats["customers"], stats["churned"], stats["churned_before_window"]
    exposure_months = stats["exposure_days"] / MONTH_DAYS
    return {
        "rows": dict(rows),
        "customers": n,
        "customers_by_billing": {"payg": n},
        "churned": churned,
        "churned_before_window": before,
        "churn_by_cause": stats["churn_by_cause"],
        "churn_rate": round(churned / n, 4),
        "monthly_churn_rate": round((churned - before) / exposure_months, 4) if exposure_months else None,
        "orders_before_window": stats["orders_before_window"],
    }


def retail_ground_truth(
    generator: str, parameters: dict[str, Any], p: RetailParams, summary: dict[str, Any]
) -> dict[str, Any]:
    """The document: `generator`, the call's `parameters`, the process, causes, numbers, notes, `summary`."""
    return {
        "generator": generator,
        "parameters": parameters,
        "process": {
            "purchase_rate": (
                f"lambda ~ Gamma(shape {p.rate_shape}, mean {p.orders_per_week} orders per week) per customer"
            ),
            "purchase_timing": (
                f"gaps ~ Gamma(k, mean 1/lambda), k ~ lognormal(median {p.regularity_median}, "
                f"sigma {p.regularity_sigma}) per customer: k < 1 bursty, k > 2 regular"
            ),
            "dropout": (
                f"unseen death Exponential(mu) after signup, mu ~ Gamma(shape {p.dropout_shape}, mean "
                f"{p.dropout_per_month} per month) x channel multiplier "
                f"{dict(zip(CHANNELS, p.channel_dropout_multiplier))}"
            ),
            "fade": (
                f"{p.fade_share:.0%} of deaths: over the {p.fade_weeks[0]:g}-{p.fade_weeks[1]:g} weeks before, "
                f"each gap x exp({p.fade_strength} * progress)"
            ),
            "spend": (
                f"mean spend per customer lognormal(median {p.spend_median}, sigma {p.spend_sigma}); "
                f"amount ~ Gamma(shape {p.amount_shape}) around it, independent of frequency; "
                f"quantity 1 + Poisson({p.extra_items})"
            ),
        },
        "causes": [
            {
                "name": "disengagement",
                "description": "A faded death: the gaps between orders stretch for weeks before the orders stop.",
                "signals": ["orders"],
            },
            {
                "name": "random",
                "description": "A silent death: orders stop with no change before; only the silence shows it.",
                "signals": [],
            },
        ],
        "simulation": asdict(p),
        "notes": [
            "The first order is on the signup day; only orders inside the window are written.",
            "churn_date is the day of the unseen death. Customers who signed up before the window may have "
            "died before it opened: they are in customers with no orders, churned with a churn_date before "
            "the window (summary.churned_before_window); monthly_churn_rate counts deaths inside the window only.",
            "Every customer pays as they go: plan and billing payg, monthly_price 0; no customer comes back.",
            "Each chunk of chunk_size customers is simulated from SeedSequence(seed, spawn_key=(chunk,)).",
        ],
        "summary": summary,
    }
