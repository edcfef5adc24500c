import os

# Tests run offline: no usage telemetry from MLflow or DVC.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# OpenMP threads (XGBoost, numba's TreeSHAP) sleep at a barrier instead of spinning. The suite runs
# on a small machine shared with other jobs: there a spinning thread burns the core its partner
# needs, and training the default model took 10 times longer (162 s against 17 s on 2 busy
# cores). Set before anything loads OpenMP; the pipelines the tests start inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import mlflow
import pytest


@pytest.fixture(autouse=True)
def _tracking_uri_stays_in_its_test():
    """mlflow.set_tracking_uri also sets MLFLOW_TRACKING_URI in os.environ (for subprocesses), so a
    test that configures a store in-process would otherwise point every later end-to-end test's
    `dvc repro` at that store. Put both back after each test."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    mlflow.set_tracking_uri(before)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)


def _java_missing() -> str | None:
    """Why Spark cannot start here, or None."""
    import shutil

    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and os.path.exists(os.path.join(java_home, "bin", "java"))):
        return "no Java runtime (java not on PATH, no JAVA_HOME): .ci/run installs Debian's openjdk-17-jre-headless"
    return None


@pytest.fixture(scope="session")
def spark_engine():
    """Ibis on one local Spark session (local[2]) for the whole run: a JVM takes seconds to start.

    Skipped, with the reason printed, only when no Java runtime can be found; pyspark itself is
    installed by `make test` (the spark extra), so its absence under CI is a failure."""
    reason = _java_missing()
    if reason:
        pytest.skip(f"Spark tests skipped: {reason}")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("Spark tests skipped: pyspark is not installed (pip install -e '.[dev,spark]', as make test does)")
    from churnml.data.engine import connect_configured

    con = connect_configured({"backend": "spark", "spark": {
        "master": "local[2]", "app_name": "churnml-tests", "driver_memory": "2g", "shuffle_partitions": 2,
        # tiny data: planning, not work, is the cost; no UI port, no whole-stage code generation
        "conf": {"spark.ui.enabled": "false", "spark.sql.codegen.wholeStage": "false"}}})
    con._session.sparkContext.setLogLevel("ERROR")
    yield con
    con._session.stop()


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory):
    """An empty MLflow sqlite store, made once per run. Creating one runs MLflow's schema
    migrations (seconds, over ten on a busy machine); a test that needs a fresh store of its own
    copies this file (`support.fresh_mlflow_db`) and starts from exactly what a new store holds."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()  # creates the tables
    return path



def pytest_collection_modifyitems(session, config, items):
    """The slow files first: the end-to-end pipelines, then the Spark suites. Under `make test`
    the files are shared out among workers (pytest-xdist, whole files, in this order), so the long
    ones start at once and the short ones fill in around them instead of one long file starting
    last. The order within a file is kept."""
    def weight(item) -> int:
        marks = {mark.name for mark in item.iter_markers()}
        return 0 if "e2e" in marks else 1 if "spark" in marks else 2

    items.sort(key=weight)  # stable: each file keeps its own order
