"""End to end: every DVC stage in order on a small generated dataset, in a temporary project,
with MLflow's store inside it. Then the command line, a no-op second repro, and an experiment."""

import json
import re
import shutil

import pandas as pd
import pytest
import yaml
from support import ROOT, fresh_mlflow_db, run

from churnml.params import compose_text

pytestmark = pytest.mark.e2e

SEARCH_TRIALS = 2


@pytest.fixture(scope="module")
def project(tmp_path_factory, empty_mlflow_db):
    home = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "tmp")
    for name in ("conf", "pipelines", "src", ".dvc"):
        shutil.copytree(ROOT / name, home / name, ignore=ignore)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, home / name)
    # the default config, composed as `make params` does, but with a short search: two trials
    # still run the search and log each trial as a nested run (checked below), and they keep the
    # train stage from dominating the suite's time
    (home / "params.yaml").write_text(compose_text(home / "conf", [f"train.search.trials={SEARCH_TRIALS}"]))
    run(["git", "init", "-q"], home)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], home)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "project"], home)
    fresh_mlflow_db(empty_mlflow_db, home / "mlflow.db")  # the configured store, new and empty
    run(["churnml", "generate", "--out", "data/raw/default", "--customers", "900", "--months", "12"], home)
    repro = run(["dvc", "repro"], home)
    return home, repro.stdout


def test_every_stage_ran_and_wrote_its_outputs(project):
    home, log = project
    for stage in ("validate", "observations", "features", "train", "evaluate", "explain", "score", "report"):
        assert f"Running stage '{stage}'" in log
    for path in ("data/interim/validated/customers.parquet", "data/processed/observations.parquet",
                 "data/processed/features.parquet", "data/processed/feature_catalog.csv", "models/model.ubj",
                 "data/processed/explanations.parquet", "reports/drivers/churn_drivers.html", "data/scores/scores.parquet",
                 "reports/retention.json", "reports/retention/retention.html", "reports/retention/cohort_retention.png"):
        assert (home / path).exists(), path


def test_metrics_beat_chance(project):
    home, _ = project
    metrics = json.loads((home / "reports/metrics.json").read_text())
    model = metrics["model"]
    assert model["roc_auc"] > 0.65
    assert model["pr_auc"] > metrics["test"]["churn_rate"]
    assert model["top_decile_lift"] > 1.5


def test_scores_cover_the_active_base(project):
    home, _ = project
    scores = pd.read_parquet(home / "data/scores/scores.parquet")
    summary = json.loads((home / "data/scores/scores_summary.json").read_text())
    assert len(scores) == summary["scored"] > 0
    assert summary["scored"] + summary["already_churned"] + summary["not_yet_signed_up"] == summary["customers"] == 900
    assert {"customer_id", "as_of", "churn_probability", "risk_tier", "rank", "reason_1", "reason_2", "reason_3"} <= set(scores.columns)
    assert scores["customer_id"].is_unique
    assert scores["churn_probability"].between(0, 1).all()
    assert list(scores["rank"]) == list(range(1, len(scores) + 1))
    assert scores["churn_probability"].is_monotonic_decreasing
    at_risk = scores[scores["risk_tier"] != "low"]
    assert at_risk["reason_1"].notna().all()


