import os

# Tests run offline: no usage telemetry from MLflow or DVC.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

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
