"""The validate stage on tiny hand-made datasets: one clean, then one broken thing at a time."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pyarrow.parquet as pq
import pytest

from churnml.data.contract import CONTRACT, TableMapping, open_raw_tables
from churnml.data.engine import connect
from churnml.data.validation.findings import DEFAULT_CHECKS, Finding, ValidationError, findings_report, resolve_checks
from churnml.data.validation.run import ValidatedData, validate_tables, write_validated

REF = datetime(2024, 12, 31)

# The user's events/orders call the customer "user" and the time "ts".
MAPPINGS = {
    "customers": TableMapping("customers", "customers.parquet", {"customer_id": "user", "signup_date": "joined"}),
    "events": TableMapping("events", "events.parquet", {"customer_id": "user", "timestamp": "ts"}),
    "orders": TableMapping("orders", "orders.parquet", {"customer_id": "user", "timestamp": "ts", "amount": "amt"}),
    "feedback": TableMapping("feedback", "feedback.parquet", {"customer_id": "user", "timestamp": "ts"}),
    "subscriptions": TableMapping("subscriptions", "subscriptions.parquet", {"customer_id": "user"}),
}


def clean_frames() -> dict[str, pd.DataFrame]:
    def ts(values):
        return pd.to_datetime(values, format="ISO8601")

    return {
        "customers": pd.DataFrame(
            {
                "user": [1, 2, 3],  # integer ids here, text ids in the other tables
                "joined": ts(["2024-01-01", "2024-02-01 15:30", "2024-03-01"]),
                "plan": ["basic", "pro", "basic"],
                "country": ["FR", "DE", "US"],
            }
        ),
        "events": pd.DataFrame(
            {
                "user": ["1", "1", "2", "3", "3"],
                "ts": ts(["2024-01-05", "2024-02-01", "2024-02-01 09:00", "2024-03-02", "2024-04-01"]),
                "event_type": ["login", "login", "view", "login", "view"],
                "value": [1, 2, 3, 4, 5],  # integers: cast to float64
            }
        ),
        "orders": pd.DataFrame(
            {
                "user": ["1", "2", "2", "3"],
                "ts": ts(["2024-01-10", "2024-02-10", "2024-03-10", "2024-03-05"]),
                "amt": [10.0, 20.5, 5.0, 7.25],
                "order_id": [101, 102, 103, 104],
                "quantity": [1, 2, 1, 3],
            }
        ),
        "feedback": pd.DataFrame(
            {
                "user": ["1", "2", "3"],
                "ts": ts(["2024-01-20", "2024-02-20", "2024-03-20"]),
                "score": [9.0, None, 3.0],  # a null score is allowed
                "kind": ["nps", "nps", "csat"],
            }
        ),
        "subscriptions": pd.DataFrame(
            {
                "user": ["1", "2", "3"],
                "start_date": ts(["2024-01-01", "2024-02-01", "2024-03-01"]),
                "end_date": ts(["2024-06-01", None, "2024-03-01"]),
                "plan": ["basic", "pro", "basic"],
                "mrr": [10.0, 30.0, 10.0],
            }
        ),
    }


def open_tables(tmp_path, frames, mappings=MAPPINGS):
    folder = tmp_path / "raw"
    folder.mkdir(exist_ok=True)
    for name, frame in frames.items():
        frame.to_parquet(folder / mappings[name].file, index=False)
    con = connect()
    used = {k: v for k, v in mappings.items() if k in frames}
    return con, open_raw_tables(con, folder, used), used


def run(tmp_path, frames, mappings=MAPPINGS, **kwargs) -> ValidatedData:
    con, raw, used = open_tables(tmp_path, frames, mappings)
    kwargs.setdefault("reference_time", REF)
    return validate_tables(con, raw, used, **kwargs)


def failing(tmp_path, frames, mappings=MAPPINGS, **kwargs) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        run(tmp_path, frames, mappings, **kwargs)
    return info.value


def only(findings: list[Finding], check: str) -> Finding:
    matching = [f for f in findings if f.check == check]
    assert len(matching) == 1, findings_report(findings)
    return matching[0]


def count_rows(table) -> int:
    return int(table.count().execute())


# --------------------------------------------------------------------------------------------------
# A clean dataset


def test_clean_dataset_passes_and_writes_contract_named_typed_tables(tmp_path):
    con, raw, used = open_tables(tmp_path, clean_frames())
    data = validate_tables(con, raw, used, reference_time=REF)
    assert data.findings == []
    assert set(data.tables) == set(CONTRACT)

    out = tmp_path / "validated"
    report = write_validated(con, data, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.parquet" for n in CONTRACT)

    events = pq.read_table(out / "events.parquet")
    assert events.column_names == ["customer_id", "timestamp", "event_type", "value"]
    assert str(events.schema.field("customer_id").type) == "string"
    assert str(events.schema.field("timestamp").type).startswith("timestamp")
    assert events.schema.field("timestamp").type.tz is None
    assert str(events.schema.field("value").type) == "double"
    assert events.column("customer_id").to_pylist() == ["1", "1", "2", "3", "3"]  # input order kept

    customers = pq.read_table(out / "customers.parquet")
    assert customers.column_names == ["customer_id", "signup_date", "plan", "country"]
    assert customers.column("customer_id").to_pylist() == ["1", "2", "3"]  # int ids -> text ids

    orders = pq.read_table(out / "orders.parquet")
    assert orders.column_names == ["customer_id", "timestamp", "amount", "order_id", "quantity"]
    assert orders.column("amount").to_pylist() == [10.0, 20.5, 5.0, 7.25]
    assert orders.column("order_id").to_pylist() == ["101", "102", "103", "104"]
    assert str(orders.schema.field("quantity").type) == "double"

    assert report["tables"]["events"]["rows"] == 5
    assert report["tables"]["customers"]["columns"] == ["customer_id", "signup_date", "plan", "country"]
    assert report["findings"] == []


def test_attributes_mapping_selects_profile_columns_and_optional_tables_may_be_absent(tmp_path):
    frames = clean_frames()
    mappings = dict(MAPPINGS)
    mappings["customers"] = TableMapping(
        "customers", "customers.parquet", {"customer_id": "user", "signup_date": "joined"}, attributes=("plan",)
    )
    del frames["feedback"], frames["subscriptions"]
    data = run(tmp_path, frames, mappings)
    assert set(data.tables) == {"customers", "events", "orders"}
    assert data.tables["customers"].columns == ("customer_id", "signup_date", "plan")


def test_string_timestamps_with_offsets_land_on_utc_and_float_ids_lose_their_point(tmp_path):
    frames = clean_frames()
    frames["events"]["ts"] = ["2024-01-05", "2024-02-01T10:00:00+02:00", "2024-02-01 09:00", "2024-03-02", " "]
    frames["orders"]["user"] = [1.0, 2.0, 2.0, None]  # a pandas int column with a gap
    data = run(tmp_path, frames, checks={"null_key": "drop"})
    events = data.tables["events"].to_pyarrow().to_pylist()
    assert events[1]["timestamp"] == datetime(2024, 2, 1, 8, 0)
    assert len(events) == 4  # the blank timestamp is a null key, dropped
    orders = data.tables["orders"].to_pyarrow().column("customer_id").to_pylist()
    assert orders == ["1", "2", "2"]
    assert {(f.table, f.column, f.count) for f in data.findings} == {
        ("events", "timestamp", 1),
        ("orders", "customer_id", 1),
    }


# --------------------------------------------------------------------------------------------------
# One broken thing at a time


def test_missing_column_names_the_expected_user_column_and_lists_the_present_ones(tmp_path):
    frames = clean_frames()
    frames["orders"] = frames["orders"].rename(columns={"amt": "total"})
    err = failing(tmp_path, frames)
    f = only(err.findings, "missing_column")
    assert (f.table, f.column, f.count, f.severity) == ("orders", "amount", 1, "error")
    assert "'orders'" in f.message and "'amt'" in f.message and "'amount'" in f.message
    assert "total" in f.message  # the columns present
    assert "tables.orders.columns.amount" in f.hint
    assert "conf/data/" in str(err)


def test_wrong_type_counts_unparseable_values_and_shows_them(tmp_path):
    frames = clean_frames()
    frames["events"]["ts"] = ["2024-01-05", "not a date", "2024-02-01", "31/02/2024", None]
    frames["orders"]["amt"] = ["10", "abc", "5.5", "7"]
    err = failing(tmp_path, frames, checks={"null_key": "warn"})
    wrong = {(f.table, f.column): f for f in err.findings if f.check == "wrong_type"}
    assert set(wrong) == {("events", "timestamp"), ("orders", "amount")}
    ts = wrong[("events", "timestamp")]
    assert ts.count == 2 and ts.severity == "error"
    assert {row["ts"] for row in ts.examples} == {"not a date", "31/02/2024"}
    assert "'ts' (contract column 'timestamp')" in ts.message and "2 rows" in ts.message
    amt = wrong[("orders", "amount")]
    assert amt.count == 1 and amt.examples[0]["amt"] == "abc"
    text = str(err)
    assert "table 'orders'" in text and "abc" in text and "not a date" in text
    # the null timestamp is a null key (a warning here), not a type problem
    assert only(err.findings, "null_key").count == 1


def test_wrong_column_type_is_an_error_whatever_the_config_says(tmp_path):
    frames = clean_frames()
    frames["events"]["ts"] = [1, 2, 3, 4, 5]  # epoch numbers: ambiguous units
    assert resolve_checks({"wrong_type": "warn"})["wrong_type"] == "error"
    err = failing(tmp_path, frames, checks={"wrong_type": "drop"})
    f = only(err.findings, "wrong_type")
    assert (f.table, f.column, f.count, f.severity) == ("events", "timestamp", 5, "error")
    assert "int64" in f.message


def test_null_customer_id(tmp_path):
    frames = clean_frames()
    frames["events"]["user"] = ["1", None, "2", "", "3"]
    err = failing(tmp_path, frames)
    f = only(err.findings, "null_key")
    assert (f.table, f.column, f.count) == ("events", "customer_id", 2)
    assert "table 'events', column 'user' (contract column 'customer_id'): 2 rows" in f.message
    assert sorted(row["user"] for row in f.examples if row["user"] is not None) == [""]
    assert sorted(str(row["ts"]) for row in f.examples) == ["2024-02-01 00:00:00", "2024-03-02 00:00:00"]
    assert all(f.check != "unknown_customer" for f in err.findings)  # a null id is not "unknown"


def test_duplicate_customer(tmp_path):
    frames = clean_frames()
    frames["customers"] = pd.concat([frames["customers"], frames["customers"].iloc[[1, 1]]])
    err = failing(tmp_path, frames)
    f = only(err.findings, "duplicate_customer")
    assert (f.table, f.column, f.count) == ("customers", "customer_id", 3)
    assert [row["user"] for row in f.examples] == [2, 2, 2]  # the user's value, an integer
    assert f.examples[0]["times_seen"] == 3
    assert "3 rows" in f.message and "'user'" in f.message
    assert "user" in str(err) and "times_seen" in str(err)


def test_unknown_customer(tmp_path):
    frames = clean_frames()
    frames["orders"]["user"] = ["1", "99", "042", "3"]
    err = failing(tmp_path, frames)
    f = only(err.findings, "unknown_customer")
    assert (f.table, f.column, f.count) == ("orders", "customer_id", 2)
    assert sorted(row["user"] for row in f.examples) == ["042", "99"]
    assert "not in table 'customers'" in f.message
    assert "99" in str(err)


def test_before_signup_is_a_warning_by_default_and_an_error_when_configured(tmp_path):
    frames = clean_frames()
    # customer 2 signed up 2024-02-01 15:30: earlier that day is fine (dates compare), the day before is not
    frames["events"]["ts"] = pd.to_datetime(
        ["2024-01-05", "2024-02-01", "2024-01-31 23:00", "2024-03-02", "2024-04-01"], format="ISO8601"
    )
    data = run(tmp_path, frames)
    f = only(data.findings, "before_signup")
    assert (f.table, f.column, f.count, f.severity) == ("events", "timestamp", 1, "warn")
    assert f.examples[0]["user"] == "2"
    assert f.examples[0]["customers.signup_date"] == datetime(2024, 2, 1, 15, 30)
    assert count_rows(data.tables["events"]) == 5  # warn keeps the rows

    err = failing(tmp_path, frames, checks={"before_signup": "error"})
    assert only(err.errors, "before_signup").count == 1
    assert "2024-01-31 23:00:00" in str(err)


def test_before_signup_for_subscriptions_uses_start_date(tmp_path):
    frames = clean_frames()
    frames["subscriptions"]["start_date"] = pd.to_datetime(["2023-12-01", "2024-02-01", "2024-03-01"])
    err = failing(tmp_path, frames, checks={"before_signup": "error"})
    f = only(err.findings, "before_signup")
    assert (f.table, f.column, f.count) == ("subscriptions", "start_date", 1)


def test_future_timestamp(tmp_path):
    frames = clean_frames()
    frames["feedback"]["ts"] = pd.to_datetime(["2024-01-20", "2030-01-01", "2024-03-20"])
    err = failing(tmp_path, frames)
    f = only(err.findings, "future_timestamp")
    assert (f.table, f.column, f.count) == ("feedback", "timestamp", 1)
    assert f.examples[0]["ts"] == datetime(2030, 1, 1)
    assert "2024-12-31" in f.message
    assert "2030-01-01" in str(err)
    # a later reference time makes it pass
    assert run(tmp_path, frames, reference_time=datetime(2031, 1, 1)).findings == []


def test_future_timestamp_defaults_to_now(tmp_path):
    frames = clean_frames()
    frames["customers"]["joined"] = pd.to_datetime(["2024-01-01", "2999-01-01", "2024-03-01"])
    err = failing(tmp_path, frames, reference_time=None, checks={"before_signup": "warn"})
    f = only(err.findings, "future_timestamp")
    assert (f.table, f.column, f.count) == ("customers", "signup_date", 1)


def test_negative_amount_quantity_and_mrr(tmp_path):
    frames = clean_frames()
    frames["orders"]["amt"] = [-5.0, 20.5, -1.0, -2.5]
    frames["orders"]["quantity"] = [1, -2, 1, 3]
    frames["subscriptions"]["mrr"] = [10.0, -30.0, 10.0]
    err = failing(tmp_path, frames)
    negative = {(f.table, f.column): f for f in err.findings if f.check == "negative_amount"}
    assert {k: f.count for k, f in negative.items()} == {
        ("orders", "amount"): 3,
        ("orders", "quantity"): 1,
        ("subscriptions", "mrr"): 1,
    }
    amount = negative[("orders", "amount")]
    assert amount.message.startswith(
        "table 'orders', column 'amt' (contract column 'amount'): 3 rows with a negative amount "
        "(check 'negative_amount' is 'error')"
    )
    assert sorted(row["amt"] for row in amount.examples) == [-5.0, -2.5, -1.0]
    text = str(err)
    assert "-5.0" in text and "Examples:" in text and "checks.negative_amount" in text


def test_score_out_of_range_is_inclusive_and_allows_nulls(tmp_path):
    frames = clean_frames()
    frames["feedback"]["score"] = [10.0, None, 11.0]
    err = failing(tmp_path, frames)
    f = only(err.findings, "score_out_of_range")
    assert (f.table, f.column, f.count) == ("feedback", "score", 1)
    assert f.examples[0]["score"] == 11.0
    assert "[0, 10]" in f.message
    assert run(tmp_path, frames, score_range=(0, 11)).findings == []
    frames["feedback"]["score"] = [-1.0, 0.0, 5.0]
    assert only(failing(tmp_path, frames, score_range=[0, 5]).findings, "score_out_of_range").count == 1


def test_end_before_start(tmp_path):
    frames = clean_frames()
    frames["subscriptions"]["end_date"] = pd.to_datetime(["2023-06-01", None, "2024-02-28"])
    err = failing(tmp_path, frames)
    f = only(err.findings, "end_before_start")
    assert (f.table, f.column, f.count) == ("subscriptions", "end_date", 2)
    assert {row["user"] for row in f.examples} == {"1", "3"}
    assert "end_date before start_date" in f.message


def test_missing_customers_table(tmp_path):
    con, raw, used = open_tables(tmp_path, clean_frames())
    del raw["customers"]
    with pytest.raises(ValidationError) as info:
        validate_tables(con, raw, used, reference_time=REF)
    f = only(info.value.findings, "missing_table")
    assert (f.table, f.column, f.severity) == ("customers", None, "error")
    assert "table 'customers' is missing" in str(info.value)


def test_every_error_is_reported_at_once(tmp_path):
    frames = clean_frames()
    frames["orders"]["amt"] = [-5.0, 20.5, 5.0, 7.25]
    frames["feedback"]["score"] = [9.0, 42.0, 3.0]
    frames["subscriptions"] = frames["subscriptions"].drop(columns=["end_date"])
    err = failing(tmp_path, frames)
    assert {f.check for f in err.errors} == {"negative_amount", "score_out_of_range", "missing_column"}
    text = str(err)
    assert "3 errors" in text and "42.0" in text and "'end_date'" in text


# --------------------------------------------------------------------------------------------------
# Severities: warn keeps, drop removes exactly the offending rows


def test_warn_keeps_rows_and_drop_removes_exactly_the_offending_rows(tmp_path):
    frames = clean_frames()
    frames["orders"]["amt"] = [-5.0, 20.5, -1.0, 7.25]
    warned = run(tmp_path, frames, checks={"negative_amount": "warn"})
    f = only(warned.findings, "negative_amount")
    assert (f.severity, f.count) == ("warn", 2)
    assert "the rows are kept" in f.message
    assert count_rows(warned.tables["orders"]) == 4

    con, raw, used = open_tables(tmp_path, frames)
    dropped = validate_tables(con, raw, used, checks={"negative_amount": "drop"}, reference_time=REF)
    f = only(dropped.findings, "negative_amount")
    assert (f.severity, f.count) == ("drop", 2)
    orders = dropped.tables["orders"].to_pyarrow().to_pylist()
    assert [o["amount"] for o in orders] == [20.5, 7.25]

    out = tmp_path / "validated"
    report = write_validated(con, dropped, out)
    assert report["tables"]["orders"]["rows"] == 2
    assert json.loads(json.dumps(report)) == report  # JSON-able as it is
    assert report["findings"][0]["examples"][0]["ts"] == "2024-01-10T00:00:00"
    assert report["findings"][0]["severity"] == "drop" and report["findings"][0]["count"] == 2
    assert pq.read_table(out / "orders.parquet").num_rows == 2


def test_drop_through_a_join_keeps_the_input_order(tmp_path):
    frames = clean_frames()
    n = 3000
    frames["events"] = pd.DataFrame(
        {
            "user": [str(i % 5) for i in range(n)],  # ids 0 and 4 are unknown
            "ts": pd.to_datetime("2024-05-01") + pd.to_timedelta(range(n), unit="min"),
            "event_type": ["login"] * n,
            "value": [float(i) for i in range(n)],
        }
    )
    data = run(tmp_path, frames, checks={"unknown_customer": "drop"})
    f = only(data.findings, "unknown_customer")
    assert (f.table, f.count) == ("events", 2 * n // 5)
    values = data.tables["events"].to_pyarrow().column("value").to_pylist()
    assert values == [float(i) for i in range(n) if i % 5 in (1, 2, 3)]


def test_dropped_duplicates_make_their_activity_unknown(tmp_path):
    frames = clean_frames()
    frames["customers"] = pd.concat([frames["customers"], frames["customers"].iloc[[0]]])
    data = run(tmp_path, frames, checks={"duplicate_customer": "drop", "unknown_customer": "drop"})
    assert data.tables["customers"].to_pyarrow().column("customer_id").to_pylist() == ["2", "3"]
    assert only([f for f in data.findings if f.table == "customers"], "duplicate_customer").count == 2
    unknown = {f.table: f.count for f in data.findings if f.check == "unknown_customer"}
    assert unknown == {"events": 2, "orders": 1, "feedback": 1, "subscriptions": 1}
    assert "1" not in data.tables["events"].to_pyarrow().column("customer_id").to_pylist()


def test_severity_comes_from_checks(tmp_path):
    frames = clean_frames()
    frames["subscriptions"]["end_date"] = pd.to_datetime(["2023-06-01", None, "2024-06-01"])
    for severity in ("warn", "drop"):
        data = run(tmp_path, frames, checks={"end_before_start": severity})
        assert only(data.findings, "end_before_start").severity == severity
        assert count_rows(data.tables["subscriptions"]) == (3 if severity == "warn" else 2)
    assert only(failing(tmp_path, frames).errors, "end_before_start").severity == "error"
    assert DEFAULT_CHECKS["before_signup"] == "warn"
    assert {v for k, v in DEFAULT_CHECKS.items() if k != "before_signup"} == {"error"}


def test_bad_check_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown check 'negative_amounts'"):
        resolve_checks({"negative_amounts": "warn"})
    with pytest.raises(ValueError, match="not one of"):
        resolve_checks({"negative_amount": "ignore"})


def test_report_text():
    f = Finding("negative_amount", "orders", "amount", 2, "error", "table 'orders' ...", [{"amt": -1.0}], "fix it")
    text = findings_report([f])
    assert "[ERROR]" in text and "amt" in text and "-1.0" in text and "To fix: fix it" in text
    assert findings_report([]) == "Validation found no problems."
