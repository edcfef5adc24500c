"""Labels and splits a user can configure without reading the source (issue 14).

The split tests use a hand-made frame of labelled rows: one customer per monthly cutoff
(Jan 1 .. May 1 2024) whose label is known 90 days after the cutoff, so every answer can be
worked out by hand. The label tests reuse the four customers of tests/test_observations.py.
"""

import logging
from datetime import datetime
from pathlib import Path

import ibis
import pandas as pd
import pytest
import yaml

from churnml.data.engine import connect
from churnml.features.label_times import LabelSpec, build_observations
from churnml.features.splits import SplitSpec, split_by_cutoff, split_spec
from churnml.params import compose

ROOT = Path(__file__).resolve().parents[1]
T = pd.Timestamp


def labelled(months: int, known_after_days: int = 90) -> pd.DataFrame:
    cutoffs = pd.date_range("2024-01-01", periods=months, freq="MS")
    return pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(months)],
        "cutoff": cutoffs,
        "label": [0, 1] * (months // 2) + [0] * (months % 2),
        "label_known_at": cutoffs + pd.Timedelta(days=known_after_days),
    })


def splits_of(frame: pd.DataFrame) -> dict[str, str]:
    return {f"{r.cutoff:%m-%d}": r.split for r in frame.itertuples()}


# ---------------------------------------------------------------- impossible splits are refused


def test_split_that_purges_every_train_row_is_refused_with_counts_and_fixes():
    # test Apr 1 + May 1; Feb 1 and Mar 1 are known after Apr 1 (purged); only Jan 1 is left,
    # which the old code made the valid set, leaving train empty without a word
    with pytest.raises(ValueError) as error:
        split_by_cutoff(labelled(5), SplitSpec(test_cutoffs=2, valid_cutoffs=1), False, horizon_days=90)
    message = str(error.value)
    assert "no train rows" in message
    assert "5 labelled cutoffs" in message and "test got 2" in message
    assert "the purge removed 2 (2024-02-01, 2024-03-01)" in message
    assert "valid got 1" in message and "train got 0" in message
    assert "needs at least 6 labelled cutoffs; you have 5" in message
    # each suggestion works: one test cutoff leaves Jan (train) and Feb (valid)
    assert "labels.split.test_cutoffs: 1" in message
    # Feb 1 must be known by Apr 1: 30 days less window
    assert "labels.horizon_days: 60 or less" in message
    assert "labels.split.purge: false" in message
    fixed, _ = split_by_cutoff(labelled(5), SplitSpec(test_cutoffs=1, valid_cutoffs=1), False, horizon_days=90)
    assert splits_of(fixed) == {"01-01": "train", "02-01": "valid", "03-01": "purged", "04-01": "purged",
                                "05-01": "test"}


def test_split_that_purges_everything_before_test_names_no_validation_rows():
    with pytest.raises(ValueError, match=r"no train or validation rows.*the purge removed 2"):
        split_by_cutoff(labelled(4), SplitSpec(test_cutoffs=2, valid_cutoffs=1), False, horizon_days=90)


