"""Issue 14, item 6: bad input ends in a clear message naming table, column and rows, never a
traceback, and nothing already written is lost. Tiny hand-made datasets, one defect at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from churnml.data.contract import CONTRACT
from churnml.data.dataset import validate_folder
from churnml.data.engine import connect
from churnml.data.validation.findings import DEFAULT_CHECKS, Finding, ValidationError, resolve_checks
from churnml.data.validation.run import ValidatedData, validate_tables, write_validated
from churnml.data.validation.times import resolve_reference_time

from test_validate import MAPPINGS, REF, clean_frames, count_rows, failing, only, open_tables, run

ROOT = Path(__file__).resolve().parents[1]

# The same mapping as MAPPINGS, as the `data.tables` config section a user writes.
TABLES_CONFIG = {
    name: {"file": m.file, "columns": dict(m.columns), "attributes": None} for name, m in MAPPINGS.items()
}


def write_raw(folder: Path, frames: dict[str, pd.DataFrame]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_parquet(folder / MAPPINGS[name].file, index=False)
    return folder


def validate_raw(folder: Path, **kwargs):
    kwargs.setdefault("reference_time", REF)
    return validate_folder(connect(), folder, TABLES_CONFIG, **kwargs)


def failing_folder(folder: Path, **kwargs) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        validate_raw(folder, **kwargs)
    return info.value


def with_column(frame_path: Path, column: str, values: list, type_: pa.DataType) -> None:
    """Replace one column of a Parquet file with exact Arrow values (pandas would turn NaN into null)."""
    table = pq.read_table(frame_path)
    table = table.set_column(table.schema.get_field_index(column), column, pa.array(values, type=type_))
    pq.write_table(table, frame_path)


# --------------------------------------------------------------------------------------------------
# A missing column is reported, whatever else depended on it


@pytest.mark.parametrize(
    "table,column", [(t, c) for t, spec in CONTRACT.items() for c in spec.required_columns]
)
def test_every_missing_required_column_is_a_finding_not_a_crash(tmp_path, table, column):
    frames = clean_frames()
    source = MAPPINGS[table].source_name(column)
    frames[table] = frames[table].drop(columns=source)
    err = failing(tmp_path, frames)
    f = only([f for f in err.findings if f.table == table], "missing_column")
    assert f.column == column and f.severity == "error"
    assert f"'{source}'" in f.message


def test_customers_without_signup_date_names_the_column(tmp_path):
    frames = clean_frames()
    frames["customers"] = frames["customers"].drop(columns="joined")
    err = failing(tmp_path, frames)
    assert [(f.check, f.table, f.column) for f in err.errors] == [("missing_column", "customers", "signup_date")]
    assert "'joined'" in str(err) and "signup_date" in str(err)


# --------------------------------------------------------------------------------------------------
# Missing and unreadable files are findings


def test_no_customers_file_is_a_missing_table_finding(tmp_path):
    frames = clean_frames()
    del frames["customers"]
    err = failing_folder(write_raw(tmp_path / "raw", frames))
    f = only(err.findings, "missing_table")
    assert (f.table, f.severity) == ("customers", "error")
    assert "customers.parquet" in f.message


def test_no_activity_file_is_a_missing_table_finding(tmp_path):
    err = failing_folder(write_raw(tmp_path / "raw", {"customers": clean_frames()["customers"]}))
    f = only(err.findings, "missing_table")
    assert f.table == "activity"
    assert "events.parquet" in f.message and "orders.parquet" in f.message


def test_missing_dataset_folder_is_a_finding(tmp_path):
    err = failing_folder(tmp_path / "nowhere")
    f = only(err.findings, "missing_table")
    assert str(tmp_path / "nowhere") in f.message and "data.path" in f.hint


def test_zero_byte_events_file_is_an_unreadable_file_finding(tmp_path):
    folder = write_raw(tmp_path / "raw", clean_frames())
    (folder / "events.parquet").write_bytes(b"")
    err = failing_folder(folder)
    f = only(err.findings, "unreadable_file")
    assert (f.table, f.column, f.severity) == ("events", None, "error")
    assert f.message == (
        f"events: {folder / 'events.parquet'} is not a readable Parquet file (0 bytes: an interrupted export?)"
    )
    assert not [g for g in err.findings if g.check == "missing_table"]  # said once, not twice


def test_csv_saved_as_parquet_and_unsupported_files_are_unreadable_file_findings(tmp_path):
    folder = write_raw(tmp_path / "raw", clean_frames())
    clean_frames()["events"].to_csv(folder / "events.parquet", index=False)  # a CSV with the wrong name
    (folder / "orders.parquet").unlink()
    (folder / "orders.xlsx").write_bytes(b"PK\x03\x04 not really excel")
    tables = dict(TABLES_CONFIG, orders=dict(TABLES_CONFIG["orders"], file="orders.xlsx"))
    with pytest.raises(ValidationError) as info:
        validate_folder(connect(), folder, tables, reference_time=REF)
    unreadable = {f.table: f for f in info.value.findings if f.check == "unreadable_file"}
    assert set(unreadable) == {"events", "orders"}
    assert "is not a readable Parquet file" in unreadable["events"].message
    assert "CSV" in unreadable["events"].message
    assert "orders.xlsx" in unreadable["orders"].message and "Parquet or CSV" in unreadable["orders"].message


def test_customers_file_that_cannot_be_read_is_not_also_called_missing(tmp_path):
    folder = write_raw(tmp_path / "raw", clean_frames())
    (folder / "customers.parquet").write_bytes(b"")
    err = failing_folder(folder)
    assert [(f.check, f.table) for f in err.errors] == [("unreadable_file", "customers")]


# --------------------------------------------------------------------------------------------------
# NaN and all-null values


def test_nan_amount_is_a_nan_value_finding_with_example_rows(tmp_path):
    folder = write_raw(tmp_path / "raw", clean_frames())
    with_column(folder / "orders.parquet", "amt", [10.0, float("nan"), 5.0, float("inf")], pa.float64())
    err = failing_folder(folder)
    f = only(err.findings, "nan_value")
    assert (f.table, f.column, f.count, f.severity) == ("orders", "amount", 2, "error")
    assert "'amt'" in f.message and "NaN" in f.message
    assert {row["user"] for row in f.examples} == {"2", "3"}
    assert sorted(row["amt"] for row in f.to_dict()["examples"]) == ["Infinity", "NaN"]  # not "null"
    assert "NaN" in str(err) and "Infinity" in str(err)
    assert "checks.nan_value" in f.hint


def test_nan_value_severity_is_configurable_and_drop_removes_the_rows(tmp_path):
    folder = write_raw(tmp_path / "raw", clean_frames())
    with_column(folder / "orders.parquet", "amt", [10.0, float("nan"), 5.0, 7.25], pa.float64())
    kept = validate_raw(folder, checks={"nan_value": "warn"})
    assert count_rows(kept.tables["orders"]) == 4
    assert only(kept.findings, "nan_value").severity == "warn"
    dropped = validate_raw(folder, checks={"nan_value": "drop"})
    assert dropped.tables["orders"].to_pyarrow().column("amount").to_pylist() == [10.0, 5.0, 7.25]
    assert only(dropped.findings, "nan_value").count == 1


def test_nan_in_every_number_column_is_caught_and_a_nan_score_is_not_out_of_range(tmp_path):
    folder = write_raw(tmp_path / "raw", clean_frames())
    with_column(folder / "events.parquet", "value", [1.0, float("nan"), 3.0, 4.0, 5.0], pa.float64())
    with_column(folder / "feedback.parquet", "score", [9.0, None, float("nan")], pa.float64())
    with_column(folder / "subscriptions.parquet", "mrr", [10.0, float("nan"), 10.0], pa.float64())
    err = failing_folder(folder)
    assert {(f.table, f.column) for f in err.findings if f.check == "nan_value"} == {
        ("events", "value"), ("feedback", "score"), ("subscriptions", "mrr"),
    }
    assert not [f for f in err.findings if f.check == "score_out_of_range"]


def test_nan_value_is_a_known_check_documented_in_the_default_config():
    assert DEFAULT_CHECKS["nan_value"] == "error"
    assert resolve_checks({"nan_value": "drop"})["nan_value"] == "drop"
    conf = yaml.safe_load((ROOT / "conf" / "data" / "default.yaml").read_text())
    assert conf["checks"]["nan_value"] == "error"
    assert "nan_value" in (ROOT / "README.md").read_text()


def test_all_null_required_column_is_an_error(tmp_path):
    frames = clean_frames()
    frames["orders"]["amt"] = [None] * 4
    err = failing(tmp_path, frames)
    f = only(err.findings, "empty_column")
    assert (f.table, f.column, f.count, f.severity) == ("orders", "amount", 4, "error")
    assert "'amt'" in f.message and "no non-null values" in f.message


def test_all_null_end_date_is_fine_every_subscription_is_open(tmp_path):
    frames = clean_frames()
    frames["subscriptions"]["end_date"] = pd.Series([None] * 3, dtype="datetime64[ns]")
    assert not run(tmp_path, frames).findings


def test_all_null_attribute_is_said_in_words(tmp_path):
    frames = clean_frames()
    frames["customers"]["monthly_price"] = [None, None, None]  # Arrow type null: no type at all
    err = failing(tmp_path, frames)
    f = only(err.findings, "empty_column")
    assert (f.table, f.column) == ("customers", "monthly_price")
    assert "customers.monthly_price (source column 'monthly_price') has no non-null values" in f.message
    assert "its type cannot be known" in f.message
    assert "tables.customers.attributes" in f.hint
    assert "DataType" not in str(err)


def test_empty_tables_keep_passing(tmp_path):
    frames = clean_frames()
    frames["feedback"] = frames["feedback"].iloc[0:0]
    data = run(tmp_path, frames)
    assert count_rows(data.tables["feedback"]) == 0 and not data.findings


# --------------------------------------------------------------------------------------------------
# Dates the user gives: ISO only


def test_as_of_accepts_iso_dates_only(capsys):
    from churnml.cli import main

    with pytest.raises(SystemExit) as info:
        main(["score", "--as-of", "01/07/2026"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "01/07/2026" in err and "YYYY-MM-DD" in err and "Traceback" not in err


def test_as_of_iso_date_is_passed_on(monkeypatch):
    from churnml import cli

    seen = {}
    monkeypatch.setattr(cli, "_score", lambda args: seen.setdefault("as_of", args.as_of) and 0)
    cli.main(["score", "--as-of", "2026-07-01"])
    assert seen["as_of"] == "2026-07-01"


@pytest.mark.parametrize("value", ["01/07/2026", "7 Jan 2026", "2026-13-01"])
def test_reference_time_must_be_iso(value):
    with pytest.raises(ValueError, match=r"data\.reference_time: .*YYYY-MM-DD"):
        resolve_reference_time(value)


def test_reference_time_iso_forms_still_work():
    assert resolve_reference_time("2026-07-01") == datetime(2026, 7, 1)
    assert resolve_reference_time("2026-07-01 12:30:00") == datetime(2026, 7, 1, 12, 30)


# --------------------------------------------------------------------------------------------------
# The validate stage and the CLI: a report, a clean message, an exit code, nothing lost


def stage_project(tmp_path: Path, frames: dict[str, pd.DataFrame], **data) -> Path:
    """A project folder with a params.yaml for the validate stage and a previous validated output."""
    write_raw(tmp_path / "raw", frames)
    params = {
        "data": {"name": "tiny", "path": "raw", "tables": TABLES_CONFIG, "checks": {},
                 "score_range": [0, 10], "reference_time": "2024-12-31", **data},
        "engine": {"memory_limit": "1GB", "temp_directory": "tmp", "threads": 1},
        "paths": {"validated": "validated", "reports": "reports"},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "validated").mkdir()
    (tmp_path / "validated" / "customers.parquet").write_bytes(b"previous output")
    return tmp_path


def run_stage(project: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, str(ROOT / "pipelines" / "validate.py")], cwd=project,
                          capture_output=True, text=True, env=env, timeout=300)


def test_validate_stage_on_a_zero_byte_file_writes_the_report_and_exits_1_without_traceback(tmp_path):
    project = stage_project(tmp_path, clean_frames())
    (project / "raw" / "events.parquet").write_bytes(b"")
    done = run_stage(project)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "events: raw/events.parquet is not a readable Parquet file (0 bytes: an interrupted export?)" in done.stderr
    report = json.loads((project / "reports" / "validation.json").read_text())
    assert report["ok"] is False
    assert [(f["check"], f["table"]) for f in report["findings"]] == [("unreadable_file", "events")]
    assert (project / "validated" / "customers.parquet").read_bytes() == b"previous output"


@pytest.fixture
def stage(monkeypatch):
    """pipelines/validate.main, run in-process from a project folder."""
    monkeypatch.syspath_prepend(str(ROOT / "pipelines"))
    import validate

    def call(project: Path) -> int:
        monkeypatch.chdir(project)
        return validate.main()

    return call


@pytest.mark.parametrize("defect", ["no customers", "no activity", "all-null amount", "bad check", "bad date"])
def test_validate_stage_reports_every_failure_and_keeps_the_previous_output(tmp_path, stage, capsys, defect):
    frames, data = clean_frames(), {}
    if defect == "no customers":
        del frames["customers"]
    elif defect == "no activity":
        frames = {"customers": frames["customers"]}
    elif defect == "all-null amount":
        frames["orders"]["amt"] = [None] * 4
    elif defect == "bad check":
        data = {"checks": {"nan_amount": "warn"}}
    else:
        data = {"reference_time": "31/12/2024"}
    project = stage_project(tmp_path, frames, **data)
    assert stage(project) == 1
    err = capsys.readouterr().err
    assert err.strip() and "Traceback" not in err
    report = json.loads((project / "reports" / "validation.json").read_text())
    assert report["ok"] is False and (report["findings"] or report["error"])
    assert (project / "validated" / "customers.parquet").read_bytes() == b"previous output"


def test_validate_stage_still_passes_on_clean_data(tmp_path, stage):
    project = stage_project(tmp_path, clean_frames())
    assert stage(project) == 0
    assert json.loads((project / "reports" / "validation.json").read_text())["ok"] is True
    assert pq.read_table(project / "validated" / "customers.parquet").num_rows == 3


@pytest.mark.parametrize("command", ["score", "report", "campaign-report"])
def test_cli_commands_that_validate_exit_2_with_the_findings_and_no_traceback(tmp_path, capsys, monkeypatch, command):
    from churnml.cli import main

    project = stage_project(tmp_path, clean_frames())
    monkeypatch.chdir(project)
    # the project's own config, with this dataset's mapping and a tracking store of its own
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"] = yaml.safe_load((project / "params.yaml").read_text())["data"]
    params["tracking"].update(uri=f"sqlite:///{project / 'mlflow.db'}", artifact_location=str(project / "mlartifacts"))
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    (project / "raw" / "events.parquet").write_bytes(b"")
    args = [command, "--data", str(project / "raw"), "--params", str(project / "params.yaml")]
    if command == "campaign-report":  # a campaign folder as `churnml target` writes it
        (project / "campaign").mkdir()
        (project / "campaign" / "campaign.json").write_text(json.dumps({"campaign_id": "c1", "as_of": "2024-06-01"}))
        pd.DataFrame({"customer_id": ["1"], "group": ["treated"]}).to_parquet(project / "campaign" / "targets.parquet")
        args += ["--campaign", str(project / "campaign")]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    message = err[err.index(f"churnml {command}: "):]  # after any log lines
    assert "1. [ERROR] events: " in message and "0 bytes: an interrupted export?" in message
    assert "Traceback" not in err


def test_write_validated_keeps_the_previous_folder_when_writing_fails(tmp_path):
    con, raw, used = open_tables(tmp_path, clean_frames())
    data = validate_tables(con, raw, used, reference_time=REF)
    out = tmp_path / "validated"
    write_validated(con, data, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    broken = ValidatedData(
        # a value that fails only when DuckDB runs the write, after customers and events are written
        tables={**data.tables, "orders": data.tables["orders"].mutate(bad=data.tables["orders"].order_id.concat("x").cast("int64"))},
        findings=[],
    )
    with pytest.raises(Exception):
        write_validated(con, broken, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".validated")] == []


@pytest.mark.parametrize("section,key,stage", [("score", "as_of", "score"), ("labels", "start", "observations")])
def test_dates_in_config_must_be_iso(section, key, stage):
    """score.as_of and labels.cutoffs.start/end are read as ISO dates only, and named when not."""
    from churnml.params import compose

    params = compose(Path(__file__).resolve().parents[1] / "conf")
    if section == "score":
        from churnml.scoring.job import score_dataset

        params["score"]["as_of"] = "01/07/2026"
        with pytest.raises(ValueError, match=r"score.as_of: '01/07/2026' is not a date in the form YYYY-MM-DD"):
            score_dataset(params, data_dir=Path("/nonexistent"))
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
        import observations as stage_module

        params["labels"]["cutoffs"]["start"] = "07.01.2026"
        with pytest.raises(ValueError, match=r"labels.cutoffs.start: '07.01.2026' is not a date"):
            stage_module.observations(params)
