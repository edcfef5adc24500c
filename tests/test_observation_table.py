"""The lazy label-times table: `observation_table` gives the rows and summary of `build_observations`
without collecting a row; only aggregates (per cutoff, split and definition) reach pandas.

The hand-made customers are those of tests/test_observations.py; a generated set of a few hundred
customers shows that what is collected stays small however many rows there are.
"""

from dataclasses import asdict
from datetime import datetime

import ibis
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from churnml.data.engine import connect
from churnml.features.label_times import (LabelSpec, SplitSpec, build_observations, candidates, label_rows,
                                          observation_table, observed_until)
from churnml.features.splits import cutoff_counts, decide_split, split_by_cutoff, split_of
from test_label_config import small_frames

SCHEMA = {"customer_id": "string", "cutoff": "timestamp(6)", "label": "int8", "split": "string",
          "definition": "string"}


@pytest.fixture()
def tables():
    connect()  # the default backend executes memtables
    frames = small_frames()
    # times of day on the first and last events: labels compare instants, not only dates
    stamps = frames["events"]["timestamp"]
    frames["events"]["timestamp"] = stamps.mask(stamps.index == 0, stamps + pd.Timedelta(hours=10)).mask(
        stamps.index == len(stamps) - 1, stamps + pd.Timedelta(hours=23))
    return {name: ibis.memtable(frame) for name, frame in frames.items()}


def sorted_frame(table: ibis.Table) -> pd.DataFrame:
    frame = table.to_pandas().sort_values(["cutoff", "customer_id"]).reset_index(drop=True)
    return frame.astype({"customer_id": "string", "cutoff": "datetime64[us]", "label": "int8", "split": "string",
                         "definition": "string"})


def assert_same(tables, spec, split, **kwargs):
    table, summary = observation_table(tables, spec, split, **kwargs)
    assert {name: str(dtype) for name, dtype in table.schema().items()} == SCHEMA
    frame, expected = build_observations(tables, spec, split, **kwargs)
    pd.testing.assert_frame_equal(sorted_frame(table), frame)
    assert asdict(summary) == asdict(expected)
    return frame, summary


# ---------------------------------------------------------------- the same rows and summary


@pytest.mark.parametrize("definition", ["subscription", "inactivity", "hybrid"])
@pytest.mark.parametrize("lead", [0, 20])
def test_lazy_table_equals_the_collected_frame(tables, definition, lead):
    spec = LabelSpec(definition=definition, activity_tables=("events",), lead_days=lead)
    assert_same(tables, spec, SplitSpec(test_cutoffs=1, valid_cutoffs=1), freq="MS", start=datetime(2024, 2, 1))


def test_the_engine_writes_the_declared_types(tables, tmp_path):
    """What the engine writes has the table's types (Ibis may skip a cast it thinks is a no-op)."""
    from churnml.data.io import copy_parquet

    spec = LabelSpec(definition="hybrid", activity_tables=("events",))
    table, _ = observation_table(tables, spec, SplitSpec(test_cutoffs=1, valid_cutoffs=1), freq="MS",
                                 start=datetime(2024, 2, 1))
    copy_parquet(connect(), table, tmp_path / "obs.parquet", order_by=["cutoff", "customer_id"])
    written = pq.read_schema(tmp_path / "obs.parquet")
    assert {f.name: str(f.type) for f in written} == {"customer_id": "string", "cutoff": "timestamp[us]",
                                                      "label": "int8", "split": "string", "definition": "string"}


@pytest.mark.parametrize("definition", ["subscription", "inactivity", "hybrid"])
def test_split_and_counts_match_the_row_by_row_split(tables, definition):
    """The split taken from counts per cutoff and applied by the engine is the split pandas gives the
    collected rows (`split_by_cutoff`), and every count matches the rows."""
    spec = LabelSpec(definition=definition, activity_tables=("events",))
    split = SplitSpec(test_cutoffs=1, valid_cutoffs=1)
    table, summary = observation_table(tables, spec, split, freq="MS", start=datetime(2024, 2, 1))
    until = observed_until(tables)
    cutoffs = list(pd.date_range("2024-02-01", until, freq="MS").to_pydatetime())
    rows = label_rows(tables, candidates(tables["customers"], cutoffs), spec, until, definition).to_pandas()
    kept = rows[rows["label_known"] & ~rows["churned_in_lead"]]
    by_hand, _ = split_by_cutoff(kept, split, False, horizon_days=spec.horizon_days)
    expected = {(r.customer_id, pd.Timestamp(r.cutoff), r.split) for r in by_hand.itertuples() if r.split != "purged"}
    assert {(r.customer_id, r.cutoff, r.split) for r in sorted_frame(table).itertuples()} == expected
    counts = summary.counts
    assert counts["observed"] == len(rows)
    assert counts["excluded_churned_during_lead"] == int(rows["churned_in_lead"].sum())
    assert counts["unlabelled_window_not_observed"] == int((~rows["label_known"] & ~rows["churned_in_lead"]).sum())
    assert counts["purged_label_overlaps_test"] == int((by_hand["split"] == "purged").sum())


