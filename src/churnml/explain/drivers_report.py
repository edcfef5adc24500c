"""A self-contained HTML "churn drivers" report, for reviewing in the MLflow UI.

One file, no templating engine and nothing fetched from elsewhere: the CSS is inline, figures are
embedded as base64 data URIs and a few lines of vanilla JS filter the at-risk table (a URL ending
in `#search=<text>` opens it already filtered). Everything that comes from data is HTML-escaped;
missing values render as an em dash.

The MLflow UI shows an HTML artifact in a sandboxed iframe (scripts allowed, no same origin), so
the page must not rely on anything but itself.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from churnml.data.io import atomic_path

MISSING = "—"
_NUM_CLASS = ' class="num"'
# rows of each segment matrix: the features with the largest total mean |SHAP| for that kind
SEGMENT_TOP_FEATURES = 8

_REASON_COLUMN = re.compile(r"^reason_(\d+)$")
_TIER_CLASSES = {"low": "low", "medium": "medium", "med": "medium", "high": "high",
                 "very high": "critical", "critical": "critical"}

_CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --zebra:#f7f8fa; --accent:#2563eb; --bg:#ffffff; }
* { box-sizing: border-box; }
body { margin:0; background:#f3f4f6; color:var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.container { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; background: var(--bg);
  min-height: 100vh; }
h1 { font-size: 26px; margin: 4px 0 16px; }
h2 { font-size: 19px; margin: 34px 0 6px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 22px 0 8px; }
p.note { color: var(--muted); margin: 4px 0 12px; }
dl.summary { display: flex; flex-wrap: wrap; gap: 10px; margin: 0 0 8px; padding: 0; }
dl.summary div { background: var(--zebra); border: 1px solid var(--line); border-radius: 8px;
  padding: 8px 14px; min-width: 150px; }
dl.summary dt { font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
dl.summary dd { margin: 2px 0 0; font-size: 17px; font-weight: 600; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { padding: 6px 9px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #eef1f5; font-size: 12px; text-transform: uppercase; letter-spacing: .03em;
  color: #3e4c59; position: sticky; top: 0; }
tbody tr:nth-child(even) { background: var(--zebra); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.feature { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px;
  white-space: nowrap; }
.bar { display: inline-block; width: 160px; height: 10px; background: #e5eaf2; border-radius: 5px;
  vertical-align: middle; margin-right: 8px; overflow: hidden; }
.bar span { display: block; height: 100%; background: var(--accent); border-radius: 5px; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 16px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 10px; background: #fff; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; text-align: center; }
.scroll { overflow-x: auto; }
table.matrix { width: auto; min-width: 70%; }
table.matrix td.feature { min-width: 220px; }
table.matrix td.num, table.matrix th.num { min-width: 96px; }
table.matrix th.num { text-transform: none; font-size: 13px; letter-spacing: 0; }
table.matrix th small { display: block; font-weight: 400; font-size: 11px; color: var(--muted); }
.pct { display: inline-block; min-width: 48px; text-align: right; }
.toolbar { display: flex; align-items: center; gap: 14px; margin: 8px 0; }
#search { flex: 0 1 380px; padding: 7px 10px; font: inherit; border: 1px solid #cbd2d9; border-radius: 6px; }
#search:focus { outline: 2px solid var(--accent); outline-offset: 0; border-color: var(--accent); }
.count { color: var(--muted); }
tr.customer-row[hidden] { display: none; }
td.reason { min-width: 180px; }
td.protective { color: #1e7b4f; min-width: 160px; }
.tier { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
  background: #e4e7eb; white-space: nowrap; }
.tier-low { background: #d9f2e3; color: #1e6b43; }
.tier-medium { background: #fff1c7; color: #8a5a00; }
.tier-high { background: #ffe0cc; color: #9c3d00; }
.tier-critical { background: #ffd6d6; color: #a3151b; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
@media (max-width: 760px) {
  .container { padding: 14px 12px 32px; }
  h1 { font-size: 21px; }
  th, td { padding: 5px 6px; }
  .bar { width: 56px; margin-right: 4px; }
  dl.summary div { min-width: 0; flex: 1 1 130px; padding: 6px 10px; }
  .figures { grid-template-columns: 1fr; }
  table.matrix td.feature { min-width: 140px; }
  table.matrix td.num, table.matrix th.num { min-width: 64px; }
}
"""

