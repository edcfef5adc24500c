"""Label times on a tiny hand-made dataset, every answer worked out by hand.

Customers (data observed until 2024-07-01, monthly cutoffs Feb 1 .. Jul 1, horizon 30 days,
grace 7 days, active window 30 days):
- A (subscription): ends 2024-03-10, restarts 2024-03-14 (within grace), still open -> never churns.
- B (subscription): one subscription 2024-01-01 .. 2024-04-15 -> churns in the Apr 1 window.
- C (pay as you go): events Jan 20, Feb 10, Mar 5, May 20, Jun 25 -> churns at Apr 1, inactive at
  May 1 (not observed), back by Jun 1.
- D (pay as you go): signs up Mar 20; events Mar 25, Apr 2, Jun 30 -> churns at May 1.
"""

from datetime import datetime

import ibis
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from churnml.data.engine import connect
from churnml.features.label_times import LabelSpec, SplitSpec, build_observations, subscription_spells

T = pd.Timestamp


@pytest.fixture()
def tables():
    connect()  # the default backend executes memtables
    customers = pd.DataFrame(
        {"customer_id": ["A", "B", "C", "D"],
         "signup_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-15", "2024-03-20"])}
    )
    subscriptions = pd.DataFrame(
        {"customer_id": ["A", "A", "B"],
         "start_date": pd.to_datetime(["2024-01-01", "2024-03-14", "2024-01-01"]),
         "end_date": pd.to_datetime(["2024-03-10", None, "2024-04-15"])}
    )
    events = pd.DataFrame(
        {"customer_id": ["C"] * 5 + ["D"] * 3,
         "timestamp": pd.to_datetime(["2024-01-20 10:00", "2024-02-10 00:00", "2024-03-05 00:00", "2024-05-20 00:00",
                                      "2024-06-25 00:00", "2024-03-25 00:00", "2024-04-02 00:00", "2024-06-30 23:00"]),
         "event_type": ["login"] * 8}
    )
    return {name: ibis.memtable(frame) for name, frame in
            {"customers": customers, "subscriptions": subscriptions, "events": events}.items()}


def build(tables, split=SplitSpec(test_cutoffs=1, valid_cutoffs=1), **spec):
    return build_observations(
        tables, LabelSpec(**{"definition": "hybrid", "activity_tables": ("events",), **spec}), split,
        freq="MS", start=datetime(2024, 2, 1),
    )


def as_set(frame):
    return {(r.customer_id, f"{r.cutoff:%m-%d}", int(r.label)) for r in frame.itertuples()}


def test_hybrid_labels_match_hand_computed(tables):
    obs, summary = build(tables)
    assert as_set(obs) == {
        ("A", "02-01", 0), ("A", "03-01", 0), ("A", "04-01", 0),
        ("B", "02-01", 0), ("B", "03-01", 0), ("B", "04-01", 1),
        ("C", "02-01", 0), ("C", "03-01", 0), ("C", "04-01", 1), ("C", "06-01", 0),
        ("D", "04-01", 0),
    }
    assert summary.observed_until == "2024-07-01"
    # A Jun 1, A Jul 1, C Jul 1, D Jul 1: windows (plus grace for A) not yet observed
    assert summary.counts["unlabelled_window_not_observed"] == 4
    # A May 1: its label is only known on Jun 7 (window + grace), after the first test cutoff,
    # so the whole May 1 cutoff (A and D) is purged
    assert summary.counts["purged_label_overlaps_test"] == 2
    definitions = dict(zip(obs.customer_id, obs.definition))
    assert definitions == {"A": "subscription", "B": "subscription", "C": "inactivity", "D": "inactivity"}


def test_split_is_by_time(tables):
    obs, _ = build(tables)
    split = {(r.customer_id, f"{r.cutoff:%m-%d}"): r.split for r in obs.itertuples()}
    assert split[("C", "06-01")] == "test"
    assert {s for (c, d), s in split.items() if d == "04-01"} == {"valid"}
    assert {s for (c, d), s in split.items() if d in {"02-01", "03-01"}} == {"train"}
    # every train cutoff precedes every valid cutoff, which precede every test cutoff
    by = obs.groupby("split").cutoff
    assert by.max()["train"] < by.min()["valid"] <= by.max()["valid"] < by.min()["test"]


