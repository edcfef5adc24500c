"""Retention-report benchmark: every measure of `churnml report` on a large base, in bounded memory.

The report's measures (churn per month over every month start, the cohort matrix, purchase
measures, historical and predicted CLV, the segment table) are computed from the generated
dataset's raw tables with the project's engine settings, then written. The scores are synthetic
(a seeded Beta draw of probabilities and Gamma of values for every customer): the report reads
scores, it does not make them, and `benchmarks/score.py` times scoring. The run is a child
process, so its peak RSS is its own.

    python benchmarks/retention.py                       # 1M customers, ~100M events
    python benchmarks/retention.py --customers 200000    # a quicker run
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE))

import harness  # noqa: E402


def run_report(customers: int) -> dict:
    import numpy as np
    import pandas as pd

    from churnml.data.contract import mappings_from_config, open_raw_tables
    from churnml.features.label_times import LabelSpec, observed_until
    from churnml.retention.report import ClvSpec, build_retention, write_retention
    from features import dataset  # the feature benchmark's generator cache

    folder = dataset(customers)
    con, engine = harness.project_engine()  # the project's own engine settings
    tables = open_raw_tables(con, folder, mappings_from_config({n: {} for n in (
        "customers", "events", "orders", "feedback", "subscriptions")}))
    ids = tables["customers"].select("customer_id").to_pandas()["customer_id"].astype(str)
    rng = np.random.default_rng(0)
    scores = pd.DataFrame({"customer_id": ids, "churn_probability": rng.beta(1, 20, len(ids)),
                           "customer_value": rng.gamma(2.0, 300.0, len(ids)),
                           "risk_tier": "low"})
    scores["value_at_risk"] = scores["churn_probability"] * scores["customer_value"]
    events, floor_s = harness.events_floor(con, folder)
    started = time.perf_counter()
    result = build_retention(tables, scores, spec=LabelSpec(definition="hybrid", horizon_days=30),
                             until=observed_until(tables), segments=["plan", "country", "channel"],
                             recent_months=12, clv=ClvSpec(), value_months=12)
    built = time.perf_counter()
    out = DATA / "retention_out"
    write_retention(result, out, out / "retention.json")
    wall_s = round(time.perf_counter() - started, 2)
    return {"customers": customers, "events": events, "months": int(len(result.churn)),
            "cohorts": int(len(result.cohorts)), "wall_s": wall_s,
            "phases": {"measures": round(built - started, 2), "write": round(time.perf_counter() - built, 2)},
            "floor_s": floor_s, "wall_over_floor": round(wall_s / floor_s, 1), "memory_limit": engine["memory_limit"],
            "headline": result.headline}


if __name__ == "__main__":
    harness.main(__file__, __doc__, "retention", run_report)
