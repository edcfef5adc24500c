"""Reruns and failures: a rerun on unchanged inputs writes the same bytes, a killed run leaves
no litter behind (temp files, RUNNING MLflow runs), a read-only MLflow store is one clear
message with the previous outputs intact, and the gate never quietly promotes a weak first model."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest

from churnml.data.engine import connect
from churnml.features.build import plan_features, write_features

# ---------------------------------------------------------------- reruns are byte for byte


def _activity(n_customers: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Enough rows that DuckDB spreads the work over several threads (a few vectors per table)."""
    rng = np.random.default_rng(seed)
    ids = [f"C{i:05d}" for i in range(n_customers)]
    start = pd.Timestamp("2024-01-01")
    signup = start + pd.to_timedelta(rng.integers(0, 60, n_customers), unit="D")
    n_events = n_customers * 12
    who = rng.integers(0, n_customers, n_events)
    events = pd.DataFrame({
        "customer_id": [ids[i] for i in who],
        "timestamp": start + pd.to_timedelta(rng.integers(0, 200 * 86400, n_events), unit="s"),
        "event_type": rng.choice(["login", "view"], n_events),
        "value": rng.random(n_events).round(3)})
    n_orders = n_customers * 3
    buyer = rng.integers(0, n_customers, n_orders)
    orders = pd.DataFrame({
        "customer_id": [ids[i] for i in buyer],
        "timestamp": start + pd.to_timedelta(rng.integers(0, 200 * 86400, n_orders), unit="s"),
        "amount": rng.integers(1, 500, n_orders).astype(float)})
    customers = pd.DataFrame({"customer_id": ids, "signup_date": signup,
                              "plan": rng.choice(["basic", "pro"], n_customers)})
    return {"customers": customers, "events": events, "orders": orders}


def _observations(customers: pd.DataFrame) -> pd.DataFrame:
    cutoffs = pd.to_datetime(["2024-04-01", "2024-05-01", "2024-06-01"])
    return pd.DataFrame([(c, t) for c in customers["customer_id"] for t in cutoffs], columns=["customer_id", "cutoff"])


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _features(tmp_path: Path, name: str, threads: int, per_chunk: int) -> Path:
    frames = _activity(3000)
    con = connect(threads=threads)
    tables = {k: con.create_table(k, v) for k, v in frames.items()}
    observations = con.create_table("observations", _observations(frames["customers"]))
    spec = plan_features(tables, families=dict(engagement=True, purchase=True, profile=True), windows=[7, 30])
    target = tmp_path / f"{name}.parquet"
    write_features(con, tables, observations, spec, target, customers_per_chunk=per_chunk)
    return target


def test_features_rerun_writes_the_same_bytes(tmp_path):
    first = _features(tmp_path, "first", threads=4, per_chunk=250_000)
    rows = pd.read_parquet(first)
    # sorted by the observation key, so the order never depends on threads or chunks
    keys = rows[["customer_id", "cutoff"]]
    assert keys.equals(keys.sort_values(["customer_id", "cutoff"]).reset_index(drop=True))
    again = [_features(tmp_path, f"again{i}", threads=t, per_chunk=250_000) for i, t in enumerate((4, 3, 1))]
    assert {_digest(p) for p in again} == {_digest(first)}
    # the same rows in the same order however many chunks of customers it was built in (the bytes
    # may differ there: DuckDB marks a column "required" when its statistics prove no nulls)
    chunked = _features(tmp_path, "chunked", threads=4, per_chunk=700)
    pd.testing.assert_frame_equal(pd.read_parquet(chunked), rows)
    assert _digest(_features(tmp_path, "chunked_again", threads=3, per_chunk=700)) == _digest(chunked)


def test_observations_rerun_writes_the_same_bytes(tmp_path):
    from churnml.data.io import write_parquet
    from churnml.features.label_times import LabelSpec, SplitSpec, build_observations

    frames = _activity(1500)
    digests = set()
    for i, threads in enumerate((4, 1, 4)):
        con = connect(threads=threads)
        tables = {k: con.create_table(k, v) for k, v in frames.items()}
        frame, _ = build_observations(tables, LabelSpec(definition="inactivity", horizon_days=30),
                                      SplitSpec(test_cutoffs=1, valid_cutoffs=1), freq="MS",
                                      min_history_days=30)
        digests.add(_digest(write_parquet(frame, tmp_path / f"obs{i}.parquet")))
    assert len(digests) == 1


