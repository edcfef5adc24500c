"""Purchase-process (buy till you die) features: hand-computed summaries, the BG/NBD fit and
closed forms against simulated customers with known parameters, point in time, and chunking."""

import functools
import math

import ibis
import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from churnml.data.engine import connect
from churnml.features import btyd
from churnml.features.build import build_features, check_compatible, feature_catalog, plan_features, write_features

FAMILIES = dict(purchase=True, purchase_process=True, profile=True)
H = 30


def T(values):
    return pd.to_datetime(values, format="ISO8601")


def frames():
    # A: purchase days Jan 1, Jan 11 (two orders), Jan 31, Mar 1 -> gaps 10, 20, 30
    # B: one purchase, Mar 20; C: no orders at all
    return dict(
        customers=pd.DataFrame({"customer_id": ["A", "B", "C"], "signup_date": T(["2023-12-01"] * 3)}),
        orders=pd.DataFrame({
            "customer_id": ["A", "A", "A", "A", "A", "B"],
            "timestamp": T(["2024-01-01 09:00", "2024-01-11 08:00", "2024-01-11 20:00", "2024-01-31 12:00",
                            "2024-03-01 10:00", "2024-03-20 15:00"]),
            "amount": [10.0, 5.0, 5.0, 20.0, 8.0, 3.0]}),
    )


OBS = pd.DataFrame({"customer_id": ["A", "B", "C", "A"], "cutoff": T(["2024-04-01", "2024-04-01", "2024-04-01", "2024-02-15"])})


def build(data, obs=OBS, spec=None):
    connect()
    tables = {k: ibis.memtable(v) for k, v in data.items()}
    spec = spec or plan_features(tables, families=FAMILIES, windows=[30], horizon_days=H)
    out = build_features(tables, ibis.memtable(obs), spec).to_pandas()
    return out.set_index(["customer_id", out.cutoff.dt.strftime("%m-%d")]).sort_index(), spec


def missing(v):
    return v is None or (isinstance(v, float) and math.isnan(v))


def test_hand_computed_summary_ratio_and_own_gap_probability():
    feats, spec = build(frames())
    a = feats.loc[("A", "04-01")]
    # 4 purchase days (the two Jan 11 orders are one) -> x = 3; t_x = Jan 1 -> Mar 1 = 60; T = Jan 1 -> Apr 1 = 91
    assert (a.ppr_repeat_purchases, a.ppr_days_first_to_last, a.ppr_days_since_first) == (3, 60, 91)
    # 31 days since the last purchase day, mean gap 60 / 3 = 20
    assert a.ppr_overdue_ratio == pytest.approx(31 / 20)
    # gaps 10, 20, 30; none longer than the 31 days already waited -> 0 by definition
    assert a.ppr_own_gap_p_next_30d == 0.0
    early = feats.loc[("A", "02-15")]
    # at Feb 15: days Jan 1, 11, 31 -> x = 2, t_x = 30, T = 45, waited 15; gaps 10, 20:
    # longer than 15: {20}; of those <= 15 + 30: {20} -> 1/1
    assert (early.ppr_repeat_purchases, early.ppr_days_first_to_last, early.ppr_days_since_first) == (2, 30, 45)
    assert early.ppr_overdue_ratio == pytest.approx(15 / 15)
    assert early.ppr_own_gap_p_next_30d == 1.0
    b = feats.loc[("B", "04-01")]
    # one purchase: x = 0, T = 12 days (Mar 20 -> Apr 1); no gaps -> ratio and own-gap missing; BG/NBD P(alive) = 1
    assert (b.ppr_repeat_purchases, b.ppr_days_first_to_last, b.ppr_days_since_first) == (0, 0, 12)
    assert missing(b.ppr_overdue_ratio) and missing(b.ppr_own_gap_p_next_30d)
    assert b.ppr_p_alive == 1.0
    # C never bought: the whole family is missing, never 0
    c = feats.loc[("C", "04-01")]
    assert all(missing(c[n]) for n in feats.columns if n.startswith("ppr_"))
    assert [i.name for i in feature_catalog(spec) if i.family == "purchase_process"] == [
        "ppr_repeat_purchases", "ppr_days_first_to_last", "ppr_days_since_first", "ppr_p_alive",
        "ppr_expected_purchases_30d", "ppr_p_no_purchase_30d", "ppr_overdue_ratio", "ppr_own_gap_p_next_30d"]


