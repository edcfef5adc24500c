"""The validate stage: check every raw table against the contract, write clean typed tables.

`validate_tables` reads the raw tables (user column names, user types), runs every check, and
returns the tables renamed to contract names and cast to contract types, together with every
finding. Each check has a severity, taken from `checks` over `DEFAULT_CHECKS`:

- ``error``: the stage fails; all errors are collected first and raised as one `ValidationError`,
  so a user sees every problem at once;
- ``warn``: the rows are kept and the finding is recorded;
- ``drop``: the offending rows are removed from the output and the finding is recorded (never
  silently).

Schema problems (a missing table, a missing column, values that cannot be read as the contract
type) are always errors: nothing downstream can work around them.

Everything runs as Ibis expressions on the connection's backend (DuckDB by default), so it scales
out of core: only counts and at most five example rows per finding come back to Python.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timezone
from decimal import Decimal
from functools import reduce
from pathlib import Path
from typing import Any, Callable

import ibis
import ibis.expr.datatypes as dt
import pyarrow.parquet as pq

from churnml.contract import ACTIVITY_TABLES, CONTRACT, ContractColumn, TableMapping
from churnml.io import atomic_path

SEVERITIES = ("error", "warn", "drop")

DEFAULT_CHECKS: dict[str, str] = {
    "missing_table": "error",
    "missing_column": "error",
    "wrong_type": "error",
    "null_key": "error",
    "duplicate_customer": "error",
    "unknown_customer": "error",
    "before_signup": "warn",
    "future_timestamp": "error",
    "negative_amount": "error",
    "score_out_of_range": "error",
    "end_before_start": "error",
}

# Schema problems: later stages cannot work around them, so they are errors whatever the config says.
SCHEMA_CHECKS = frozenset({"missing_table", "missing_column", "wrong_type"})

# Columns that must never be null, besides customer_id (checked in every table).
_KEY_TIME_COLUMNS = {
    "customers": "signup_date",
    "events": "timestamp",
    "orders": "timestamp",
    "feedback": "timestamp",
    "subscriptions": "start_date",
}
_NON_NEGATIVE = {"orders": ("amount", "quantity"), "subscriptions": ("mrr",)}

_TABLE_ORDER = ("customers", *ACTIVITY_TABLES)
_MAX_EXAMPLES = 5
_CONFIG = "conf/data/<name>.yaml"
_P = "__churnml_"  # prefix of the private columns added while checking


# --------------------------------------------------------------------------------------------------
# Public types


@dataclass(frozen=True)
class Finding:
    """One problem found in the raw data."""

    check: str  # e.g. "negative_amount"
    table: str
    column: str | None  # the contract column name (None for a whole-table problem)
    count: int  # rows affected (1 for a schema problem such as a missing column)
    severity: str  # error | warn | drop
    message: str  # one readable sentence
    examples: list[dict] = field(default_factory=list)  # up to 5 rows, the user's column names/values
    hint: str = ""  # what to change to fix it

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (example values turned into JSON types)."""
        out = asdict(self)
        out["examples"] = [{str(k): _json_value(v) for k, v in row.items()} for row in self.examples]
        return out


class ValidationError(Exception):
    """Raised when any finding is an error. `str()` is the whole readable report.

    `findings` holds every finding (errors first, then warnings and drops); `errors` only the errors.
    """

    def __init__(self, findings: list[Finding]):
        self.findings = sorted(findings, key=lambda f: f.severity != "error")
        self.errors = [f for f in self.findings if f.severity == "error"]
        super().__init__(findings_report(self.findings))


@dataclass
class ValidatedData:
    tables: dict[str, ibis.Table]  # contract names and types; rows of "drop" findings removed
    findings: list[Finding]  # every finding, including warnings and drops


# --------------------------------------------------------------------------------------------------
# Internal plan of one table


@dataclass
class _Column:
    contract: ContractColumn
    source: str  # the user's column name
    typed: ibis.Value  # the contract-typed value, as an expression over the raw table
    missing: ibis.Value  # the raw value is null (or a blank string)
    fail: ibis.Value | None = None  # the raw value is present but cannot be read as the contract type
    usable: bool = True  # False when the column's type cannot hold the contract type at all
    expected: str = ""  # a description of the expected type, for messages
    type_problem: str = ""  # "" or the reason the column's type is unusable


