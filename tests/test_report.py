"""The HTML churn-drivers report: structure, escaping, ordering, the segment matrix, atomic writes."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import png

from churnml.explain.drivers_report import MISSING, render_report, write_report

ONE_PIXEL = png(1, 1)
XSS = "<script>alert(1)</script>"


def _inputs(n_at_risk: int = 6) -> dict:
    drivers = pd.DataFrame({
        "feature": ["tickets_90d", "eng_events_30d", "plan_price"],
        "description": ["Support tickets in the last 90 days", "Product events in the last 30 days", np.nan],
        "mean_abs_shap": [0.2, 0.5, 0.3],
        "share": [0.2, 0.5, 0.3],
    })
    segments = pd.DataFrame(
        [
            ("plan", "Basic", 120, "eng_events_30d", 0.40),
            ("plan", "Basic", 120, "tickets_90d", 0.10),
            ("plan", "Pro", 80, "eng_events_30d", 0.20),
            ("plan", "Pro", 80, "tickets_90d", 0.30),
            ("plan", "Pro", 80, "plan_price", 0.05),
            ("tenure band", "0-6m", 50, "tenure_months", 0.70),
            ("tenure band", "6m+", 150, "tenure_months", 0.10),
        ],
        columns=["segment_kind", "segment", "customers", "feature", "mean_abs_shap"],
    )
    rng = np.random.default_rng(7)
    at_risk = pd.DataFrame({
        "customer_id": [f"C-{i:06d}" for i in range(n_at_risk)],
        "churn_probability": rng.permutation(np.linspace(0.5, 0.95, n_at_risk)),
        "risk_tier": ["high"] * n_at_risk,
        "reason_1": ["No product activity in 30 days"] * n_at_risk,
        "reason_2": ["3 support tickets in 90 days"] * n_at_risk,
        "reason_1_feature": ["eng_events_30d"] * n_at_risk,  # detail columns are not shown
        "protective": ["Annual contract"] * n_at_risk,
    })
    at_risk.loc[0, "reason_2"] = XSS
    at_risk.loc[1, "reason_2"] = np.nan
    return {
        "title": "Churn drivers <v3>",
        "summary": {"Model version": "3", "As of": "2024-06-30", "Customers explained": 12345, "AUC": float("nan")},
        "global_drivers": drivers,
        "figures": {"SHAP beeswarm": ONE_PIXEL},
        "segments": segments,
        "at_risk": at_risk,
    }


class _Tables(HTMLParser):
    """Each table as rows of (tag attributes, cell texts), keyed by position and by id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self._stack: list[dict] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._stack.append({"attrs": attrs, "rows": []})
        elif tag == "tr" and self._stack:
            self._stack[-1]["rows"].append((attrs, []))
        elif tag in ("td", "th") and self._stack:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._stack:
            self._stack[-1]["rows"][-1][1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table" and self._stack:
            self.tables.append(self._stack.pop())

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _tables(html: str) -> list[dict]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def _table(html: str, **attrs) -> dict:
    found = [t for t in _tables(html) if all(t["attrs"].get(k) == v for k, v in attrs.items())]
    assert len(found) == 1, f"expected one table with {attrs}, found {len(found)}"
    return found[0]


def _customer_rows(html: str) -> list[list[str]]:
    return [cells for attrs, cells in _table(html, id="at-risk-table")["rows"] if attrs.get("class") == "customer-row"]


def test_stable_ids_title_and_summary():
    html = render_report(**_inputs())
    for ident in ("summary", "global-drivers", "segments", "at-risk", "at-risk-table", "search", "visible-count"):
        assert html.count(f'id="{ident}"') == 1, ident
    assert "<title>Churn drivers &lt;v3&gt;</title>" in html
    assert "<h1>Churn drivers &lt;v3&gt;</h1>" in html
    assert '<input id="search" type="search" placeholder="Search customers or reasons"' in html
    assert "<dt>Customers explained</dt><dd>12,345</dd>" in html
    assert f"<dt>AUC</dt><dd>{MISSING}</dd>" in html


def test_user_text_is_escaped_and_missing_is_a_dash():
    html = render_report(**_inputs())
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script>") == 1  # only the report's own filter script
    rows = {cells[0]: cells for cells in _customer_rows(html)}
    assert rows["C-000001"][4] == MISSING  # reason_2 is NaN
    assert rows["C-000000"][4] == XSS  # the parser unescapes: the text shows as typed
    plan_price = [cells for attrs, cells in _tables(html)[0]["rows"] if cells[1] == "plan_price"]
    assert plan_price[0][2] == MISSING  # description is NaN


def test_figures_are_embedded_as_data_uris():
    html = render_report(**_inputs())
    uri = f'src="data:image/png;base64,{base64.b64encode(ONE_PIXEL).decode()}"'
    assert uri in html
    assert "<figcaption>SHAP beeswarm</figcaption>" in html


def test_no_external_resources():
    html = render_report(**_inputs())
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, flags=re.I)
    assert "http://" not in html and "https://" not in html
    assert "<link" not in html and "@import" not in html