def test_champion_registered_with_metrics(project):
    home, _ = project
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    champion = client.get_model_version_by_alias("churnml", "champion")
    run = client.get_run(champion.run_id)
    assert {"test_roc_auc", "test_pr_auc", "test_top_decile_lift"} <= set(run.data.metrics)
    assert run.data.params["model.max_depth"] == "6"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"evaluation", "drivers", "features", "model_calibration.json"} <= artifacts
    # what loading the model needs is named, pinned to what trained it, not inferred
    import xgboost

    requirements = sorted(home.glob("mlartifacts/**/requirements.txt"))
    assert requirements and all(f"xgboost=={xgboost.__version__}" in r.read_text().split() for r in requirements)
    assert not any("psutil" in r.read_text() for r in requirements)
    drivers = {a.path for a in client.list_artifacts(run.info.run_id, "drivers")}
    assert {"drivers/churn_drivers.html", "drivers/at_risk_table.json", "drivers/beeswarm.png",
            "drivers/importance_bar.png", "drivers/global_drivers.csv", "drivers/segment_drivers.csv"} <= drivers
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation/figures")}
    assert {f"evaluation/figures/{n}.png" for n in ("roc", "pr", "calibration", "gains", "lift", "profit", "per_cutoff")} <= figures
    tags = run.data.tags
    # the first model is promoted, and held to the best baseline: a loss says so loudly
    gate = json.loads((home / "reports/gate.json").read_text())
    beats = gate["candidate"] > gate["best_baseline_value"]
    assert tags["churnml.gate.decision"] == ("promoted" if beats else "promoted with a warning")
    assert tags["churnml.gate.reason"].startswith("no champion yet; ")
    assert ("WARNING" in tags["churnml.gate.reason"]) != beats and gate["best_baseline"] in tags["churnml.gate.reason"]
    assert len(tags["mlflow.source.git.commit"]) >= 40
    assert len(tags["churnml.data.data/processed/features.parquet"]) == 32
    assert tags["churnml.data.data/raw/default"].endswith(".dir")
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    names = sorted(c.info.run_name for c in children)
    trials = int(yaml.safe_load((home / "params.yaml").read_text())["train"]["search"]["trials"])
    assert trials == SEARCH_TRIALS  # the search ran: its trials are nested runs
    assert names == sorted([f"trial-{i}" for i in range(trials)] + ["baseline-logistic", "baseline-recency", "baseline-rfm"])
    logistic = next(c for c in children if c.info.run_name == "baseline-logistic")
    assert "test_pr_auc" in logistic.data.metrics


def test_every_at_risk_customer_has_readable_drivers(project):
    home, _ = project
    explained = pd.read_parquet(home / "data/processed/explanations.parquet")
    at_risk = explained[explained["risk_tier"] != "low"]
    assert len(at_risk) > 0
    for i in range(1, 6):
        assert {f"reason_{i}", f"reason_{i}_feature", f"reason_{i}_value", f"reason_{i}_contribution"} <= set(explained.columns)
    assert at_risk["reason_1"].notna().all() and (at_risk["reason_1_contribution"] > 0).all()
    assert {"protective", "protective_feature", "protective_contribution"} <= set(explained.columns)
    assert (explained["protective_contribution"].dropna() < 0).all()
    segments = pd.read_csv(home / "reports/drivers/segment_drivers.csv")
    assert {"plan", "country", "tenure band", "risk tier"} <= set(segments["segment_kind"])
    html = (home / "reports/drivers/churn_drivers.html").read_text()
    latest = at_risk[at_risk["cutoff"] == at_risk["cutoff"].max()]
    assert 'id="at-risk-table"' in html and latest["customer_id"].iloc[0] in html


def test_evaluation_table_puts_the_baselines_beside_the_model(project):
    home, log = project
    metrics = json.loads((home / "reports/metrics.json").read_text())
    assert set(metrics["baselines"]) == {"logistic", "recency", "rfm"}
    for name, values in [("model", metrics["model"]), *metrics["baselines"].items()]:
        assert {"roc_auc", "pr_auc", "top_decile_lift", "recall_at_10", "precision_at_20"} <= set(values), name
    assert {"log_loss", "brier", "ece"} <= set(metrics["model"])
    assert {"optimal_threshold", "optimal_profit", "profit_at_10pct"} <= set(metrics["campaign"])
    table = pd.read_csv(home / "reports/evaluation.csv")
    assert list(table["model"]) == ["xgboost", "logistic", "recency", "rfm"]
    assert table.loc[0, "pr_auc"] == pytest.approx(metrics["model"]["pr_auc"], abs=1e-4)
    for name in ("roc", "pr", "calibration", "gains", "lift", "profit", "per_cutoff"):
        assert (home / f"reports/plots/{name}.csv").stat().st_size > 0
    per_cutoff = pd.read_csv(home / "reports/plots/per_cutoff.csv")
    assert set(per_cutoff["split"]) == {"valid", "test"}
    assert re.search(r"gate: v1 promoted( with a warning)?: no champion yet; (WARNING: .*)?pr_auc \d", log)


def test_second_repro_does_nothing(project):
    home, _ = project
    again = run(["dvc", "repro"], home)
    assert "Data and pipelines are up to date." in again.stdout
    assert "Running stage" not in again.stdout


