"""MLflow: where runs go, the registry, and the champion alias.

Set up by the entry points, never at import. `MLFLOW_TRACKING_URI`, when set, wins over the
configured URI, so a shared server needs no config change.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import mlflow
import xgboost as xgb
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from churnml.data.io import pid_alive

log = logging.getLogger(__name__)

# Who owns a run: a run still RUNNING whose process on this host is gone was killed or crashed.
PID_TAG, HOST_TAG = "churnml.pid", "churnml.host"
FAILED_REASON_TAG = "churnml.failed_reason"
# where a refit version's run keeps the held-out model the gate judges it by
HELD_OUT_DIR, HELD_OUT_FILE = "held_out_model", "model.ubj"


class StoreError(RuntimeError):
    """A write to the MLflow store failed; the message says what, where and what it means."""


def configure(uri: str, experiment: str, artifact_location: str | None = None) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id.

    Every caller goes on to write to the store, so the store is checked to be writable here,
    before the caller moves any output into place: a read-only store is one clear RuntimeError
    and the previous outputs stay as they were.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or uri
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    try:
        with _quiet_store_logs():
            found = client.get_experiment_by_name(experiment)
    except MlflowException as error:
        raise RuntimeError(f"cannot reach the MLflow tracking store {uri}: {str(error).splitlines()[0][:300]}. "
                           "Check tracking.uri / MLFLOW_TRACKING_URI and that the server is up.") from error
    with store_errors(f"open the experiment '{experiment}'", "nothing was written and no output was replaced"):
        if found is not None:
            experiment_id = found.experiment_id
        else:
            location = None
            if artifact_location and "://" not in artifact_location:
                location = Path(artifact_location).resolve().as_uri()
            elif artifact_location:
                location = artifact_location
            experiment_id = client.create_experiment(experiment, artifact_location=location)
        # a harmless write: proves the store takes writes before any output is replaced
        client.set_experiment_tag(experiment_id, "churnml.last_opened",
                                  f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} by process {os.getpid()} "
                                  f"on {socket.gethostname()}")
        mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def owner_tags() -> dict[str, str]:
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


@contextmanager
def start_run(what: str, **kwargs: Any) -> Iterator[mlflow.ActiveRun]:
    """`mlflow.start_run` for churnml's entry points: the run records the process that owns it
    (so a killed run can be told from a live one), and a failing store write becomes one clear
    RuntimeError saying `what` could not be logged. A resumed run (run_id=...) changes owner.

    A new top-level run first closes, as FAILED, the runs of its experiment that a killed or
    crashed process of this host left RUNNING.
    """
    with store_errors(f"log {what}"):
        if kwargs.get("run_id"):
            with mlflow.start_run(**kwargs) as run:
                mlflow.set_tags(owner_tags())
                yield run
            return
        tags = {**(kwargs.pop("tags", None) or {}), **owner_tags()}
        with mlflow.start_run(tags=tags, **kwargs) as run:
            if not kwargs.get("nested"):
                fail_abandoned_runs(run.info.experiment_id, run.info.run_id)
            yield run


def fail_abandoned_runs(experiment_id: str, by_run: str) -> list[str]:
    """Mark FAILED the runs of the experiment still RUNNING although their process on this host
    is gone (killed, crashed); returns their ids. Runs of other hosts are never touched."""
    client, host = MlflowClient(), socket.gethostname()
    # host names hold letters, digits, dots and dashes only: safe inside the quotes
    query = f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'"
    failed, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=query, max_results=500, page_token=token)
        for run in page:
            pid = run.data.tags.get(PID_TAG, "")
            if not pid.isdigit() or pid_alive(int(pid)):
                continue
            client.set_tag(run.info.run_id, FAILED_REASON_TAG,
                           f"process {pid} on {host} ended without closing the run (killed or crashed); "
                           f"marked FAILED when run {by_run} started")
            client.set_terminated(run.info.run_id, status="FAILED")
            failed.append(run.info.run_id)
        token = page.token
        if not token:
            break
    if failed:
        log.info("marked %d run(s) FAILED whose process had gone: %s", len(failed), ", ".join(failed))
    return failed


@contextmanager
def store_errors(what: str, outcome: str = "") -> Iterator[None]:
    """Turn a failed write to the MLflow store into one RuntimeError saying what and where
    (and `outcome`, what that means for the outputs, when the caller knows)."""
    try:
        with _quiet_store_logs():
            yield
    except StoreError:  # a nested block said it first, and closer to the cause
        raise
    except Exception as error:
        earlier = error.__context__
        while earlier is not None and not isinstance(earlier, StoreError):
            earlier = earlier.__context__
        if earlier is not None:  # closing the run failed too, while the first error unwound
            raise earlier  # its cause, the store's own error, stays attached
        # MLflow's own error, an artifact copy's OSError, or the database driver's error when
        # MLflow lets it through; the same errors from churnml's own code are not the store's
        driver = type(error).__module__.split(".")[0] in {"sqlalchemy", "sqlite3"}
        if not (isinstance(error, MlflowException) or driver or _raised_in_mlflow(error)):
            raise
        raise StoreError(store_error_message(what, error, outcome)) from error


def store_error_message(what: str, error: BaseException, outcome: str = "") -> str:
    uri = mlflow.get_tracking_uri()
    text = str(error)
    detail = (text.splitlines() or [type(error).__name__])[0][:300]
    outcome = f"; {outcome}" if outcome else ""
    if "readonly" in text.lower().replace("-", "") or getattr(error, "errno", None) in (13, 30):  # EACCES, EROFS
        return (f"MLflow store {uri} is read-only: could not {what} ({detail}){outcome}. Make the store "
                f"writable, or point tracking.uri / MLFLOW_TRACKING_URI at a writable one.")
    return f"could not {what} in the MLflow store {uri}: {detail}{outcome}"


def _raised_in_mlflow(error: BaseException) -> bool:
    tb = error.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith("mlflow."):
            return True
        tb = tb.tb_next
    return False


@contextmanager
def _quiet_store_logs() -> Iterator[None]:
    # MLflow logs every database error with a full traceback before raising it; the RuntimeError
    # raised from it says the same in one line
    logger = logging.getLogger("mlflow.store.db.utils")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def champion_version(name: str, alias: str) -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def record_gate(name: str, version: str, alias: str, tags: dict[str, str], promote: bool) -> None:
    """Tag the model version with the gate's results, and move the alias when it won."""
    client = MlflowClient()
    with store_errors(f"record the gate's decision on {name} v{version}"):
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        if promote:
            client.set_registered_model_alias(name, alias, version)


