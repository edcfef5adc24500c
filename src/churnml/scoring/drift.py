"""Feature drift between training and scoring: the population stability index (PSI).

At training time each feature's distribution is summarised as a profile: quantile bin edges
(deciles by default) with the share of training rows in each bin, missing values as a bin of
their own; categorical features as the share of each level code. The profile is plain JSON and
travels inside the model, so any later scoring run can measure drift against it.

PSI = sum over bins of (actual - expected) * ln(actual / expected), with shares floored at a
small epsilon so an empty bin does not make it infinite. Rules of thumb: < 0.1 stable,
0.1-0.25 moderate shift, > 0.25 a significant shift.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnml.features.catalog import FeatureInfo

EPSILON = 1e-4
DRIFT_THRESHOLD = 0.25


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [float(c / total) if total else 0.0 for c in counts]


def _numeric_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    present = values[~np.isnan(values)]
    # bin i holds edges[i-1] < v <= edges[i]; the outer bins are open, so new extremes still count
    inner = np.bincount(np.searchsorted(np.asarray(edges), present, side="left"), minlength=len(edges) + 1)
    return np.append(inner, np.isnan(values).sum())


def _categorical_counts(values: np.ndarray, levels: int) -> np.ndarray:
    present = values[~np.isnan(values)].astype(int)
    return np.append(np.bincount(present, minlength=levels)[:levels], np.isnan(values).sum())


def feature_profile(matrix: pd.DataFrame, catalog: list[FeatureInfo], levels: dict[str, list[str]],
                    bins: int = 10) -> dict[str, Any]:
    """Each feature's training distribution, from the model matrix (categoricals as level codes)."""
    features: dict[str, Any] = {}
    for info in catalog:
        values = matrix[info.name].to_numpy(dtype="float64")
        if info.kind == "categorical":
            n = len(levels.get(info.name, []))
            features[info.name] = {"kind": "categorical", "levels": n, "shares": _shares(_categorical_counts(values, n))}
            continue
        present = values[~np.isnan(values)]
        edges = sorted(set(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]).tolist())) if len(present) else []
        features[info.name] = {"kind": "numeric", "edges": edges, "shares": _shares(_numeric_counts(values, edges))}
    return {"rows": int(len(matrix)), "bins": bins, "features": features}


def psi(expected: list[float], actual: list[float]) -> float:
    e = np.maximum(np.asarray(expected, dtype="float64"), EPSILON)
    a = np.maximum(np.asarray(actual, dtype="float64"), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def bin_counts(profile: dict[str, Any], matrix: pd.DataFrame) -> dict[str, np.ndarray]:
    """Rows of `matrix` in each profile bin, per feature. Counts of chunks add up, so a base
    scored chunk by chunk never needs its whole matrix in memory to measure drift."""
    counts = {}
    for name, entry in profile["features"].items():
        values = matrix[name].to_numpy(dtype="float64")
        if entry["kind"] == "categorical":
            counts[name] = _categorical_counts(values, int(entry["levels"]))
        else:
            counts[name] = _numeric_counts(values, entry["edges"])
    return counts


def counts_frame(counts: dict[str, np.ndarray]) -> pd.DataFrame:
    """Bin counts as rows (feature, bin, rows): the form a distributed engine sums across partitions."""
    rows = [(name, b, int(n)) for name, values in counts.items() for b, n in enumerate(values)]
    frame = pd.DataFrame(rows, columns=["feature", "bin", "rows"])
    return frame.astype({"feature": "string", "bin": "int64", "rows": "int64"})


def counts_from_frame(profile: dict[str, Any], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """`counts_frame` rows summed back into each profiled feature's bins (bins nobody fell in: 0)."""
    sizes = {name: (int(entry["levels"]) if entry["kind"] == "categorical" else len(entry["edges"]) + 1) + 1
             for name, entry in profile["features"].items()}
    counts = {name: np.zeros(size, dtype="int64") for name, size in sizes.items()}
    for name, b, n in frame[["feature", "bin", "rows"]].itertuples(index=False):
        counts[str(name)][int(b)] += int(n)
    return counts


def add_counts(total: dict[str, np.ndarray] | None, more: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return dict(more) if total is None else {name: total[name] + more[name] for name in total}


def drift_from_counts(profile: dict[str, Any], counts: dict[str, np.ndarray],
                      threshold: float = DRIFT_THRESHOLD) -> pd.DataFrame:
    """PSI of every profiled feature from its bin counts: (feature, psi, drifted), largest first."""
    rows = []
    for name, entry in profile["features"].items():
        value = psi(entry["shares"], _shares(counts[name])) if counts[name].sum() else float("nan")
        rows.append({"feature": name, "psi": value, "drifted": bool(value > threshold)})
    frame = pd.DataFrame(rows, columns=["feature", "psi", "drifted"])
    return frame.sort_values(["psi", "feature"], ascending=[False, True], kind="stable").reset_index(drop=True)


def drift_report(profile: dict[str, Any], matrix: pd.DataFrame, threshold: float = DRIFT_THRESHOLD) -> pd.DataFrame:
    """PSI of every profiled feature on `matrix`: (feature, psi, drifted), largest first."""
    return drift_from_counts(profile, bin_counts(profile, matrix), threshold)
