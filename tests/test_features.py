"""Features on a tiny hand-made dataset, each expected value worked out by hand,
and a property test: rows at or after a cutoff never change that cutoff's features."""

import functools
import math

import ibis
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from churnml.data.engine import connect
from churnml.features.build import MAX_CUTOFFS_PER_PASS, build_features, feature_catalog, plan_features

ALL = dict(engagement=True, purchase=True, feedback=True, subscription=True, profile=True)


def T(values):
    return pd.to_datetime(values, format="ISO8601")


def frames():
    return dict(
        customers=pd.DataFrame({"customer_id": ["A", "B"], "signup_date": T(["2024-01-01", "2024-02-01"]),
                                "plan": ["basic", "pro"], "price": [10.0, 20.0]}),
        events=pd.DataFrame({
            "customer_id": ["A"] * 5,
            "timestamp": T(["2024-01-05 10:00", "2024-02-20 09:00", "2024-02-20 18:00", "2024-03-25 12:00", "2024-04-01 00:00"]),
            "event_type": ["login", "login", "view", "login", "login"],
            "value": [1.0, None, 2.0, 3.0, 100.0]}),
        orders=pd.DataFrame({"customer_id": ["A", "A", "B"], "timestamp": T(["2024-01-10", "2024-03-10", "2024-03-30"]),
                             "amount": [10.0, 30.0, 5.0]}),
        feedback=pd.DataFrame({"customer_id": ["A", "A", "A"], "timestamp": T(["2024-02-01", "2024-03-20", "2024-03-28"]),
                               "score": [9.0, 3.0, None], "kind": ["nps", "rating", "complaint"]}),
        subscriptions=pd.DataFrame({"customer_id": ["A", "A"], "start_date": T(["2024-01-01", "2024-03-01"]),
                                    "end_date": T(["2024-03-01", None]), "plan": ["basic", "pro"], "mrr": [10.0, 20.0]}),
    )


OBS = pd.DataFrame({"customer_id": ["A", "B", "A"], "cutoff": T(["2024-04-01", "2024-04-01", "2024-03-01"])})


def build(data, obs=OBS, families=ALL, spec=None):
    connect()
    tables = {k: ibis.memtable(v) for k, v in data.items()}
    spec = spec or plan_features(tables, families=families, windows=[7, 30, 90])
    out = build_features(tables, ibis.memtable(obs), spec).to_pandas()
    return out.set_index(["customer_id", out.cutoff.dt.strftime("%m-%d")]), spec


@pytest.fixture(scope="module")
def feats():
    return build(frames())[0]


def close(a, b):
    return (a is None or (isinstance(a, float) and math.isnan(a))) if b is None else a == pytest.approx(b)


HAND = {
    # A at Apr 1: events Jan 5, Feb 20 (x2), Mar 25 12:00; the event at Apr 1 00:00 is not before the cutoff
    ("A", "04-01"): dict(eng_events_7d=1, eng_events_30d=1, eng_events_90d=4, eng_active_days_90d=3,
                         eng_login_90d=3, eng_view_90d=1, eng_value_90d=6.0, eng_trend_30_60=(1 - 1.5) / 2.5,
                         eng_days_since_last_event=6.5,
                         pur_orders_30d=1, pur_spend_30d=30.0, pur_orders_total=2, pur_spend_total=40.0,
                         pur_days_since_last_order=22.0, pur_days_since_first_order=82.0, pur_mean_gap_days=60.0,
                         pur_overdue_ratio=22 / 60,
                         # logins Jan 5, Feb 20, Mar 25 of 4 events; views: Feb 20 18:00 only
                         eng_login_days_since_last=6.5, eng_view_days_since_last=40.25, eng_login_share_90d=0.75,
                         eng_view_trend_30_60=-1.0,
                         # spend 30 in the last 30 days, 10 in the 60 before (5 per 30 days)
                         pur_mean_spend_30d=30.0, pur_max_spend_90d=30.0, pur_std_gap_days=None,
                         pur_spend_trend_30_60=(30 - 5) / (30 + 5),
                         fb_count_7d=1, fb_mean_score_7d=None, fb_complaint_7d=1, fb_count_30d=2,
                         fb_mean_score_30d=3.0, fb_min_score_30d=3.0, fb_negative_share_30d=1.0,
                         fb_negative_share_90d=0.5, fb_mean_score_90d=6.0, fb_last_score=3.0, fb_days_since_last=4.0,
                         fb_days_since_last_negative=12.0, fb_nps_90d=1, fb_nps_promoter_90d=1, fb_nps_detractor_90d=0,
                         fb_score_trend_30_60=3.0 - 9.0,
                         # Mar 1: basic (10) ends and pro (20) starts the same day: a plan change, an upgrade
                         sub_active=1, sub_plan="pro", sub_mrr=20.0, sub_tenure_days=91.0, sub_plan_changes=1,
                         sub_upgrades_30d=0, sub_upgrades_90d=1, sub_downgrades_90d=0, sub_past_subscriptions=0,
                         sub_days_to_renewal=30.436875 - (31 - 30.436875),
                         prof_days_since_signup=91.0, prof_plan="basic", prof_price=10.0),
    # A at Mar 1: the first subscription ends on Mar 1 itself, so it still runs; the second starts then
    ("A", "03-01"): dict(eng_events_30d=2, eng_events_90d=3, eng_value_30d=2.0, eng_trend_30_60=(2 - 0.5) / 2.5,
                         eng_days_since_last_event=9.25, pur_orders_total=1, pur_mean_gap_days=None,
                         fb_last_score=9.0, sub_active=1, sub_plan="basic", sub_mrr=10.0, sub_plan_changes=0,
                         sub_days_to_renewal=30.436875 - (60 - 30.436875)),
    # B: no events, feedback or subscriptions: counts are 0, recencies and means are missing
    ("B", "04-01"): dict(eng_events_90d=0, eng_trend_30_60=None, eng_days_since_last_event=None,
                         pur_orders_7d=1, pur_days_since_last_order=2.0, pur_mean_gap_days=None,
                         fb_count_90d=0, fb_mean_score_90d=None, fb_last_score=None, fb_days_since_last=None,
                         sub_active=0, sub_plan_changes=0, sub_past_subscriptions=0, sub_mrr=0.0,
                         sub_tenure_days=None, sub_plan=None, sub_days_to_renewal=None, pur_spend_trend_30_60=(5 - 0) / 5,
                         prof_plan="pro", prof_price=20.0),
}


