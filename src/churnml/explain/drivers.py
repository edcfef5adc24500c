"""Churn drivers across customers: global importance, importance per segment, and the plots.

All of it is read off the per-customer SHAP values (`churnml.explain.reasons.contributions`), so the
global view and each customer's reasons come from the same numbers.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from churnml.features.catalog import FeatureInfo

log = logging.getLogger(__name__)


def label(info: FeatureInfo) -> str:
    """The feature in words: its template without the value ("Purchases in the last 30 days")."""
    return info.template.split(":")[0].replace("{value}", "").strip() or info.name


def global_drivers(shap_values: np.ndarray, catalog: list[FeatureInfo]) -> pd.DataFrame:
    """Features ranked by mean |SHAP| (log-odds), with their share of the total and the mean
    signed contribution (does the feature mostly raise or lower risk here?)."""
    mean_abs = np.abs(shap_values).mean(axis=0) if len(shap_values) else np.zeros(len(catalog))
    total = mean_abs.sum()
    frame = pd.DataFrame({
        "feature": [info.name for info in catalog],
        "description": [label(info) for info in catalog],
        "family": [info.family for info in catalog],
        "mean_abs_shap": mean_abs,
        "share": mean_abs / total if total > 0 else 0.0,
        "mean_shap": shap_values.mean(axis=0) if len(shap_values) else 0.0,
    })
    return frame.sort_values(["mean_abs_shap", "feature"], ascending=[False, True], kind="stable").reset_index(drop=True)


def tenure_band(days: pd.Series, edges: Sequence[int]) -> pd.Series:
    """Days of tenure as readable bands, e.g. edges (90, 365, 730): "< 90 days", "90-364 days",
    "365-729 days", "730+ days"; unknown tenure is its own band."""
    edges = sorted(int(e) for e in edges)
    names = [f"< {edges[0]} days"] + [f"{a}-{b - 1} days" for a, b in zip(edges, edges[1:])] + [f"{edges[-1]}+ days"]
    bands = pd.cut(pd.to_numeric(days, errors="coerce"), [-np.inf, *edges, np.inf], right=False, labels=names)
    return bands.astype("string").fillna("unknown")


def segment_drivers(shap_values: np.ndarray, catalog: list[FeatureInfo],
                    segments: dict[str, pd.Series]) -> pd.DataFrame:
    """Mean |SHAP| per feature within each segment: (segment_kind, segment, customers, feature,
    mean_abs_shap). Each segment series is aligned with the rows of `shap_values`."""
    names = [info.name for info in catalog]
    parts = []
    magnitude = np.abs(shap_values)
    for kind, values in segments.items():
        keys = values.astype("string").fillna("unknown").to_numpy()
        for segment in sorted(set(keys)):
            rows = keys == segment
            parts.append(pd.DataFrame({"segment_kind": kind, "segment": segment, "customers": int(rows.sum()),
                                       "feature": names, "mean_abs_shap": magnitude[rows].mean(axis=0)}))
    columns = ["segment_kind", "segment", "customers", "feature", "mean_abs_shap"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def segment_series(features: pd.DataFrame, columns: dict[str, str], tenure_columns: Sequence[str],
                   tenure_edges: Sequence[int], tiers: pd.Series | None = None) -> dict[str, pd.Series]:
    """The segments to compare, from configured feature columns; a column this dataset lacks is
    skipped with a notice, so the same config serves datasets of other shapes."""
    out: dict[str, pd.Series] = {}
    for kind, column in columns.items():
        if column in features.columns:
            out[kind] = features[column].reset_index(drop=True)
        else:
            log.info("drivers: no %s column, so no %s segments", column, kind)
    tenure = next((c for c in tenure_columns if c in features.columns), None)
    if tenure is not None:
        out["tenure band"] = tenure_band(features[tenure].reset_index(drop=True), tenure_edges)
    if tiers is not None:
        out["risk tier"] = tiers.reset_index(drop=True)
    return out


def _png(figure_fn) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    figure_fn()
    buffer = io.BytesIO()
    plt.gcf().tight_layout()
    plt.savefig(buffer, format="png", dpi=100)
    plt.close("all")
    return buffer.getvalue()


def driver_figures(shap_values: np.ndarray, matrix: pd.DataFrame, catalog: list[FeatureInfo],
                   dependence: int = 4, max_display: int = 20) -> dict[str, tuple[str, bytes]]:
    """The global plots, drawn by the shap library from these exact values, as
    {file stem: (caption, PNG)}: beeswarm, bar of mean |SHAP|, and a dependence plot for each of
    the `dependence` strongest features."""
    import matplotlib.pyplot as plt
    import shap

    names = [info.name for info in catalog]
    figures = {
        "beeswarm": ("SHAP beeswarm: each dot a customer, coloured by the feature's value", lambda: shap.summary_plot(
            shap_values, matrix, feature_names=names, show=False, max_display=max_display, plot_size=(9, 7))),
        "importance_bar": ("Mean |SHAP| by feature (log-odds)", lambda: shap.summary_plot(
            shap_values, matrix, feature_names=names, plot_type="bar", show=False, max_display=max_display,
            plot_size=(9, 7))),
    }
    for feature in global_drivers(shap_values, catalog)["feature"].head(dependence):
        def draw(feature=feature):
            plt.figure(figsize=(7, 4.5))
            shap.dependence_plot(feature, shap_values, matrix, feature_names=names, interaction_index=None,
                                 show=False, ax=plt.gca())
        figures[f"dependence_{feature}"] = (f"Dependence: {feature}", draw)
    return {stem: (caption, _png(draw)) for stem, (caption, draw) in figures.items()}
