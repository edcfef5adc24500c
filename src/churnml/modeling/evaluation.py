"""Out-of-time evaluation: metrics, campaign economics, and the curves behind the plots.

Rankings everywhere use a stable sort on -score, so customers with equal scores keep their row
order: every top-k quantity is then reproducible whatever the sort algorithm does with ties.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

_EPS = 1e-15
DAYS_PER_MONTH = 365.2425 / 12  # 30.436875: the mean Gregorian month


# ---- ranking and probability metrics ------------------------------------------------------------

def _ranked(scores: np.ndarray) -> np.ndarray:
    """Row indices from highest to lowest score; ties keep row order."""
    return np.argsort(-np.asarray(scores, dtype=float), kind="stable")


def _top_k(n: int, fraction: float) -> int:
    # Round before ceil: 0.1 * 30 is 3.0000000000000004 in floating point and must give 3, not 4.
    return int(math.ceil(round(fraction * n, 9)))


def _pair(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, s = np.asarray(y_true, dtype=int).ravel(), np.asarray(scores, dtype=float).ravel()
    if len(y) != len(s):
        raise ValueError(f"{len(y)} labels but {len(s)} scores")
    return y, s


def _probabilities(y_true: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = _pair(y_true, prob)
    if not np.all((p >= 0) & (p <= 1)):  # also rejects NaN
        raise ValueError("probabilities must lie in [0, 1]")
    return y, p


def top_fraction_lift(y_true: np.ndarray, scores: np.ndarray, fraction: float = 0.1) -> float:
    """Churn rate among the `fraction` highest-scored customers, over the overall churn rate."""
    y, s = _pair(y_true, scores)
    if len(y) == 0 or y.sum() == 0:
        return float("nan")
    top = _ranked(s)[:max(1, _top_k(len(y), fraction))]
    return float(y[top].mean() / y.mean())


def ranking_metrics(y_true: np.ndarray, scores: np.ndarray, top_fraction: float = 0.1) -> dict[str, float]:
    """Metrics that only need an ordering, so `scores` may be any scale (baselines, raw margins)."""
    y, s = _pair(y_true, scores)
    # AUCs are undefined with one class; NaN says so instead of raising mid-pipeline.
    both_classes = 0 < y.sum() < len(y)
    return {
        "roc_auc": float(roc_auc_score(y, s)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, s)) if both_classes else float("nan"),
        "top_decile_lift": top_fraction_lift(y, s, top_fraction),
        "churn_rate": float(y.mean()) if len(y) else float("nan"),
        "rows": int(len(y)),
    }


def recall_precision_at(y_true: np.ndarray, scores: np.ndarray, fraction: float) -> tuple[float, float]:
    """Share of all churners caught, and share of contacts who churn, when contacting the top
    ceil(fraction * n) customers: the two numbers a fixed-size retention campaign is judged on."""
    y, s = _pair(y_true, scores)
    k = _top_k(len(y), fraction)
    if k == 0:
        return float("nan"), float("nan")
    caught = y[_ranked(s)[:k]].sum()
    recall = caught / y.sum() if y.sum() else float("nan")
    return float(recall), float(caught / k)


def _calibration_table(y: np.ndarray, p: np.ndarray, bins: int) -> pd.DataFrame:
    # Equal-width bins over [0, 1]; p == 1.0 would open bin `bins`, so it joins the last bin.
    index = np.minimum((p * bins).astype(int), bins - 1)
    table = (pd.DataFrame({"bin": index, "p": p, "y": y})
             .groupby("bin", sort=True)
             .agg(mean_probability=("p", "mean"), churn_rate=("y", "mean"), rows=("y", "size"))
             .reset_index())
    return table.astype({"bin": int, "mean_probability": float, "churn_rate": float, "rows": int})


def expected_calibration_error(y_true: np.ndarray, prob: np.ndarray, bins: int = 10) -> float:
    """Row-weighted mean over non-empty bins of |mean probability - churn rate|."""
    y, p = _probabilities(y_true, prob)
    if len(y) == 0:
        return float("nan")
    table = _calibration_table(y, p, bins)
    gap = (table["mean_probability"] - table["churn_rate"]).abs()
    return float((gap * table["rows"]).sum() / len(y))


def classification_metrics(y_true: np.ndarray, prob: np.ndarray, top_fraction: float = 0.1,
                           ece_bins: int = 10) -> dict[str, float]:
    """Ranking metrics plus the ones that judge the probabilities themselves (log loss, Brier,
    calibration), which matter once the probabilities drive campaign economics."""
    y, p = _probabilities(y_true, prob)
    metrics = ranking_metrics(y, p, top_fraction)
    # Clip the probability given to what happened, not p itself: the same as clipping p to
    # [1e-15, 1 - 1e-15], but exact, since 1 - (1 - 1e-15) is not 1e-15 in floating point.
    # The clip keeps one confident mistake from making the loss infinite.
    outcome = np.clip(np.where(y == 1, p, 1 - p), _EPS, 1 - _EPS)
    empty = len(y) == 0
    metrics["log_loss"] = float("nan") if empty else float(-np.mean(np.log(outcome)))
    metrics["brier"] = float("nan") if empty else float(np.mean((p - y) ** 2))
    metrics["ece"] = expected_calibration_error(y, p, ece_bins)
    for pct in (10, 20):
        recall, precision = recall_precision_at(y, p, pct / 100)
        metrics[f"recall_at_{pct}"], metrics[f"precision_at_{pct}"] = recall, precision
    return metrics


def per_cutoff_metrics(frame: pd.DataFrame, prob_col: str = "probability",
                       top_fraction: float = 0.1) -> pd.DataFrame:
    """One row per (cutoff, split): is the model stable from month to month, or does one good
    month carry the average?"""
    rows = []
    for (cutoff, split), group in frame.groupby(["cutoff", "split"], sort=True):
        m = classification_metrics(group["label"].to_numpy(), group[prob_col].to_numpy(), top_fraction)
        rows.append({"cutoff": cutoff, "split": split, "rows": m["rows"], "churn_rate": m["churn_rate"],
                     "roc_auc": m["roc_auc"], "pr_auc": m["pr_auc"], "brier": m["brier"],
                     "top_decile_lift": m["top_decile_lift"]})
    columns = ["cutoff", "split", "rows", "churn_rate", "roc_auc", "pr_auc", "brier", "top_decile_lift"]
    return pd.DataFrame(rows, columns=columns)


# ---- campaign economics -------------------------------------------------------------------------

VALUE_COLUMNS = {"mrr": "sub_mrr", "spend": "pur_spend_90d"}


@dataclass(frozen=True)
class Economics:
    """Cost of one retention contact and offer, and the chance the offer keeps a would-be churner."""

    contact_cost: float
    offer_cost: float
    success_rate: float

    def __post_init__(self) -> None:
        if self.contact_cost < 0 or self.offer_cost < 0:
            raise ValueError("costs must be non-negative")
        if not 0 <= self.success_rate <= 1:
            raise ValueError(f"success_rate must lie in [0, 1], got {self.success_rate}")

    @property
    def cost(self) -> float:
        return self.contact_cost + self.offer_cost


def customer_value(features: pd.DataFrame, source: str, months: float, constant: float) -> np.ndarray:
    """Value of keeping each customer for `months` more months.

    "mrr": sub_mrr x months; "spend": the 90-day spend as a monthly rate x months; "constant": the
    same value for everyone; "auto": MRR plus the spend rate, from whichever of the two columns
    exist (a subscriber who also buys is worth both), else the constant. Missing values count as
    0: a customer with no recorded revenue is not worth an offer.
    """
    if source == "auto":
        present = [s for s, column in VALUE_COLUMNS.items() if column in features]
        if not present:
            return np.full(len(features), float(constant))
        return sum(customer_value(features, s, months, constant) for s in present)
    if source == "constant":
        return np.full(len(features), float(constant))
    column = VALUE_COLUMNS.get(source)
    if column is None:
        raise ValueError(f"unknown customer value source {source!r}: use mrr, spend, constant or auto")
    if column not in features:
        raise ValueError(f"customer value source {source!r} needs column {column!r}, which is missing")
    raw = pd.to_numeric(features[column], errors="coerce").fillna(0).to_numpy(dtype=float)
    monthly = raw if column == "sub_mrr" else raw / 90 * DAYS_PER_MONTH
    return monthly * months


def _profit_table(y_true: np.ndarray, prob: np.ndarray, value: np.ndarray | float, econ: Economics) -> pd.DataFrame:
    """Profit of contacting the k highest-probability customers, for every k = 0..n.

    Every contact costs contact + offer; only a true churner can be saved, with probability
    success_rate, and saving them is worth their value. The expected column replaces the true
    label by the model's probability: what the model promises before the campaign runs.
    """
    y, p = _probabilities(y_true, prob)
    v = np.broadcast_to(np.asarray(value, dtype=float), p.shape)
    order = _ranked(p)
    realised = y[order] * econ.success_rate * v[order] - econ.cost
    expected = p[order] * econ.success_rate * v[order] - econ.cost
    n = len(y)
    return pd.DataFrame({
        "contacted": np.arange(n + 1),
        "share_contacted": np.arange(n + 1) / n if n else np.zeros(1),
        "threshold": np.concatenate([[1.0], p[order]]),  # contacting nobody: nothing is above 1.0
        "profit": np.concatenate([[0.0], np.cumsum(realised)]),
        "expected_profit": np.concatenate([[0.0], np.cumsum(expected)]),
    })


def profit_curve(y_true: np.ndarray, prob: np.ndarray, value: np.ndarray | float, econ: Economics,
                 points: int = 201) -> pd.DataFrame:
    """Realised and expected campaign profit by number contacted, thinned to at most `points` rows
    (always keeping nobody, everybody, and the most profitable row, so the plot shows the optimum)."""
    if points < 3:
        raise ValueError("points must be at least 3")
    table = _profit_table(y_true, prob, value, econ)
    if len(table) <= points:
        return table
    keep = np.linspace(0, len(table) - 1, points - 1).round().astype(int)
    keep = np.unique(np.append(keep, int(table["profit"].to_numpy().argmax())))
    return table.iloc[keep].reset_index(drop=True)


def campaign_summary(y_true: np.ndarray, prob: np.ndarray, value: np.ndarray | float, econ: Economics,
                     budgets: list[float]) -> dict[str, float]:
    """The most profitable campaign on these rows, and the profit of fixed-size campaigns.

    The optimum is the first maximum, i.e. the smallest campaign reaching the best profit; it
    may be nobody (threshold 1.0). It is read off labels the model never saw, so it is the best
    case for that threshold, not a forecast. `budgets` are shares of customers contacted.
    """
    table = _profit_table(y_true, prob, value, econ)
    best = table.iloc[int(table["profit"].to_numpy().argmax())]
    n = len(table) - 1
    summary: dict[str, float] = {
        "optimal_threshold": float(best["threshold"]),
        "optimal_contacted": int(best["contacted"]),
        "optimal_share_contacted": float(best["share_contacted"]),
        "optimal_profit": float(best["profit"]),
        "optimal_expected_profit": float(best["expected_profit"]),
    }
    for share in budgets:
        # round half up (not banker's rounding) so that a budget of 2.5 customers contacts 3
        k = min(n, max(0, int(math.floor(share * n + 0.5))))
        name = f"{int(round(share * 100))}pct"  # round: int(0.29 * 100) would be 28
        summary[f"profit_at_{name}"] = float(table["profit"].iloc[k])
        summary[f"expected_profit_at_{name}"] = float(table["expected_profit"].iloc[k])
    _, p = _probabilities(y_true, prob)
    v = np.broadcast_to(np.asarray(value, dtype=float), p.shape)
    worth = v[v > 0]
    # p * success * value > cost  <=>  p > cost / (success * value): the break-even probability
    summary["breakeven_probability_mean"] = (
        float(np.mean(econ.cost / (econ.success_rate * worth)))
        if len(worth) and econ.success_rate > 0 else float("nan"))
    return summary


# ---- curves for plots ---------------------------------------------------------------------------

def curves(y_true: np.ndarray, scores: np.ndarray, points: int = 201) -> dict[str, pd.DataFrame]:
    """ROC, precision-recall, calibration, cumulative gains and decile lift, each small enough to
    plot or store as CSV. Calibration assumes the scores are probabilities in [0, 1]."""
    y, s = _pair(y_true, scores)
    fpr, tpr, _ = roc_curve(y, s)
    precision, recall, _ = precision_recall_curve(y, s)
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr})
    pr = pd.DataFrame({"recall": recall, "precision": precision}).iloc[::-1].reset_index(drop=True)
    return {"roc": _thin(roc, points), "pr": _thin(pr, points),
            "calibration": _calibration_table(y, np.clip(s, 0, 1), 10),
            "gains": _thin(_gains(y, s), points), "lift": _decile_lift(y, s)}


def _gains(y: np.ndarray, s: np.ndarray) -> pd.DataFrame:
    """Share of all churners caught by contacting the top share of customers, from (0,0) to (1,1)."""
    n, churners = len(y), y.sum()
    caught = np.concatenate([[0], np.cumsum(y[_ranked(s)])])
    return pd.DataFrame({"share_contacted": np.arange(n + 1) / max(n, 1),
                         "share_of_churners_caught": caught / churners if churners else np.nan})


def _decile_lift(y: np.ndarray, s: np.ndarray) -> pd.DataFrame:
    # Deciles by rank, not by score value, so ties cannot leave a decile empty or oversized.
    base = y.mean() if len(y) else float("nan")
    parts = [part for part in np.array_split(_ranked(s), 10) if len(part)]
    rates = np.array([y[part].mean() for part in parts], dtype=float)
    return pd.DataFrame({"decile": np.arange(1, len(parts) + 1), "churn_rate": rates,
                         "lift": rates / base if base else np.nan})


def _thin(frame: pd.DataFrame, points: int) -> pd.DataFrame:
    if len(frame) <= points:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, points).round().astype(int))
    return frame.iloc[keep].reset_index(drop=True)