CUSTOM = pd.DataFrame({"customer_id": ["C", "C", "D", "C", "A", "B"],
                       "cutoff": pd.to_datetime(["2024-02-15", "2024-03-10", "2024-04-05 16:30", "2024-05-28",
                                                 "2024-02-20", "2024-03-01"], format="ISO8601")})


@pytest.mark.parametrize("labels", [[1, 0, 1, 0, 1, 0], [None] * 6, [None, 0, None, 1, None, 1], "no column"])
@pytest.mark.parametrize("fallback", ["inactivity", "subscription", "hybrid"])
def test_user_label_times_from_a_frame_or_an_engine_table(tables, labels, fallback):
    custom = CUSTOM if labels == "no column" else CUSTOM.assign(label=pd.array(labels, dtype="Float64"))
    spec = LabelSpec(definition="custom", fallback=fallback, activity_tables=("events",))
    split = SplitSpec(test_fraction=0.25, valid_fraction=0.25, purge=False)
    try:
        frame, summary = assert_same(tables, spec, split, custom=custom)
    except ValueError as error:  # a fallback that labels too few rows to split: refused alike
        with pytest.raises(ValueError) as lazy:
            observation_table(tables, spec, split, custom=ibis.memtable(custom))
        assert str(lazy.value) == str(error)
        return
    # the same file opened by the engine (as the stage does) gives the same rows and summary
    table, lazy = observation_table(tables, spec, split, custom=ibis.memtable(custom))
    pd.testing.assert_frame_equal(sorted_frame(table), frame)
    assert asdict(lazy) == asdict(summary)
    assert summary.counts["custom_cutoffs_moved_to_midnight"] == 1


# ---------------------------------------------------------------- refused label-times files


def _refusal(tables, custom) -> str:
    with pytest.raises(ValueError) as error:
        observation_table(tables, LabelSpec(definition="custom", activity_tables=("events",)), SplitSpec(),
                          custom=custom)
    return str(error.value)


def test_refusals_show_the_first_rows_of_a_frame_in_file_order(tables):
    bad = pd.DataFrame({"customer_id": ["C", "D", "C"] * 3, "cutoff": pd.date_range("2024-02-01", periods=9),
                        "label": [0, 2, "x", 1, 5, 0, 3, 4, 7], "note": list("abcdefghi")})
    message = _refusal(tables, bad)
    wrong = bad.iloc[[1, 2, 4, 6, 7]]
    assert message == (f"label times: column label must be 0, 1 or empty; 6 rows are not, e.g.\n"
                       f"{wrong.to_string(index=False)}")
    twice = pd.DataFrame({"customer_id": ["C", "C", "D", "C"],
                          "cutoff": pd.to_datetime(["2024-02-01", "2024-02-01 10:00", "2024-03-01", "2024-02-01"],
                                                  format="ISO8601"),
                          "label": [0, 1, 0, None]})
    message = _refusal(tables, twice)
    assert message.startswith("label times: 2 duplicate (customer_id, cutoff) rows, e.g.\n")
    # the later of each pair, in file order, as given (at midnight) with the label as read
    assert [line.split() for line in message.splitlines()[1:]] == [["customer_id", "cutoff", "user_label"],
                                                                   ["C", "2024-02-01", "1.0"],
                                                                   ["C", "2024-02-01", "<NA>"]]
    stranger = pd.DataFrame({"customer_id": ["C", "Z", "Y"], "cutoff": pd.to_datetime(["2024-02-01"] * 3)})
    assert _refusal(tables, stranger) == ("label times: 2 rows for unknown customers (not in customers), e.g.\n"
                                          "customer_id     cutoff\n          Z 2024-02-01\n          Y 2024-02-01")
    assert "missing column(s) ['cutoff']" in _refusal(tables, stranger[["customer_id"]])


def test_refusals_of_an_engine_table_name_the_same_rows(tables):
    bad = ibis.memtable(pd.DataFrame({"customer_id": ["C", "D"], "cutoff": pd.to_datetime(["2024-02-01"] * 2),
                                      "label": ["1", "yes"]}))
    assert _refusal(tables, bad).startswith("label times: column label must be 0, 1 or empty; 1 rows are not, e.g.\n")
    assert "yes" in _refusal(tables, bad)
    numbers = ibis.memtable(pd.DataFrame({"customer_id": ["C", "D"], "cutoff": pd.to_datetime(["2024-02-01"] * 2),
                                          "label": [0.5, np.nan]}))
    assert "; 1 rows are not" in _refusal(tables, numbers)
    twice = ibis.memtable(pd.DataFrame({"customer_id": ["C", "C"], "cutoff": pd.to_datetime(["2024-02-01"] * 2)}))
    assert _refusal(tables, twice).startswith("label times: 1 duplicate (customer_id, cutoff) rows")
    stranger = ibis.memtable(pd.DataFrame({"customer_id": ["Z"], "cutoff": pd.to_datetime(["2024-02-01"])}))
    assert _refusal(tables, stranger).endswith("customer_id     cutoff\n          Z 2024-02-01")
    empty = ibis.memtable(pd.DataFrame({"customer_id": pd.Series(dtype=str),
                                        "cutoff": pd.Series(dtype="datetime64[us]")}))
    assert _refusal(tables, empty).startswith("label times: no rows")