@dataclass
class _RowCheck:
    check: str
    column: str | None  # contract column name
    condition: Callable[[ibis.Table], ibis.Value]  # over the wide table: True for an offending row
    describe: str  # e.g. "with a negative amount" (after "N rows")
    hint: str
    needs_join: bool = False
    extra: dict[str, str] = field(default_factory=dict)  # example label -> wide column


@dataclass
class _Plan:
    name: str
    mapping: TableMapping
    raw: ibis.Table
    columns: dict[str, _Column]  # contract name -> column (present in the file only)
    attributes: tuple[str, ...] = ()
    findings: list[Finding] = field(default_factory=list)

    def tcol(self, contract_name: str) -> str:
        return f"{_P}{contract_name}"

    def usable(self, contract_name: str) -> bool:
        col = self.columns.get(contract_name)
        return col is not None and col.usable

    def label(self, contract_name: str) -> str:
        """How a column is named in messages: the user's name, and the contract's if different."""
        col = self.columns.get(contract_name)
        source = col.source if col else self.mapping.source_name(contract_name)
        if source == contract_name:
            return f"'{source}'"
        return f"'{source}' (contract column '{contract_name}')"

    @property
    def typed(self) -> ibis.Table:
        """The raw table plus private columns per present contract column: its contract-typed
        value, whether the raw value is missing, and (where parsing can fail) whether it failed."""
        values: dict[str, ibis.Value] = {}
        for n, c in self.columns.items():
            values[self.tcol(n)] = c.typed
            values[f"{_P}missing_{n}"] = c.missing
            if c.fail is not None:
                values[f"{_P}fail_{n}"] = c.fail
        return self.raw.mutate(**values)

    @property
    def example_columns(self) -> list[str]:
        names: list[str] = []
        for col in self.columns.values():
            if col.source not in names:
                names.append(col.source)
        return names

    def output(self, table: ibis.Table) -> ibis.Table:
        """Contract names and types (+ customers' attributes), from a typed or wide table."""
        selection: dict[str, ibis.Value] = {n: table[self.tcol(n)] for n in self.columns}
        for attr in self.attributes:
            selection[attr] = table[attr]
        return table.select(**selection)


# --------------------------------------------------------------------------------------------------
# The stage


