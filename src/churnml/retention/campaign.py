"""Measuring a retention campaign: churn among the treated against the control group.

Once the label window after the campaign's as-of date is fully observed, each targeted customer
is labelled with the project's own churn definition (churnml.features.label_times), exactly as training
labels are made. The groups were split by a hash draw independent of risk, so the difference in
churn rates (control - treated) estimates what the campaign did.
"""

from __future__ import annotations

import dataclasses
import warnings
from datetime import datetime, timedelta
from typing import Any

import ibis
import numpy as np
import pandas as pd
from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

from churnml.modeling.evaluation import Economics
from churnml.features.label_times import LabelSpec, label_rows
from churnml.retention.targeting import GROUPS

# Newcombe's hybrid score interval (built from each group's Wilson interval): close to its
# nominal coverage even for small groups and churn rates near 0, which is the usual campaign
# (a 10% control group, a few percent churn), where the Wald interval is too narrow and can
# leave [-1, 1].
CI_METHOD = "newcomb"
# statsmodels has no Newcombe test; the score test (Miettinen-Nurminen) is its natural partner,
# also built from score statistics, and it keeps its level at small counts where Wald's does not.
TEST_METHOD = "score"
STATUSES = ("measured", "not_observed", "not_found")


def measurement_spec(spec: LabelSpec, horizon_days: int) -> LabelSpec:
    """The project's label definition over [as_of, as_of + horizon): no lead, since the campaign
    acts from the as-of date and a churn the day after it is one the campaign failed to stop."""
    return dataclasses.replace(spec, lead_days=0, horizon_days=int(horizon_days))


def measure_outcomes(
    tables: dict[str, ibis.Table], targets: pd.DataFrame, as_of: datetime, spec: LabelSpec, until: datetime
) -> pd.DataFrame:
    """Per targeted customer: `status` and `churned` (1/0, missing unless measured).

    status is `measured`; `not_observed` when the data no longer shows them as a customer at
    the as-of date (their churn was settled before the campaign could act); or `not_found` when
    they are not in the customers table at all. Nobody is dropped. Raises a ValueError saying
    from when the campaign can be measured while any label window is not fully observed.
    """
    definition = spec.fallback if spec.definition == "custom" else spec.definition
    cutoff = pd.Timestamp(as_of).normalize()
    given = pd.DataFrame({"customer_id": targets["customer_id"].astype("string"),
                          "cutoff": pd.Series([cutoff] * len(targets), dtype="datetime64[us]")})
    customers = tables["customers"].select("customer_id", "signup_date")
    rows = ibis.memtable(given).join(customers, "customer_id").select("customer_id", "signup_date", "cutoff")
    found = set(rows.select("customer_id").to_pandas()["customer_id"])
    rows = rows.filter(rows.signup_date < rows.cutoff)  # as for training rows: signed up before the cutoff
    labelled = label_rows(tables, rows, spec, until, definition).to_pandas()
    window_end = cutoff + pd.Timedelta(days=spec.horizon_days)
    known_at = pd.to_datetime(labelled["label_known_at"]).max() if len(labelled) else window_end
    if (len(labelled) and not labelled["label_known"].astype(bool).all()) or pd.Timestamp(until) < window_end:
        known_at = max(pd.Timestamp(known_at), window_end)
        raise ValueError(
            f"churn in [{cutoff:%Y-%m-%d}, {window_end:%Y-%m-%d}) is not yet fully observed: the data runs "
            f"to {pd.Timestamp(until) - timedelta(days=1):%Y-%m-%d}. The campaign can be measured from "
            f"{known_at:%Y-%m-%d}, with data through {known_at - timedelta(days=1):%Y-%m-%d}"
            + (f" (the window plus {spec.grace_days} days' grace for a subscription to restart)"
               if known_at > window_end else ""))
    # one row per customer: a customer is either contractual or not, but be certain
    label = labelled.groupby("customer_id")["label"].max()
    ids = targets["customer_id"].astype("string")
    out = pd.DataFrame({"customer_id": ids, "group": targets["group"].astype("string").to_numpy()})
    out["status"] = np.where(ids.isin(label.index), "measured", np.where(ids.isin(found), "not_observed", "not_found"))
    out["churned"] = ids.map(label).astype("Int8")
    return out


def _rounded(value: float, digits: int = 6) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def compare_groups(
    outcomes: pd.DataFrame, customer_value: pd.Series, econ: Economics, alpha: float = 0.05
) -> dict[str, Any]:
    """Churn per group, the difference (control - treated) with its interval and p-value, the
    customers retained by the campaign and its realised net value.

    `outcomes` are from `measure_outcomes`, `customer_value` is aligned with them. Rates are over
    the measured customers. Retained = difference x measured treated; realised net value =
    difference x the measured treated's total value - the cost of every treated contact (each was
    contacted, measured or not). Both take the effect to be the same across the treated.
    """
    groups: dict[str, dict[str, Any]] = {}
    for group in GROUPS:
        part = outcomes["group"] == group
        measured = part & (outcomes["status"] == "measured")
        n, churned = int(measured.sum()), int(outcomes.loc[measured, "churned"].sum())
        groups[group] = {
            "targeted": int(part.sum()),
            **{status: int((part & (outcomes["status"] == status)).sum()) for status in STATUSES},
            "churned": churned,
            "churn_rate": round(churned / n, 6) if n else None,
            "value": round(float(pd.Series(customer_value)[measured.to_numpy()].sum()), 2),
        }
    empty = [g for g in GROUPS if groups[g]["measured"] == 0]
    if empty:
        raise ValueError("cannot compare: no measured customers in the "
                         + " and ".join(f"{g} group ({groups[g]['targeted']} targeted)" for g in empty))
    c, t = groups["control"], groups["treated"]
    difference = c["churned"] / c["measured"] - t["churned"] / t["measured"]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = confint_proportions_2indep(c["churned"], c["measured"], t["churned"], t["measured"],
                                               method=CI_METHOD, compare="diff", alpha=alpha)
        p_value = test_proportions_2indep(c["churned"], c["measured"], t["churned"], t["measured"],
                                          method=TEST_METHOD, compare="diff").pvalue
    if not np.isfinite(p_value) and (c["churned"] + t["churned"]) in (0, c["measured"] + t["measured"]):
        p_value = 1.0  # nobody (or everybody) churned in both groups: no evidence of any difference
    n_treated, treated_value = t["measured"], t["value"]
    cost = t["targeted"] * econ.cost
    return {
        "groups": groups,
        "difference": {"estimate": _rounded(difference), "ci_low": _rounded(low), "ci_high": _rounded(high),
                       "confidence": 1 - alpha, "p_value": _rounded(p_value, 8),
                       "ci_method": CI_METHOD, "test_method": TEST_METHOD},
        "retained": {"estimate": _rounded(difference * n_treated, 2), "ci_low": _rounded(low * n_treated, 2),
                     "ci_high": _rounded(high * n_treated, 2)},
        "net_value": {"estimate": _rounded(difference * treated_value - cost, 2),
                      "ci_low": _rounded(low * treated_value - cost, 2),
                      "ci_high": _rounded(high * treated_value - cost, 2), "cost": round(cost, 2)},
    }