# ---------------------------------------------------------------- nothing row-level is collected


def _many(customers: int = 300) -> dict[str, ibis.Table]:
    rng = np.random.default_rng(7)
    ids = [f"c{i:03d}" for i in range(customers)]
    signup = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 120, customers), "D")
    subscribed = rng.random(customers) < 0.5
    subs = pd.DataFrame({"customer_id": np.array(ids)[subscribed], "start_date": signup[subscribed],
                         "end_date": [s + pd.Timedelta(days=int(d)) if d < 500 else pd.NaT
                                      for s, d in zip(signup[subscribed], rng.integers(60, 700, subscribed.sum()))]})
    count = 40 * customers
    events = pd.DataFrame({"customer_id": rng.choice(ids, count),
                           "timestamp": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 500 * 24, count),
                                                                                      "h"),
                           "event_type": "login"})
    customers_frame = pd.DataFrame({"customer_id": ids, "signup_date": signup})
    return {name: ibis.memtable(frame) for name, frame in
            {"customers": customers_frame, "subscriptions": subs.astype({"end_date": "datetime64[us]"}),
             "events": events}.items()}


@pytest.fixture()
def collected(monkeypatch):
    """The number of rows of every result the engine hands back to Python."""
    sizes: list[int] = []
    execute = ibis.expr.types.Expr.execute

    def counting(self, *args, **kwargs):
        result = execute(self, *args, **kwargs)
        sizes.append(len(result) if isinstance(result, (pd.DataFrame, pd.Series)) else 1)
        return result

    monkeypatch.setattr(ibis.expr.types.Expr, "execute", counting)
    return sizes


@pytest.mark.parametrize("definition", ["hybrid", "custom"])
def test_only_small_aggregates_are_collected(collected, definition):
    connect()
    tables = _many()
    custom = None
    if definition == "custom":
        customers = tables["customers"].to_pandas()
        custom = ibis.memtable(pd.DataFrame({
            "customer_id": np.repeat(customers["customer_id"].to_numpy(), 3),
            "cutoff": np.tile(pd.to_datetime(["2023-08-01", "2023-10-15", "2024-01-01"]), len(customers)),
            "label": np.tile([0.0, None, 1.0], len(customers))}))
        collected.clear()
    table, summary = observation_table(tables, LabelSpec(definition=definition, activity_tables=("events",)),
                                       SplitSpec(test_fraction=0.3, valid_fraction=0.3), freq="MS",
                                       min_history_days=60, custom=custom)
    cutoffs = len(summary.cutoffs)
    # per cutoff at most two definitions, each kept, churned in the lead or not yet labelled
    assert collected and max(collected) <= 6 * cutoffs, collected
    assert summary.counts["observed"] > 20 * max(collected)
    # and the rows are still all there, for the engine to write
    assert int(table.count().execute()) == sum(part["rows"] for part in summary.by_split.values())


# ---------------------------------------------------------------- the split from counts


def test_shares_of_rows_are_taken_from_counts_as_pandas_takes_them_from_rows():
    """User label times: test and valid start at the quantiles pandas takes of the repeated cutoffs."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        days = rng.choice(120, rng.integers(3, 12), replace=False)
        cutoffs = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.repeat(days, rng.integers(1, 9, len(days))), "D")
        frame = pd.DataFrame({"cutoff": cutoffs,
                              "label_known_at": cutoffs + pd.to_timedelta(rng.choice([10, 30, 37], len(cutoffs)),
                                                                          "D")})
        split = SplitSpec(test_fraction=float(rng.choice([0.1, 0.2, 0.25, 0.3])),
                          valid_fraction=float(rng.choice([0.1, 0.15, 0.2])), purge=bool(rng.random() < 0.5))
        try:
            decision, _ = decide_split(cutoff_counts(frame), split, True)
        except ValueError:
            continue
        test_start = frame["cutoff"].quantile(1 - split.test_fraction, interpolation="higher")
        assert decision.test_start == test_start
        before = frame[frame["cutoff"] < test_start]
        if split.purge:
            before = before[before["label_known_at"] <= test_start]
        share = 1 - split.valid_fraction / (1 - split.test_fraction)
        assert decision.valid_start == before["cutoff"].quantile(share, interpolation="higher")
        assert {"train", "valid", "test"} <= set(split_of(frame, decision))