def validate_tables(
    con: ibis.BaseBackend,
    raw: dict[str, ibis.Table],
    mappings: dict[str, TableMapping],
    *,
    checks: dict[str, str] | None = None,
    score_range: tuple[float, float] = (0, 10),
    reference_time: datetime | str | None = None,
) -> ValidatedData:
    """Check the raw tables against the contract; return contract-named, typed tables.

    `raw` are the tables from `contract.open_raw_tables` (the user's column names); `mappings` say
    what the user's columns are called. `checks` (check name -> error | warn | drop) is merged over
    `DEFAULT_CHECKS`. `score_range` is the closed range of feedback scores; `reference_time` is "now"
    for the future-timestamp check (None: the wall clock, UTC, naive).

    Raises `ValidationError` listing every error finding (with warnings and drops after them).
    """
    severities = resolve_checks(checks)
    low, high = _resolve_range(score_range)
    ref = _resolve_reference_time(reference_time)

    unknown = sorted(set(raw) - set(CONTRACT))
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; the contract has {sorted(CONTRACT)}")

    findings: list[Finding] = []
    if "customers" not in raw:
        findings.append(
            Finding(
                check="missing_table",
                table="customers",
                column=None,
                count=1,
                severity="error",
                message=(
                    "table 'customers' is missing: the contract requires it (customer_id, "
                    "signup_date) and every other table is checked against it."
                ),
                hint=(
                    f"Add the customers file to the dataset folder, or point tables.customers.file "
                    f"at it in {_CONFIG}."
                ),
            )
        )
    if not set(raw) & set(ACTIVITY_TABLES):
        findings.append(
            Finding(
                check="missing_table",
                table="activity",
                column=None,
                count=1,
                severity="error",
                message=(
                    "no activity table was found: the contract needs at least one of "
                    f"{', '.join(ACTIVITY_TABLES)} besides customers."
                ),
                hint=f"Add an activity file to the dataset folder and map it under tables.<name> in {_CONFIG}.",
            )
        )

    plans: dict[str, _Plan] = {}
    for name in _TABLE_ORDER:
        if name in raw:
            mapping = mappings.get(name) or TableMapping(table=name, file=f"{name}.parquet")
            plans[name] = _plan_table(name, raw[name], mapping)

    tables: dict[str, ibis.Table] = {}
    lookup: ibis.Table | None = None  # one row per kept customer: key, signup date
    customers_dropped = False

    if "customers" in plans:
        plan = plans["customers"]
        findings += plan.findings
        row_checks = _customer_checks(plan, ref)
        wide_fn = _customer_wide_fn(plan)
        found, drops = _run_checks(con, plan, wide_fn(plan.typed), row_checks, severities)
        findings += found
        tables["customers"], kept = _apply_drops(plan, wide_fn, drops)
        customers_dropped = bool(drops)
        if plan.usable("customer_id"):
            key = kept[plan.tcol("customer_id")]
            signup = kept[plan.tcol("signup_date")] if plan.usable("signup_date") else ibis.null("timestamp")
            lookup = (
                kept.filter(key.notnull())
                .group_by(**{f"{_P}key": key})
                .aggregate(**{f"{_P}signup": signup.min()})
                .mutate(**{f"{_P}known": ibis.literal(True)})
            )

    for name in ACTIVITY_TABLES:
        if name not in plans:
            continue
        plan = plans[name]
        findings += plan.findings
        row_checks = _activity_checks(plan, ref, low, high, lookup, customers_dropped)
        wide_fn = _activity_wide_fn(plan, lookup)
        found, drops = _run_checks(con, plan, wide_fn(plan.typed), row_checks, severities)
        findings += found
        tables[name], _ = _apply_drops(plan, wide_fn, drops)

    if any(f.severity == "error" for f in findings):
        raise ValidationError(findings)
    return ValidatedData(tables=tables, findings=findings)


def write_validated(con: ibis.BaseBackend, data: ValidatedData, out_dir: Path) -> dict:
    """Write `<table>.parquet` per table into `out_dir` (replaced atomically); return the report.

    The report is JSON-able: ``{"tables": {name: {"rows", "columns", "types"}}, "findings": [...]}``.
    """
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        for name, table in data.tables.items():
            con.to_parquet(table, str(tmp / f"{name}.parquet"))
    report_tables = {}
    for name, table in data.tables.items():
        schema = table.schema()
        report_tables[name] = {
            "rows": int(pq.read_metadata(out_dir / f"{name}.parquet").num_rows),
            "columns": list(schema.names),
            "types": {n: str(t) for n, t in schema.items()},
        }
    return {"tables": report_tables, "findings": [f.to_dict() for f in data.findings]}


def findings_report(findings: list[Finding]) -> str:
    """The readable text of a list of findings: errors first, each with its examples and a fix."""
    findings = sorted(findings, key=lambda f: {"error": 0, "drop": 1, "warn": 2}.get(f.severity, 3))
    if not findings:
        return "Validation found no problems."
    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITIES}
    head = (
        f"Validation found {len(findings)} problem{'s' if len(findings) != 1 else ''}: "
        f"{counts['error']} error{'s' if counts['error'] != 1 else ''}, "
        f"{counts['warn']} warning{'s' if counts['warn'] != 1 else ''}, "
        f"{counts['drop']} with rows dropped."
    )
    lines = [head]
    for i, f in enumerate(findings, 1):
        lines.append("")
        lines.append(f"{i}. [{f.severity.upper()}] {f.message}")
        if f.examples:
            lines.append("   Examples:")
            lines += ["     " + row for row in _format_examples(f.examples)]
        if f.hint:
            lines.append(f"   To fix: {f.hint}")
    if counts["error"]:
        lines.append("")
        lines.append("Fix every error above, then run validate again.")
    return "\n".join(lines)