def test_command_line_scores_at_a_given_date(project):
    home, _ = project
    out = home / "adhoc" / "scores.csv"
    args = ["churnml", "score", "--data", "data/raw/default", "--as-of", "2026-05-01", "--top-k", "2"]
    proc = run([*args, "--out", str(out)], home)
    scores = pd.read_csv(out)
    assert set(scores["as_of"].astype(str).str[:10]) == {"2026-05-01"}
    assert len(scores) > 0 and "reason_2" in scores.columns and "reason_3" not in scores.columns
    assert (scores["value_at_risk"] >= 0).all() and scores["value_at_risk"].gt(0).any()
    assert scores["value_at_risk"].to_numpy() == pytest.approx((scores["churn_probability"] * scores["customer_value"]).to_numpy())
    summary = json.loads((home / "adhoc" / "scores_summary.json").read_text())
    assert {"features", "predict", "explain", "write"} <= set(summary["phases_s"])
    assert len(summary["drift"]) > 50 and "drift (PSI > 0.25):" in proc.stdout
    # the same input twice gives the same bytes
    run([*args, "--out", str(home / "adhoc" / "again.csv")], home)
    assert (home / "adhoc" / "again.csv").read_bytes() == out.read_bytes()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    scoring = client.get_experiment_by_name("churnml-scoring")
    runs = client.search_runs([scoring.experiment_id], "tags.`churnml.as_of` = '2026-05-01'")
    assert len(runs) == 2 and runs[0].data.metrics["scored"] == len(scores)
    logged = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"drift.json", "score_histogram.json"} <= logged and any(p.endswith("_summary.json") for p in logged)
    assert runs[0].data.metrics["max_psi"] == pytest.approx(max(d["psi"] for d in summary["drift"]), abs=1e-6)


