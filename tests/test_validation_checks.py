"""Each kind of row check alone, on a tiny hand-made table: the rows it flags and the exact finding."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from churnml.data.contract import TableMapping
from churnml.data.engine import connect
from churnml.data.validation.findings import resolve_checks
from churnml.data.validation.keys import count_duplicates, duplicate_customer_checks, null_key_checks
from churnml.data.validation.rows import apply_drops, run_checks
from churnml.data.validation.schema import plan_table
from churnml.data.validation.times import end_before_start_checks
from churnml.data.validation.values import negative_amount_checks, score_out_of_range_checks


def planned(name: str, columns: dict, mapping: dict[str, str] | None = None):
    """A connection and the plan of one raw table made of `columns` (the user's names)."""
    con = connect()
    raw = con.create_table(name, pa.table(columns))
    return con, plan_table(name, raw, TableMapping(name, f"{name}.parquet", mapping or {}))


def test_negative_amount_alone():
    con, plan = planned(
        "orders",
        {"user": ["a", "b", "c"], "timestamp": [datetime(2024, 1, d) for d in (1, 2, 3)], "amt": [-5.0, 20.5, -1.0]},
        {"customer_id": "user", "amount": "amt"},
    )
    checks = negative_amount_checks(plan)
    assert [rc.column for rc in checks] == ["amount"]  # no quantity column in this file
    findings, drops = run_checks(con, plan, plan.typed, checks, resolve_checks(None))
    assert drops == []
    [f] = findings
    assert (f.check, f.table, f.column, f.count, f.severity) == ("negative_amount", "orders", "amount", 2, "error")
    assert f.message == (
        "table 'orders', column 'amt' (contract column 'amount'): 2 rows with a negative amount "
        "(check 'negative_amount' is 'error')."
    )
    assert f.examples == [
        {"user": "a", "timestamp": datetime(2024, 1, 1), "amt": -5.0},
        {"user": "c", "timestamp": datetime(2024, 1, 3), "amt": -1.0},
    ]


def test_score_out_of_range_ignores_other_tables_and_null_scores():
    con, plan = planned("feedback", {"customer_id": ["a", "b", "c"],
                                     "timestamp": [datetime(2024, 1, 1)] * 3, "score": [0.0, None, 5.5]})
    assert negative_amount_checks(plan) == []
    findings, _ = run_checks(con, plan, plan.typed, score_out_of_range_checks(plan, 0, 5), resolve_checks(None))
    [f] = findings
    assert f.message == (
        "table 'feedback', column 'score': 1 row with a score outside [0, 5] (check 'score_out_of_range' is 'error')."
    )
    assert f.examples == [{"customer_id": "c", "timestamp": datetime(2024, 1, 1), "score": 5.5}]


def test_end_before_start_alone_and_dropped():
    con, plan = planned(
        "subscriptions",
        {"customer_id": ["a", "b", "c"], "start_date": [datetime(2024, 3, 1)] * 3,
         "end_date": [datetime(2024, 4, 1), datetime(2024, 2, 1), None]},
    )
    checks = end_before_start_checks(plan)
    findings, drops = run_checks(con, plan, plan.typed, checks, resolve_checks({"end_before_start": "drop"}))
    [f] = findings
    assert f.message == (
        "table 'subscriptions', column 'end_date': 1 row with end_date before start_date "
        "(check 'end_before_start' is 'drop': the rows are removed from the output)."
    )
    assert [row["customer_id"] for row in f.examples] == ["b"]
    out, _ = apply_drops(plan, lambda typed: typed, drops)
    assert sorted(con.to_pyarrow(out).column("customer_id").to_pylist()) == ["a", "c"]


def test_null_keys_and_duplicate_customers_alone():
    con, plan = planned(
        "customers",
        {"id": ["1", " ", "2", "2"], "signup_date": [datetime(2024, 1, 1), None, datetime(2024, 1, 2), None]},
        {"customer_id": "id"},
    )
    checks = null_key_checks(plan) + duplicate_customer_checks(plan)
    findings, _ = run_checks(con, plan, count_duplicates(plan)(plan.typed), checks,
                             resolve_checks({"null_key": "warn"}))
    assert [(f.check, f.column, f.count, f.severity) for f in findings] == [
        ("null_key", "customer_id", 1, "warn"),
        ("null_key", "signup_date", 2, "warn"),
        ("duplicate_customer", "customer_id", 2, "error"),
    ]
    assert findings[0].message == (
        "table 'customers', column 'id' (contract column 'customer_id'): 1 row with no customer_id "
        "(null or blank) (check 'null_key' is 'warn': the rows are kept)."
    )
    assert findings[2].message == (
        "table 'customers', column 'id' (contract column 'customer_id'): 2 rows whose customer_id appears "
        "more than once in customers (check 'duplicate_customer' is 'error')."
    )
    assert findings[2].examples == [{"id": "2", "signup_date": datetime(2024, 1, 2), "times_seen": 2},
                                    {"id": "2", "signup_date": None, "times_seen": 2}]
