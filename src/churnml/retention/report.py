"""The retention report: measures, CLV and segments computed once, then written as files.

`build_retention` computes everything from the validated tables and the scores; the engine
(DuckDB or Spark) does the row-level work and hands back aggregates only: per month start, per
cohort and month, per segment, per histogram bin, and the headline sums. `write_retention` writes
the headline metrics (a DVC metrics file), the tables as CSV, the per-customer CLV as Parquet
(written by the engine: one file on DuckDB, a folder on Spark), the figures as PNG and one
self-contained HTML page.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import ibis
import matplotlib

matplotlib.use("Agg")  # headless: stages run on machines without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from churnml.data import parquet  # noqa: E402
from churnml.retention.clv import months_ago, predicted_clv_table, revenue_table, value_histogram  # noqa: E402
from churnml.data.io import atomic_path, write_json, write_table  # noqa: E402
from churnml.features.label_times import LabelSpec  # noqa: E402
from churnml.explain.drivers_report import render_page, write_report  # noqa: E402
from churnml.retention.measures import (  # noqa: E402
    Rows,
    as_table,
    churn_per_month,
    cohort_retention,
    kept,
    left_join,
    month_counts,
    month_starts,
    observed_table,
    purchase_measures,
    recent_churn_table,
    recent_cutoffs,
    segment_table,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClvSpec:
    margin: float = 1.0
    discount_rate: float = 0.01
    max_months: int = 36


@dataclass
class Retention:
    headline: dict[str, Any]
    churn: pd.DataFrame
    cohorts: pd.DataFrame
    clv: ibis.Table  # one row per customer: left to the engine, which writes it
    clv_histogram: pd.DataFrame
    segments: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def report_scores(scores: Rows) -> ibis.Table:
    """Checked scores (`check_scores` or `check_score_table`) with what the report reads: text ids,
    and the value at risk and risk tier even when the scores file has none."""
    table = as_table(scores)
    table = table.mutate(customer_id=table.customer_id.cast("string"))
    if "value_at_risk" not in table.columns:
        value = table.churn_probability.cast("float64") * table.customer_value.cast("float64")
        table = table.mutate(value_at_risk=value)
    if "risk_tier" not in table.columns:
        table = table.mutate(risk_tier=ibis.null("string"))
    return table


def build_retention(tables: dict[str, ibis.Table], scores: Rows, *, spec: LabelSpec, until: datetime,
                    segments: list[str], recent_months: int, clv: ClvSpec, value_months: float) -> Retention:
    """Every measure of the report. `until` is the end of the data (midnight after its last day)."""
    notes: list[str] = []
    scores = report_scores(scores)
    since = months_ago(until, recent_months)
    predicted = predicted_clv_table(scores, value_months=value_months, horizon_days=spec.horizon_days,
                                    margin=clv.margin, discount_rate=clv.discount_rate, max_months=clv.max_months)
    recent_revenue = revenue_table(tables, until, since=since).select("customer_id", recent_revenue="revenue")
    present = [c for c in segments if c in tables["customers"].columns]
    cutoffs = month_starts(tables, until, spec)
    # computed once by the engine and kept there, where the month counts, cohorts and segments read it
    observed = kept(observed_table(tables, spec, cutoffs, until))
    try:
        counts = month_counts(observed)
        cohorts = cohort_retention(tables["customers"].select("customer_id", "signup_date"), observed)
        seg = segment_table(_segment_columns(tables["customers"], present, scores),
                            scores.select("customer_id", "value_at_risk").join(
                                predicted.select("customer_id", "predicted_clv"), "customer_id"),
                            recent_churn_table(observed, recent_cutoffs(counts, recent_months)), recent_revenue)
    finally:
        observed.release()
    churn = churn_per_month(counts)
    if not cutoffs:
        notes.append(f"no month start before the end of the data ({until:%Y-%m-%d}) has a whole "
                     f"{spec.active_window}-day look-back window recorded (labels.inactivity.active_window_days, "
                     f"else labels.horizon_days): churn per month and cohort retention are empty; more history "
                     f"or a shorter window fills them")
    elif churn.empty:
        notes.append(f"no month start's label windows ({spec.lead_days + spec.horizon_days} days, "
                     f"labels.lead_days + labels.horizon_days) have all passed by the end of the data "
                     f"({until:%Y-%m-%d}): churn per month is empty")

    orders = None
    if "orders" in tables:
        table = tables["orders"]
        recent = table.filter((table.timestamp >= ibis.literal(since)) & (table.timestamp < ibis.literal(until)))
        orders = recent.select(*[c for c in ("customer_id", "order_id", "amount") if c in table.columns])
    else:
        notes.append("no orders table: repeat purchase rate, order value and frequency are not available")
    purchases = purchase_measures(orders, months=float(recent_months))
    for missing in sorted(set(segments) - set(present)):
        notes.append(f"segment '{missing}' is not a column of the customers table: left out")

    # kept by the engine: the headline, the histogram and the written file all read it
    per_customer = kept(left_join(revenue_table(tables, until).rename(historical_clv="revenue"), predicted).mutate(
        scored=lambda t: t.predicted_clv.notnull()))
    totals = _totals(per_customer, recent_revenue, scores, predicted)

    known = churn.tail(recent_months)
    latest = churn.iloc[-1] if len(churn) else None
    # the months actually measured: the data may hold fewer complete months than were asked for
    measured = int(len(known))
    headline = {
        "as_of": f"{pd.Timestamp(until):%Y-%m-%d}",
        "definition": spec.fallback if spec.definition == "custom" else spec.definition,
        "customers": int(totals["customers"]),
        "customers_scored": int(totals["customers_scored"]),
        "churn_rate_latest": None if latest is None else round(float(latest["churn_rate"]), 6),
        "churn_rate_latest_month": None if latest is None else f"{latest['month']:%Y-%m}",
        "churn_rate_mean_recent": round(float(known["churned"].sum() / known["customers"].sum()), 6)
        if len(known) else None,
        "recent_months": measured,
        "recent_months_asked": int(recent_months),
        "recent_period": recent_period(measured, int(recent_months)),
        "repeat_purchase_rate": _round(purchases["repeat_purchase_rate"]),
        "average_order_value": _round(purchases["average_order_value"], 2),
        "purchase_frequency": _round(purchases["purchase_frequency"]),
        "revenue_recent": round(_sum(totals["revenue_recent"]), 2),
        "historical_clv_mean": _round(totals["historical_clv_mean"], 2),
        "predicted_clv_mean": _round(totals["predicted_clv_mean"], 2),
        "predicted_clv_total": round(_sum(totals["predicted_clv_total"]), 2),
        "value_at_risk_total": round(_sum(totals["value_at_risk_total"]), 2),
    }
    return Retention(headline=headline, churn=churn, cohorts=cohorts, clv=per_customer,
                     clv_histogram=value_histogram(per_customer), segments=seg, notes=notes)


def _segment_columns(customers: ibis.Table, present: list[str], scores: ibis.Table) -> ibis.Table:
    """customer_id and the segment kinds: the customers' `present` columns and the risk tier."""
    segments = customers.select("customer_id", *present).mutate(customer_id=lambda t: t.customer_id.cast("string"))
    return left_join(segments, scores.select("customer_id", **{"risk tier": "risk_tier"}))