def test_validated_tables_rerun_write_the_same_bytes(tmp_path):
    """The validate stage's tables come out in one order whatever the threads, ties included."""
    from churnml.data.contract import mappings_from_config
    from churnml.data.validation.run import validate_tables, write_validated

    frames = _activity(3000)
    frames["events"] = pd.concat([frames["events"], frames["events"].assign(event_type="tie")])  # same second
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, frame in frames.items():
        frame.to_parquet(raw / f"{name}.parquet")
    tables_cfg = {"customers": {"attributes": ["plan"]}, "events": {}, "orders": {},
                  "feedback": None, "subscriptions": None}
    digests = set()
    for i, threads in enumerate((4, 1, 3)):
        con = connect(threads=threads)
        mappings = mappings_from_config(tables_cfg)
        raw_tables = {name: con.read_parquet(str(raw / f"{name}.parquet")) for name in frames}
        data = validate_tables(con, raw_tables, mappings, reference_time="2030-01-01")
        out = tmp_path / f"validated{i}"
        write_validated(con, data, out)
        digests.add(tuple(_digest(out / f"{name}.parquet") for name in sorted(frames)))
    assert len(digests) == 1
    events = pd.read_parquet(tmp_path / "validated0" / "events.parquet")
    assert events["customer_id"].is_monotonic_increasing


# ---------------------------------------------------------------- a crash leaves no litter


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_writer_killed_mid_write_leaves_litter_the_next_write_removes(tmp_path):
    from churnml.data.io import write_parquet

    target = tmp_path / "features.parquet"
    write_parquet(pd.DataFrame({"x": [1]}), target)
    killed = subprocess.run([sys.executable, "-c", (
        "import os, sys, pandas as pd\n"
        "from pathlib import Path\n"
        "from churnml.data.io import atomic_path\n"
        "with atomic_path(Path(sys.argv[1])) as tmp:\n"
        "    pd.DataFrame({'x': [2]}).to_parquet(tmp)\n"
        "    tmp.with_name(tmp.name + '.parts').mkdir()\n"
        "    os.kill(os.getpid(), 9)\n"), str(target)])
    assert killed.returncode == -9
    litter = sorted(p.name for p in tmp_path.iterdir() if p.name != "features.parquet")
    assert len(litter) == 2 and all(".tmp-" in name for name in litter)
    assert pd.read_parquet(target)["x"].tolist() == [1]  # the previous output is intact

    write_parquet(pd.DataFrame({"x": [3]}), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.parquet"]
    assert pd.read_parquet(target)["x"].tolist() == [3]


def test_only_stale_temps_of_the_same_target_are_removed(tmp_path):
    from churnml.data.io import write_json

    dead = _dead_pid()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = [f".gate.tmp-{dead}-0123abcd.json", f".gate.json.old-{dead}-89abcdef",
                 f".gate.tmp-{dead}-0badf00d.json.parts", ".gate.tmp-feedface.json"]  # the last: older naming
        kept = [f".gate.tmp-{running.pid}-0123abcd.json",  # a writer still at work
                f".gate.tmp-{dead}-0123abcd.csv",  # another target's (gate.csv)
                f".other.tmp-{dead}-0123abcd.json", "gate.tmp-notours.json", ".gate.tmp-cafef00d.csv",
                ".gate.tmp-abcdef12.json.keep"]
        for name in stale + kept:
            if name.endswith((".parts", "89abcdef")):
                (tmp_path / name).mkdir()
                (tmp_path / name / "part-0000.parquet").write_text("x")
            else:
                (tmp_path / name).write_text("x")
        old = 1_000_000_000  # 2001: older than this process
        os.utime(tmp_path / ".gate.tmp-feedface.json", (old, old))
        write_json({"promoted": False}, tmp_path / "gate.json")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["gate.json", *kept])
    finally:
        running.kill()
        running.wait()