def tag_version(name: str, version: str, tags: dict[str, str]) -> None:
    client = MlflowClient()
    with store_errors(f"tag {name} v{version}"):
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)


def model_requirements() -> list[str]:
    """What loading the logged model needs, pinned to what trained it: XGBoost and the packages
    its MLflow flavour predicts with. Named here rather than inferred, which MLflow does by
    loading the model in a subprocess (about ten seconds of every train) and which also picks up
    whatever that process happened to import."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("xgboost", "numpy", "pandas", "scipy")]


def log_held_out(booster: xgb.Booster) -> None:
    """Log the held-out model (never saw the test cutoffs) to the active run as
    held_out_model/model.ubj: a refit version is judged, then and later, by this model."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / HELD_OUT_FILE
        booster.save_model(path)
        with store_errors("log the held-out model"):
            mlflow.log_artifact(str(path), artifact_path=HELD_OUT_DIR)


def load_held_out(name: str, version: str) -> xgb.Booster | None:
    """The held-out model behind a registered version, or None when the version is no refit (it
    is its own held-out model: it was trained before its test cutoffs)."""
    client = MlflowClient()
    try:
        found = client.get_model_version(name, version)
        if found.tags.get("churnml.model.kind") != "refit":
            return None
        folder = mlflow.artifacts.download_artifacts(run_id=found.run_id, artifact_path=HELD_OUT_DIR)
    except MlflowException as error:
        raise RuntimeError(f"cannot load the held-out model of {name} v{version}: {str(error).splitlines()[0][:300]}") from error
    return xgb.Booster(model_file=str(Path(folder) / HELD_OUT_FILE))


def promote(name: str, version: str, alias: str, reason: str) -> str | None:
    """Give `version` the alias by hand, recording why; returns the version that held it before."""
    client = MlflowClient()
    try:
        client.get_model_version(name, version)
    except MlflowException as error:
        raise RuntimeError(f"no version {version} of registered model '{name}' in {mlflow.get_tracking_uri()}") from error
    previous = champion_version(name, alias)
    with store_errors(f"promote {name} v{version} to @{alias}"):
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


def log_scoring_run(experiment: str, artifact_location: str | None, summary: dict, summary_path: Path) -> str:
    """Log a scoring run in its own experiment: counts, the score distribution and the drift."""
    configure(mlflow.get_tracking_uri(), experiment, artifact_location)
    with start_run(f"the scoring run as of {summary['as_of']}", run_name=f"score {summary['as_of']}") as run:
        mlflow.set_tags({"churnml.model_version": summary["model_version"], "churnml.as_of": summary["as_of"]})
        mlflow.log_metrics({k: summary[k] for k in ("customers", "scored", "already_churned", "not_yet_signed_up",
                                                     "explained", "value_at_risk", "runtime_s")})
        mlflow.log_metrics({k: summary[k] for k in ("scored_active", "scored_lapsed") if k in summary})
        mlflow.log_metrics({f"not_scored_{k}": v for k, v in (summary.get("not_scored") or {}).items()})
        mlflow.log_metrics({f"tier_{k}": v for k, v in summary["tiers"].items()})
        mlflow.log_metrics({f"probability_{k}": v for k, v in summary["probability_quantiles"].items()})
        mlflow.log_metric("drifted_features", len(summary["drifted_features"]))
        if summary.get("drift"):
            import pandas as pd

            # a table the MLflow UI shows and compares across scoring runs
            mlflow.log_table(pd.DataFrame(summary["drift"]), "drift.json")
            mlflow.log_metric("max_psi", max(row["psi"] for row in summary["drift"]))
        mlflow.log_dict(summary["probability_histogram"], "score_histogram.json")
        mlflow.log_artifact(str(summary_path))
    return run.info.run_id


def log_retention_run(experiment: str, artifact_location: str | None, headline: dict,
                      paths: dict[str, Path]) -> str:
    """Log a retention report in its own experiment: the headline numbers, figures and tables."""
    configure(mlflow.get_tracking_uri(), experiment, artifact_location)
    with start_run(f"the retention report as of {headline['as_of']}", run_name=f"retention {headline['as_of']}") as run:
        mlflow.set_tags({"churnml.as_of": headline["as_of"], "churnml.definition": headline["definition"]})
        mlflow.log_metrics({k: float(v) for k, v in headline.items()
                            if isinstance(v, int | float) and not isinstance(v, bool)})
        for name, path in paths.items():
            if name != "clv.parquet":  # per-customer values stay with the DVC outputs
                mlflow.log_artifact(str(path), artifact_path="retention")
    return run.info.run_id