def _totals(per_customer: ibis.Table, recent_revenue: ibis.Table, scores: ibis.Table, predicted: ibis.Table
            ) -> pd.Series:
    """The headline's sums and means, in one query; a mean of no rows is missing, a sum is 0."""
    parts = [
        per_customer.aggregate(customers=per_customer.count(), historical_clv_mean=per_customer.historical_clv.mean()),
        recent_revenue.aggregate(revenue_recent=recent_revenue.recent_revenue.sum()),
        scores.aggregate(customers_scored=scores.count(), value_at_risk_total=scores.value_at_risk.sum()),
        predicted.aggregate(predicted_clv_mean=predicted.predicted_clv.mean(),
                            predicted_clv_total=predicted.predicted_clv.sum()),
    ]
    totals = parts[0]
    for part in parts[1:]:
        totals = totals.cross_join(part)
    return totals.to_pandas().iloc[0]


def _sum(value: Any) -> float:
    return 0.0 if value is None or pd.isna(value) else float(value)


def recent_period(measured: int, asked: int) -> str:
    """The months the recent churn rate covers, in words, saying so when fewer than asked for."""
    if measured == 0:
        return f"no complete month (of {asked} asked; none recorded)"
    span = f"last {measured} month{'s' if measured != 1 else ''}"
    return span if measured >= asked else f"{span} (of {asked} asked; only {measured} recorded)"


def _round(value: float | int | None, digits: int = 6) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), digits)


# ---------------------------------------------------------------- figures


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def churn_figure(churn: pd.DataFrame) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(churn["month"], churn["churn_rate"] * 100, marker="o")
    ax.set(title="Churn rate per month", xlabel="month start", ylabel="churned within the horizon (%)")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _png(fig)