def test_default_split_works_for_any_horizon_up_to_a_year_given_enough_history():
    # the purge gap is only the cutoffs whose windows overlap the test: ceil(H / 30) of them
    for horizon in (30, 90, 180, 365):
        gap = -(-horizon // 30)
        frame, _ = split_by_cutoff(labelled(2 + gap + 2, horizon), SplitSpec(), False, horizon_days=horizon)
        counts = frame["split"].value_counts().to_dict()
        assert counts["train"] >= 1 and counts["valid"] == 1 and counts["test"] == 2, horizon


def test_observations_stage_refuses_an_impossible_split_with_a_message(tables):
    # the hand-made data has labelled cutoffs Feb .. Jun; a 60-day horizon purges the rest
    with pytest.raises(ValueError, match=r"labels.split leaves no train"):
        build_observations(tables, LabelSpec(definition="hybrid", activity_tables=("events",), horizon_days=60),
                           SplitSpec(test_cutoffs=2, valid_cutoffs=1), freq="MS", start=datetime(2024, 2, 1))


# ---------------------------------------------------------------- every setting is validated


@pytest.mark.parametrize("split, words", [
    ({"test_cutoffs": 0}, "labels.split.test_cutoffs must be a whole number of at least 1, got 0"),
    ({"valid_cutoffs": -1}, "labels.split.valid_cutoffs must be a whole number of at least 1, got -1"),
    ({"test_cutoffs": 1.5}, "labels.split.test_cutoffs must be a whole number of at least 1, got 1.5"),
    ({"test_fraction": 0}, "labels.split.test_fraction must be between 0 and 1"),
    ({"valid_fraction": 1.2}, "labels.split.valid_fraction must be between 0 and 1"),
    ({"test_fraction": 0.6, "valid_fraction": 0.5}, "leave nothing for train"),
    ({"purge": "yes"}, "labels.split.purge must be true or false"),
    ({"test_from": "next spring"}, "labels.split.test_from: 'next spring' is not a date"),
    ({"test_from": "2024-03-01", "valid_from": "2024-04-01"}, "must be before labels.split.test_from"),
    ({"test_cutoff": 1}, "unknown setting(s) labels.split.test_cutoff"),
])
def test_impossible_split_settings_are_rejected(split, words):
    with pytest.raises(ValueError) as error:
        split_spec({"split": split})
    assert words in str(error.value)


def test_zero_test_cutoffs_no_longer_makes_every_row_a_test_row():
    with pytest.raises(ValueError, match="test_cutoffs"):
        SplitSpec(test_cutoffs=0)


# ---------------------------------------------------------------- splits given as dates


def test_split_by_dates_on_a_cutoff_grid():
    spec = split_spec({"split": {"test_from": "2024-05-01", "valid_from": "2024-02-01", "purge": False}})
    frame, _ = split_by_cutoff(labelled(6, 20), spec, False)
    assert splits_of(frame) == {"01-01": "train", "02-01": "valid", "03-01": "valid", "04-01": "valid",
                                "05-01": "test", "06-01": "test"}


def test_split_by_dates_for_user_label_times(tables):
    custom = pd.DataFrame({"customer_id": ["A", "B", "A", "B", "A"],
                           "cutoff": pd.to_datetime(["2024-02-03", "2024-02-17", "2024-03-09", "2024-04-21",
                                                     "2024-05-02"]),
                           "label": [0, 1, 0, 0, 1]})
    spec = split_spec({"split": {"test_from": "2024-04-21", "valid_from": "2024-03-01", "purge": False}})
    obs, _ = build_observations(tables, LabelSpec(definition="custom", activity_tables=("events",)), spec,
                                custom=custom)
    assert splits_of(obs) == {"02-03": "train", "02-17": "train", "03-09": "valid", "04-21": "test",
                              "05-02": "test"}


def test_a_test_date_after_every_cutoff_is_refused():
    with pytest.raises(ValueError, match=r"no test rows.*test_from 2025-01-01.*last labelled cutoff is 2024-05-01"):
        split_by_cutoff(labelled(5, 20), SplitSpec(test_from=datetime(2025, 1, 1)), False)


# ---------------------------------------------------------------- user labels: all, none, some


def small_frames() -> dict[str, pd.DataFrame]:
    """Two subscribers (A lapses and restarts, B ends) and two event-only customers (C, D)."""
    customers = pd.DataFrame({"customer_id": ["A", "B", "C", "D"],
                              "signup_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-15",
                                                             "2024-03-20"])})
    subscriptions = pd.DataFrame({"customer_id": ["A", "A", "B"],
                                  "start_date": pd.to_datetime(["2024-01-01", "2024-03-14", "2024-01-01"]),
                                  "end_date": pd.to_datetime(["2024-03-10", None, "2024-04-15"])})
    events = pd.DataFrame({"customer_id": ["C"] * 5 + ["D"] * 3,
                           "timestamp": pd.to_datetime(["2024-01-20", "2024-02-10", "2024-03-05", "2024-05-20",
                                                        "2024-06-25", "2024-03-25", "2024-04-02", "2024-06-30"]),
                           "event_type": ["login"] * 8})
    return {"customers": customers, "subscriptions": subscriptions, "events": events}


@pytest.fixture()
def tables():
    connect()
    return {name: ibis.memtable(frame) for name, frame in small_frames().items()}


# C and D are active at every one of these cutoffs, so the inactivity fallback observes every row
CUSTOM = pd.DataFrame({"customer_id": ["C", "C", "D", "C"],
                       "cutoff": pd.to_datetime(["2024-02-15", "2024-03-10", "2024-04-05", "2024-05-28"])})


@pytest.mark.parametrize("labels, expected", [
    # all labelled: the user's labels win everywhere (this crashed on pandas 3: int8 vs Float64)
    ([1, 0, 1, 0], {("C", "02-15"): (1, "custom"), ("C", "03-10"): (0, "custom"),
                    ("D", "04-05"): (1, "custom"), ("C", "05-28"): (0, "custom")}),
    # none labelled: the fallback labels every row (C Feb 15: next event Mar 5, within 30 days)
    ([None] * 4, {("C", "02-15"): (0, "inactivity"), ("C", "03-10"): (1, "inactivity"),
                  ("D", "04-05"): (1, "inactivity"), ("C", "05-28"): (0, "inactivity")}),
    # some labelled
    ([None, 0, None, 1], {("C", "02-15"): (0, "inactivity"), ("C", "03-10"): (0, "custom"),
                          ("D", "04-05"): (1, "inactivity"), ("C", "05-28"): (1, "custom")}),
])
def test_user_labels_all_none_or_some(tables, labels, expected):
    custom = CUSTOM.assign(label=pd.array(labels, dtype="Float64"))
    obs, summary = build_observations(tables, LabelSpec(definition="custom", activity_tables=("events",)),
                                      SplitSpec(test_fraction=0.25, valid_fraction=0.25, purge=False),
                                      custom=custom)
    got = {(r.customer_id, f"{r.cutoff:%m-%d}"): (int(r.label), r.definition) for r in obs.itertuples()}
    assert got == expected
    assert str(obs["label"].dtype) == "int8"
    assert summary.counts["candidate_rows"] == 4 and summary.counts["custom_rows_not_labelled"] == 0