def resolve_checks(checks: dict[str, str] | None) -> dict[str, str]:
    """`checks` merged over `DEFAULT_CHECKS`, with names and severities checked."""
    merged = dict(DEFAULT_CHECKS)
    for name, severity in (checks or {}).items():
        if name not in DEFAULT_CHECKS:
            raise ValueError(f"checks: unknown check '{name}'; known checks are {sorted(DEFAULT_CHECKS)}")
        if severity is None:
            continue
        severity = str(severity).strip().lower()
        if severity not in SEVERITIES:
            raise ValueError(f"checks.{name}: '{severity}' is not one of {', '.join(SEVERITIES)}")
        merged[name] = severity
    for name in SCHEMA_CHECKS:
        merged[name] = "error"
    return merged


# --------------------------------------------------------------------------------------------------
# Schema: which columns are there, and how each becomes its contract type


def _plan_table(name: str, raw: ibis.Table, mapping: TableMapping) -> _Plan:
    contract = CONTRACT[name]
    schema = raw.schema()
    present = list(schema.names)
    plan = _Plan(name=name, mapping=mapping, raw=raw, columns={})

    for ccol in contract.columns:
        source = mapping.source_name(ccol.name)
        if source not in schema:
            if ccol.required:
                plan.findings.append(_missing_column(name, ccol.name, source, present))
            continue
        plan.columns[ccol.name] = _type_column(ccol, source, raw[source], schema[source])

    if name == "customers":
        sources = {mapping.source_name(c.name) for c in contract.columns}
        contract_names = {c.name for c in contract.columns}
        if mapping.attributes is None:
            plan.attributes = tuple(c for c in present if c not in sources and c not in contract_names)
        else:
            clash = [a for a in mapping.attributes if a in contract_names]
            if clash:
                raise ValueError(
                    f"tables.customers.attributes: {clash} clash with contract column names; "
                    "rename them in the file"
                )
            for attr in mapping.attributes:
                if attr not in schema:
                    plan.findings.append(
                        Finding(
                            check="missing_column",
                            table=name,
                            column=attr,
                            count=1,
                            severity="error",
                            message=(
                                f"table 'customers' has no attribute column '{attr}', which is listed "
                                f"in tables.customers.attributes (columns present: {', '.join(present)})."
                            ),
                            hint=(
                                f"Add '{attr}' to the customers file, or remove it from "
                                f"tables.customers.attributes in {_CONFIG}."
                            ),
                        )
                    )
            plan.attributes = tuple(a for a in mapping.attributes if a in schema)
    return plan


def _missing_column(table: str, contract_name: str, source: str, present: list[str]) -> Finding:
    mapped = f" (mapped from contract column '{contract_name}')" if source != contract_name else ""
    return Finding(
        check="missing_column",
        table=table,
        column=contract_name,
        count=1,
        severity="error",
        message=(
            f"table '{table}' has no column '{source}'{mapped}, which the contract requires; "
            f"columns present: {', '.join(present)}."
        ),
        hint=(
            f"Add the column to the {table} file, or map your own column to it in {_CONFIG}: "
            f"tables.{table}.columns.{contract_name}: <your column name>."
        ),
    )


def _type_column(ccol: ContractColumn, source: str, col: ibis.Value, dtype: dt.DataType) -> _Column:
    """How a raw column becomes its contract type: the typed value and its failure conditions."""
    if ccol.kind == "id":
        return _as_id(ccol, source, col, dtype)
    if ccol.kind == "timestamp":
        return _as_timestamp(ccol, source, col, dtype)
    if ccol.kind == "number":
        return _as_number(ccol, source, col, dtype)
    return _as_string(ccol, source, col, dtype)


def _unusable(ccol: ContractColumn, source: str, col: ibis.Value, dtype: dt.DataType, target: str, expected: str) -> _Column:
    return _Column(
        contract=ccol,
        source=source,
        typed=ibis.null(target),
        missing=col.isnull(),
        fail=col.notnull(),
        usable=False,
        expected=expected,
        type_problem=f"the column has type {dtype}",
    )