def test_own_gap_probability_is_a_conditional_share_of_past_gaps():
    # purchase days 0, 5, 15, 35, 75 -> gaps 5, 10, 20, 40; cutoff 8 days after the last: waited 8
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta([0, 5, 15, 35, 75], unit="D")
    data = dict(customers=pd.DataFrame({"customer_id": ["A"], "signup_date": T(["2023-12-01"])}),
                orders=pd.DataFrame({"customer_id": ["A"] * 5, "timestamp": days, "amount": 1.0}))
    obs = pd.DataFrame({"customer_id": ["A"], "cutoff": [days[-1] + pd.Timedelta(days=8)]})
    feats, _ = build(data, obs=obs)
    row = feats.iloc[0]
    # gaps longer than 8: 10, 20, 40; of those within 8 + 30 = 38: 10, 20 -> 2/3
    assert row.ppr_own_gap_p_next_30d == pytest.approx(2 / 3)
    assert row.ppr_overdue_ratio == pytest.approx(8 / (75 / 4))


def test_p_alive_matches_a_hand_computed_value():
    params = btyd.BgNbd(r=0.25, alpha=4.0, a=0.8, b=2.5)
    # x = 2, t_x = 10, T = 20: 1 / (1 + 0.8 / (2.5 + 2 - 1) * (24 / 14) ** 2.25)
    expected = 1 / (1 + 0.8 / 3.5 * (24 / 14) ** 2.25)
    assert btyd.p_alive(params, np.array([2.0]), np.array([10.0]), np.array([20.0]))[0] == pytest.approx(expected)
    assert btyd.p_alive(params, np.array([0.0]), np.array([0.0]), np.array([20.0]))[0] == 1.0


def test_fit_recovers_known_parameters_and_closed_forms_match_simulation():
    true = btyd.BgNbd(r=0.5, alpha=20.0, a=0.8, b=2.5)
    ages = np.random.default_rng(1).integers(30, 400, 6000).astype(float)
    sim = btyd.simulate(true, ages, horizon=H, seed=2)
    fitted = btyd.fit(sim["x"], sim["t_x"], sim["T"])
    for got, want in zip(fitted.as_tuple(), true.as_tuple()):
        assert got == pytest.approx(want, rel=0.2)
    # with the true parameters, the closed forms predict the simulated future
    expected = btyd.expected_purchases(true, H, sim["x"], sim["t_x"], sim["T"])
    assert expected.sum() == pytest.approx(sim["future"].sum(), rel=0.08)
    none = btyd.p_no_purchase(true, H, sim["x"], sim["t_x"], sim["T"])
    assert none.mean() == pytest.approx((sim["future"] == 0).mean(), abs=0.02)


def test_expected_purchases_is_finite_when_the_fit_sits_at_a_equal_one():
    params = btyd.BgNbd(r=0.5, alpha=20.0, a=1.0, b=2.0)
    value = btyd.expected_purchases(params, H, np.array([0.0, 3.0]), np.array([0.0, 40.0]), np.array([50.0, 90.0]))
    assert np.isfinite(value).all() and (value > 0).all()


def test_purchase_process_needs_the_horizon(caplog):
    connect()
    tables = {k: ibis.memtable(v) for k, v in frames().items()}
    with caplog.at_level("INFO", logger="churnml"):
        assert plan_features(tables, families=FAMILIES, windows=[30]).families == ["purchase", "profile"]
    assert "no label horizon given, so no purchase_process features" in caplog.text
    with pytest.raises(ValueError, match=r"needs a positive label horizon in days \(labels.horizon_days\), got 0"):
        plan_features(tables, families=FAMILIES, windows=[30], horizon_days=0)


def test_on_by_default_when_orders_exist_and_skipped_without_them():
    connect()
    data = frames()
    with_orders = plan_features({k: ibis.memtable(v) for k, v in data.items()}, families=FAMILIES,
                                windows=[30], horizon_days=H)
    assert "purchase_process" in with_orders.families
    without = plan_features({"customers": ibis.memtable(data["customers"])}, families=FAMILIES,
                            windows=[30], horizon_days=H)
    assert without.families == ["profile"]
    # scoring data without orders.timestamp is refused by name, as for the other families
    changed = {**data, "orders": data["orders"].rename(columns={"timestamp": "ts"})}
    with pytest.raises(ValueError, match="orders.timestamp is missing, needed by ppr_repeat_purchases"):
        check_compatible(with_orders, {k: ibis.memtable(v) for k, v in changed.items()})