@pytest.mark.parametrize("row", list(HAND))
def test_hand_computed_values(feats, row):
    got = feats.loc[row]
    wrong = {k: (got[k], v) for k, v in HAND[row].items() if not close(got[k], v)}
    assert not wrong, f"{row}: (got, expected) {wrong}"


def test_columns_follow_the_catalog():
    feats, spec = build(frames())
    names = [info.name for info in feature_catalog(spec)]
    assert list(feats.columns) == ["cutoff", *names]
    assert len(names) == len(set(names))


def test_absent_tables_skip_their_families():
    data = {k: v for k, v in frames().items() if k in ("customers", "orders")}
    feats, spec = build(data)
    assert spec.families == ["purchase", "profile"]
    assert not [c for c in feats.columns if c.startswith(("eng_", "fb_", "sub_"))]
    assert feats.loc[("A", "04-01"), "pur_orders_total"] == 2


@pytest.mark.parametrize("present,families", [
    (("events", "subscriptions"), ["engagement", "subscription", "profile"]),
    (("feedback",), ["feedback", "profile"]),
])
def test_any_subset_of_tables_works(present, families):
    data = {k: v for k, v in frames().items() if k in ("customers", *present)}
    feats, spec = build(data)
    assert spec.families == families
    assert len(feats) == len(OBS)
    assert feats.loc[("B", "04-01"), "prof_price"] == 20.0


def test_families_can_be_switched_off():
    _, spec = build(frames(), families={**ALL, "feedback": False, "profile": False})
    assert spec.families == ["engagement", "purchase", "subscription"]


# ---- point in time: nothing at or after a cutoff may change that cutoff's features

CUTOFF = pd.Timestamp("2024-03-01")
offsets = st.integers(min_value=0, max_value=60 * 24 * 60)  # minutes at or after the cutoff
# Each example checks this many scenarios at once, each on its own copy of the customers (A~0,
# B~0, A~1, ...): a build costs the same for 2 customers or 6 (Ibis compiles the same query), and
# a feature of one customer reads only that customer's rows, so every copy is its own scenario.
SCENARIOS = 3


def _copies(tables, k):
    """`tables` with every customer_id renamed for scenario k."""
    return {name: frame.assign(customer_id=frame["customer_id"] + f"~{k}") for name, frame in tables.items()}


def _combined(scenarios):
    """One dataset holding each scenario's tables on its own copy of the customers."""
    copies = [_copies(tables, k) for k, tables in enumerate(scenarios)]
    return {name: pd.concat([c[name] for c in copies], ignore_index=True) for name in copies[0]}


OBS_AT_CUTOFF = pd.DataFrame({"customer_id": [f"{c}~{k}" for k in range(SCENARIOS) for c in "AB"],
                              "cutoff": CUTOFF})


@functools.cache
def _features_at_cutoff():
    """The fixture's features at CUTOFF on every copy, and their spec: the same for every example,
    so built once (the property compares each example's build against it; the frame is only read)."""
    feats, spec = build(_combined([frames()] * SCENARIOS), obs=OBS_AT_CUTOFF)
    return feats.sort_index(), spec