def test_empty_label_times_file_is_refused(tables):
    with pytest.raises(ValueError, match="label times: no rows"):
        build_observations(tables, LabelSpec(definition="custom"), SplitSpec(),
                           custom=CUSTOM.iloc[:0].assign(label=pd.Series(dtype="Float64")))


# ---------------------------------------------------------------- every candidate row is counted


def test_every_candidate_row_is_counted_with_its_reason(tables):
    spec = LabelSpec(definition="inactivity", activity_tables=("events",))
    _, summary = build_observations(tables, spec, SplitSpec(test_cutoffs=1, valid_cutoffs=1, purge=False),
                                    freq="MS", start=datetime(2024, 2, 1))
    counts = summary.counts
    # cutoffs Feb 1 .. Jul 1: A, B, C signed up before Feb (6 each), D on Mar 20 (Apr .. Jul: 4)
    assert counts["candidate_rows"] == 22
    # A and B never have an event (12); C is inactive at May 1, D at Jun 1
    assert counts["not_observed_inactive_before_cutoff"] == 14
    assert counts["candidate_rows"] == counts["observed"] + counts["not_observed_inactive_before_cutoff"]
    kept = sum(part["rows"] for part in summary.by_split.values())
    left_out = (counts["excluded_churned_during_lead"] + counts["unlabelled_window_not_observed"]
                + counts["purged_label_overlaps_test"])
    assert counts["observed"] == kept + left_out


def test_hybrid_counts_each_definitions_rows_left_out(tables):
    _, summary = build_observations(tables, LabelSpec(definition="hybrid", activity_tables=("events",)),
                                    SplitSpec(test_cutoffs=1, valid_cutoffs=1), freq="MS",
                                    start=datetime(2024, 2, 1))
    counts = summary.counts
    # A and B are contractual from Feb 1 and covered by a spell except B after Apr 15 (May, Jun, Jul)
    assert counts["not_observed_no_subscription_at_cutoff"] == 3
    assert counts["candidate_rows"] == (counts["observed"] + counts["not_observed_no_subscription_at_cutoff"]
                                        + counts["not_observed_inactive_before_cutoff"])


# ---------------------------------------------------------------- windows before the data


def test_cutoffs_and_windows_before_the_data_are_named_in_warnings(tables, caplog):
    spec = LabelSpec(definition="hybrid", activity_tables=("events",), active_window_days=45)
    with caplog.at_level(logging.WARNING, logger="churnml"):
        _, summary = build_observations(tables, spec, SplitSpec(test_cutoffs=1, valid_cutoffs=1, purge=False),
                                        freq="MS", start=datetime(2023, 12, 1))
    # every activity table records from Jan 1 2024 (subscriptions) / Jan 20 (events): Jan 20
    text = "\n".join(summary.warnings)
    assert "labels.cutoffs.start" in text and "2023-12-01, 2024-01-01" in text and "2024-01-20" in text
    assert "labels.inactivity.active_window_days (45)" in text and "2024-02-01" in text
    assert all(w in caplog.text for w in summary.warnings)


def test_custom_cutoffs_before_the_data_are_warned(tables):
    custom = pd.DataFrame({"customer_id": ["C", "C", "C"],
                           "cutoff": pd.to_datetime(["2023-06-01", "2024-02-15", "2024-03-10"]), "label": [0, 0, 1]})
    _, summary = build_observations(tables, LabelSpec(definition="custom", activity_tables=("events",)),
                                    SplitSpec(test_fraction=0.25, valid_fraction=0.25, purge=False), custom=custom)
    assert any("label times: 1 cutoff(s) before" in w and "2023-06-01" in w for w in summary.warnings)


# ---------------------------------------------------------------- the label-times file is a DVC dependency


def test_label_times_file_is_a_dependency_of_the_observations_stage():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["observations"]
    assert "${labels.custom.path}" in stage["deps"]
    # DVC deps cannot be null: every label choice names a path, and when the definition is not
    # custom that path is a committed placeholder, so the default pipeline still runs
    for choice in sorted(p.stem for p in (ROOT / "conf" / "labels").glob("*.yaml")):
        labels = compose(ROOT / "conf", [f"labels={choice}"])["labels"]
        path = labels["custom"]["path"]
        assert isinstance(path, str) and path, choice
        if labels["definition"] != "custom":
            assert (ROOT / path).is_file(), choice