KILLED_RUN = """
import os, sys
from churnml.modeling import tracking
tracking.configure(sys.argv[1], "churn", sys.argv[2])
with tracking.start_run("a run to be killed", run_name="killed"):
    os.kill(os.getpid(), 9)
"""


def test_runs_left_running_by_a_dead_process_are_marked_failed_when_the_next_run_starts(tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    from churnml.modeling import tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri, artifacts = f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "mlartifacts")
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, uri, artifacts])
    assert killed.returncode == -9
    experiment = tracking.configure(uri, "churn", artifacts)
    client = MlflowClient()
    host, dead = socket.gethostname(), _dead_pid()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        def made(name, **tags):
            return client.create_run(experiment, run_name=name, tags=tags).info.run_id

        fake_dead = made("fake-dead", **{"churnml.pid": str(dead), "churnml.host": host})
        alive = made("alive", **{"churnml.pid": str(running.pid), "churnml.host": host})
        elsewhere = made("elsewhere", **{"churnml.pid": str(dead), "churnml.host": "another-host"})
        untagged = made("untagged")
        finished = made("finished", **{"churnml.pid": str(dead), "churnml.host": host})
        client.set_terminated(finished, "FINISHED")
        with tracking.start_run("the next run", run_name="next") as run:
            assert run.data.tags["churnml.pid"] == str(os.getpid()) and run.data.tags["churnml.host"] == host
        runs = {r.info.run_name: r for r in client.search_runs([experiment])}
        status = {name: r.info.status for name, r in runs.items()}
        assert status == {"killed": "FAILED", "fake-dead": "FAILED", "alive": "RUNNING", "elsewhere": "RUNNING",
                          "untagged": "RUNNING", "finished": "FINISHED", "next": "FINISHED"}
        reason = runs["killed"].data.tags["churnml.failed_reason"]
        assert f"on {host} ended without closing the run (killed or crashed)" in reason
        assert run.info.run_id in reason and "churnml.failed_reason" not in runs["alive"].data.tags
        assert {fake_dead, alive, elsewhere, untagged} <= {r.info.run_id for r in runs.values()}
    finally:
        running.kill()
        running.wait()
        mlflow.set_tracking_uri(None)


# ---------------------------------------------------------------- the gate and a read-only store


def test_a_first_model_must_beat_the_best_baseline():
    from churnml.modeling.gate import decide, summarize

    baselines = {"logistic": 0.62, "recency": 0.58, "rfm": None}
    refused = decide("roc_auc", 0.5, None, None, 0.002, baselines=baselines)
    assert not refused.promote and refused.label == "not promoted"
    assert "does not beat the best baseline, logistic (0.6200)" in refused.reason
    assert "first_must_beat_baselines" in refused.reason and "churnml promote" in refused.reason
    assert refused.tags()["churnml.gate.decision"] == "not promoted"
    assert summarize(refused)["best_baseline"] == "logistic" and summarize(refused)["best_baseline_value"] == 0.62

    loud = decide("roc_auc", 0.5, None, None, 0.002, baselines=baselines, first_must_beat_baselines=False)
    assert loud.promote and loud.label == "promoted with a warning" and "WARNING" in loud.reason
    assert "does not beat the best baseline" in loud.tags()["churnml.gate.warnings"]

    assert decide("roc_auc", 0.7, None, None, 0.002, baselines=baselines).promote
    # lower is better: the best baseline is the lowest log loss, and an undefined metric never wins
    assert not decide("log_loss", 0.30, None, None, 0.0, baselines={"logistic": 0.25, "rfm": 0.4}).promote
    assert decide("log_loss", 0.20, None, None, 0.0, baselines={"logistic": 0.25, "rfm": 0.4}).promote
    assert not decide("roc_auc", float("nan"), None, None, 0.0, baselines=baselines).promote
    # a champion to beat: the baselines play no part (the rule is about the first model)
    assert decide("roc_auc", 0.5, 0.4, "3", 0.002, baselines=baselines).promote