def _blank(col: ibis.Value) -> ibis.Value:
    return col.isnull() | (col.strip() == "")


def _integral(col: ibis.Value, dtype: dt.DataType) -> tuple[ibis.Value, ibis.Value]:
    """(the value as int64 when it is a whole number else null, the value is missing)."""
    as_int = col.try_cast("int64")
    whole = as_int.notnull() & (as_int == col)
    missing = col.isnull() | col.isnan() if dtype.is_floating() else col.isnull()
    return ibis.ifelse(whole, as_int, ibis.null("int64")), missing


def _parsed_text(ccol, source, col: ibis.Value, parsed: ibis.Value, target: str, expected: str) -> _Column:
    """A text column read as `target`: blank text is missing, non-blank text that does not parse fails."""
    missing = _blank(col)
    typed = ibis.ifelse(missing, ibis.null(target), parsed)
    return _Column(ccol, source, typed, missing, fail=~missing & parsed.isnull(), expected=expected)


def _as_id(ccol, source, col, dtype) -> _Column:
    expected = "an id: text or a whole number"
    if dtype.is_null():
        return _Column(ccol, source, ibis.null("string"), ibis.literal(True), expected=expected)
    if dtype.is_string():
        missing = _blank(col)
        return _Column(ccol, source, ibis.ifelse(missing, ibis.null("string"), col), missing, expected=expected)
    if dtype.is_integer() or dtype.is_uuid():
        return _Column(ccol, source, col.cast("string"), col.isnull(), expected=expected)
    if dtype.is_floating() or dtype.is_decimal():
        as_int, missing = _integral(col, dtype)
        return _Column(
            ccol, source, as_int.cast("string"), missing, fail=~missing & as_int.isnull(), expected=expected
        )
    return _unusable(ccol, source, col, dtype, "string", expected)


def _as_timestamp(ccol, source, col, dtype) -> _Column:
    expected = "a date or timestamp such as 2024-03-31 or 2024-03-31 14:05:00"
    if dtype.is_null():
        return _Column(ccol, source, ibis.null("timestamp"), ibis.literal(True), expected=expected)
    if dtype.is_timestamp() or dtype.is_date():
        # A zoned timestamp becomes UTC wall-clock time (the Ibis DuckDB session runs in UTC).
        return _Column(ccol, source, col.cast(dt.Timestamp()), col.isnull(), expected=expected)
    if dtype.is_string():
        # Through TIMESTAMPTZ so that a string with an offset ("...+02:00") lands on UTC.
        parsed = col.strip().try_cast(dt.Timestamp(timezone="UTC")).cast(dt.Timestamp())
        return _parsed_text(ccol, source, col, parsed, "timestamp", expected)
    return _unusable(ccol, source, col, dtype, "timestamp", expected)


def _as_number(ccol, source, col, dtype) -> _Column:
    expected = "a number such as 12.5"
    if dtype.is_null():
        return _Column(ccol, source, ibis.null("float64"), ibis.literal(True), expected=expected)
    if dtype.is_numeric() or dtype.is_boolean():
        return _Column(ccol, source, col.cast("float64"), col.isnull(), expected=expected)
    if dtype.is_string():
        return _parsed_text(ccol, source, col, col.strip().try_cast("float64"), "float64", expected)
    return _unusable(ccol, source, col, dtype, "float64", expected)


def _as_string(ccol, source, col, dtype) -> _Column:
    if dtype.is_null():
        return _Column(ccol, source, ibis.null("string"), ibis.literal(True), expected="text")
    if dtype.is_string():
        return _Column(ccol, source, col, col.isnull(), expected="text")
    if dtype.is_floating() or dtype.is_decimal():
        # Whole numbers read as floats (a pandas int column with gaps) print without ".0".
        as_int, missing = _integral(col, dtype)
        typed = ibis.ifelse(as_int.notnull(), as_int.cast("string"), col.cast("string"))
        return _Column(ccol, source, typed, missing, expected="text")
    return _Column(ccol, source, col.cast("string"), col.isnull(), expected="text")


# --------------------------------------------------------------------------------------------------
# Row checks


