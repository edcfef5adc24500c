"""The synthetic dataset: contract shape, time consistency, determinism and planted churn signals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnml.data.generate import dataset as gen
from churnml.data.contract import CONTRACT
from churnml.data.generate.dataset import generate_dataset

N = 800
MONTHS = 18
END = "2026-06-30"
ACTIVITY = ("events", "orders", "feedback")
FILES = (
    "customers.parquet",
    "events.parquet",
    "orders.parquet",
    "feedback.parquet",
    "subscriptions.parquet",
    "churn_truth.parquet",
    "ground_truth.json",
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "raw"
    # a small chunk size so that several chunks are simulated and appended
    summary = generate_dataset(out, n_customers=N, months=MONTHS, end_date=END, seed=7, chunk_size=300)
    (out.parent / "summary.json").write_text(json.dumps(summary))
    return out


@pytest.fixture(scope="module")
def tables(dataset: Path) -> dict[str, pd.DataFrame]:
    return {f[: -len(".parquet")]: pd.read_parquet(dataset / f) for f in FILES if f.endswith(".parquet")}


@pytest.fixture(scope="module")
def truth(dataset: Path) -> dict:
    return json.loads((dataset / "ground_truth.json").read_text())


@pytest.fixture(scope="module")
def window(truth) -> tuple[pd.Timestamp, pd.Timestamp]:
    p = truth["parameters"]
    return pd.Timestamp(p["start_date"]), pd.Timestamp(p["end_date"]) + pd.Timedelta(days=1)


def _with_signup(frame: pd.DataFrame, tables) -> pd.DataFrame:
    return frame.merge(tables["customers"][["customer_id", "signup_date"]], on="customer_id", how="left")


# ------------------------------------------------------------------------------------ shape


def test_writes_every_file_and_nothing_else(dataset: Path):
    assert sorted(p.name for p in dataset.iterdir()) == sorted(FILES)
    # no temporary sibling left behind
    assert [p.name for p in dataset.parent.iterdir() if p.name.startswith(".")] == []


def test_tables_follow_the_contract(dataset: Path):
    for name, spec in CONTRACT.items():
        schema = pq.read_schema(dataset / f"{name}.parquet")
        for col in spec.columns:
            assert col.name in schema.names, f"{name}.{col.name} missing"
            t = schema.field(col.name).type
            if col.kind in ("id", "string"):
                assert pa.types.is_string(t), (name, col.name, t)
            elif col.kind == "timestamp":
                assert pa.types.is_timestamp(t) and t.unit == "us" and t.tz is None, (name, col.name, t)
            else:
                assert pa.types.is_floating(t) or pa.types.is_integer(t), (name, col.name, t)
    customers = pq.read_schema(dataset / "customers.parquet")
    for col in ("plan", "billing", "country", "channel", "monthly_price"):
        assert col in customers.names


def test_column_values(tables):
    cu = tables["customers"]
    assert len(cu) == N and cu.customer_id.is_unique
    assert cu.customer_id.str.fullmatch(r"C\d{7}").all()
    assert set(cu.billing) == {"subscription", "payg"}
    assert 0.45 < (cu.billing == "subscription").mean() < 0.75
    assert set(cu.plan[cu.billing == "payg"]) == {"payg"}
    assert set(cu.plan[cu.billing == "subscription"]) == {"basic", "standard", "premium"}
    assert cu.country.nunique() >= 4 and cu.channel.nunique() >= 4
    sub = cu[cu.billing == "subscription"]
    # some customers pay more than the usual (modal) price of their plan
    modal = sub.groupby("plan").monthly_price.agg(lambda s: s.mode().iloc[0])
    assert (sub.monthly_price > sub.plan.map(modal) + 0.01).mean() > 0.05
    assert modal["basic"] < modal["standard"] < modal["premium"]

    ev = tables["events"]
    assert set(ev.event_type) == {"login", "feature_use", "content_view", "support_visit"}
    assert ev.value[ev.event_type.isin(["login", "support_visit"])].isna().all()
    assert ev.value[ev.event_type.isin(["feature_use", "content_view"])].gt(0).all()
    # timestamps carry a time of day
    assert (ev.timestamp.dt.hour != 0).mean() > 0.9

    od = tables["orders"]
    assert (od.amount > 0).all() and (od.quantity >= 1).all() and od.order_id.is_unique
    fb = tables["feedback"]
    assert set(fb.kind) == {"rating", "nps", "csat", "ticket", "complaint"}
    scored = fb.score.dropna()
    assert scored.between(0, 10).all()
    assert fb.score[fb.kind.isin(["rating", "nps", "csat"])].notna().all()
    assert fb.text.notna().any() and fb.text.isna().any()


def test_rows_sorted_by_customer_then_time(tables):
    for name, col in (("events", "timestamp"), ("orders", "timestamp"), ("feedback", "timestamp"),
                      ("subscriptions", "start_date")):
        frame = tables[name]
        key = list(zip(frame.customer_id, frame[col]))
        assert key == sorted(key), name


# ------------------------------------------------------------------------------------ time


def test_no_activity_before_signup_or_after_end(tables, window):
    start, end_excl = window
    for name in ACTIVITY:
        frame = _with_signup(tables[name], tables)
        assert frame.signup_date.notna().all(), f"{name}: unknown customer"
        assert (frame.timestamp >= frame.signup_date).all(), name
        assert (frame.timestamp >= start).all() and (frame.timestamp < end_excl).all(), name
    sb = _with_signup(tables["subscriptions"], tables)
    assert (sb.start_date >= sb.signup_date).all()
    assert (sb.start_date < end_excl).all() and (sb.end_date.dropna() < end_excl).all()
    cu = tables["customers"]
    assert (cu.signup_date < end_excl).all()
    # some customers were already there when the window opened, most signed up during it
    assert 0.15 < (cu.signup_date < start).mean() < 0.6


def test_subscriptions_are_consistent(tables):
    cu, sb = tables["customers"], tables["subscriptions"]
    billing = cu.set_index("customer_id").billing
    assert (sb.customer_id.map(billing) == "subscription").all()
    assert set(sb.customer_id) == set(cu.customer_id[cu.billing == "subscription"])
    assert (sb.end_date.isna() | (sb.end_date >= sb.start_date)).all()
    assert (sb.mrr > 0).all()
    nxt = sb.groupby("customer_id").start_date.shift(-1)
    same = nxt.notna()
    # rows never overlap, and only the last row of a customer may be open
    assert sb.end_date[same].notna().all()
    assert (nxt[same] >= sb.end_date[same]).all()
    gap = (nxt[same] - sb.end_date[same]).dt.days
    # plan changes / price increases: the next row opens on the closing date
    assert (gap == 0).sum() > 10
    # failed payments restarted within a week, and churned customers who came back much later
    assert ((gap >= 1) & (gap <= 7)).sum() >= 3
    assert (gap > 30).sum() >= 3
    changed = sb.groupby("customer_id").plan.nunique()
    assert (changed > 1).sum() >= 5


def test_churned_customers_leave_no_activity(tables):
    ct = tables["churn_truth"]
    assert ct.customer_id.tolist() == tables["customers"].customer_id.tolist()
    assert (ct.churned == ct.churn_date.notna()).all()
    assert (ct.churned == ct.churn_cause.notna()).all()
    assert set(ct.churn_cause.dropna()) == {"disengagement", "service", "price", "random"}
    assert ct.return_date.notna().sum() > 0
    assert (ct.return_date.dropna() > ct.churn_date[ct.return_date.notna()]).all()
    gone = ct[ct.churned].set_index("customer_id")
    resume = gone.return_date.fillna(pd.Timestamp.max)
    for name in ACTIVITY:
        frame = tables[name]
        frame = frame[frame.customer_id.isin(gone.index)]
        after = (frame.timestamp >= frame.customer_id.map(gone.churn_date)) & (
            frame.timestamp < frame.customer_id.map(resume)
        )
        assert not after.any(), f"{name}: {int(after.sum())} rows between churn and return"
    # a churned subscriber's subscription is closed on the churn date, nothing runs past it
    sb = tables["subscriptions"]
    sub_gone = gone[gone.billing == "subscription"]
    sb = sb[sb.customer_id.isin(sub_gone.index)]
    churn = sb.customer_id.map(sub_gone.churn_date)
    back = sb.customer_id.map(sub_gone.return_date)
    closes_at_churn = sb[sb.end_date == churn].customer_id
    assert set(closes_at_churn) == set(sub_gone.index)
    running = (sb.start_date < churn) & (sb.end_date.isna() | (sb.end_date > churn))
    assert not running.any()
    stayed_gone = sub_gone[sub_gone.return_date.isna()].index
    last = sb[sb.customer_id.isin(stayed_gone)].groupby("customer_id").tail(1)
    assert last.end_date.notna().all()
    assert (sb.start_date[back.notna() & (sb.start_date > churn)] == back[back.notna() & (sb.start_date > churn)]).all()
    # payg customers never have subscription rows: their churn shows only as silence
    assert not tables["subscriptions"].customer_id.isin(gone.index[gone.billing == "payg"]).any()


# ------------------------------------------------------------------------------------ truth


def test_ground_truth_and_summary(dataset: Path, tables, truth):
    causes = {c["name"]: c for c in truth["causes"]}
    assert set(causes) == {"disengagement", "service", "price", "random"}
    for c in causes.values():
        assert c["description"]
    # the planted signals cover engagement, purchases, feedback and plan/price
    signals = {s for c in causes.values() for s in c["signals"]}
    assert {"events", "orders", "feedback", "subscriptions", "customers"} <= signals
    assert causes["random"]["signals"] == []
    params = truth["parameters"]
    assert params == {
        "n_customers": N, "months": MONTHS, "start_date": "2025-01-01", "end_date": END,
        "seed": 7, "chunk_size": 300,
    }
    summary = json.loads((dataset.parent / "summary.json").read_text())
    assert truth["summary"] == summary
    for name, frame in tables.items():
        assert summary["rows"][name] == len(frame), name
    ct = tables["churn_truth"]
    assert summary["churned"] == int(ct.churned.sum())
    assert summary["churn_by_cause"] == ct.churn_cause.value_counts().reindex(
        ["disengagement", "service", "price", "random"], fill_value=0
    ).to_dict()
    assert summary["customers_by_billing"] == ct.billing.value_counts().to_dict()


def _exposure_months(tables, window) -> pd.Series:
    start, end_excl = window
    cu = tables["customers"].merge(tables["churn_truth"], on=["customer_id", "billing"])
    a = cu.signup_date.clip(lower=start)
    b = cu.churn_date.fillna(end_excl)
    days = (b - a).dt.days + (end_excl - cu.return_date).dt.days.fillna(0)
    return (days / (365.25 / 12)).groupby(cu.billing).sum()


def test_monthly_churn_rate_is_plausible(tables, window):
    ct = tables["churn_truth"]
    months = _exposure_months(tables, window)
    churns = ct[ct.churned].groupby("billing").size()
    overall = churns.sum() / months.sum()
    assert 0.01 < overall < 0.10, overall
    for billing in ("subscription", "payg"):
        assert 0.01 < churns[billing] / months[billing] < 0.10, billing
    # most churn has a visible cause
    assert (ct.churn_cause == "random").sum() < 0.4 * ct.churned.sum()


def test_active_customers_are_busy(tables, window):
    months = _exposure_months(tables, window).sum()
    events_per_week = len(tables["events"]) / (months * 365.25 / 12 / 7)
    assert 2.0 < events_per_week < 8.0
    cu = tables["customers"].set_index("customer_id")
    per_month = tables["orders"].groupby(tables["orders"].customer_id.map(cu.billing)).size() / _exposure_months(
        tables, window
    )
    assert per_month["payg"] > 3 * per_month["subscription"]
    assert 1.0 <= per_month["payg"] <= 4.0


# ------------------------------------------------------------------------------------ signals


def _daily_counts(frame: pd.DataFrame, ids: pd.Index, start: pd.Timestamp, n_days: int) -> np.ndarray:
    """customers x days matrix of row counts."""
    pos = pd.Series(np.arange(len(ids)), index=ids)
    frame = frame[frame.customer_id.isin(ids)]
    out = np.zeros((len(ids), n_days + 1), np.int64)
    np.add.at(out, (pos[frame.customer_id].to_numpy(), (frame.timestamp - start).dt.days.to_numpy()), 1)
    return np.concatenate([np.zeros((len(ids), 1), np.int64), out.cumsum(axis=1)], axis=1)


def _window_counts(cum: np.ndarray, rows: np.ndarray, ref_day: np.ndarray, a: int, b: int) -> np.ndarray:
    """Rows in [ref - b, ref - a) days for each (row, ref)."""
    return cum[rows, ref_day - a] - cum[rows, ref_day - b]


@pytest.fixture(scope="module")
def reference(tables, window):
    """Churners with 90 days of history before churn, and stayers looked at on the same dates."""
    start, end_excl = window
    n_days = (end_excl - start).days
    cu = tables["customers"].merge(tables["churn_truth"], on=["customer_id", "billing"])
    churn_day = (cu.churn_date - start).dt.days
    first = (cu.signup_date.clip(lower=start) - start).dt.days
    churners = cu[cu.churned & (churn_day - first >= 90)]
    stayers = cu[~cu.churned]
    ids = pd.Index(cu.customer_id)
    rng = np.random.default_rng(0)
    ref = (churners.churn_date - start).dt.days.to_numpy()
    # each stayer is looked at on a churner's churn date, if it had 90 days of history by then
    s_ref = rng.choice(ref, len(stayers))
    ok = s_ref - first[stayers.index].to_numpy() >= 90
    return {
        "start": start, "n_days": n_days, "ids": ids,
        "c_rows": ids.get_indexer(churners.customer_id), "c_ref": ref, "c_cause": churners.churn_cause.to_numpy(),
        "s_rows": ids.get_indexer(stayers.customer_id)[ok], "s_ref": s_ref[ok],
    }


def test_engagement_falls_before_churn(tables, reference):
    r = reference
    assert len(r["c_rows"]) > 60 and len(r["s_rows"]) > 200
    cum = _daily_counts(tables["events"], r["ids"], r["start"], r["n_days"])
    last30 = _window_counts(cum, r["c_rows"], r["c_ref"], 0, 30)
    before = _window_counts(cum, r["c_rows"], r["c_ref"], 60, 90)
    stayers30 = _window_counts(cum, r["s_rows"], r["s_ref"], 0, 30)
    stayers_before = _window_counts(cum, r["s_rows"], r["s_ref"], 60, 90)
    assert last30.mean() < 0.7 * before.mean()
    assert last30.mean() < 0.7 * stayers30.mean()
    # stayers keep their level
    assert 0.85 < stayers30.mean() / stayers_before.mean() < 1.15
    # the drop is the disengagement cause's signature, not the random one's
    dis = r["c_cause"] == "disengagement"
    assert last30[dis].mean() < 0.5 * before[dis].mean()
    rand = r["c_cause"] == "random"
    assert rand.sum() >= 5
    assert last30[rand].sum() / before[rand].sum() > last30[dis].sum() / before[dis].sum() + 0.25
    # a month of silence is common before a disengagement churn and rare otherwise
    assert (last30[dis] == 0).mean() > 3 * max((stayers30 == 0).mean(), 0.01)


def test_orders_space_out_before_churn(tables, reference):
    r = reference
    cum = _daily_counts(tables["orders"], r["ids"], r["start"], r["n_days"])
    # customers with 120 days of history, two 45-day windows
    c_ok = r["c_ref"] - 120 >= 0
    rows, ref = r["c_rows"][c_ok], r["c_ref"][c_ok]
    last = _window_counts(cum, rows, ref, 0, 45)
    before = _window_counts(cum, rows, ref, 75, 120)
    assert last.sum() < 0.9 * before.sum(), (last.sum(), before.sum())
    dis = r["c_cause"][c_ok] == "disengagement"
    assert last[dis].sum() < 0.7 * before[dis].sum(), (last[dis].sum(), before[dis].sum())
    s_ok = r["s_ref"] - 120 >= 0
    s_last = _window_counts(cum, r["s_rows"][s_ok], r["s_ref"][s_ok], 0, 45)
    s_before = _window_counts(cum, r["s_rows"][s_ok], r["s_ref"][s_ok], 75, 120)
    assert 0.85 < s_last.sum() / s_before.sum() < 1.15


def test_feedback_worsens_before_churn(tables, reference):
    r = reference
    fb = tables["feedback"]
    start = r["start"]
    pos = pd.Series(np.arange(len(r["ids"])), index=r["ids"])
    fb = fb.assign(row=pos[fb.customer_id].to_numpy(), day=(fb.timestamp - start).dt.days.to_numpy())

    def collect(rows, refs, lo, hi):
        look = pd.DataFrame({"row": rows, "ref": refs})
        m = fb.merge(look, on="row")
        return m[(m.day >= m.ref - hi) & (m.day < m.ref - lo)]

    churn_fb = collect(r["c_rows"], r["c_ref"], 0, 90)
    stay_fb = collect(r["s_rows"], r["s_ref"], 0, 90)
    surveys = ["rating", "nps", "csat"]
    c_score = churn_fb[churn_fb.kind.isin(surveys)].score.mean()
    s_score = stay_fb[stay_fb.kind.isin(surveys)].score.mean()
    assert c_score < s_score - 0.4, (c_score, s_score)
    bad = ["ticket", "complaint"]
    c_bad = churn_fb.kind.isin(bad).sum() / len(r["c_rows"])
    s_bad = stay_fb.kind.isin(bad).sum() / len(r["s_rows"])
    assert c_bad > 1.5 * s_bad, (c_bad, s_bad)
    # the service cause shows most of it
    srv = churn_fb[churn_fb.row.isin(r["c_rows"][r["c_cause"] == "service"])]
    assert srv[srv.kind.isin(surveys)].score.mean() < c_score


def test_plan_and_price_drive_churn(tables):
    cu = tables["customers"].merge(tables["churn_truth"], on=["customer_id", "billing"])
    sub = cu[cu.billing == "subscription"]
    rate = sub.groupby("plan").churned.mean()
    assert rate["basic"] > rate["premium"]
    price = cu[cu.churn_cause == "price"]
    assert len(price) > 0
    # every price churner is exposed to a visible price factor: the basic plan, paying above the
    # usual price of the plan, a price increase on the subscription, or (payg) dearer orders
    modal = sub.groupby("plan").monthly_price.agg(lambda s: s.mode().iloc[0])
    sb = tables["subscriptions"]
    increased = sb.groupby("customer_id").mrr.agg(lambda s: bool((s.diff() > 0).any()))
    od = tables["orders"]
    unit = (od.amount / od.quantity).groupby(od.customer_id).mean()
    usual_unit = unit[unit.index.isin(cu.customer_id[cu.billing == "payg"])].median()
    exposed = np.where(
        price.billing == "subscription",
        (price.plan == "basic")
        | (price.monthly_price > price.plan.map(modal) + 0.01)
        | price.customer_id.map(increased).fillna(False).astype(bool),
        price.customer_id.map(unit).fillna(0) > 1.04 * usual_unit,
    )
    assert exposed.mean() > 0.85, exposed.mean()


# ------------------------------------------------------------------------------------ determinism, atomicity


def test_same_arguments_give_identical_bytes(tmp_path: Path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    kwargs = {"n_customers": 300, "months": 6, "end_date": "2025-12-31", "chunk_size": 120}
    generate_dataset(a, seed=3, **kwargs)
    generate_dataset(b, seed=3, **kwargs)
    generate_dataset(c, seed=4, **kwargs)
    for f in FILES:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    for f in ("events.parquet", "orders.parquet", "customers.parquet", "churn_truth.parquet"):
        assert (a / f).read_bytes() != (c / f).read_bytes(), f
    # the window follows the arguments: 6 months ending 2025-12-31
    ev = pd.read_parquet(a / "events.parquet")
    assert ev.timestamp.min() >= pd.Timestamp("2025-07-01")
    assert ev.timestamp.max() < pd.Timestamp("2026-01-01")


# sha256 of the tables the generator wrote before it was cut into steps (numpy 2.4.6, pyarrow 25.0.1)
PINNED_ARGS = {"n_customers": 300, "months": 6, "end_date": "2025-12-31", "seed": 3, "chunk_size": 120}
PINNED_SHA256 = {
    "churn_truth.parquet": "42f991d35bcf254db340e782ca46a983a0e3c7346f6851596b481563c2a17d1b",
    "customers.parquet": "183abdb1584ec0e7a3930d86305045b3beac6b4ab4347e6492fc987e7cd5fef0",
    "events.parquet": "21f1f442b111213773794a64e3080e85cc0a6e6e77f6afada78aa933b869d572",
    "feedback.parquet": "4f2add7eb6ba38905a8a395c30f4a4ecfacc8ab4a613e9ebedf35b6b47eba409",
    "orders.parquet": "2d915caab26233b557cbba0502e20f16ef136a785acef175e866fc790f2a3bb7",
    "subscriptions.parquet": "cf48beafe3a7c2ecc3c619a2b8a5d05aa9fc65c09ef3de241859a35d0db6bb9c",
}


def test_a_seed_gives_the_pinned_bytes(tmp_path: Path):
    """Same seed, same files as ever: any moved, added or reshaped draw changes every table after it.

    Three chunks, so the per-chunk seeds and the order ids carried across chunks are covered too.
    A numpy or pyarrow upgrade may also change the bytes: check the tables' contents are unchanged
    (with the versions named above), then re-pin.
    """
    generate_dataset(tmp_path / "raw", **PINNED_ARGS)
    found = {f: hashlib.sha256((tmp_path / "raw" / f).read_bytes()).hexdigest() for f in PINNED_SHA256}
    assert found == PINNED_SHA256


def test_failure_leaves_previous_dataset_intact(tmp_path: Path, monkeypatch):
    out = tmp_path / "raw"
    generate_dataset(out, n_customers=200, months=6, chunk_size=100)
    before = {f: (out / f).read_bytes() for f in FILES}
    real = gen.simulate_chunk
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(gen, "simulate_chunk", flaky)
    with pytest.raises(RuntimeError, match="boom"):
        generate_dataset(out, n_customers=200, months=6, seed=9, chunk_size=100)
    assert {f: (out / f).read_bytes() for f in FILES} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
    # a successful run replaces it
    monkeypatch.setattr(gen, "simulate_chunk", real)
    generate_dataset(out, n_customers=200, months=6, seed=9, chunk_size=100)
    assert (out / "events.parquet").read_bytes() != before["events.parquet"]


@pytest.mark.parametrize("bad", [{"n_customers": 0}, {"months": 0}, {"chunk_size": 0}])
def test_rejects_bad_arguments(tmp_path: Path, bad):
    with pytest.raises(ValueError):
        generate_dataset(tmp_path / "raw", **bad)
    assert not (tmp_path / "raw").exists()


def test_a_hazard_past_one_still_churns():
    """A latent state so bad that the sigmoid is 1 plus the constant random hazard: the customer
    churns that week (it once gave NaN, and NaN never compares below a random draw)."""
    from churnml.data.generate.hazard import Baseline, CauseTerms, draw_churn
    from churnml.data.generate.parameters import GenerationParams

    n = 4
    base = Baseline(np.full(n, -8.0), np.zeros(4), np.zeros(n))
    terms = CauseTerms(np.full(n, 60.0), np.zeros(n), np.zeros(n))
    with np.errstate(invalid="raise"):
        go, day, _ = draw_churn(np.random.default_rng(0), terms, base, np.ones(n, bool), np.zeros(n, np.int64),
                                np.full(n, 3, np.int64), GenerationParams())
    assert go.all() and (day < 3).all()
