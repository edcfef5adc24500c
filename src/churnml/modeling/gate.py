"""The champion/challenger gate: a new model takes the champion alias only by beating the
current champion on the same test cutoffs. The first model, with no champion to beat, must beat
the best baseline instead (unless configured otherwise, and then the decision says so loudly).

Both models are scored on the very same test observations. When the champion was trained on
other features (another feature spec), its features for those observations are rebuilt from the
validated tables with its own spec: `build_features` is driven by the spec, so this is the same
code path scoring would use for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    # the best baseline on `metric`, which a first model is held to
    baseline: str | None = None
    baseline_value: float | None = None
    # what makes the decision less sure than it looks (a test set too small, a weak first model)
    warnings: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.promote:
            return "promoted with a warning" if self.warnings else "promoted"
        return "not promoted" if self.champion_version is None else "kept champion"

    def tags(self) -> dict[str, str]:
        """The decision as MLflow tags (strings), for the model version and the run."""
        out = {f"churnml.gate.{k}": "" if v is None else str(v) for k, v in asdict(self).items() if k != "warnings"}
        out["churnml.gate.warnings"] = " | ".join(self.warnings)
        out["churnml.gate.decision"] = self.label
        return out


def small_test_warning(churners: int, rows: int, min_churners: int) -> str | None:
    """A warning when the test set has too few churners to tell two models apart, else None."""
    if churners >= min_churners:
        return None
    return (f"the test set is too small to tell models apart: {churners} churner(s) in {rows:,} rows, fewer "
            f"than evaluate.gate.min_test_churners = {min_churners}; its metrics and the gate's decision are "
            f"mostly noise (label more cutoffs or customers, or labels.split.test_cutoffs)")


def best_baseline(metric: str, baselines: dict[str, float] | None) -> tuple[str, float] | None:
    """The baseline with the best defined value of `metric`, or None when there is none."""
    scored = {name: value for name, value in (baselines or {}).items() if value is not None and not math.isnan(value)}
    if not scored:
        return None
    pick = min if metric in LOWER_IS_BETTER else max
    name = pick(sorted(scored), key=scored.__getitem__)
    return name, scored[name]


def decide(metric: str, candidate: float, champion: float | None, champion_version: str | None,
           margin: float, unavailable: str | None = None, *, baselines: dict[str, float] | None = None,
           first_must_beat_baselines: bool = True, warnings: Sequence[str] = ()) -> GateDecision:
    """Promote when the candidate beats the champion by more than `margin`. With no champion yet,
    the candidate must beat the best of `baselines` on `metric` (strictly); when it does not, it is
    refused, or with `first_must_beat_baselines` off promoted with a warning saying so."""
    best = best_baseline(metric, baselines) if champion_version is None else None
    notes = tuple(warnings)

    def made(promote: bool, reason: str, extra: tuple[str, ...] = ()) -> GateDecision:
        return GateDecision(promote, reason, metric, margin, candidate, champion, champion_version,
                            best[0] if best else None, best[1] if best else None, notes + extra)

    if champion_version is None:
        if best is None:
            return made(True, "no champion yet")
        name, value = best
        gain = value - candidate if metric in LOWER_IS_BETTER else candidate - value
        if gain > 0:  # NaN (an undefined metric) never beats anything
            return made(True, f"no champion yet; {metric} {candidate:.4f} beats the best baseline, {name} ({value:.4f})")
        loses = (f"{metric} {candidate:.4f} does not beat the best baseline, {name} ({value:.4f}): a simple rule "
                 f"ranks churners at least as well")
        if first_must_beat_baselines:
            return made(False, f"no champion yet, but {loses}; not promoted (evaluate.gate.first_must_beat_baselines "
                               f"is true; `churnml promote` promotes it by hand)")
        warning = f"promoted as the first champion although {loses} (evaluate.gate.first_must_beat_baselines is false)"
        return made(True, f"no champion yet; WARNING: {warning}", (warning,))
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
    return {"promoted": decision.promote, "decision": decision.label, "reason": decision.reason,
            "metric": decision.metric, "candidate": decision.candidate, "champion": decision.champion,
            "champion_version": decision.champion_version, "margin": decision.margin,
            "best_baseline": decision.baseline, "best_baseline_value": decision.baseline_value,
            "warnings": list(decision.warnings)}