def _schema_row_checks(plan: _Plan) -> list[_RowCheck]:
    """wrong_type: values present in the file that cannot be read as their contract type."""
    out = []
    for name, col in plan.columns.items():
        if col.fail is None:
            continue
        if col.usable:
            describe = f"with a value that cannot be read as {col.expected}"
        else:
            describe = f"whose value cannot be read as {col.expected}: {col.type_problem}"
        out.append(
            _RowCheck(
                check="wrong_type",
                column=name,
                condition=lambda w, n=name: w[f"{_P}fail_{n}"],
                describe=describe,
                hint=(
                    f"Fix these values in the {plan.name} file (expected: {col.expected}); or, if "
                    f"'{col.source}' is the wrong column, map tables.{plan.name}.columns.{name} to the "
                    f"right one in {_CONFIG}. Type problems are always errors."
                ),
            )
        )
    return out


def _null_key_checks(plan: _Plan) -> list[_RowCheck]:
    out = []
    for name in ("customer_id", _KEY_TIME_COLUMNS[plan.name]):
        col = plan.columns.get(name)
        if col is None or not col.usable:
            continue
        out.append(
            _RowCheck(
                check="null_key",
                column=name,
                condition=lambda w, n=name: w[f"{_P}missing_{n}"],
                describe=f"with no {name} (null or blank)",
                hint=(
                    f"Fill in {col.source} on these rows in the {plan.name} file; or set "
                    f"checks.null_key: drop in {_CONFIG} to remove them."
                ),
            )
        )
    return out


def _future_checks(plan: _Plan, ref: datetime) -> list[_RowCheck]:
    out = []
    ref_lit = ibis.literal(ref, type=dt.Timestamp())
    for name, col in plan.columns.items():
        if col.contract.kind != "timestamp" or not col.usable:
            continue
        tcol = plan.tcol(name)
        out.append(
            _RowCheck(
                check="future_timestamp",
                column=name,
                condition=lambda w, tcol=tcol: w[tcol] > ref_lit,
                describe=f"with {name} after the reference time {ref.isoformat(sep=' ')}",
                hint=(
                    "Fix these dates in the file (a clock or time-zone error?); if the data really runs "
                    f"later, set reference_time in {_CONFIG}; or set checks.future_timestamp to warn "
                    "or drop."
                ),
            )
        )
    return out


def _customer_checks(plan: _Plan, ref: datetime) -> list[_RowCheck]:
    checks = _schema_row_checks(plan) + _null_key_checks(plan)
    if plan.usable("customer_id"):
        checks.append(
            _RowCheck(
                check="duplicate_customer",
                column="customer_id",
                condition=lambda w: w[f"{_P}dupn"] > 1,
                describe="whose customer_id appears more than once in customers",
                hint=(
                    "Keep one row per customer in the customers file; or set "
                    f"checks.duplicate_customer: drop in {_CONFIG} to remove every row of a repeated id "
                    "(warn keeps them all, and later joins would count such customers twice)."
                ),
                needs_join=True,
                extra={"times_seen": f"{_P}dupn"},
            )
        )
    checks += _future_checks(plan, ref)
    return checks


def _customer_wide_fn(plan: _Plan) -> Callable[[ibis.Table], ibis.Table]:
    def wide(typed: ibis.Table) -> ibis.Table:
        if not plan.usable("customer_id"):
            return typed
        key = typed[plan.tcol("customer_id")]
        counts = (
            typed.filter(key.notnull())
            .group_by(**{f"{_P}dupkey": key})
            .aggregate(**{f"{_P}dupn": ibis._.count()})
        )
        return typed.left_join(counts, key == counts[f"{_P}dupkey"])

    return wide