def test_grace_period_joins_a_quick_restart(tables):
    spells = subscription_spells(tables["subscriptions"], grace_days=7).to_pandas()
    assert len(spells[spells.customer_id == "A"]) == 1
    no_grace = subscription_spells(tables["subscriptions"], grace_days=2).to_pandas()
    assert len(no_grace[no_grace.customer_id == "A"]) == 2
    # without grace A's first subscription ends on Mar 10: a churn in the Mar 1 window
    obs, _ = build(tables, grace_days=2)
    assert ("A", "03-01", 1) in as_set(obs)


def test_subscription_definition_observes_only_contract_customers(tables):
    obs, _ = build(tables, definition="subscription")
    assert set(obs.customer_id) == {"A", "B"}


def test_inactivity_definition_for_everyone(tables):
    obs, _ = build(tables, definition="inactivity")
    # A and B have no events at all: never active under inactivity
    assert set(obs.customer_id) == {"C", "D"}


def test_lead_shifts_the_window_and_churn_during_lead_is_counted(tables):
    no_purge = SplitSpec(test_cutoffs=1, valid_cutoffs=1, purge=False)
    obs, _ = build(tables, split=no_purge, lead_days=10)
    labels = as_set(obs)
    assert ("B", "04-01", 1) in labels  # window Apr 11 .. May 11 holds Apr 15
    obs, summary = build(tables, split=no_purge, lead_days=20)
    # B ends Apr 15, inside the lead (Apr 1 .. Apr 21): excluded from the Apr 1 cutoff, and counted
    assert not any(c == "B" and d == "04-01" for c, d, _ in as_set(obs))
    assert summary.counts["excluded_churned_during_lead"] >= 1


def test_custom_label_times(tables):
    custom = pd.DataFrame(
        {"customer_id": ["A", "C", "D", "B"],
         "cutoff": pd.to_datetime(["2024-02-15", "2024-03-20", "2024-04-10 16:30", "2024-02-20"], format="ISO8601"),
         "label": [1, None, 0, None]}
    )
    obs, summary = build_observations(
        tables, LabelSpec(definition="custom", fallback="inactivity", activity_tables=("events",)),
        SplitSpec(test_fraction=0.25, valid_fraction=0.25, purge=False), custom=custom,
    )
    got = {(r.customer_id, f"{r.cutoff:%m-%d}"): (int(r.label), r.definition) for r in obs.itertuples()}
    # user labels are taken as given; C at Mar 20 is labelled by inactivity: next event May 20 > Apr 19
    assert got == {("A", "02-15"): (1, "custom"), ("C", "03-20"): (1, "inactivity"), ("D", "04-10"): (0, "custom")}
    # B has no label and no events: inactivity cannot observe it, and that is counted
    assert summary.counts["custom_rows_not_labelled"] == 1
    assert obs.loc[obs.customer_id == "D", "split"].item() == "test"
    # D's cutoff had a time of day: it moves back to midnight, and that is counted
    assert obs.loc[obs.customer_id == "D", "cutoff"].item() == pd.Timestamp("2024-04-10")
    assert summary.counts["custom_cutoffs_moved_to_midnight"] == 1
    # with purging, C's label (known on Apr 19) reaches past the test start (Apr 10): purged,
    # which leaves no train rows, and the split is refused saying so
    with pytest.raises(ValueError, match=r"the purge removed 1 \(2024-03-20\).*train got 0"):
        build_observations(
            tables, LabelSpec(definition="custom", fallback="inactivity", activity_tables=("events",)),
            SplitSpec(test_fraction=0.25, valid_fraction=0.25), custom=custom,
        )