_JS = """
(function () {
  var box = document.getElementById("search");
  var count = document.getElementById("visible-count");
  if (!box || !count) { return; }
  var rows = Array.prototype.slice.call(document.querySelectorAll("#at-risk-table tr.customer-row"));
  function filter() {
    var needle = box.value.trim().toLowerCase();
    var shown = 0;
    rows.forEach(function (row) {
      var match = !needle || row.textContent.toLowerCase().indexOf(needle) !== -1;
      row.hidden = !match;
      if (match) { shown += 1; }
    });
    count.textContent = String(shown);
  }
  // a link may carry a search: ...#search=C-000042
  var linked = /[#&]search=([^&]*)/.exec(window.location.hash || "");
  if (linked) { try { box.value = decodeURIComponent(linked[1]); } catch (e) { box.value = linked[1]; } }
  box.addEventListener("input", filter);
  filter();
})();
"""


def render_report(*, title: str, summary: dict[str, str | int | float], global_drivers: pd.DataFrame,
                  figures: dict[str, bytes], segments: pd.DataFrame, at_risk: pd.DataFrame,
                  max_rows: int = 500) -> str:
    """The whole report as one HTML document (see the module docstring)."""
    if max_rows < 0:
        raise ValueError(f"max_rows must be >= 0, got {max_rows}")
    body = "\n".join([
        f"<h1>{_esc(title)}</h1>",
        _summary_section(summary),
        _drivers_section(global_drivers),
        _figures_section(figures),
        _segments_section(segments),
        _at_risk_section(at_risk, max_rows),
        "<footer>Self-contained report: mean |SHAP| values are in log-odds of churn; "
        "reasons are the features that raise each customer's risk the most.</footer>",
    ])
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f'<body>\n<main class="container">\n{body}\n</main>\n<script>{_JS}</script>\n</body>\n</html>\n'
    )


def render_page(*, title: str, summary: dict[str, Any], figures: dict[str, bytes],
                tables: dict[str, pd.DataFrame], note: str = "") -> str:
    """A plain self-contained page in the report's style: headline numbers, figures, tables."""
    sections = [f"<h1>{_esc(title)}</h1>", _summary_section(summary), _figures_section(figures)]
    for caption, frame in tables.items():
        headers = [str(c) for c in frame.columns]
        numeric = {i for i, c in enumerate(frame.columns) if pd.api.types.is_numeric_dtype(frame[c])}
        rows = ["<tr>" + "".join(f"<td{_NUM_CLASS if i in numeric else ''}>{_fmt(v, _decimals(v))}</td>"
                                 for i, v in enumerate(row)) + "</tr>" for row in frame.itertuples(index=False)]
        table = _table(headers, rows, numeric=numeric, empty="no rows")
        sections.append(f'<section>\n<h2>{_esc(caption)}</h2>\n<div class="scroll">{table}</div>\n</section>')
    if note:
        sections.append(f"<footer>{_esc(note)}</footer>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        '<body>\n<main class="container">\n' + "\n".join(sections) + "\n</main>\n</body>\n</html>\n"
    )


def _decimals(value: Any) -> int | None:
    # shares and rates read best with three decimals; larger amounts as _fmt shows them
    return 3 if isinstance(value, float) and abs(value) < 10 else None