def _activity_checks(
    plan: _Plan, ref: datetime, low: float, high: float, lookup: ibis.Table | None, customers_dropped: bool
) -> list[_RowCheck]:
    name = plan.name
    checks = _schema_row_checks(plan) + _null_key_checks(plan)
    if lookup is not None and plan.usable("customer_id"):
        tid = plan.tcol("customer_id")
        dropped_note = (
            " Customers removed by 'drop' checks on customers count as unknown here." if customers_dropped else ""
        )
        checks.append(
            _RowCheck(
                check="unknown_customer",
                column="customer_id",
                condition=lambda w: w[tid].notnull() & w[f"{_P}known"].isnull(),
                describe="whose customer_id is not in table 'customers'",
                hint=(
                    "Add these customers to the customers file or fix the ids (ids are compared as "
                    f"text, so 42 and '042' differ); or set checks.unknown_customer: drop in {_CONFIG}."
                    + dropped_note
                ),
                needs_join=True,
            )
        )
        time_col = CONTRACT[name].time_column
        if plan.usable(time_col):
            ttime = plan.tcol(time_col)
            checks.append(
                _RowCheck(
                    check="before_signup",
                    column=time_col,
                    condition=lambda w: w[ttime].date() < w[f"{_P}signup"].date(),
                    describe=f"whose {time_col} is on a day before the customer's signup_date",
                    hint=(
                        f"Fix {plan.columns[time_col].source} on these rows or the customer's signup_date "
                        "(shown as customers.signup_date); or set "
                        f"checks.before_signup to warn (keep) or drop (remove) in {_CONFIG}."
                    ),
                    needs_join=True,
                    extra={"customers.signup_date": f"{_P}signup"},
                )
            )
    checks += _future_checks(plan, ref)
    for col in _NON_NEGATIVE.get(name, ()):
        if plan.usable(col):
            tcol = plan.tcol(col)
            checks.append(
                _RowCheck(
                    check="negative_amount",
                    column=col,
                    condition=lambda w, tcol=tcol: w[tcol] < 0,
                    describe=f"with a negative {col}",
                    hint=(
                        f"Fix {plan.columns[col].source} on these rows in the {name} file; or set "
                        f"checks.negative_amount to warn (keep them) or drop (remove them) in {_CONFIG}."
                    ),
                )
            )
    if name == "feedback" and plan.usable("score"):
        tscore = plan.tcol("score")
        checks.append(
            _RowCheck(
                check="score_out_of_range",
                column="score",
                condition=lambda w: w[tscore].notnull() & ~w[tscore].between(low, high),
                describe=f"with a score outside [{_num(low)}, {_num(high)}]",
                hint=(
                    f"Fix the scores, or set score_range in {_CONFIG} to your scale (now "
                    f"[{_num(low)}, {_num(high)}]); or set checks.score_out_of_range to warn or drop."
                ),
            )
        )
    if name == "subscriptions" and plan.usable("start_date") and plan.usable("end_date"):
        tstart, tend = plan.tcol("start_date"), plan.tcol("end_date")
        checks.append(
            _RowCheck(
                check="end_before_start",
                column="end_date",
                condition=lambda w: w[tend] < w[tstart],
                describe="with end_date before start_date",
                hint=(
                    f"Fix {plan.columns['start_date'].source} or {plan.columns['end_date'].source} on "
                    "these rows (swapped columns?); or set checks.end_before_start to warn (keep them) "
                    f"or drop (remove them) in {_CONFIG}."
                ),
            )
        )
    return checks


def _activity_wide_fn(plan: _Plan, lookup: ibis.Table | None) -> Callable[[ibis.Table], ibis.Table]:
    def wide(typed: ibis.Table) -> ibis.Table:
        if lookup is None or not plan.usable("customer_id"):
            return typed
        return typed.left_join(lookup, typed[plan.tcol("customer_id")] == lookup[f"{_P}key"])

    return wide