def test_custom_label_times_reject_unknown_customers(tables):
    custom = pd.DataFrame({"customer_id": ["Z"], "cutoff": pd.to_datetime(["2024-02-15"]), "label": [1]})
    with pytest.raises(ValueError, match="unknown customer"):
        build_observations(tables, LabelSpec(definition="custom"), SplitSpec(), custom=custom)


def _inactivity_by_hand(customers, events, cutoffs, spec, until):
    """The inactivity definition, row by row: observed when active in the window before the
    cutoff (or signed up in it); churned when nothing happens in [cutoff+lead, +horizon)."""
    out = set()
    for c in customers.itertuples():
        times = events.loc[events["customer_id"] == c.customer_id, "timestamp"]
        for cutoff in cutoffs:
            since = cutoff - pd.Timedelta(days=spec.active_window)
            if c.signup_date >= cutoff:
                continue
            if not (((times >= since) & (times < cutoff)).any() or c.signup_date >= since):
                continue
            start = cutoff + pd.Timedelta(days=spec.lead_days)
            end = start + pd.Timedelta(days=spec.horizon_days)
            if end > until:
                continue  # the label is not known yet
            out.add((c.customer_id, cutoff, int(not ((times >= start) & (times < end)).any())))
    return out


# Each example is one query (its compile is most of the cost), so it holds two groups of six
# customers, c0..c5 and c6..c11, each with its own signups and events drawn as the test drew them
# for six: 40 examples check as many groups as 80 of one
GROUPS, PER_GROUP = 2, 6
CUSTOMERS = GROUPS * PER_GROUP
# events cluster around the cutoffs (month m, d days off), where the edge cases are
group_events = st.lists(st.tuples(st.integers(0, PER_GROUP - 1), st.integers(0, 4), st.integers(-40, 40),
                                  st.integers(0, 23)), max_size=15)


@settings(max_examples=40, deadline=None)
# active just before the first cutoff and back one day after it: not churned at that cutoff
@example(days=[(0, 0, -7, 0), (0, 0, 1, 0)], signups=[0] * CUSTOMERS, window=30, horizon=30, lead=0)
@given(
    days=st.tuples(*[group_events] * GROUPS).map(
        lambda groups: [(g * PER_GROUP + c, m, d, h) for g, events in enumerate(groups) for c, m, d, h in events]),
    signups=st.lists(st.integers(-30, 150), min_size=CUSTOMERS, max_size=CUSTOMERS),
    window=st.integers(5, 60), horizon=st.integers(5, 60), lead=st.integers(0, 20),
)
def test_inactivity_labels_match_the_definition_row_by_row(days, signups, window, horizon, lead):
    from churnml.features.label_times import candidates, label_rows

    connect()
    origin = T("2024-01-01")
    customers = pd.DataFrame({"customer_id": [f"c{i}" for i in range(CUSTOMERS)],
                              "signup_date": [origin + pd.Timedelta(days=d) for d in signups]})
    cutoffs = [T("2024-02-01"), T("2024-03-01"), T("2024-04-01"), T("2024-05-01"), T("2024-06-01")]
    events = pd.DataFrame({"customer_id": [f"c{c}" for c, _, _, _ in days],
                           "timestamp": [cutoffs[m] + pd.Timedelta(days=d, hours=h) for _, m, d, h in days]},
                          ).astype({"customer_id": "string", "timestamp": "datetime64[us]"})
    until = T("2024-07-20")
    spec = LabelSpec(definition="inactivity", activity_tables=("events",), active_window_days=window,
                     horizon_days=horizon, lead_days=lead)
    tables = {"customers": ibis.memtable(customers), "events": ibis.memtable(events)}
    rows = label_rows(tables, candidates(tables["customers"], list(cutoffs)), spec, until, "inactivity").to_pandas()
    known = rows[rows["label_known"]]
    got = {(r.customer_id, T(r.cutoff), int(r.label)) for r in known.itertuples()}
    assert got == _inactivity_by_hand(customers, events, cutoffs, spec, until)
