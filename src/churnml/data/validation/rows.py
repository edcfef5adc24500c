"""Running row checks: a `RowCheck` says which rows of a table offend; `run_checks` counts every
check in one pass and fetches examples for those that fire, and `apply_drops` removes the rows of
the checks whose severity is ``drop``.

Only counts and at most five example rows per finding come back to Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce
from typing import Callable

import ibis

from churnml.data.validation.findings import Finding
from churnml.data.validation.schema import PRIVATE, Plan

_MAX_EXAMPLES = 5


@dataclass
class RowCheck:
    """One check over the rows of a table: which rows offend, and how a finding describes them."""

    check: str
    column: str | None  # contract column name
    condition: Callable[[ibis.Table], ibis.Value]  # over the wide table: True for an offending row
    describe: str  # e.g. "with a negative amount" (after "N rows")
    hint: str
    needs_join: bool = False
    extra: dict[str, str] = field(default_factory=dict)  # example label -> wide column


def run_checks(
    con: ibis.BaseBackend,
    plan: Plan,
    wide: ibis.Table,
    row_checks: list[RowCheck],
    severities: dict[str, str],
) -> tuple[list[Finding], list[RowCheck]]:
    """Count every check in one pass; fetch examples for those that fire. Returns (findings, drops)."""
    if not row_checks:
        return [], []
    conditions = [rc.condition(wide).fill_null(False) for rc in row_checks]
    agg = wide.aggregate(**{f"n{i}": c.cast("int64").sum() for i, c in enumerate(conditions)})
    counts = con.to_pyarrow(agg).to_pylist()[0]
    findings: list[Finding] = []
    drops: list[RowCheck] = []
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


def _row_message(plan: Plan, rc: RowCheck, count: int, severity: str) -> str:
    what = {
        "error": "",
        "warn": ": the rows are kept",
        "drop": ": the rows are removed from the output",
    }[severity]
    column = f", column {plan.label(rc.column)}" if rc.column else ""
    rows = f"{count:,} row{'s' if count != 1 else ''}"
    return f"table '{plan.name}'{column}: {rows} {rc.describe} (check '{rc.check}' is '{severity}'{what})."


def apply_drops(
    plan: Plan, wide_fn: Callable[[ibis.Table], ibis.Table], drops: list[RowCheck]
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
    rn = f"{PRIVATE}rn"
    wide = wide_fn(typed.mutate(**{rn: ibis.row_number()}))
    keep = ~reduce(lambda a, b: a | b, [rc.condition(wide).fill_null(False) for rc in drops])
    kept = wide.filter(keep)
    return plan.output(kept.order_by(rn)), kept


def _plain_row(row: dict) -> dict:
    # Arrow gives null as None and keeps NaN as NaN: both stay as they are, since a NaN is itself
    # a finding (nan_value) and must show as NaN in the examples, not as a missing value.
    return dict(row)

