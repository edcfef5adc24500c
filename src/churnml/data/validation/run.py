"""The validate stage: check every raw table against the contract, write clean typed tables.

`validate_tables` reads the raw tables (user column names, user types), runs every check, and
returns the tables renamed to contract names and cast to contract types, together with every
finding; `write_validated` writes them. The checks and their severities are in `findings`.

Everything runs as Ibis expressions on the connection's backend (DuckDB by default), so it scales
out of core: only counts and at most five example rows per finding come back to Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import ibis

from churnml.data import parquet
from churnml.data.contract import ACTIVITY_TABLES, CONTRACT, TableMapping
from churnml.data.io import atomic_path, copy_parquet
from churnml.data.parquet import Location, is_remote, join
from churnml.data.validation.findings import Finding, ValidationError, resolve_checks
from churnml.data.validation.keys import (count_duplicates, duplicate_customer_checks, null_key_checks,
                                          unknown_customer_checks)
from churnml.data.validation.lookup import customer_lookup, join_customers
from churnml.data.validation.rows import RowCheck, apply_drops, run_checks
from churnml.data.validation.schema import Plan, empty_columns, missing_tables, plan_table
from churnml.data.validation.times import (before_signup_checks, end_before_start_checks,
                                           future_timestamp_checks, resolve_reference_time)
from churnml.data.validation.values import (nan_value_checks, negative_amount_checks, resolve_score_range,
                                            score_out_of_range_checks, wrong_type_checks)

_TABLE_ORDER = ("customers", *ACTIVITY_TABLES)


@dataclass
class ValidatedData:
    tables: dict[str, ibis.Table]  # contract names and types; rows of "drop" findings removed
    findings: list[Finding]  # every finding, including warnings and drops


def validate_tables(
    con: ibis.BaseBackend,
    raw: dict[str, ibis.Table],
    mappings: dict[str, TableMapping],
    *,
    checks: dict[str, str] | None = None,
    score_range: tuple[float, float] = (0, 10),
    reference_time: datetime | str | None = None,
    opened: Sequence[Finding] = (),
) -> ValidatedData:
    """Check the raw tables against the contract; return contract-named, typed tables.

    `raw` are the tables from `contract.open_raw_tables` (the user's column names); `mappings` say
    what the user's columns are called. `checks` (check name -> error | warn | drop) is merged over
    `DEFAULT_CHECKS`. `score_range` is the closed range of feedback scores; `reference_time` is "now"
    for the future-timestamp check (None: the wall clock, UTC, naive). `opened` are the findings
    from opening the files (`files.open_dataset`): reported first, and a table named there is not
    called missing again.

    Raises `ValidationError` listing every error finding (with warnings and drops after them).
    """
    severities = resolve_checks(checks)
    low, high = resolve_score_range(score_range)
    ref = resolve_reference_time(reference_time)

    unknown = sorted(set(raw) - set(CONTRACT))
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; the contract has {sorted(CONTRACT)}")

    findings: list[Finding] = [*opened, *missing_tables(raw, mappings, frozenset(f.table for f in opened))]

    plans: dict[str, Plan] = {}
    for name in _TABLE_ORDER:
        if name in raw:
            mapping = mappings.get(name) or TableMapping(table=name, file=f"{name}.parquet")
            plans[name] = plan_table(name, raw[name], mapping)
            # before the row checks: an empty column is marked unusable, so no check repeats it
            plans[name].findings += empty_columns(con, plans[name])

    tables: dict[str, ibis.Table] = {}
    lookup: ibis.Table | None = None  # one row per kept customer: key, signup date
    customers_dropped = False

    if "customers" in plans:
        plan = plans["customers"]
        findings += plan.findings
        wide_fn = count_duplicates(plan)
        found, drops = run_checks(con, plan, wide_fn(plan.typed), _customer_checks(plan, ref), severities)
        findings += found
        tables["customers"], kept = apply_drops(plan, wide_fn, drops)
        customers_dropped = bool(drops)
        lookup = customer_lookup(plan, kept)

    for name in ACTIVITY_TABLES:
        if name not in plans:
            continue
        plan = plans[name]
        findings += plan.findings
        row_checks = _activity_checks(plan, ref, low, high, lookup, customers_dropped)
        wide_fn = join_customers(plan, lookup)
        found, drops = run_checks(con, plan, wide_fn(plan.typed), row_checks, severities)
        findings += found
        tables[name], _ = apply_drops(plan, wide_fn, drops)

    if any(f.severity == "error" for f in findings):
        raise ValidationError(findings)
    return ValidatedData(tables=tables, findings=findings)


def write_validated(con: ibis.BaseBackend, data: ValidatedData, out_dir: Location) -> dict:
    """Write `<table>.parquet` per table into `out_dir` (replaced atomically); return the report.

    On Spark each table is a Parquet folder; `out_dir` may then be a URI, and each table is
    replaced atomically on its own. The report is JSON-able: ``{"tables": {name: {"rows",
    "columns", "types"}}, "findings": [...]}``.
    """
    # every column in the sort, the customer first: rows that tie on the key and time (two
    # events in the same second) still land in one order, so a rerun on unchanged data writes
    # the same bytes and DVC reruns nothing downstream
    orders = {name: ["customer_id", *[c for c in table.columns if c != "customer_id"]]
              for name, table in data.tables.items()}
    if is_remote(out_dir):
        for name, table in data.tables.items():
            parquet.write(con, table, join(out_dir, f"{name}.parquet"), orders[name])
    else:
        with atomic_path(Path(out_dir)) as tmp:
            tmp.mkdir(parents=True)
            for name, table in data.tables.items():
                copy_parquet(con, table, tmp / f"{name}.parquet", orders[name])
    report_tables = {}
    for name, table in data.tables.items():
        schema = table.schema()
        report_tables[name] = {
            "rows": parquet.rows(con, join(out_dir, f"{name}.parquet")),
            "columns": list(schema.names),
            "types": {n: str(t) for n, t in schema.items()},
        }
    return {"tables": report_tables, "findings": [f.to_dict() for f in data.findings]}


def _customer_checks(plan: Plan, ref: datetime) -> list[RowCheck]:
    """The row checks of customers, in the order their findings are reported."""
    return (
        wrong_type_checks(plan)
        + null_key_checks(plan)
        + duplicate_customer_checks(plan)
        + future_timestamp_checks(plan, ref)
    )


def _activity_checks(
    plan: Plan, ref: datetime, low: float, high: float, lookup: ibis.Table | None, customers_dropped: bool
) -> list[RowCheck]:
    """The row checks of an activity table, in the order their findings are reported."""
    return (
        wrong_type_checks(plan)
        + null_key_checks(plan)
        + unknown_customer_checks(plan, lookup, customers_dropped)
        + before_signup_checks(plan, lookup)
        + future_timestamp_checks(plan, ref)
        + negative_amount_checks(plan)
        + nan_value_checks(plan)
        + score_out_of_range_checks(plan, low, high)
        + end_before_start_checks(plan)
    )