def test_an_unreachable_tracking_server_is_named(project):
    home, _ = project
    import os
    env_before = dict(os.environ)
    os.environ.update({"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                       "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"})
    try:
        proc = run(["churnml", "score", "--out", "y.parquet"], home, check=False)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    assert proc.returncode != 0 and "cannot reach the MLflow tracking store http://127.0.0.1:9" in proc.stderr
    assert not (home / "y.parquet").exists()


def test_command_line_names_a_missing_model(project):
    home, _ = project
    proc = run(["churnml", "score", "--model", "models:/churnml@nobody", "--out", "x.parquet"], home, check=False)
    assert proc.returncode != 0
    assert "models:/churnml@nobody" in proc.stderr and not (home / "x.parquet").exists()


def _dataset_copy(home, name, change):
    """A copy of the project's raw dataset with one table changed by `change(frame)`."""
    source, target = home / "data/raw/default", home / "data/raw" / name
    shutil.copytree(source, target)
    table, frame = change
    path = target / f"{table}.parquet"
    frame(pd.read_parquet(path)).to_parquet(path, index=False)
    return target


def _previous_output(home, name):
    out = home / "adhoc" / name
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(b"yesterday's scores")
    return out


def test_a_column_of_another_type_fails_before_scoring_naming_the_features(project):
    home, _ = project
    # the model learnt prof_country from a text column; here it arrives as numbers
    data = _dataset_copy(home, "numeric_country", ("customers", lambda f: f.assign(
        country=f["country"].astype("category").cat.codes.astype("int64"))))
    out = _previous_output(home, "mismatch.parquet")
    proc = run(["churnml", "score", "--data", str(data), "--out", str(out)], home, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "does not fit the model's features" in proc.stderr
    assert "customers.country is int64 but the model was trained with it as categorical" in proc.stderr
    assert "prof_country" in proc.stderr
    assert "scoring: chunk" not in proc.stderr  # refused before any chunk was scored
    assert out.read_bytes() == b"yesterday's scores"


def test_a_missing_table_fails_naming_the_features_it_feeds(project):
    home, _ = project
    data = home / "data/raw/no_feedback"
    shutil.copytree(home / "data/raw/default", data)
    (data / "feedback.parquet").unlink()  # an optional table: the dataset is valid without it
    proc = run(["churnml", "score", "--data", str(data), "--out", "adhoc/nofb.parquet"], home, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "feedback" in proc.stderr and "fb_" in proc.stderr
    assert not (home / "adhoc/nofb.parquet").exists()


def test_bad_rows_fail_with_table_column_and_examples_and_keep_the_old_scores(project):
    home, _ = project
    data = _dataset_copy(home, "bad_events", ("events", lambda f: f.assign(
        customer_id=f["customer_id"].where(f.index % 1000 != 7, None))))
    out = _previous_output(home, "bad.parquet")
    proc = run(["churnml", "score", "--data", str(data), "--out", str(out)], home, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "events" in proc.stderr and "customer_id" in proc.stderr and "row" in proc.stderr
    assert out.read_bytes() == b"yesterday's scores"


def test_chunks_change_nothing_and_a_terminal_gets_a_progress_bar(project):
    import os
    import pty
    import subprocess
    import sys

    home, _ = project
    # the score stage's output: the same command in one chunk (250,000 customers a chunk)
    whole = home / "data/scores/scores.parquet"
    params = home / "params_small_chunks.yaml"
    text = (home / "params.yaml").read_text()
    assert "customers_per_chunk: 250000" in text
    # 300 a chunk: three chunks of the 798 customers scored (a bar with several steps, two chunk
    # boundaries); each chunk is a feature build, the cost of each run here
    params.write_text(text.replace("customers_per_chunk: 250000", "customers_per_chunk: 300"))
    chunked = home / "adhoc" / "chunked.parquet"
    # stderr on a pseudo-terminal: the command must draw a bar there, not log lines
    leader, follower = pty.openpty()
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(["churnml", "score", "--params", str(params), "--out", str(chunked)],
                            cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    terminal = b""
    while True:  # read while it runs: a full pseudo-terminal would block the writer
        try:
            block = os.read(leader, 65536)
        except OSError:  # the writer is gone
            break
        if not block:
            break
        terminal += block
    os.close(leader)
    proc.wait(timeout=600)
    assert proc.returncode == 0, terminal.decode(errors="replace")[-3000:]
    screen = terminal.decode(errors="replace")
    assert "scoring:" in screen and "customer/s" in screen and "100%" in screen
    assert "scoring: chunk" not in screen
    summary = json.loads((home / "adhoc" / "chunked_summary.json").read_text())
    assert summary["chunks"] > 2
    assert json.loads((home / "data/scores/scores_summary.json").read_text())["chunks"] == 1
    assert chunked.read_bytes() == whole.read_bytes()
    # and without a terminal, plain log lines, one per chunk
    logged = run(["churnml", "score", "--params", str(params), "--out", str(home / "adhoc" / "logged.parquet")], home)
    assert f"scoring: chunk {summary['chunks']} of {summary['chunks']}" in logged.stderr


def test_retention_report_headlines_are_dvc_metrics_and_in_mlflow(project):
    home, log = project
    headline = json.loads((home / "reports/retention.json").read_text())
    assert headline["customers"] == 900 and headline["definition"] == "hybrid"
    assert 0 < headline["churn_rate_mean_recent"] < 1 and 0 < headline["repeat_purchase_rate"] <= 1
    assert headline["average_order_value"] > 0 and headline["predicted_clv_total"] > 0
    shown = run(["dvc", "metrics", "show", "--json"], home).stdout
    assert "churn_rate_mean_recent" in shown
    cohorts = pd.read_csv(home / "reports/retention/cohort_retention.csv")
    assert cohorts["customers"].sum() == 900
    segments = pd.read_csv(home / "reports/retention/segments.csv")
    assert {"plan", "country", "channel", "risk tier"} <= set(segments["segment_kind"])
    scored = pd.read_parquet(home / "data/scores/scores.parquet")
    by_tier = segments[segments["segment_kind"] == "risk tier"]
    assert by_tier["customers"].sum() == len(scored)
    assert by_tier["value_at_risk"].sum() == pytest.approx(scored["value_at_risk"].sum())
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    experiment = client.get_experiment_by_name("churnml-retention")
    latest = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])[0]
    assert latest.data.metrics["churn_rate_mean_recent"] == pytest.approx(headline["churn_rate_mean_recent"])
    logged = {a.path for a in client.list_artifacts(latest.info.run_id, "retention")}
    assert {"retention/cohort_retention.png", "retention/churn_rate.png", "retention/retention.html"} <= logged


def test_target_then_measure_a_campaign(project):
    home, _ = project
    out = home / "adhoc" / "campaign"
    proc = run(["churnml", "target", "--scores", "data/scores/scores.parquet", "--budget", "40",
                "--campaign-id", "e2e", "--out", str(out)], home)
    targets = pd.read_parquet(out / "targets.parquet")
    assert (targets["group"] == "treated").sum() <= 40 and set(targets["group"]) <= {"treated", "control"}
    assert targets["expected_net_value"].gt(0).all() and (out / "profit_by_budget.png").exists()
    # the same campaign id draws the same control group again
    again = run(["churnml", "target", "--scores", "data/scores/scores.parquet", "--budget", "40",
                 "--campaign-id", "e2e", "--out", str(home / "adhoc" / "again")], home)
    assert pd.read_parquet(home / "adhoc/again/targets.parquet")["group"].tolist() == targets["group"].tolist()
    assert proc.returncode == again.returncode == 0
    # the data ends at the as-of date: the outcome window has not passed yet, and it says when it will
    measured = run(["churnml", "campaign-report", "--campaign", str(out), "--data", "data/raw/default"], home, check=False)
    assert measured.returncode == 2 and "2026-" in measured.stderr


@pytest.mark.parametrize("name", ["01_explore", "02_churn_drivers", "03_retention"])
def test_notebook_runs_top_to_bottom(project, name):
    import os

    import nbformat
    from nbclient import NotebookClient

    home, _ = project
    notebook = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # committed clean
    before = dict(os.environ)
    os.environ.update({"CHURNML_HOME": str(home), "MPLBACKEND": "Agg"})
    try:
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(home)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(before)
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert any(o.get("output_type") in {"display_data", "execute_result"}
               for cell in notebook.cells for o in cell.get("outputs", []))


def test_experiment_with_an_override(project):
    home, _ = project
    # with the search off, `model` is trained exactly as set. The target is the gate's stage: what
    # is checked here is train and evaluate (the registry, the gate); explain, score and report
    # would rerun after them, as in the first repro, and are checked there
    proc = run(["dvc", "exp", "run", "-S", "train.search.trials=0", "-S", "model.max_depth=4", "evaluate"], home)
    assert "Running stage 'train'" in proc.stdout
    assert "Running stage 'validate'" not in proc.stdout  # only what depends on the model reruns
    assert "max_depth: 4" in (home / "params.yaml").read_text()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    assert len(client.search_model_versions("name='churnml'")) == 2
    gate = json.loads((home / "reports/gate.json").read_text())
    assert gate["champion_version"] == "1" and gate["champion"] is not None
    tags = client.get_model_version("churnml", "2").tags
    assert tags["churnml.gate.decision"] == ("promoted" if gate["promoted"] else "kept champion")
    expected = "2" if gate["promoted"] else "1"
    assert str(client.get_model_version_by_alias("churnml", "champion").version) == expected
    # whatever the gate said, a person can overrule it, and the reason is kept
    other = "1" if expected == "2" else "2"
    out = run(["churnml", "promote", other, "--reason", "rollback drill"], home)
    assert f"churnml v{other} is now @champion (was v{expected})" in out.stdout
    assert str(client.get_model_version_by_alias("churnml", "champion").version) == other
    assert client.get_model_version("churnml", other).tags["churnml.gate.reason"] == "rollback drill"


def test_a_leaky_feature_stops_training_with_its_name(project):
    home, _ = project
    params = (home / "params.yaml").read_text()
    try:
        # a limit below what the strongest honest features reach here: the probe must name one
        (home / "params.yaml").write_text(params.replace("max_single_feature_auc: 0.95", "max_single_feature_auc: 0.6"))
        proc = run(["python", "pipelines/train.py"], home, check=False)
    finally:
        (home / "params.yaml").write_text(params)
    assert proc.returncode == 1
    probe = pd.read_csv(home / "reports/single_feature_auc.csv")
    strongest = probe.iloc[0]
    assert strongest["auc"] > 0.6
    assert f"feature '{strongest['feature']}' alone reaches AUC" in proc.stderr
    assert "train.leakage.allow" in proc.stderr
