"""The churn-drivers report renders in a real browser when opened from an MLflow run's artifacts.

A run in a throw-away tracking store logs the report; a real `mlflow server` serves it. MLflow
sends every artifact from `/get-artifact?path=...&run_uuid=...` as a download
(`Content-Disposition: attachment`), so a browser pointed straight at that URL saves the file
instead of showing it. The UI's HTML viewer fetches that URL, wraps the text in a `text/html`
blob and shows the blob. The test does the same from a small viewer page on another localhost
port (MLflow's default CORS allows localhost origins), checks the rendered DOM and takes a
screenshot, then opens the MLflow UI's own artifact page for the run.

Needs Chromium: found on PATH, or installed with apt-get as root on Debian; otherwise skipped
with the reason printed.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from browser import ensure_chromium, png, run_chromium
from support import fresh_mlflow_db

from churnml.explain.drivers_report import render_report, write_report

pytestmark = pytest.mark.browser

CUSTOMER = "C-000042"
REASON = "No product activity in the last 30 days (0 events)"
ARTIFACT_DIR = "drivers"
ARTIFACT_NAME = "churn_drivers.html"
SERVER_START_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def chromium() -> str:
    path, reason = ensure_chromium()
    if path is None:
        message = f"browser test skipped: cannot get a headless Chromium: {reason}"
        print(f"\n*** {message}", file=sys.__stderr__, flush=True)
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)
    return path


def _report_html() -> str:
    def shade(x: int, y: int) -> tuple[int, int, int]:
        return (37, 99, 235) if y >= 40 - x // 4 else (243, 244, 246)

    drivers = pd.DataFrame({
        "feature": ["eng_events_30d", "days_since_login", "tickets_90d"],
        "description": ["Product events in the last 30 days", "Days since the last login", "Support tickets in 90 days"],
        "mean_abs_shap": [0.41, 0.27, 0.12],
        "share": [0.51, 0.34, 0.15],
    })
    segments = pd.DataFrame(
        [(kind, seg, n, feat, value)
         for kind, segs in {"plan": [("Basic", 310), ("Pro", 120)], "risk tier": [("high", 64), ("medium", 190)]}.items()
         for (seg, n), base in zip(segs, (0.3, 0.15), strict=True)
         for feat, value in zip(drivers["feature"], (base, base / 2, base / 3), strict=True)],
        columns=["segment_kind", "segment", "customers", "feature", "mean_abs_shap"],
    )
    at_risk = pd.DataFrame({
        "customer_id": [CUSTOMER, "C-000007", "C-000313"],
        "churn_probability": [0.91, 0.78, 0.66],
        "risk_tier": ["high", "high", "medium"],
        "reason_1": [REASON, "Last login 45 days ago", "3 support tickets in 90 days"],
        "reason_2": ["Last login 61 days ago", None, "Seats used fell to 20%"],
        "protective": ["Annual contract", None, None],
    })
    return render_report(
        title="Churn drivers (browser test)",
        summary={"Model version": "7", "As of": "2024-06-30", "Customers explained": 430, "At-risk customers": 3},
        global_drivers=drivers, figures={"Mean |SHAP| by feature": png(160, 40, shade)},
        segments=segments, at_risk=at_risk,
    )


def _log_report(tmp_path: Path, tracking_uri: str) -> tuple[str, str]:
    """Log the report as an artifact of a new run; returns (experiment id, run id)."""
    import mlflow

    report = write_report(_report_html(), tmp_path / "out" / ARTIFACT_NAME)
    mlflow.set_tracking_uri(tracking_uri)
    try:
        experiment_id = mlflow.create_experiment("churn-drivers-report",
                                                 artifact_location=str(tmp_path / "artifacts" / "runs"))
        with mlflow.start_run(experiment_id=experiment_id, run_name="drivers-report") as run:
            mlflow.log_artifact(str(report), artifact_path=ARTIFACT_DIR)
        return experiment_id, run.info.run_id
    finally:
        mlflow.set_tracking_uri(None)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (localhost only)
        return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()


@pytest.fixture
def mlflow_server(tmp_path: Path, empty_mlflow_db: Path) -> Iterator[dict]:
    """A logged run and an `mlflow server` over its store, stopped on teardown."""
    tracking_uri = fresh_mlflow_db(empty_mlflow_db, tmp_path / "mlflow.db")  # a new, empty store
    experiment_id, run_id = _log_report(tmp_path, tracking_uri)
    port = _free_port()
    log_path = tmp_path / "mlflow-server.log"
    # no job runner: it is a second process importing MLflow while the server starts (seconds on a
    # busy machine), and it runs GenAI jobs, which nothing here asks for
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
               "--default-artifact-root", str(tmp_path / "artifacts"),
               "--artifacts-destination", str(tmp_path / "artifacts"),
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        # its own session, so teardown can stop the server and any worker it started
        server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        started = time.monotonic()
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if _get(f"{base}/health", timeout=2)[2].strip() == b"OK":
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() - started > SERVER_START_TIMEOUT_S:
                pytest.fail(f"mlflow server not healthy after {SERVER_START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        print(f"\nmlflow server ready at {base} in {time.monotonic() - started:.1f} s", file=sys.__stderr__)
        yield {"base": base, "experiment_id": experiment_id, "run_id": run_id, "log": log_path}
    finally:
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def viewer_page(tmp_path: Path, mlflow_server: dict) -> Iterator[str]:
    """A page on another localhost port that shows the artifact the way the MLflow UI does."""
    artifact_url = _artifact_url(mlflow_server)
    root = tmp_path / "viewer"
    root.mkdir()
    (root / "index.html").write_text(
        "<!DOCTYPE html><meta charset='utf-8'><title>artifact viewer</title><body>loading…<script>\n"
        f"fetch({json.dumps(artifact_url)})\n"
        "  .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.blob(); })\n"
        "  .then(function (b) { return b.text(); })\n"
        "  .then(function (text) {\n"
        "    var url = URL.createObjectURL(new Blob([text], {type: 'text/html'}));\n"
        "    window.location.replace(url + window.location.hash);\n"
        "  })\n"
        "  .catch(function (e) { document.body.textContent = 'artifact fetch failed: ' + e; });\n"
        "</script>\n",
        encoding="utf-8",
    )

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _artifact_url(server: dict) -> str:
    # what the MLflow UI's artifact viewer requests (getArtifactLocationUrl in the UI bundle)
    query = urllib.parse.urlencode({"path": f"{ARTIFACT_DIR}/{ARTIFACT_NAME}", "run_uuid": server["run_id"]})
    return f"{server['base']}/get-artifact?{query}"


def _ui_url(server: dict) -> str:
    # the run page's Artifacts tab with the file selected (MLflow 3 hash route)
    return (f"{server['base']}/#/experiments/{server['experiment_id']}/runs/{server['run_id']}"
            f"/artifacts/{ARTIFACT_DIR}/{ARTIFACT_NAME}")


def _dump_dom(chromium: str, profile: Path, url: str, budget_ms: int) -> str:
    done = run_chromium(chromium, profile, f"--virtual-time-budget={budget_ms}", "--dump-dom", url)
    assert done.returncode == 0, f"chromium --dump-dom failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


def _screenshot(chromium: str, profile: Path, url: str, target: Path, size: str, budget_ms: int) -> Path:
    done = run_chromium(chromium, profile, f"--virtual-time-budget={budget_ms}", f"--screenshot={target}",
                        f"--window-size={size}", url)
    assert done.returncode == 0, f"chromium --screenshot failed ({done.returncode}): {done.stderr[-2000:]}"
    _check_screenshot(target, done)
    return target


def _dump_dom_and_screenshot(chromium: str, profile: Path, url: str, target: Path, size: str,
                             budget_ms: int) -> str:
    """Both from one page load: headless Chromium dumps the DOM and writes the screenshot when the
    budget runs out. The MLflow UI is slow to load (its bundle, then its API calls), so once."""
    done = run_chromium(chromium, profile, f"--virtual-time-budget={budget_ms}", "--dump-dom",
                        f"--screenshot={target}", f"--window-size={size}", url)
    assert done.returncode == 0, f"chromium --dump-dom --screenshot failed ({done.returncode}): {done.stderr[-2000:]}"
    _check_screenshot(target, done)
    return done.stdout


def _check_screenshot(target: Path, done: subprocess.CompletedProcess) -> None:
    assert target.exists(), f"no screenshot at {target}: {done.stderr[-2000:]}"
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_size > 5_000, f"screenshot {target} is suspiciously small"


def test_report_renders_from_mlflow_artifacts(chromium, mlflow_server, viewer_page, tmp_path):
    started = time.monotonic()
    expected = (tmp_path / "out" / ARTIFACT_NAME).read_bytes()

    # 1. the server hands out exactly the logged file, as an HTML download
    status, headers, body = _get(_artifact_url(mlflow_server))
    assert status == 200 and body == expected
    assert headers["content-type"].startswith("text/html")
    assert headers.get("content-disposition", "").startswith("attachment")

    # 2. fetched and shown as the UI's viewer does, the report renders and its script runs:
    #    the search linked in the URL hides every other customer and updates the count
    dom = _dump_dom(chromium, tmp_path / "profile-dom", f"{viewer_page}#search={CUSTOMER}", 5000)
    assert "artifact fetch failed" not in dom, dom[-500:]
    for marker in ('id="at-risk-table"', 'id="global-drivers"', 'id="summary"', 'id="segments"', CUSTOMER, REASON):
        assert marker in dom, f"{marker!r} missing from the rendered report: {dom[:1000]}"
    assert '<span id="visible-count">1</span>' in dom
    rows = re.findall(r'<tr class="customer-row"( hidden(?:="")?)?>', dom)
    assert len(rows) == 3 and sum(1 for hidden in rows if not hidden) == 1, rows

    report_png = _screenshot(chromium, tmp_path / "profile-shot", viewer_page, tmp_path / "report.png",
                             "1280,1600", 5000)

    # 3. the MLflow UI's run page opens the artifact in its HTML viewer (a sandboxed blob iframe)
    ui = _ui_url(mlflow_server)
    ui_png = tmp_path / "mlflow-ui.png"
    ui_dom = _dump_dom_and_screenshot(chromium, tmp_path / "profile-ui", ui, ui_png, "1600,1200", 15000)
    assert ARTIFACT_NAME in ui_dom, f"the UI page does not show the artifact: {ui_dom[:1000]}"
    assert re.search(r'<iframe[^>]*src="blob:http://127\.0\.0\.1:\d+/', ui_dom), "the UI shows no HTML viewer frame"

    print(f"\nreport screenshot: {report_png}\nMLflow UI screenshot: {ui_png}\n"
          f"artifact: {_artifact_url(mlflow_server)}\nUI page: {ui}\n"
          f"browser checks took {time.monotonic() - started:.1f} s", file=sys.__stderr__)
