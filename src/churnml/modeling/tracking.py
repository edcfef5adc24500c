"""MLflow: where runs go, the registry, and the champion alias.

Set up by the entry points, never at import. `MLFLOW_TRACKING_URI`, when set, wins over the
configured URI, so a shared server needs no config change.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import xgboost as xgb
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient


def configure(uri: str, experiment: str, artifact_location: str | None = None) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or uri
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    try:
        found = client.get_experiment_by_name(experiment)
    except MlflowException as error:
        raise RuntimeError(f"cannot reach the MLflow tracking store {uri}: {str(error).splitlines()[0][:300]}. "
                           "Check tracking.uri / MLFLOW_TRACKING_URI and that the server is up.") from error
    if found is not None:
        mlflow.set_experiment(experiment_id=found.experiment_id)
        return found.experiment_id
    location = None
    if artifact_location and "://" not in artifact_location:
        location = Path(artifact_location).resolve().as_uri()
    elif artifact_location:
        location = artifact_location
    experiment_id = client.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def champion_version(name: str, alias: str) -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def record_gate(name: str, version: str, alias: str, tags: dict[str, str], promote: bool) -> None:
    """Tag the model version with the gate's results, and move the alias when it won."""
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if promote:
        client.set_registered_model_alias(name, alias, version)


def promote(name: str, version: str, alias: str, reason: str) -> str | None:
    """Give `version` the alias by hand, recording why; returns the version that held it before."""
    client = MlflowClient()
    try:
        client.get_model_version(name, version)
    except MlflowException as error:
        raise RuntimeError(f"no version {version} of registered model '{name}' in {mlflow.get_tracking_uri()}") from error
    previous = champion_version(name, alias)
    client.set_model_version_tag(name, version, "churnml.gate.decision", "promoted by hand")
    client.set_model_version_tag(name, version, "churnml.gate.reason", reason)
    client.set_model_version_tag(name, version, "churnml.gate.previous_champion", previous or "")
    client.set_registered_model_alias(name, alias, version)
    return previous


def load_booster(model_uri: str) -> tuple[xgb.Booster, str]:
    """Load a registered XGBoost model; returns it with the version the URI resolved to."""
    try:
        booster = mlflow.xgboost.load_model(model_uri)
    except MlflowException as error:
        raise RuntimeError(
            f"cannot load model '{model_uri}' from the tracking store {mlflow.get_tracking_uri()}: {error}. "
            f"Train one first (dvc repro / make run), or pass another --model."
        ) from error
    return booster, _version_of(model_uri)


def _version_of(model_uri: str) -> str:
    if not model_uri.startswith("models:/"):
        return model_uri
    name, _, ref = model_uri[len("models:/"):].partition("@")
    if ref:
        return str(MlflowClient().get_model_version_by_alias(name, ref).version)
    name, _, version = model_uri[len("models:/"):].partition("/")
    return version or model_uri


def log_scoring_run(experiment: str, artifact_location: str | None, summary: dict, probabilities,
                    summary_path: Path) -> str:
    """Log a scoring run in its own experiment: counts, the score distribution and the drift."""
    import numpy as np

    configure(mlflow.get_tracking_uri(), experiment, artifact_location)
    with mlflow.start_run(run_name=f"score {summary['as_of']}") as run:
        mlflow.set_tags({"churnml.model_version": summary["model_version"], "churnml.as_of": summary["as_of"]})
        mlflow.log_metrics({k: summary[k] for k in ("customers", "scored", "already_churned", "not_yet_signed_up",
                                                     "explained", "value_at_risk", "runtime_s")})
        mlflow.log_metrics({f"tier_{k}": v for k, v in summary["tiers"].items()})
        mlflow.log_metrics({f"probability_{k}": v for k, v in summary["probability_quantiles"].items()})
        mlflow.log_metric("drifted_features", len(summary["drifted_features"]))
        if summary.get("drift"):
            import pandas as pd

            # a table the MLflow UI shows and compares across scoring runs
            mlflow.log_table(pd.DataFrame(summary["drift"]), "drift.json")
            mlflow.log_metric("max_psi", max(row["psi"] for row in summary["drift"]))
        counts, edges = np.histogram(probabilities, bins=20, range=(0, 1))
        mlflow.log_dict({"edges": edges.round(4).tolist(), "counts": counts.tolist()}, "score_histogram.json")
        mlflow.log_artifact(str(summary_path))
    return run.info.run_id


def log_retention_run(experiment: str, artifact_location: str | None, headline: dict,
                      paths: dict[str, Path]) -> str:
    """Log a retention report in its own experiment: the headline numbers, figures and tables."""
    configure(mlflow.get_tracking_uri(), experiment, artifact_location)
    with mlflow.start_run(run_name=f"retention {headline['as_of']}") as run:
        mlflow.set_tags({"churnml.as_of": headline["as_of"], "churnml.definition": headline["definition"]})
        mlflow.log_metrics({k: float(v) for k, v in headline.items()
                            if isinstance(v, int | float) and not isinstance(v, bool)})
        for name, path in paths.items():
            if name != "clv.parquet":  # per-customer values stay with the DVC outputs
                mlflow.log_artifact(str(path), artifact_path="retention")
    return run.info.run_id