def cohort_figure(cohorts: pd.DataFrame, max_cohorts: int = 24) -> bytes:
    # the latest cohorts only: older ones are mostly empty (signed up before the data starts)
    recent = cohorts.tail(max_cohorts)
    shares = recent.drop(columns="customers").astype("float64").dropna(axis=1, how="all")
    cohorts = recent
    if shares.size == 0:  # no month start observed: say so rather than draw an empty heatmap
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, "no month start observed: no cohort retention to show", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * shares.shape[1] + 2), max(4, 0.35 * len(shares) + 1.5)))
    image = ax.imshow(shares.to_numpy() * 100, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(shares.shape[1]), [str(c) for c in shares.columns])
    ax.set_yticks(range(len(shares)), [f"{i} ({n:,})" for i, n in zip(shares.index, cohorts["customers"])])
    ax.set(title=f"Cohort retention, latest {len(shares)} signup cohorts (% still a customer)",
           xlabel="months since signup month",
           ylabel="signup cohort (customers)")
    if shares.size <= 400:  # numbers stay legible on small matrices
        for (row, col), value in np.ndenumerate(shares.to_numpy()):
            if not np.isnan(value):
                ax.text(col, row, f"{value * 100:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if value < 0.6 else "black")
    fig.colorbar(image, ax=ax, label="%")
    return _png(fig)


def clv_figure(histogram: pd.DataFrame) -> bytes:
    """The two CLV distributions from `value_histogram`'s bin counts."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    bins = np.r_[histogram["bin_start"].to_numpy(), histogram["bin_end"].to_numpy()[-1:]]
    # one point per bin, weighted by its count: the same bars as a histogram of every value
    ax.hist(histogram["bin_start"], bins=bins, weights=histogram["historical"], alpha=0.6, label="historical (to date)")
    ax.hist(histogram["bin_start"], bins=bins, weights=histogram["predicted"], alpha=0.6, label="predicted (to come)")
    ax.set(title="Customer lifetime value of scored customers", xlabel="value (clipped at the 99th percentile)",
           ylabel="customers")
    ax.legend()
    ax.grid(alpha=0.3)
    return _png(fig)


def segment_figure(segments: pd.DataFrame) -> bytes:
    kinds = list(dict.fromkeys(segments["segment_kind"]))
    fig, axes = plt.subplots(len(kinds) or 1, 1, figsize=(7, 2.2 * max(len(kinds), 1) + 0.8), squeeze=False)
    for ax, kind in zip(axes[:, 0], kinds):
        part = segments[segments["segment_kind"] == kind].head(12)
        ax.barh(part["segment"].astype(str), part["value_at_risk"])
        ax.invert_yaxis()
        ax.set(title=f"value at risk by {kind}", xlabel="value at risk")
        ax.grid(alpha=0.3, axis="x")
    return _png(fig)


# ---------------------------------------------------------------- writing


def write_retention(result: Retention, folder: Path, metrics_path: Path, churn_plot: Path | None = None) -> dict[str, Path]:
    """Write every output; each file atomically. Returns the paths by name."""
    folder = Path(folder)
    figures = {
        "churn rate per month": ("churn_rate.png", churn_figure(result.churn)),
        "cohort retention": ("cohort_retention.png", cohort_figure(result.cohorts)),
        "customer lifetime value": ("clv.png", clv_figure(result.clv_histogram)),
        "value at risk by segment": ("segments.png", segment_figure(result.segments)),
    }
    paths: dict[str, Path] = {}
    for name, (file, data) in figures.items():
        with atomic_path(folder / file) as tmp:
            Path(tmp).write_bytes(data)
        paths[file] = folder / file
    churn = result.churn.assign(month=result.churn["month"].dt.strftime("%Y-%m-%d"))
    paths["churn_rate.csv"] = write_table(churn, folder / "churn_rate.csv")
    if churn_plot is not None:  # the same table where DVC plots look
        write_table(churn, churn_plot)
    paths["cohort_retention.csv"] = write_table(result.cohorts.reset_index(), folder / "cohort_retention.csv")
    paths["segments.csv"] = write_table(result.segments, folder / "segments.csv")
    # one row per customer: written by the engine, in customer order, replacing the old output whole
    con = result.clv._find_backend(use_default=True)  # in-memory tables alone: the default, DuckDB
    parquet.write(con, result.clv, folder / "clv.parquet", order_by=["customer_id"])
    paths["clv.parquet"] = folder / "clv.parquet"
    html = render_page(
        title=f"Retention report, {result.headline['as_of']}",
        summary={k: v for k, v in result.headline.items() if v is not None},
        figures={caption: data for caption, (_, data) in figures.items()},
        tables={"Segments": result.segments, "Churn rate per month": churn,
                "Cohort retention (share still a customer)": result.cohorts.reset_index()},
        note=" ".join(result.notes),
    )
    paths["retention.html"] = write_report(html, folder / "retention.html")
    paths["metrics"] = write_json(result.headline, metrics_path)
    for note in result.notes:
        log.info("note: %s", note)
    return paths