def _run_checks(
    con: ibis.BaseBackend,
    plan: _Plan,
    wide: ibis.Table,
    row_checks: list[_RowCheck],
    severities: dict[str, str],
) -> tuple[list[Finding], list[_RowCheck]]:
    """Count every check in one pass; fetch examples for those that fire. Returns (findings, drops)."""
    if not row_checks:
        return [], []
    conditions = [rc.condition(wide).fill_null(False) for rc in row_checks]
    agg = wide.aggregate(**{f"n{i}": c.cast("int64").sum() for i, c in enumerate(conditions)})
    counts = con.to_pyarrow(agg).to_pylist()[0]
    findings: list[Finding] = []
    drops: list[_RowCheck] = []
    example_cols = plan.example_columns
    for i, (rc, cond) in enumerate(zip(row_checks, conditions)):
        count = int(counts[f"n{i}"] or 0)
        if count == 0:
            continue
        severity = severities[rc.check]
        selection: dict[str, ibis.Value] = {c: wide[c] for c in example_cols}
        for label, column in rc.extra.items():
            selection[label] = wide[column]
        sample = wide.filter(cond).select(**selection).order_by(list(selection)).limit(_MAX_EXAMPLES)
        examples = [_plain_row(row) for row in con.to_pyarrow(sample).to_pylist()]
        if severity == "drop":
            drops.append(rc)
        findings.append(
            Finding(
                check=rc.check,
                table=plan.name,
                column=rc.column,
                count=count,
                severity=severity,
                message=_row_message(plan, rc, count, severity),
                examples=examples,
                hint=rc.hint,
            )
        )
    return findings, drops


def _row_message(plan: _Plan, rc: _RowCheck, count: int, severity: str) -> str:
    what = {
        "error": "",
        "warn": ": the rows are kept",
        "drop": ": the rows are removed from the output",
    }[severity]
    column = f", column {plan.label(rc.column)}" if rc.column else ""
    rows = f"{count:,} row{'s' if count != 1 else ''}"
    return f"table '{plan.name}'{column}: {rows} {rc.describe} (check '{rc.check}' is '{severity}'{what})."


def _apply_drops(
    plan: _Plan, wide_fn: Callable[[ibis.Table], ibis.Table], drops: list[_RowCheck]
) -> tuple[ibis.Table, ibis.Table]:
    """(the output table, the kept rows as a typed/wide table, unordered) after removing drop rows."""
    typed = plan.typed
    if not drops:
        return plan.output(typed), typed
    if not any(rc.needs_join for rc in drops):
        keep = ~reduce(lambda a, b: a | b, [rc.condition(typed).fill_null(False) for rc in drops])
        kept = typed.filter(keep)
        return plan.output(kept), kept
    # A join does not keep the input's row order in DuckDB: number the rows first and restore it,
    # so that the output is the input minus the dropped rows, in the same order.
    rn = f"{_P}rn"
    wide = wide_fn(typed.mutate(**{rn: ibis.row_number()}))
    keep = ~reduce(lambda a, b: a | b, [rc.condition(wide).fill_null(False) for rc in drops])
    kept = wide.filter(keep)
    return plan.output(kept.order_by(rn)), kept


# --------------------------------------------------------------------------------------------------
# Small helpers


def _resolve_range(score_range) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in score_range)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"score_range must be two numbers [low, high], got {score_range!r}") from exc
    if low > high:
        raise ValueError(f"score_range: low {low} is above high {high}")
    return low, high


def _resolve_reference_time(reference_time) -> datetime:
    if reference_time is None:
        return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    if isinstance(reference_time, str):
        reference_time = datetime.fromisoformat(reference_time)
    elif isinstance(reference_time, date) and not isinstance(reference_time, datetime):
        reference_time = datetime.combine(reference_time, time())
    elif hasattr(reference_time, "to_pydatetime"):  # pandas Timestamp
        reference_time = reference_time.to_pydatetime()
    if not isinstance(reference_time, datetime):
        raise ValueError(f"reference_time must be a datetime, a date or an ISO string, got {reference_time!r}")
    if reference_time.tzinfo is not None:
        reference_time = reference_time.astimezone(timezone.utc).replace(tzinfo=None)
    return reference_time


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _plain_row(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def _json_value(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (datetime, date, time)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    return str(v)


def _cell(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, str):
        return repr(v) if (v == "" or v != v.strip()) else v
    return str(v)


def _format_examples(rows: list[dict]) -> list[str]:
    """A small fixed-width text table of example rows."""
    headers = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_cell(row.get(h)) for h in headers] for row in rows]
    cells = [[c if len(c) <= 40 else c[:37] + "..." for c in line] for line in cells]
    widths = [max(len(h), *(len(line[i]) for line in cells)) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    return out
