"""Simple, honest baselines: the bar the model must clear to be worth its complexity.

All take the design-matrix frame (floats; categorical features as float codes, NaN for missing)
and score higher = more likely to churn.

- recency: days since the last activity of any kind. Nothing to fit; the rule a retention team
  already uses by hand. A model that cannot beat it adds nothing.
- RFM: the classic recency / frequency / monetary quintile scores, combined by a logistic
  regression. The standard marketing segmentation; needs the purchase features.
- logistic: a regularised logistic regression on every feature (median imputation with missing
  indicators, one-hot categories). Shows how much the gradient-boosted trees gain from
  non-linearity and interactions rather than from the features themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from churnml.features.catalog import FeatureInfo

RECENCY_COLUMNS = ("eng_days_since_last_event", "pur_days_since_last_order", "fb_days_since_last")
RFM_COLUMNS = {"recency": "pur_days_since_last_order", "frequency": "pur_orders_90d", "monetary": "pur_spend_90d"}
_QUINTILES = (0.2, 0.4, 0.6, 0.8)


# ---- logistic regression on all features -------------------------------------------------------

def fit_logistic(x_train: pd.DataFrame, y_train: np.ndarray, catalog: list[FeatureInfo], seed: int) -> Pipeline:
    """Logistic regression on every column of `x_train`; score with `.predict_proba(x)[:, 1]`."""
    categorical = {info.name for info in catalog if info.kind == "categorical"}
    cat_cols = [c for c in x_train.columns if c in categorical]
    num_cols = [c for c in x_train.columns if c not in categorical]
    numeric = Pipeline([
        # keep_empty_features: an all-NaN column stays (as 0) so the column layout never shifts;
        # the indicator keeps "missing" (e.g. never ordered) as information, not just a median.
        ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
        ("scale", StandardScaler()),
    ])
    cats = Pipeline([
        # -1 is never a real code, so missing/unseen-at-encoding becomes its own category.
        ("impute", SimpleImputer(strategy="constant", fill_value=-1.0, keep_empty_features=True)),
        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
    ])
    parts = [(name, pipe, cols) for name, pipe, cols in (("num", numeric, num_cols), ("cat", cats, cat_cols)) if cols]
    pipeline = Pipeline([
        ("prep", ColumnTransformer(parts, remainder="drop")),
        ("model", LogisticRegression(max_iter=1000, C=1.0, random_state=seed)),
    ])
    return pipeline.fit(x_train, np.asarray(y_train).astype(int))


# ---- recency rule ------------------------------------------------------------------------------

def recency_scores(x: pd.DataFrame, catalog: list[FeatureInfo] | None = None) -> np.ndarray:
    """Days since the last activity of any kind (higher = riskier). `catalog` is unused: no fit."""
    present = [c for c in RECENCY_COLUMNS if c in x.columns]
    if not present:
        raise ValueError(f"recency baseline needs at least one of {list(RECENCY_COLUMNS)}")
    days = x[present].astype("float64").min(axis=1, skipna=True).to_numpy()
    # No recorded activity at all is the riskiest case. A finite stand-in above every observed
    # value keeps the ranking right and AUC computable (roc_auc_score rejects inf).
    observed = days[~np.isnan(days)]
    fill = observed.max() + 1.0 if observed.size else 1.0
    return np.where(np.isnan(days), fill, days)


# ---- RFM ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RFMModel:
    recency_edges: tuple[float, ...]
    frequency_edges: tuple[float, ...]
    monetary_edges: tuple[float, ...]
    coef: tuple[float, float, float]  # logistic weights on the r, f, m scores
    intercept: float


def has_purchase_features(columns) -> bool:
    return all(c in set(columns) for c in RFM_COLUMNS.values())


def _edges(values: np.ndarray) -> tuple[float, ...]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return (0.0,) * len(_QUINTILES)
    return tuple(float(e) for e in np.quantile(values, _QUINTILES))


def _bin(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    # Right-closed bins like pd.qcut: (-inf, e1] -> 0, (e1, e2] -> 1, ..., (e4, inf) -> 4.
    return np.searchsorted(np.asarray(edges), values, side="left")


def _rfm_inputs(x: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not has_purchase_features(x.columns):
        raise ValueError(f"RFM baseline needs the purchase features {list(RFM_COLUMNS.values())}")
    recency = x[RFM_COLUMNS["recency"]].to_numpy(dtype="float64")
    # No orders in the window means zero orders and zero spend, not "unknown".
    frequency = np.nan_to_num(x[RFM_COLUMNS["frequency"]].to_numpy(dtype="float64"), nan=0.0)
    monetary = np.nan_to_num(x[RFM_COLUMNS["monetary"]].to_numpy(dtype="float64"), nan=0.0)
    return recency, frequency, monetary


def _score_table(recency, frequency, monetary, r_edges, f_edges, m_edges) -> pd.DataFrame:
    r = np.where(np.isnan(recency), 5, 1 + _bin(np.nan_to_num(recency), r_edges))  # never ordered: riskiest
    f = 5 - _bin(frequency, f_edges)  # fewer orders = higher risk
    m = 5 - _bin(monetary, m_edges)  # less spend = higher risk
    return pd.DataFrame({"r": r, "f": f, "m": m}).astype("int64")


def rfm_table(model: RFMModel, x: pd.DataFrame) -> pd.DataFrame:
    """The 1..5 risk scores r, f, m for each row (5 = riskiest quintile)."""
    table = _score_table(*_rfm_inputs(x), model.recency_edges, model.frequency_edges, model.monetary_edges)
    table.index = x.index
    return table


def fit_rfm(x_train: pd.DataFrame, y_train: np.ndarray, seed: int) -> RFMModel:
    """Quintile edges from the training rows, then a logistic regression on the three scores."""
    y = np.asarray(y_train).astype(int)
    if np.unique(y).size < 2:
        raise ValueError("RFM baseline needs both churners and non-churners in the training rows")
    recency, frequency, monetary = _rfm_inputs(x_train)
    edges = (_edges(recency), _edges(frequency), _edges(monetary))
    table = _score_table(recency, frequency, monetary, *edges)
    lr = LogisticRegression(max_iter=1000, random_state=seed).fit(table.to_numpy(dtype="float64"), y)
    coef = tuple(float(c) for c in lr.coef_[0])
    return RFMModel(*edges, coef=coef, intercept=float(lr.intercept_[0]))  # type: ignore[arg-type]


def rfm_scores(model: RFMModel, x: pd.DataFrame) -> np.ndarray:
    """Churn probability from the RFM scores."""
    z = rfm_table(model, x).to_numpy(dtype="float64") @ np.asarray(model.coef) + model.intercept
    return 1.0 / (1.0 + np.exp(-z))


Scorer = Callable[[pd.DataFrame], np.ndarray]


def fit_baselines(x_train: pd.DataFrame, y_train: np.ndarray, catalog: list[FeatureInfo],
                  seed: int) -> dict[str, Scorer]:
    """Every baseline that applies to these features, fitted on the training rows: name -> scorer.

    The recency rule needs a recency feature and RFM the purchase features; a dataset without
    them simply has fewer baselines.
    """
    scorers: dict[str, Scorer] = {}
    logistic = fit_logistic(x_train, y_train, catalog, seed)
    scorers["logistic"] = lambda x: logistic.predict_proba(x)[:, 1]
    if any(column in x_train.columns for column in RECENCY_COLUMNS):
        scorers["recency"] = lambda x: recency_scores(x, catalog)
    if has_purchase_features(x_train.columns):
        rfm = fit_rfm(x_train, y_train, seed)
        scorers["rfm"] = lambda x: rfm_scores(rfm, x)
    return scorers