def _with_future_rows(shifts, amount, end_shift, drop_future):
    """The fixture with rows at or after CUTOFF added (and, with drop_future, the ones it had deleted)."""
    base = frames()
    future = [CUTOFF + pd.Timedelta(minutes=m) for m in shifts]
    n = len(future)
    added = dict(
        events=pd.DataFrame({"customer_id": ["B"] * n, "timestamp": future, "event_type": ["view"] * n, "value": amount}),
        orders=pd.DataFrame({"customer_id": ["B"] * n, "timestamp": future, "amount": amount}),
        feedback=pd.DataFrame({"customer_id": ["A"] * n, "timestamp": future, "score": 0.0, "kind": "complaint"}),
        subscriptions=pd.DataFrame({"customer_id": ["B"] * n, "start_date": future, "end_date": pd.NaT,
                                    "plan": "pro", "mrr": amount}),
    )
    changed = {k: pd.concat([v, added[k]], ignore_index=True) if k in added else v for k, v in base.items()}
    # A's open subscription now ends at or after the cutoff: the end is the future, unseen
    subs = changed["subscriptions"]
    subs.loc[subs.end_date.isna() & (subs.customer_id == "A"), "end_date"] = CUTOFF + pd.Timedelta(minutes=end_shift)
    if drop_future:  # delete the rows at or after the cutoff the fixture already had
        for name in ("events", "orders", "feedback"):
            frame = changed[name]
            changed[name] = frame[frame.timestamp < CUTOFF]
    return changed


scenario = st.fixed_dictionaries(dict(
    shifts=st.lists(offsets, min_size=1, max_size=4),
    amount=st.floats(min_value=0, max_value=1e4, allow_nan=False),
    end_shift=offsets,
    drop_future=st.booleans(),
))


@settings(max_examples=4, deadline=None)
# the edges: rows exactly at the cutoff, the subscription ending exactly at it, with and
# without the fixture's own future rows
@example(scenarios=[dict(shifts=[0], amount=0.0, end_shift=0, drop_future=False),
                    dict(shifts=[0, 1, 60 * 24 * 60], amount=1e4, end_shift=0, drop_future=True),
                    dict(shifts=[1], amount=5.0, end_shift=1, drop_future=False)])
@given(scenarios=st.lists(scenario, min_size=SCENARIOS, max_size=SCENARIOS))
def test_rows_at_or_after_the_cutoff_never_change_its_features(scenarios):
    before, spec = _features_at_cutoff()
    after, _ = build(_combined([_with_future_rows(**s) for s in scenarios]), obs=OBS_AT_CUTOFF, spec=spec)
    pd.testing.assert_frame_equal(before, after.sort_index())


def test_many_cutoffs_are_built_in_batches_with_the_same_values():
    # 15 distinct cutoffs, one per customer-day: more than one pass (MAX_CUTOFFS_PER_PASS = 12)
    days = pd.date_range("2024-03-01", periods=15, freq="D")
    assert len(days) > MAX_CUTOFFS_PER_PASS
    obs = pd.DataFrame({"customer_id": ["A", "B"] * 8, "cutoff": list(days) + [days[0]]}).drop_duplicates()
    together, spec = build(frames(), obs=obs)
    # days of both passes, built in one pass of their own (a build costs the same for one cutoff
    # or twelve; one pass over several cutoffs is what the hand-computed values check)
    some = obs[obs.cutoff.isin([days[0], days[7], days[14]])]
    alone, _ = build(frames(), obs=some, spec=spec)
    assert len(alone) == 4
    pd.testing.assert_frame_equal(together.loc[alone.index].sort_index(), alone.sort_index())
    assert len(together) == len(obs)


def test_chunks_of_customers_give_the_same_features(tmp_path):
    from churnml.features.build import write_features

    con = connect()
    tables = {k: ibis.memtable(v) for k, v in frames().items()}
    spec = plan_features(tables, families=ALL, windows=[7, 30, 90])
    observations = ibis.memtable(OBS)
    assert write_features(con, tables, observations, spec, tmp_path / "one.parquet") == 1
    assert write_features(con, tables, observations, spec, tmp_path / "two.parquet", customers_per_chunk=1) == 2
    one, two = (pd.read_parquet(tmp_path / f"{n}.parquet").sort_values(["customer_id", "cutoff"]).reset_index(drop=True)
                for n in ("one", "two"))
    pd.testing.assert_frame_equal(one, two)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.parquet", "two.parquet"]


def test_data_that_cannot_give_the_model_its_features_is_refused_by_name():
    from churnml.features.build import check_compatible

    connect()
    data = frames()
    spec = plan_features({k: ibis.memtable(v) for k, v in data.items()}, families=ALL, windows=[30])
    check_compatible(spec, {k: ibis.memtable(v) for k, v in data.items()})  # the training shape fits
    changed = {**data, "customers": data["customers"].assign(price=["ten", "twenty"])}
    changed["orders"] = changed["orders"].drop(columns="amount")
    del changed["feedback"]
    with pytest.raises(ValueError) as error:
        check_compatible(spec, {k: ibis.memtable(v) for k, v in changed.items()})
    message = str(error.value)
    assert "customers.price is string but the model was trained with it as numeric (features: prof_price)" in message
    assert "orders.amount is missing, needed by pur_orders_30d" in message
    assert "table 'feedback' is missing, needed by" in message