def test_a_test_set_with_few_churners_is_flagged():
    from churnml.modeling.gate import decide, small_test_warning

    warning = small_test_warning(4, 61, 30)
    assert "4 churner(s) in 61 rows" in warning and "evaluate.gate.min_test_churners = 30" in warning
    assert small_test_warning(30, 1000, 30) is None
    decision = decide("pr_auc", 0.5, 0.4, "2", 0.0, warnings=[warning])
    assert decision.warnings == (warning,) and decision.tags()["churnml.gate.warnings"] == warning


ROOT = Path(__file__).resolve().parents[1]


def _evaluate_project(tmp_path: Path) -> tuple[Path, dict]:
    """What the train stage leaves for evaluate, on a few hundred hand-made rows: a model trained
    on noise, a logistic baseline that ranks the 61 test rows (4 churners) perfectly."""
    import mlflow
    import yaml

    from churnml.data.io import write_json, write_parquet
    from churnml.features.build import FeatureSpec
    from churnml.modeling import tracking
    from churnml.modeling.booster import booster_params, train_booster

    project = tmp_path / "project"
    project.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["paths"].update(features="data/features.parquet", observations="data/observations.parquet",
                           model_dir="models", reports="reports")
    params["tracking"].update(uri=f"sqlite:///{project / 'mlflow.db'}", artifact_location=str(project / "mlartifacts"))
    params["evaluate"]["gate"].update(metric="roc_auc", margin=0.002, min_test_churners=30,
                                      first_must_beat_baselines=True)
    (project / "params.yaml").write_text(yaml.safe_dump(params))

    rng = np.random.default_rng(0)
    sizes = {"train": 400, "valid": 150, "test": 61}
    cutoffs = {"train": "2024-01-01", "valid": "2024-02-01", "test": "2024-03-01"}
    parts = []
    for split, n in sizes.items():
        x = rng.normal(size=n)
        label = (rng.uniform(size=n) < 0.3).astype("int8")  # noise: no feature tells churners apart
        if split == "test":
            label = np.zeros(n, dtype="int8")
            label[np.argsort(-x)[:4]] = 1  # the 4 highest x churn: x ranks them perfectly
        parts.append(pd.DataFrame({"customer_id": [f"{split[0]}{i:03d}" for i in range(n)],
                                   "cutoff": pd.Timestamp(cutoffs[split]), "label": label, "split": split, "x": x}))
    rows = pd.concat(parts, ignore_index=True)
    rows["cutoff"] = rows["cutoff"].astype("datetime64[us]")
    spec = FeatureSpec(families=["profile"], windows=[7], attributes={"x": "numeric", "noise": "numeric"})
    features = pd.DataFrame({"customer_id": rows["customer_id"], "cutoff": rows["cutoff"],
                             "prof_days_since_signup": rng.uniform(0, 400, len(rows)),
                             "prof_x": rng.normal(size=len(rows)), "prof_noise": rng.normal(size=len(rows))})
    write_parquet(features, project / "data/features.parquet")
    write_parquet(rows.assign(definition="inactivity").drop(columns="x"), project / "data/observations.parquet")

    def xy(split):
        part = features[rows["split"] == split]
        return part[["prof_days_since_signup", "prof_x", "prof_noise"]], rows.loc[rows["split"] == split, "label"].to_numpy(float)

    booster = train_booster(xy("train"), xy("valid"), spec, booster_params({"max_depth": 2}, seed=0, nthread=1), 20, 5)
    booster.save_model(str(project / "models/model.ubj") if (project / "models").mkdir() is None else "")
    test = rows[rows["split"] == "test"]
    write_parquet(pd.DataFrame({"customer_id": test["customer_id"], "cutoff": test["cutoff"],
                                "logistic": 1 / (1 + np.exp(-3 * test["x"]))}), project / "models/baseline_scores.parquet")
    track = params["tracking"]
    tracking.configure(track["uri"], track["experiment"], track["artifact_location"])
    with tracking.start_run("training", run_name="train") as run:
        info = mlflow.xgboost.log_model(booster, name="model", registered_model_name=track["registered_model"])
        with tracking.start_run("baseline", run_name="baseline-logistic", nested=True) as child:
            pass
    write_json({"run_id": run.info.run_id, "version": str(info.registered_model_version),
                "registered_model": track["registered_model"], "baseline_runs": {"logistic": child.info.run_id}},
               project / "models/train.json")
    return project, params


