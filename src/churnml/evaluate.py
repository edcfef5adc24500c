"""Out-of-time evaluation: ranking metrics and the curves behind them."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve


def top_fraction_lift(y_true: np.ndarray, scores: np.ndarray, fraction: float = 0.1) -> float:
    """Churn rate among the `fraction` highest-scored customers, over the overall churn rate.

    Ties at the boundary are broken by order of appearance after a stable sort, so the result
    does not depend on how the sort treats equal scores.
    """
    y_true = np.asarray(y_true, dtype=float)
    base = y_true.mean()
    if len(y_true) == 0 or base == 0:
        return float("nan")
    k = max(1, int(np.ceil(fraction * len(y_true))))
    top = np.argsort(-np.asarray(scores, dtype=float), kind="stable")[:k]
    return float(y_true[top].mean() / base)


def ranking_metrics(y_true: np.ndarray, scores: np.ndarray, top_fraction: float = 0.1) -> dict[str, float]:
    y_true = np.asarray(y_true, dtype=int)
    both_classes = 0 < y_true.sum() < len(y_true)
    return {
        "roc_auc": float(roc_auc_score(y_true, scores)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(y_true, scores)) if both_classes else float("nan"),
        "top_decile_lift": top_fraction_lift(y_true, scores, top_fraction),
        "churn_rate": float(y_true.mean()) if len(y_true) else float("nan"),
        "rows": int(len(y_true)),
    }


def curves(y_true: np.ndarray, scores: np.ndarray, points: int = 201) -> dict[str, pd.DataFrame]:
    """ROC and precision-recall curves, thinned to at most `points` rows for plotting."""
    fpr, tpr, _ = roc_curve(y_true, scores)
    precision, recall, _ = precision_recall_curve(y_true, scores)
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr})
    pr = pd.DataFrame({"recall": recall, "precision": precision}).iloc[::-1].reset_index(drop=True)
    return {"roc": _thin(roc, points), "pr": _thin(pr, points)}


def _thin(frame: pd.DataFrame, points: int) -> pd.DataFrame:
    if len(frame) <= points:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, points).round().astype(int))
    return frame.iloc[keep].reset_index(drop=True)