def test_global_drivers_ranked_with_bars():
    html = render_report(**_inputs())
    table = _tables(html)[0]
    body = [cells for attrs, cells in table["rows"][1:]]
    assert [cells[1] for cells in body] == ["eng_events_30d", "plan_price", "tickets_90d"]
    assert [cells[3] for cells in body] == ["0.500", "0.300", "0.200"]
    assert body[0][4] == "50.0%"
    # the bar is relative to the top driver
    assert 'style="width:100.0%"' in html and 'style="width:40.0%"' in html


@pytest.mark.parametrize("n, max_rows", [(6, 500), (6, 4), (6, 0), (0, 500)])
def test_at_risk_rows_capped_and_sorted(n, max_rows):
    inputs = _inputs(n_at_risk=max(n, 2))
    if n == 0:
        inputs["at_risk"] = inputs["at_risk"].iloc[0:0]
    html = render_report(**inputs, max_rows=max_rows)
    rows = _customer_rows(html)
    assert len(rows) == min(n, max_rows)
    probabilities = [float(cells[1].rstrip("%")) for cells in rows]
    assert probabilities == sorted(probabilities, reverse=True)
    assert f'<span id="visible-count">{len(rows)}</span>' in html
    if rows:
        top = inputs["at_risk"].sort_values("churn_probability", ascending=False).iloc[0]
        assert rows[0][0] == top["customer_id"]
        assert rows[0][1] == f"{top['churn_probability']:.1%}"
        # customer, probability, tier, reason 1, reason 2, protective: detail columns are left out
        assert len(rows[0]) == 6


def test_at_risk_header_lists_reasons_in_order():
    inputs = _inputs()
    at_risk = inputs["at_risk"]
    inputs["at_risk"] = at_risk.assign(reason_10="tenth")[["reason_10"] + list(at_risk.columns)]
    table = _table(render_report(**inputs), id="at-risk-table")
    assert table["rows"][0][1] == ["Customer", "Churn probability", "Risk tier", "Reason 1", "Reason 2",
                                   "Reason 10", "Protective"]


def test_segment_matrix_cells():
    html = render_report(**_inputs())
    plan = _table(html, **{"class": "matrix", "data-kind": "plan"})
    header, *body = [cells for attrs, cells in plan["rows"]]
    assert header == ["Feature", "Basicn = 120", "Pron = 80"]
    # rows by total mean |SHAP| across the plan segments: 0.6, 0.4, 0.05
    assert body == [
        ["eng_events_30d", "0.400", "0.200"],
        ["tickets_90d", "0.100", "0.300"],
        ["plan_price", MISSING, "0.050"],
    ]
    tenure = _table(html, **{"class": "matrix", "data-kind": "tenure band"})
    assert [cells for attrs, cells in tenure["rows"]][1] == ["tenure_months", "0.700", "0.100"]
    # heat: the largest cell of a kind is the darkest
    assert "rgba(37,99,235,0.850)" in html
    assert html.index("<h3>By plan</h3>") < html.index("<h3>By tenure band</h3>")


def test_segment_matrix_keeps_top_eight_features():
    rows = [("country", seg, 10, f"f{i}", float(i)) for seg in ("DE", "FR") for i in range(12)]
    inputs = _inputs()
    inputs["segments"] = pd.DataFrame(rows, columns=["segment_kind", "segment", "customers", "feature", "mean_abs_shap"])
    table = _table(render_report(**inputs), **{"class": "matrix"})
    assert [cells[0] for attrs, cells in table["rows"][1:]] == [f"f{i}" for i in range(11, 3, -1)]


def test_missing_columns_are_reported():
    inputs = _inputs()
    inputs["at_risk"] = inputs["at_risk"].drop(columns="risk_tier")
    with pytest.raises(ValueError, match="risk_tier"):
        render_report(**inputs)


def test_write_report_is_atomic(tmp_path):
    html = render_report(**_inputs())
    target = tmp_path / "out" / "churn_drivers.html"
    target.parent.mkdir()
    target.write_text("old")
    assert write_report(html, target) == target
    assert target.read_text(encoding="utf-8") == html
    assert sorted(p.name for p in target.parent.iterdir()) == ["churn_drivers.html"]  # no temp files left


def test_write_report_failure_keeps_previous(tmp_path, monkeypatch):
    target = tmp_path / "churn_drivers.html"
    target.write_text("previous report")

    def crash(self, text, *args, **kwargs):
        with open(self, "w") as handle:
            handle.write(text[:10])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", crash)
    with pytest.raises(OSError, match="disk full"):
        write_report(render_report(**_inputs()), target)
    monkeypatch.undo()
    assert target.read_text() == "previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["churn_drivers.html"]
