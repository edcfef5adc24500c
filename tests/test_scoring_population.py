"""Who gets scored, one name for the registered model, and a retention report on data that gives
no month to measure. Tiny hand-made tables, every answer worked out by hand.

Scoring as of 2024-07-01, horizon 30 days, active window 30 days, activity = events:
- A (subscription, open): a subscriber -> active.
- B (subscription Jan 1 - Apr 15): every subscription ended -> churned, never scored.
- C (pay as you go): last event Jun 25 -> active.
- D (pay as you go): last event Mar 25, 98 days ago -> lapsed, within a year.
- E (pay as you go, signed up 2023-01-01): last event 2023-05-01, 427 days ago -> lapsed too long.
- F (signed up May 1, nothing since): 61 days, past the active window -> lapsed, within a year.
- G (signs up Jul 15): not yet signed up.
- H (signed up 2022-01-01, nothing ever): lapsed too long.
"""

from datetime import datetime

import ibis
import pandas as pd
import pytest
from pandas.api import types

from churnml.data.engine import connect
from churnml.features.label_times import LabelSpec, observed_until
from churnml.params import compose
from churnml.retention.measures import (cohort_retention, month_starts, monthly_churn, observed_rows,
                                        recent_churn_by_customer, segment_table)
from churnml.retention.report import ClvSpec, build_retention, write_retention
from churnml.scoring.batch import eligible_customers
from churnml.scoring.job import summary_line
from support import ROOT

AS_OF = datetime(2024, 7, 1)
HYBRID = LabelSpec(definition="hybrid", horizon_days=30, grace_days=7, activity_tables=("events",))


@pytest.fixture()
def tables():
    connect()
    frames = {
        "customers": pd.DataFrame({
            "customer_id": list("ABCDEFGH"),
            "signup_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-15", "2024-01-15", "2023-01-01",
                                           "2024-05-01", "2024-07-15", "2022-01-01"]),
        }),
        "subscriptions": pd.DataFrame({
            "customer_id": ["A", "B"],
            "start_date": pd.to_datetime(["2024-01-01", "2024-01-01"]),
            "end_date": pd.to_datetime([None, "2024-04-15"]),
        }),
        "events": pd.DataFrame({
            "customer_id": ["C", "C", "D", "D", "E"],
            "timestamp": pd.to_datetime(["2024-02-01", "2024-06-25", "2024-02-10", "2024-03-25", "2023-05-01"]),
            "event_type": ["login"] * 5,
        }),
    }
    return {name: ibis.memtable(frame) for name, frame in frames.items()}


def scored(frame):
    return dict(zip(frame["customer_id"], frame["status"]))


# ---------------------------------------------------------------- item 2: who gets scored


def test_lapsed_customers_are_scored_by_default_and_marked(tables):
    frame, counts = eligible_customers(tables, AS_OF, HYBRID)
    assert scored(frame) == {"A": "active", "C": "active", "D": "lapsed", "F": "lapsed"}
    assert counts["not_scored"] == {"not_yet_signed_up": 1, "no_active_subscription": 1, "lapsed_too_long": 2,
                                    "lapsed": 0}
    assert (counts["scored"], counts["scored_active"], counts["scored_lapsed"]) == (4, 2, 2)
    assert counts["scored"] + sum(counts["not_scored"].values()) == counts["customers"] == 8
    # the older flat counts still add up to every customer
    assert counts["scored"] + counts["already_churned"] + counts["not_yet_signed_up"] == 8
    assert (frame["cutoff"] == pd.Timestamp(AS_OF)).all()


def test_population_active_scores_only_whom_the_model_trained_on(tables):
    frame, counts = eligible_customers(tables, AS_OF, HYBRID, population="active")
    assert scored(frame) == {"A": "active", "C": "active"}
    assert counts["not_scored"] == {"not_yet_signed_up": 1, "no_active_subscription": 1, "lapsed_too_long": 2,
                                    "lapsed": 2}


def test_lapsed_bound_decides_who_is_lapsed_too_long(tables):
    frame, counts = eligible_customers(tables, AS_OF, HYBRID, lapsed_within_days=None)
    assert scored(frame) == {"A": "active", "C": "active", "D": "lapsed", "E": "lapsed", "F": "lapsed",
                             "H": "lapsed"}
    frame, counts = eligible_customers(tables, AS_OF, HYBRID, lapsed_within_days=98)  # D: exactly 98 days
    assert scored(frame) == {"A": "active", "C": "active", "D": "lapsed", "F": "lapsed"}
    frame, counts = eligible_customers(tables, AS_OF, HYBRID, lapsed_within_days=97)
    assert scored(frame) == {"A": "active", "C": "active", "F": "lapsed"}
    assert counts["not_scored"]["lapsed_too_long"] == 3


def test_contractual_customers_without_a_subscription_are_churned_not_lapsed(tables):
    spec = LabelSpec(definition="subscription", horizon_days=30, grace_days=7, activity_tables=("events",))
    frame, counts = eligible_customers(tables, AS_OF, spec)
    assert scored(frame) == {"A": "active"}
    assert counts["not_scored"] == {"not_yet_signed_up": 1, "no_active_subscription": 6, "lapsed_too_long": 0,
                                    "lapsed": 0}


def test_inactivity_treats_everyone_by_their_activity(tables):
    spec = LabelSpec(definition="inactivity", horizon_days=30, activity_tables=("events",))
    frame, counts = eligible_customers(tables, AS_OF, spec)
    # A and B have no events: signed up Jan 1, inactive since, within a year
    assert scored(frame) == {"A": "lapsed", "B": "lapsed", "C": "active", "D": "lapsed", "F": "lapsed"}
    assert counts["not_scored"]["lapsed_too_long"] == 2 and counts["not_scored"]["no_active_subscription"] == 0


