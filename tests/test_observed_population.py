"""Who is observed at a cutoff depends only on what was known before it: a subscriber in a
payment lapse at the cutoff is not observed, even when they restart within the grace period
after it (the spells join the restart, but nobody knew of it at the cutoff). Hand-made."""

from datetime import datetime

import ibis
import pandas as pd

from churnml.data.engine import connect
from churnml.features.label_times import LabelSpec, SplitSpec, build_observations, label_rows, candidates


def _tables():
    connect()  # the default backend executes memtables
    customers = pd.DataFrame({"customer_id": ["L", "K"], "signup_date": pd.to_datetime(["2024-01-01"] * 2)})
    # L: ends Apr 28, restarts May 3 (within the 7-day grace): in a lapse on the May 1 cutoff.
    # K: ends Apr 28 and never comes back: churned before May 1, observed at Apr 1 with label 1.
    subscriptions = pd.DataFrame({
        "customer_id": ["L", "L", "K"],
        "start_date": pd.to_datetime(["2024-01-01", "2024-05-03", "2024-01-01"]),
        "end_date": pd.to_datetime(["2024-04-28", None, "2024-04-28"]),
    })
    events = pd.DataFrame({"customer_id": ["L"], "timestamp": pd.to_datetime(["2024-07-31"]), "event_type": ["x"]})
    return {name: ibis.memtable(frame) for name, frame in
            {"customers": customers, "subscriptions": subscriptions, "events": events}.items()}


def test_a_lapse_over_the_cutoff_is_not_observed_there():
    tables = _tables()
    spec = LabelSpec(definition="subscription", horizon_days=30, grace_days=7)
    obs, _ = build_observations(tables, spec, SplitSpec(test_cutoffs=1, valid_cutoffs=1, purge=False), freq="MS",
                                start=datetime(2024, 3, 1), end=datetime(2024, 6, 1))
    got = {(r.customer_id, f"{r.cutoff:%m-%d}", int(r.label)) for r in obs.itertuples()}
    # L: the lapse is joined by the grace period, so no churn at Apr 1; not observed on May 1,
    # where the restart was still in the future; observed again from Jun 1
    assert {c for c in got if c[0] == "L"} == {("L", "03-01", 0), ("L", "04-01", 0), ("L", "06-01", 0)}
    assert {c for c in got if c[0] == "K"} == {("K", "03-01", 0), ("K", "04-01", 1)}


def test_the_same_rule_at_a_scoring_date_with_or_without_the_future():
    """Scoring on May 1 with the data cut there and the labels' view of May 1 with all the data
    agree on who is observed (before, only the labels saw L's restart)."""
    tables = _tables()
    spec = LabelSpec(definition="subscription", horizon_days=30, grace_days=7)
    may = datetime(2024, 5, 1)
    rows = candidates(tables["customers"], [may])
    full = label_rows(tables, rows, spec, datetime(2024, 8, 1), "subscription").to_pandas()
    subs = tables["subscriptions"]
    cut = {**tables, "subscriptions": subs.filter(subs.start_date < may).mutate(
        end_date=ibis.ifelse(subs.end_date >= may, ibis.null("timestamp"), subs.end_date))}
    known = label_rows(cut, candidates(cut["customers"], [may]), spec, may, "subscription").to_pandas()
    assert set(full["customer_id"]) == set(known["customer_id"]) == set()
