"""The expressions that once relied on DuckDB-only behaviour, held to hand-computed values on DuckDB.

On Spark they gave silently wrong values (a 32-bit day bitmask, decimal division rounded to 7
places, decimal sums rounded to 6) or did not compile (ASOF join, bit_or). They are now portable
Ibis; these tests pin the values on DuckDB, and tests/test_spark.py holds Spark to the same.
"""

from datetime import datetime, timedelta

import ibis
import pandas as pd
import pytest

from churnml.data.engine import connect
from churnml.features.build import build_features, plan_features
from churnml.features.label_times import LabelSpec, activity_in_windows

CUTOFF = datetime(2024, 6, 1)


def T(values):
    return pd.to_datetime(values, format="ISO8601")


def features(data: dict, families: dict, obs: pd.DataFrame | None = None) -> pd.DataFrame:
    connect()
    tables = {k: ibis.memtable(v) for k, v in data.items()}
    obs = obs if obs is not None else pd.DataFrame({"customer_id": ["A"], "cutoff": T([CUTOFF])})
    spec = plan_features(tables, families=families, windows=[7, 30, 90])
    out = build_features(tables, ibis.memtable(obs), spec).to_pandas()
    return out.set_index("customer_id")


def customers(ids=("A",)) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": list(ids), "signup_date": T(["2023-01-01"] * len(ids))})


@pytest.mark.parametrize("days", [31, 32, 40, 63, 64, 85])
def test_active_days_count_every_day_past_32(days):
    """A 1 << day-number bitmask counted at most 32 days once a shift became 32-bit; the count
    of distinct days has no width. Two events on one day count once."""
    stamps = [CUTOFF - timedelta(days=d) + timedelta(hours=3) for d in range(1, days + 1)]
    stamps.append(stamps[0] + timedelta(hours=2))  # a second event on the latest day
    events = pd.DataFrame({"customer_id": "A", "timestamp": T(stamps), "event_type": "login"})
    out = features({"customers": customers(), "events": events}, {"engagement": True})
    assert out.loc["A", "eng_active_days_90d"] == days
    assert out.loc["A", "eng_active_days_30d"] == min(days, 30)
    assert out.loc["A", "eng_events_90d"] == days + 1


def test_days_since_keep_every_second():
    """Seconds / 86400 as a float: a decimal division rounded to 7 places lost the last bits."""
    last = CUTOFF - timedelta(days=3, seconds=7)
    events = pd.DataFrame({"customer_id": ["A"], "timestamp": T([last]), "event_type": ["login"]})
    out = features({"customers": customers(), "events": events}, {"engagement": True})
    assert out.loc["A", "eng_days_since_last_event"] == (3 * 86400 + 7) / 86400.0


def test_spread_of_purchase_gaps_from_whole_seconds():
    """Gaps of 1 day + 1 s and 3 days: the spread sums squared whole seconds exactly."""
    stamps = [datetime(2024, 5, 1), datetime(2024, 5, 2, 0, 0, 1), datetime(2024, 5, 5, 0, 0, 1)]
    orders = pd.DataFrame({"customer_id": "A", "timestamp": T(stamps), "amount": [1.0, 2.0, 3.0]})
    out = features({"customers": customers(), "orders": orders}, {"purchase": True})
    gaps = [86401 / 86400.0, 3.0]
    mean = (86401 + 3 * 86400) / 86400.0 / 2
    variance = (86401 ** 2 + (3 * 86400) ** 2) / (86400.0 * 86400.0) / 2 - mean * mean
    assert out.loc["A", "pur_mean_gap_days"] == pytest.approx(sum(gaps) / 2, rel=1e-15)
    assert out.loc["A", "pur_std_gap_days"] == pytest.approx(variance ** 0.5, rel=1e-12)


def test_no_plan_where_no_subscription_runs():
    """B's only subscription ended before the cutoff: no plan, whatever the engine's arg_max takes."""
    subs = pd.DataFrame({"customer_id": ["A", "B"], "start_date": T(["2024-01-01", "2024-01-01"]),
                         "end_date": T([None, "2024-03-01"]), "plan": ["pro", "basic"], "mrr": [20.0, 10.0]})
    obs = pd.DataFrame({"customer_id": ["A", "B"], "cutoff": T([CUTOFF, CUTOFF])})
    out = features({"customers": customers(("A", "B")), "subscriptions": subs}, {"subscription": True}, obs)
    assert out.loc["A", "sub_plan"] == "pro"
    assert pd.isna(out.loc["B", "sub_plan"])
    assert out.loc["B", "sub_active"] == 0


def test_activity_windows_include_their_start_and_exclude_their_end():
    """The ASOF join's replacement, at its edges: activity at the cutoff itself is not before it
    but opens the label window (lead 0); activity at the window's end is outside it."""
    connect()
    cutoff = datetime(2024, 3, 1)
    rows = ibis.memtable(pd.DataFrame({"customer_id": ["A", "B", "C", "D"], "cutoff": T([cutoff] * 4),
                                       "signup_date": T(["2023-01-01"] * 4)}))
    activity = ibis.memtable(pd.DataFrame({
        "customer_id": ["A", "B", "B", "C", "C", "C"],
        "ts": T(["2024-03-01", "2024-01-31", "2024-03-30 23:59:59", "2024-01-30 23:59:59", "2024-02-29 23:59:59",
                 "2024-03-31"]),
    }))
    spec = LabelSpec(definition="inactivity", horizon_days=30, lead_days=0)
    out = activity_in_windows(rows, activity, spec).to_pandas().set_index("customer_id")
    # before: [Jan 31, Mar 1); within: [Mar 1, Mar 31)
    assert out["before"].to_dict() == {"A": 0, "B": 1, "C": 1, "D": 0}
    assert out["within"].to_dict() == {"A": 1, "B": 1, "C": 0, "D": 0}
