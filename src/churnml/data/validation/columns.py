"""How a raw column becomes its contract type: the typed value as an Ibis expression over the raw
table, when the raw value counts as missing, and when a present value cannot be read.

Ids become text (whole-number floats lose their ".0"), timestamps become naive UTC timestamps (text
is parsed, offsets honoured), numbers become float64, and text stays text. A column whose type
cannot hold its contract type at all is marked unusable: every present value fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt

from churnml.data.contract import ContractColumn


@dataclass
class Column:
    """One contract column of a raw table, and how its raw values read as the contract type."""

    contract: ContractColumn
    source: str  # the user's column name
    typed: ibis.Value  # the contract-typed value, as an expression over the raw table
    missing: ibis.Value  # the raw value is null (or a blank string)
    fail: ibis.Value | None = None  # the raw value is present but cannot be read as the contract type
    usable: bool = True  # False when the column's type cannot hold the contract type at all
    expected: str = ""  # a description of the expected type, for messages
    type_problem: str = ""  # "" or the reason the column's type is unusable


def type_column(ccol: ContractColumn, source: str, col: ibis.Value, dtype: dt.DataType) -> Column:
    """How a raw column becomes its contract type: the typed value and its failure conditions."""
    if ccol.kind == "id":
        return _as_id(ccol, source, col, dtype)
    if ccol.kind == "timestamp":
        return _as_timestamp(ccol, source, col, dtype)
    if ccol.kind == "number":
        return _as_number(ccol, source, col, dtype)
    return _as_string(ccol, source, col, dtype)


def _unusable(ccol: ContractColumn, source: str, col: ibis.Value, dtype: dt.DataType, target: str, expected: str) -> Column:
    return Column(
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


def _parsed_text(ccol, source, col: ibis.Value, parsed: ibis.Value, target: str, expected: str) -> Column:
    """A text column read as `target`: blank text is missing, non-blank text that does not parse fails."""
    missing = _blank(col)
    typed = ibis.ifelse(missing, ibis.null(target), parsed)
    return Column(ccol, source, typed, missing, fail=~missing & parsed.isnull(), expected=expected)


def _as_id(ccol, source, col, dtype) -> Column:
    expected = "an id: text or a whole number"
    if dtype.is_null():
        return Column(ccol, source, ibis.null("string"), ibis.literal(True), expected=expected)
    if dtype.is_string():
        missing = _blank(col)
        return Column(ccol, source, ibis.ifelse(missing, ibis.null("string"), col), missing, expected=expected)
    if dtype.is_integer() or dtype.is_uuid():
        return Column(ccol, source, col.cast("string"), col.isnull(), expected=expected)
    if dtype.is_floating() or dtype.is_decimal():
        as_int, missing = _integral(col, dtype)
        return Column(
            ccol, source, as_int.cast("string"), missing, fail=~missing & as_int.isnull(), expected=expected
        )
    return _unusable(ccol, source, col, dtype, "string", expected)


def _as_timestamp(ccol, source, col, dtype) -> Column:
    expected = "a date or timestamp such as 2024-03-31 or 2024-03-31 14:05:00"
    if dtype.is_null():
        return Column(ccol, source, ibis.null("timestamp"), ibis.literal(True), expected=expected)
    if dtype.is_timestamp() or dtype.is_date():
        # A zoned timestamp becomes UTC wall-clock time (the Ibis DuckDB session runs in UTC).
        return Column(ccol, source, col.cast(dt.Timestamp()), col.isnull(), expected=expected)
    if dtype.is_string():
        # Through TIMESTAMPTZ so that a string with an offset ("...+02:00") lands on UTC.
        parsed = col.strip().try_cast(dt.Timestamp(timezone="UTC")).cast(dt.Timestamp())
        return _parsed_text(ccol, source, col, parsed, "timestamp", expected)
    return _unusable(ccol, source, col, dtype, "timestamp", expected)


def _as_number(ccol, source, col, dtype) -> Column:
    expected = "a number such as 12.5"
    if dtype.is_null():
        return Column(ccol, source, ibis.null("float64"), ibis.literal(True), expected=expected)
    if dtype.is_numeric() or dtype.is_boolean():
        return Column(ccol, source, col.cast("float64"), col.isnull(), expected=expected)
    if dtype.is_string():
        return _parsed_text(ccol, source, col, col.strip().try_cast("float64"), "float64", expected)
    return _unusable(ccol, source, col, dtype, "float64", expected)


def _as_string(ccol, source, col, dtype) -> Column:
    if dtype.is_null():
        return Column(ccol, source, ibis.null("string"), ibis.literal(True), expected="text")
    if dtype.is_string():
        return Column(ccol, source, col, col.isnull(), expected="text")
    if dtype.is_floating() or dtype.is_decimal():
        # Whole numbers read as floats (a pandas int column with gaps) print without ".0".
        as_int, missing = _integral(col, dtype)
        typed = ibis.ifelse(as_int.notnull(), as_int.cast("string"), col.cast("string"))
        return Column(ccol, source, typed, missing, expected="text")
    return Column(ccol, source, col.cast("string"), col.isnull(), expected="text")

