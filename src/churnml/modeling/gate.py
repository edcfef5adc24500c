"""The champion/challenger gate: a new model takes the champion alias only by beating the
current champion on the same test cutoffs.

Both models are scored on the very same test observations. When the champion was trained on
other features (another feature spec), its features for those observations are rebuilt from the
validated tables with its own spec: `build_features` is driven by the spec, so this is the same
code path scoring would use for it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import xgboost as xgb

from churnml.features.build import CUSTOMER_KEYS, FeatureSpec, build_features
from churnml.modeling.matrix import design_matrix
from churnml.modeling.booster import predict_proba, spec_of

# metrics where a smaller value is the better model
LOWER_IS_BETTER = {"log_loss", "brier", "ece"}


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    metric: str
    margin: float
    candidate: float
    champion: float | None
    champion_version: str | None

    def tags(self) -> dict[str, str]:
        """The decision as MLflow tags (strings), for the model version and the run."""
        out = {f"churnml.gate.{k}": "" if v is None else str(v) for k, v in asdict(self).items()}
        out["churnml.gate.decision"] = "promoted" if self.promote else "kept champion"
        return out


def decide(metric: str, candidate: float, champion: float | None, champion_version: str | None,
           margin: float, unavailable: str | None = None) -> GateDecision:
    """Promote when there is no champion, or when the candidate beats it by more than `margin`."""
    def made(promote: bool, reason: str) -> GateDecision:
        return GateDecision(promote, reason, metric, margin, candidate, champion, champion_version)

    if champion_version is None:
        return made(True, "no champion yet")
    if unavailable is not None or champion is None or math.isnan(champion):
        return made(False, f"champion v{champion_version} could not be scored on these test cutoffs "
                           f"({unavailable or 'no value'}); promote by hand with `churnml promote`")
    if math.isnan(candidate):
        return made(False, f"the candidate's {metric} is undefined on these test cutoffs")
    gain = champion - candidate if metric in LOWER_IS_BETTER else candidate - champion
    verdict = "beats" if gain > margin else "does not beat"
    return made(gain > margin, f"{metric} {candidate:.4f} {verdict} champion v{champion_version}'s "
                               f"{champion:.4f} by more than {margin}")


def champion_probabilities(champion: xgb.Booster, test_rows: pd.DataFrame, current: FeatureSpec,
                           tables: dict[str, ir.Table] | None) -> np.ndarray:
    """The champion's churn probabilities for the test observations (rows with customer_id, cutoff
    and the current features), rebuilding its features when its spec differs from `current`."""
    spec = spec_of(champion)
    if spec == current:
        return predict_proba(champion, design_matrix(test_rows, spec), spec)
    if tables is None:
        raise ValueError("the champion uses other features and no tables were given to rebuild them")
    keys = test_rows[CUSTOMER_KEYS].reset_index(drop=True)
    built = build_features(tables, ibis.memtable(keys), spec).to_pandas()
    built["cutoff"] = pd.to_datetime(built["cutoff"]).astype(keys["cutoff"].dtype)
    rows = keys.merge(built, on=CUSTOMER_KEYS, how="left", validate="one_to_one")
    return predict_proba(champion, design_matrix(rows, spec), spec)


def summarize(decision: GateDecision) -> dict[str, Any]:
    return {"promoted": decision.promote, "reason": decision.reason, "metric": decision.metric,
            "candidate": decision.candidate, "champion": decision.champion,
            "champion_version": decision.champion_version, "margin": decision.margin}