def write_report(html: str, path: Path) -> Path:
    """Write the report atomically (a crash leaves any previous report intact)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    return path


# --- sections ---------------------------------------------------------------------------------


def _summary_section(summary: dict[str, Any]) -> str:
    items = "".join(f"<div><dt>{_esc(key)}</dt><dd>{_fmt(value)}</dd></div>" for key, value in summary.items())
    return f'<dl id="summary" class="summary">{items}</dl>'


def _drivers_section(drivers: pd.DataFrame) -> str:
    _require(drivers, ["feature", "mean_abs_shap"], "global_drivers")
    frame = drivers.copy()
    if "share" not in frame:
        total = frame["mean_abs_shap"].sum()
        frame["share"] = frame["mean_abs_shap"] / total if total else float("nan")
    frame = frame.sort_values("mean_abs_shap", ascending=False, na_position="last", kind="stable")
    shares = pd.to_numeric(frame["share"], errors="coerce")
    top_share = float(shares.max()) if shares.notna().any() and shares.max() > 0 else 1.0
    rows = []
    for rank, row in enumerate(frame.itertuples(index=False), start=1):
        record = row._asdict()
        share = record.get("share")
        if _missing(share):
            share_cell = MISSING
        else:
            # the bar is relative to the top driver, so the ranking reads at a glance
            width = min(max(float(share) / top_share, 0.0), 1.0) * 100
            share_cell = (f'<span class="bar" aria-hidden="true"><span style="width:{width:.1f}%"></span></span>'
                          f'<span class="pct">{float(share):.1%}</span>')
        rows.append(
            f'<tr><td class="num">{rank}</td><td class="feature">{_fmt(record["feature"])}</td>'
            f'<td>{_fmt(record.get("description"))}</td>'
            f'<td class="num">{_fmt(record["mean_abs_shap"], decimals=3)}</td>'
            f'<td class="num">{share_cell}</td></tr>'
        )
    table = _table(["#", "Feature", "What it means", "Mean |SHAP|", "Share of total"], rows,
                   numeric={0, 3, 4}, empty="No drivers.")
    return (
        '<section id="global-drivers">\n<h2>What drives churn overall</h2>\n'
        '<p class="note">Features ranked by their mean absolute SHAP contribution across the explained customers.</p>\n'
        f'<div class="scroll">{table}</div>\n</section>'
    )


def _figures_section(figures: dict[str, bytes]) -> str:
    if not figures:
        return ""
    items = []
    for caption, data in figures.items():
        uri = f"data:{_image_mime(data)};base64,{base64.b64encode(bytes(data)).decode('ascii')}"
        items.append(f'<figure><img src="{uri}" alt="{_esc(caption)}"><figcaption>{_esc(caption)}</figcaption></figure>')
    return f'<section id="figures">\n<h2>Figures</h2>\n<div class="figures">{"".join(items)}</div>\n</section>'


def _segments_section(segments: pd.DataFrame) -> str:
    _require(segments, ["segment_kind", "segment", "customers", "feature", "mean_abs_shap"], "segments")
    parts = ['<section id="segments">', "<h2>Drivers by segment</h2>",
             '<p class="note">Mean |SHAP| of the top features in each segment; darker cells matter more.</p>']
    if segments.empty:
        parts.append('<p class="note">No segments.</p>')
    frame = segments.assign(
        segment_kind=[_label(v) for v in segments["segment_kind"]],
        segment=[_label(v) for v in segments["segment"]],
        feature=[_label(v) for v in segments["feature"]],
        mean_abs_shap=pd.to_numeric(segments["mean_abs_shap"], errors="coerce"),
    )
    for kind in _unique(frame["segment_kind"]):
        parts.append(_segment_matrix(kind, frame[frame["segment_kind"] == kind]))
    parts.append("</section>")
    return "\n".join(parts)


def _segment_matrix(kind: str, frame: pd.DataFrame) -> str:
    totals = frame.groupby("feature", sort=False)["mean_abs_shap"].sum()
    features = list(totals.sort_values(ascending=False, kind="stable").index[:SEGMENT_TOP_FEATURES])
    names = _unique(frame["segment"])
    cells = frame.groupby(["feature", "segment"], sort=False)["mean_abs_shap"].mean()
    customers = frame.groupby("segment", sort=False)["customers"].max()
    values = [cells.get((f, s)) for f in features for s in names]
    top = max((float(v) for v in values if not _missing(v)), default=0.0)

    header = ['<th>Feature</th>'] + [
        f'<th class="num">{_esc(name)}<small>n = {_fmt(customers.get(name))}</small></th>' for name in names
    ]
    rows = []
    for feature in features:
        tds = [f'<td class="feature">{_esc(feature)}</td>']
        for name in names:
            value = cells.get((feature, name))
            if _missing(value):
                tds.append(f'<td class="num">{MISSING}</td>')
                continue
            ratio = max(float(value), 0.0) / top if top > 0 else 0.0
            ink = "#ffffff" if ratio > 0.6 else "#1f2933"
            tds.append(f'<td class="num" style="background:rgba(37,99,235,{0.06 + 0.79 * ratio:.3f});color:{ink}">'
                       f"{float(value):.3f}</td>")
        rows.append(f"<tr>{''.join(tds)}</tr>")
    return (
        f'<h3>By {_esc(kind)}</h3>\n<div class="scroll"><table class="matrix" data-kind="{_esc(kind)}">'
        f"<thead><tr>{''.join(header)}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _at_risk_section(at_risk: pd.DataFrame, max_rows: int) -> str:
    _require(at_risk, ["customer_id", "churn_probability", "risk_tier"], "at_risk")
    reasons = sorted((c for c in at_risk.columns if _REASON_COLUMN.match(str(c))),
                     key=lambda c: int(_REASON_COLUMN.match(str(c)).group(1)))
    extra = reasons + (["protective"] if "protective" in at_risk.columns else [])
    frame = at_risk.assign(churn_probability=pd.to_numeric(at_risk["churn_probability"], errors="coerce"))
    frame = frame.sort_values("churn_probability", ascending=False, na_position="last", kind="stable")
    shown = frame.head(max_rows)

    rows = []
    for _, row in shown.iterrows():
        probability = row["churn_probability"]
        tds = [
            f'<td class="feature">{_fmt(row["customer_id"])}</td>',
            f'<td class="num">{MISSING if _missing(probability) else f"{float(probability):.1%}"}</td>',
            f"<td>{_tier(row['risk_tier'])}</td>",
        ]
        tds += [f'<td class="{"protective" if c == "protective" else "reason"}">{_fmt(row[c])}</td>' for c in extra]
        rows.append(f'<tr class="customer-row">{"".join(tds)}</tr>')
    headers = ["Customer", "Churn probability", "Risk tier"] + [
        "Protective" if c == "protective" else f"Reason {_REASON_COLUMN.match(c).group(1)}" for c in extra
    ]
    table = _table(headers, rows, numeric={1}, empty="No at-risk customers.", table_id="at-risk-table")
    total = len(frame)
    scope = (f"the {len(shown):,} with the highest churn probability of {total:,} at-risk customers"
             if len(shown) < total else f"all {total:,} at-risk customers")
    return (
        '<section id="at-risk">\n<h2>Customers at risk</h2>\n'
        f'<p class="note">Showing {scope}, most likely to churn first, with the reasons behind each score.</p>\n'
        '<div class="toolbar"><input id="search" type="search" placeholder="Search customers or reasons" '
        'aria-label="Search customers or reasons">'
        f'<span class="count"><span id="visible-count">{len(shown)}</span> of {len(shown):,} shown</span></div>\n'
        f'<div class="scroll">{table}</div>\n</section>'
    )


# --- helpers ----------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[str], *, numeric: set[int], empty: str, table_id: str | None = None) -> str:
    ths = "".join(f"<th{_NUM_CLASS if i in numeric else ''}>{_esc(h)}</th>" for i, h in enumerate(headers))
    if not rows:
        rows = [f'<tr class="empty"><td colspan="{len(headers)}">{_esc(empty)}</td></tr>']
    ident = f' id="{_esc(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _tier(value: Any) -> str:
    if _missing(value):
        return MISSING
    css = _TIER_CLASSES.get(str(value).strip().lower())
    return f'<span class="tier{f" tier-{css}" if css else ""}">{_esc(value)}</span>'


def _require(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {list(frame.columns)}")


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str | bytes):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # not a scalar
        return False


def _label(value: Any) -> str:
    return MISSING if _missing(value) else str(value)


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, decimals: int | None = None) -> str:
    """A value as escaped display text: missing -> em dash, numbers with thousands separators."""
    if _missing(value):
        return MISSING
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # numpy scalar -> Python
    if isinstance(value, bool):
        return _esc(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if decimals is not None:
            return f"{value:,.{decimals}f}"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, pd.Timestamp):
        return _esc(value.isoformat())
    return _esc(value)


def _image_mime(data: bytes) -> str:
    head = bytes(data[:16])
    if head.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.lstrip().startswith((b"<svg", b"<?xml")):
        return "image/svg+xml"
    return "image/png"
