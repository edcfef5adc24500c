"""Row checks on values: a value that cannot be read as its contract type (wrong_type), a negative
amount, quantity or mrr (negative_amount), a number that is NaN or infinite (nan_value), a feedback
score outside the score range (score_out_of_range)."""

from __future__ import annotations

import ibis

from churnml.data.validation.findings import CONFIG
from churnml.data.validation.rows import RowCheck
from churnml.data.validation.schema import PRIVATE, Plan

_NON_NEGATIVE = {"orders": ("amount", "quantity"), "subscriptions": ("mrr",)}


def wrong_type_checks(plan: Plan) -> list[RowCheck]:
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
            RowCheck(
                check="wrong_type",
                column=name,
                condition=lambda w, n=name: w[f"{PRIVATE}fail_{n}"],
                describe=describe,
                hint=(
                    f"Fix these values in the {plan.name} file (expected: {col.expected}); or, if "
                    f"'{col.source}' is the wrong column, map tables.{plan.name}.columns.{name} to the "
                    f"right one in {CONFIG}. Type problems are always errors."
                ),
            )
        )
    return out


def negative_amount_checks(plan: Plan) -> list[RowCheck]:
    """negative_amount: a negative orders amount or quantity, or subscriptions mrr."""
    out = []
    for col in _NON_NEGATIVE.get(plan.name, ()):
        if plan.usable(col):
            tcol = plan.tcol(col)
            out.append(
                RowCheck(
                    check="negative_amount",
                    column=col,
                    condition=lambda w, tcol=tcol: w[tcol] < 0,
                    describe=f"with a negative {col}",
                    hint=(
                        f"Fix {plan.columns[col].source} on these rows in the {plan.name} file; or set "
                        f"checks.negative_amount to warn (keep them) or drop (remove them) in {CONFIG}."
                    ),
                )
            )
    return out


def nan_value_checks(plan: Plan) -> list[RowCheck]:
    """nan_value: a number column (amount, quantity, mrr, value, score) holding NaN or an infinity.

    Such a value is present, so no null check sees it, yet every sum or mean it enters becomes NaN:
    a customer's spend would silently turn into "missing" in the features.
    """
    out = []
    for name, col, tcol in plan.usable_of_kind("number"):
        out.append(
            RowCheck(
                check="nan_value",
                column=name,
                condition=lambda w, tcol=tcol: _not_finite(w[tcol]),
                describe=f"whose {name} is NaN or infinite (not a number)",
                hint=(
                    f"Fix {col.source} on these rows in the {plan.name} file (leave it empty if it is "
                    f"unknown); or set checks.nan_value to warn (keep them) or drop (remove them) in {CONFIG}."
                ),
            )
        )
    return out


def _not_finite(value: ibis.Value) -> ibis.Value:
    # DuckDB folds isnan()/isinf() (and x - x != 0) to false from a Parquet file's min/max
    # statistics, which never count NaN, so a NaN among finite values would pass unseen. A
    # conditional hides the statistics from that rewrite; tests/test_bad_input.py holds this.
    unfolded = ibis.ifelse(value.isnull(), ibis.null("float64"), value)
    return unfolded.isnan() | unfolded.isinf()


def resolve_score_range(score_range) -> tuple[float, float]:
    """The closed range of feedback scores as (low, high) floats."""
    try:
        low, high = (float(v) for v in score_range)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"score_range must be two numbers [low, high], got {score_range!r}") from exc
    if low > high:
        raise ValueError(f"score_range: low {low} is above high {high}")
    return low, high


def score_out_of_range_checks(plan: Plan, low: float, high: float) -> list[RowCheck]:
    """score_out_of_range: a feedback score outside [low, high] (a null score is allowed; NaN and
    infinities are left to nan_value)."""
    if plan.name != "feedback" or not plan.usable("score"):
        return []
    tscore = plan.tcol("score")
    return [
        RowCheck(
            check="score_out_of_range",
            column="score",
            # NaN and infinities are nan_value's rows, not out of range
            condition=lambda w: w[tscore].notnull() & ~_not_finite(w[tscore]) & ~w[tscore].between(low, high),
            describe=f"with a score outside [{_num(low)}, {_num(high)}]",
            hint=(
                f"Fix the scores, or set score_range in {CONFIG} to your scale (now "
                f"[{_num(low)}, {_num(high)}]); or set checks.score_out_of_range to warn or drop."
            ),
        )
    ]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