def test_unknown_population_is_a_clear_error(tables):
    with pytest.raises(ValueError, match=r"score.population must be one of \('all', 'active'\), got 'everyone'"):
        eligible_customers(tables, AS_OF, HYBRID, population="everyone")


def test_printed_summary_counts_everyone_left_out_by_reason(tables):
    _, counts = eligible_customers(tables, AS_OF, HYBRID)
    summary = {"as_of": "2024-07-01", "tiers": {"high": 1, "medium": 1, "low": 2}, "runtime_s": 1.5,
               "population": "all", "lapsed_within_days": 365, **counts}
    line = summary_line(summary, "3")
    assert line == ("scored 4 of 8 customers as of 2024-07-01 with model v3 (high 1, medium 1, low 2): "
                    "2 active, 2 lapsed (score.population=all; lapsed scores are an extrapolation); "
                    "not scored: 1 not yet signed up, 1 no active subscription, "
                    "2 lapsed more than 365 days (score.lapsed_within_days); 1.5s")
    _, counts = eligible_customers(tables, AS_OF, HYBRID, population="active")
    line = summary_line({**summary, **counts, "population": "active"}, "3")
    assert "2 active, 0 lapsed (score.population=active)" in line
    assert "2 lapsed, left out by score.population=active" in line


# ---------------------------------------------------------------- item 3: one name for the model


def test_model_uri_follows_the_registered_model_name():
    cfg = compose(ROOT / "conf", ["tracking.registered_model=retailer_model", "tracking.champion_alias=best"])
    assert cfg["score"]["model_uri"] == "models:/retailer_model@best"


def test_values_needed_twice_are_written_once():
    cfg = compose(ROOT / "conf", ["tracking.experiment=shop", "explain.top_k=3", "paths.reports=out"])
    assert cfg["tracking"]["scoring_experiment"] == "shop-scoring"
    assert cfg["tracking"]["retention_experiment"] == "shop-retention"
    assert cfg["score"]["top_k"] == 3
    assert cfg["paths"]["retention"] == "out/retention"


# ---------------------------------------------------------------- item 4: empty results keep their types


@pytest.fixture()
def no_months(tables):
    """The data ends before any month start has a whole look-back window recorded."""
    spec = LabelSpec(definition="inactivity", horizon_days=90, active_window_days=400, activity_tables=("events",))
    until = observed_until(tables)
    assert month_starts(tables, until, spec) == []
    return spec, until


def test_measures_on_no_months_keep_their_types(tables, no_months):
    spec, until = no_months
    observed = observed_rows(tables, spec, [], until)
    assert observed.empty and list(observed.columns) == ["customer_id", "cutoff", "label", "label_known"]
    assert types.is_string_dtype(observed["customer_id"]) and types.is_datetime64_dtype(observed["cutoff"])
    assert types.is_integer_dtype(observed["label"]) and types.is_bool_dtype(observed["label_known"])
    churn = monthly_churn(observed)
    assert churn.empty and list(churn.columns) == ["month", "customers", "churned", "churn_rate"]
    assert types.is_datetime64_dtype(churn["month"]) and types.is_float_dtype(churn["churn_rate"])
    assert types.is_integer_dtype(churn["customers"]) and types.is_integer_dtype(churn["churned"])
    recent = recent_churn_by_customer(observed, 12)
    assert recent.empty and list(recent.columns) == ["customer_id", "observed", "churned"]
    assert types.is_string_dtype(recent["customer_id"]) and types.is_integer_dtype(recent["observed"])
    assert types.is_integer_dtype(recent["churned"])
    customers = tables["customers"].select("customer_id", "signup_date").to_pandas()
    cohorts = cohort_retention(customers, observed)
    assert cohorts["customers"].sum() == 8 and types.is_integer_dtype(cohorts["customers"])
    segments = segment_table(pd.DataFrame({"customer_id": pd.Series([], dtype="str")}),
                             pd.DataFrame({"customer_id": [], "value_at_risk": [], "predicted_clv": []}),
                             recent, pd.DataFrame({"customer_id": [], "recent_revenue": []}))
    assert segments.empty and types.is_integer_dtype(segments["customers"])
    assert types.is_float_dtype(segments["churn_rate"]) and types.is_float_dtype(segments["value_at_risk"])


def test_report_on_no_months_is_written_with_a_note(tables, no_months, tmp_path):
    spec, until = no_months
    scores = pd.DataFrame({"customer_id": ["C", "D"], "churn_probability": [0.2, 0.7], "customer_value": [10.0, 20.0],
                           "value_at_risk": [2.0, 14.0], "risk_tier": ["medium", "high"]})
    result = build_retention(tables, scores, spec=spec, until=until, segments=[], recent_months=12, clv=ClvSpec(),
                             value_months=12.0)
    paths = write_retention(result, tmp_path / "retention", tmp_path / "retention.json")  # crashed on .dt
    assert result.churn.empty and result.headline["churn_rate_latest"] is None
    assert any("no month start" in note and "400" in note for note in result.notes)
    churn = pd.read_csv(paths["churn_rate.csv"])
    assert list(churn.columns) == ["month", "customers", "churned", "churn_rate"] and churn.empty
    assert paths["retention.html"].exists() and paths["cohort_retention.png"].stat().st_size > 0
