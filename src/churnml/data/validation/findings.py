"""What validation reports: the checks and their severities, a `Finding`, `ValidationError`, and
the readable text of a list of findings.

Each check has a severity, taken from `checks` over `DEFAULT_CHECKS`:

- ``error``: the stage fails; all errors are collected first and raised as one `ValidationError`,
  so a user sees every problem at once;
- ``warn``: the rows are kept and the finding is recorded;
- ``drop``: the offending rows are removed from the output and the finding is recorded (never
  silently).

Schema problems (a missing or unreadable table, a missing column, a column with no values at all,
values that cannot be read as the contract type) are always errors: nothing downstream can work around them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

SEVERITIES = ("error", "warn", "drop")

DEFAULT_CHECKS: dict[str, str] = {
    "missing_table": "error",
    "unreadable_file": "error",
    "missing_column": "error",
    "empty_column": "error",
    "wrong_type": "error",
    "null_key": "error",
    "duplicate_customer": "error",
    "unknown_customer": "error",
    "before_signup": "warn",
    "future_timestamp": "error",
    "negative_amount": "error",
    "nan_value": "error",
    "score_out_of_range": "error",
    "end_before_start": "error",
}

# Schema problems: later stages cannot work around them, so they are errors whatever the config says.
SCHEMA_CHECKS = frozenset({"missing_table", "unreadable_file", "missing_column", "empty_column", "wrong_type"})

# Where a user changes the mapping and the checks, as hints name it.
CONFIG = "conf/data/<name>.yaml"


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


def _json_value(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else _non_finite(v)  # JSON has no NaN: say it in text
    if isinstance(v, (datetime, date, time)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    return str(v)


def _non_finite(v: float) -> str:
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def _cell(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, float) and not math.isfinite(v):
        return _non_finite(v)
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