CUTOFF = pd.Timestamp("2024-02-15")
offsets = st.integers(min_value=0, max_value=90 * 24 * 60)  # minutes at or after the cutoff
# Each example checks this many scenarios at once, each on its own copy of the customers (A~0,
# B~0, C~0, A~1, ...): a build costs the same for 3 customers or 9 (the same queries and one
# population fit). The fit pools every customer, so a future order that reached it would change
# every copy's features, and one that reached a customer's own summary would change that copy's.
SCENARIOS = 3


def _combined(scenarios):
    """One dataset holding each scenario's tables on its own copy of the customers."""
    copies = [{name: frame.assign(customer_id=frame["customer_id"] + f"~{k}") for name, frame in tables.items()}
              for k, tables in enumerate(scenarios)]
    return {name: pd.concat([c[name] for c in copies], ignore_index=True) for name in copies[0]}


OBS_AT_CUTOFF = pd.DataFrame({"customer_id": [f"{c}~{k}" for k in range(SCENARIOS) for c in "ABC"],
                              "cutoff": CUTOFF})


@functools.cache
def _features_at_cutoff():
    """The fixture's features at CUTOFF on every copy, and their spec: the same for every example,
    so built once (each example's build is compared with it; the frame is only read)."""
    return build(_combined([frames()] * SCENARIOS), obs=OBS_AT_CUTOFF)


def _with_future_orders(shifts, who, drop_future):
    """The fixture with orders of `who` at or after CUTOFF added; with drop_future, every order at
    or after it deleted instead (the fixture's own and the added ones)."""
    base = frames()
    future = [CUTOFF + pd.Timedelta(minutes=m) for m in shifts]
    orders = pd.concat([base["orders"], pd.DataFrame({"customer_id": who, "timestamp": future, "amount": 1.0})],
                       ignore_index=True)
    if drop_future:
        orders = orders[orders.timestamp < CUTOFF]
    return {**base, "orders": orders}


scenario = st.fixed_dictionaries(dict(
    shifts=st.lists(offsets, min_size=1, max_size=4), who=st.sampled_from(["A", "B", "C"]), drop_future=st.booleans()))


@settings(max_examples=4, deadline=None)
# the edges: orders exactly at the cutoff for the repeat buyer (A) and for the one who never
# bought (C: a first purchase after the cutoff must not enter the fit); and every order at or
# after the cutoff deleted (B's only order is one)
@example(scenarios=[dict(shifts=[0], who="A", drop_future=False), dict(shifts=[0, 1], who="C", drop_future=False),
                    dict(shifts=[0], who="B", drop_future=True)])
@given(scenarios=st.lists(scenario, min_size=SCENARIOS, max_size=SCENARIOS))
def test_orders_at_or_after_the_cutoff_never_change_its_features(scenarios):
    before, spec = _features_at_cutoff()
    after, _ = build(_combined([_with_future_orders(**s) for s in scenarios]), obs=OBS_AT_CUTOFF, spec=spec)
    pd.testing.assert_frame_equal(before, after)


def test_the_population_fit_does_not_depend_on_the_chunking(tmp_path):
    # enough customers for a real fit; chunks of 7 customers must give the same bytes as one chunk
    rng = np.random.default_rng(3)
    ids = [f"c{i:03d}" for i in range(40)]
    rows = [(c, pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(d)))
            for c in ids for d in np.sort(rng.choice(150, size=rng.integers(1, 8), replace=False))]
    orders = pd.DataFrame(rows, columns=["customer_id", "timestamp"]).assign(amount=1.0)
    customers = pd.DataFrame({"customer_id": ids, "signup_date": T(["2023-12-01"] * len(ids))})
    obs = pd.DataFrame({"customer_id": ids * 2, "cutoff": [pd.Timestamp("2024-03-01")] * 40 + [pd.Timestamp("2024-05-01")] * 40})
    con = connect()
    tables = {"customers": ibis.memtable(customers), "orders": ibis.memtable(orders)}
    spec = plan_features(tables, families=FAMILIES, windows=[30], horizon_days=H)
    assert write_features(con, tables, ibis.memtable(obs), spec, tmp_path / "one.parquet") == 1
    assert write_features(con, tables, ibis.memtable(obs), spec, tmp_path / "many.parquet", customers_per_chunk=7) > 1
    one, many = (pd.read_parquet(tmp_path / f"{n}.parquet") for n in ("one", "many"))
    pd.testing.assert_frame_equal(one, many)
    assert one["ppr_p_alive"].notna().sum() > 40
    assert one["ppr_expected_purchases_30d"].dropna().between(0, 30).all()