def _run_stage(project: Path, stage: str, monkeypatch) -> int:
    import importlib

    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(ROOT / "pipelines"))
    module = importlib.import_module(stage)
    common = importlib.import_module("common")
    return common.run(stage, module.main)


def _snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, _digest(p)) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_evaluate_refuses_a_weak_first_model_and_a_read_only_store_leaves_outputs_alone(tmp_path, monkeypatch, capfd):
    import json

    import mlflow
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project, params = _evaluate_project(tmp_path)
    capfd.readouterr()
    try:
        assert _run_stage(project, "evaluate", monkeypatch) == 0
        out = capfd.readouterr().out
        gate = json.loads((project / "reports/gate.json").read_text())
        metrics = json.loads((project / "reports/metrics.json").read_text())
        assert not gate["promoted"] and gate["decision"] == "not promoted" and gate["best_baseline"] == "logistic"
        assert "does not beat the best baseline, logistic (1.0000)" in gate["reason"]
        assert metrics["test"]["churners"] == 4 and metrics["test"]["rows"] == 61
        assert any("4 churner(s) in 61 rows" in w for w in gate["warnings"])
        assert metrics["test"]["warnings"] == [w for w in gate["warnings"] if "churner" in w]
        assert "WARNING: the test set is too small to tell models apart: 4 churner(s) in 61 rows" in out
        assert "gate: v1 not promoted: no champion yet, but roc_auc" in out
        client = MlflowClient()
        tags = client.get_model_version(params["tracking"]["registered_model"], "1").tags
        assert tags["churnml.gate.decision"] == "not promoted" and "logistic" in tags["churnml.gate.reason"]
        assert not client.get_registered_model(params["tracking"]["registered_model"]).aliases

        # the same stage against the same store, now read-only: one message, every output as it was
        before = _snapshot(project / "reports")
        read_only = f"sqlite:///file:{project / 'mlflow.db'}?mode=ro&uri=true"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", read_only)
        assert _run_stage(project, "evaluate", monkeypatch) == 1
        captured = capfd.readouterr()
        assert captured.err.strip() == (
            f"evaluate: MLflow store {read_only} is read-only: could not open the experiment 'churnml' "
            "((sqlite3.OperationalError) attempt to write a readonly database); nothing was written and no output "
            "was replaced. Make the store writable, or point tracking.uri / MLFLOW_TRACKING_URI at a writable one.")
        assert "Traceback" not in captured.out + captured.err
        assert _snapshot(project / "reports") == before

        # `churnml promote` says the same in one line
        from churnml.cli import main as cli

        assert cli(["promote", "1", "--reason", "by hand", "--params", str(project / "params.yaml")]) == 2
        err = capfd.readouterr().err
        assert err.startswith(f"churnml promote: MLflow store {read_only} is read-only") and "Traceback" not in err
    finally:
        mlflow.set_tracking_uri(None)


def test_a_store_turning_read_only_mid_run_is_one_message_naming_what_was_not_logged(tmp_path, monkeypatch):
    import mlflow
    from sqlalchemy.exc import OperationalError

    from churnml.modeling import tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.configure(uri, "churn", str(tmp_path / "mlartifacts"))
    try:
        def refuse(*args, **kwargs):
            raise OperationalError("INSERT", {}, Exception("attempt to write a readonly database"))

        monkeypatch.setattr(mlflow.tracking.MlflowClient, "set_registered_model_alias", refuse)
        with pytest.raises(RuntimeError) as caught:
            tracking.record_gate("churnml", "3", "champion", {}, promote=True)
        assert str(caught.value).startswith(f"MLflow store {uri} is read-only: could not record the gate's decision "
                                            "on churnml v3")
        # churnml's own errors inside a run are not blamed on the store
        with pytest.raises(ValueError, match="not the store's"):
            with tracking.start_run("a run", run_name="r"):
                raise ValueError("not the store's")
    finally:
        mlflow.set_tracking_uri(None)
