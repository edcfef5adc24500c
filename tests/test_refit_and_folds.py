"""Issue 15: rolling-origin folds for the search and early stopping, and the refit on every
labelled row that becomes the scoring version while the held-out model keeps the test metrics."""

import numpy as np
import pandas as pd
import pytest

from churnml.features.build import FeatureSpec
from churnml.modeling.booster import (CALIBRATION_ATTR, SPEC_ATTR, booster_params, calibration_of, fit_of,
                                      profile_of, fit_rounds, mark_refit, set_calibration, spec_of, train_booster)
from churnml.modeling.folds import fold_masks, purge_days, refit_rounds, rolling_origin_folds
from churnml.modeling.search import FoldData, search

SPEC = FeatureSpec(families=["profile"], windows=[7], attributes={"x": "numeric", "z": "numeric"})


def _rows(months: int, per_cutoff: int = 4) -> pd.DataFrame:
    """Monthly cutoffs from 2024-01-01, each with churners and stayers."""
    cutoffs = pd.date_range("2024-01-01", periods=months, freq="MS")
    return pd.DataFrame({
        "customer_id": [f"c{i}" for _ in cutoffs for i in range(per_cutoff)],
        "cutoff": np.repeat(cutoffs, per_cutoff),
        "label": [i % 2 for _ in cutoffs for i in range(per_cutoff)],
    })


def test_folds_validate_on_the_latest_cutoffs_and_train_only_on_closed_label_windows():
    # 30-day horizon + 7 days' grace: a cutoff's label is known 37 days later
    gap = purge_days(0, 30, 7)
    plan = rolling_origin_folds(_rows(8), folds=3, min_train_cutoffs=2, purge=gap)
    assert plan.rolling and [f"{f.valid_cutoff:%m}" for f in plan.folds] == ["06", "07", "08"]
    # June validates: May's window (May 1 + 37 days = June 7) is still open then, April's is closed
    assert [f"{c:%m}" for c in plan.folds[0].train_cutoffs] == ["01", "02", "03", "04"]
    for fold in plan.folds:
        assert all(c + pd.Timedelta(days=gap) <= fold.valid_cutoff for c in fold.train_cutoffs)
        assert fold.train_rows == 4 * len(fold.train_cutoffs) and fold.valid_rows == 4
    assert plan.describe().startswith("rolling-origin, 3 folds (validating on 2024-06-01, 2024-07-01, 2024-08-01")
    train_mask, valid_mask = fold_masks(_rows(8), plan.folds[2])
    assert int(train_mask.sum()) == 4 * 6 and int(valid_mask.sum()) == 4 and not (train_mask & valid_mask).any()


def test_a_lead_widens_the_purge():
    # 31 days of lead: the window of March (1 + 31 + 30 + 7 = 68 days) is still open on May 1
    plan = rolling_origin_folds(_rows(5), folds=1, min_train_cutoffs=1, purge=purge_days(31, 30, 7))
    assert [f"{c:%m}" for c in plan.folds[0].train_cutoffs] == ["01", "02"]


def test_too_few_usable_folds_fall_back_to_the_single_slice_and_say_why():
    plan = rolling_origin_folds(_rows(5), folds=3, min_train_cutoffs=3, purge=37)
    # only May has 3 closed training cutoffs (Jan, Feb, Mar); March and April have 1 and 2
    assert len(plan.folds) == 1 and not plan.rolling
    assert plan.describe().startswith("single slice: only 1 usable fold(s) (2024-03-01: 1 training cutoff(s)")
    assert "fewer than train.search.min_train_cutoffs = 3" in plan.skipped["2024-04-01"]
    one_class = _rows(6).assign(label=lambda f: np.where(f["cutoff"] == "2024-06-01", 0, f["label"]))
    plan = rolling_origin_folds(one_class, folds=2, min_train_cutoffs=1, purge=37)
    assert plan.skipped == {"2024-06-01": "one side of the fold has a single class"} and not plan.rolling
    empty = rolling_origin_folds(_rows(0), folds=3, min_train_cutoffs=1, purge=37)
    assert empty.folds == [] and empty.describe() == "single slice: only 0 usable fold(s) (no cutoffs before the test set)"


def test_refit_rounds_scale_with_the_rows():
    assert refit_rounds(100, 1300, 1000, 1.0, 1000) == 130  # in proportion
    assert refit_rounds(100, 1300, 1000, 0.0, 1000) == 100  # unchanged
    assert refit_rounds(100, 4000, 1000, 0.5, 1000) == 200  # square root
    assert refit_rounds(900, 2000, 1000, 1.0, 1000) == 1000  # never past model.num_boost_round
    with pytest.raises(ValueError, match="refit_rounds_power must be >= 0"):
        refit_rounds(100, 1300, 1000, -1.0, 1000)


def _data(seed, n=600):
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=n), rng.normal(size=n)
    frame = pd.DataFrame({"prof_days_since_signup": rng.uniform(0, 400, n), "prof_x": x, "prof_z": z})
    return frame, (rng.uniform(size=n) < 1 / (1 + np.exp(-(2 * x + z * z - 2)))).astype(float)


def test_the_refit_carries_spec_calibration_and_profile_and_learned_from_more_rows():
    train, valid = _data(1), _data(2)
    params = booster_params({}, seed=0, nthread=2)
    held_out = train_booster(train, valid, SPEC, params, 200, 10)
    set_calibration(held_out, {"method": "platt", "a": 1.5, "b": -0.2})
    every = (pd.concat([train[0], valid[0]], ignore_index=True), np.concatenate([train[1], valid[1]]))
    rounds = refit_rounds(held_out.num_boosted_rounds(), len(every[1]), len(train[1]), 1.0, 200)
    refit = mark_refit(fit_rounds(every, SPEC, params, rounds), held_out, len(every[1]),
                       {"prof_x": {"kind": "numeric"}}, fit={"held_out_rows": len(train[1])})
    assert refit.attr(SPEC_ATTR) == held_out.attr(SPEC_ATTR) and spec_of(refit) == SPEC
    assert refit.attr(CALIBRATION_ATTR) and calibration_of(refit) == calibration_of(held_out)
    assert profile_of(refit) == {"prof_x": {"kind": "numeric"}}
    assert refit.num_boosted_rounds() == rounds == round(held_out.num_boosted_rounds() * 2)
    fit = fit_of(refit)
    assert fit["kind"] == "refit" and fit["rows"] == 1200 > fit["held_out_rows"] == 600


def test_the_search_is_judged_by_the_mean_over_the_folds():
    folds = [FoldData(_data(s), _data(s + 10)) for s in (1, 2, 3)]
    base = booster_params({}, seed=0, nthread=2)
    space = {"max_depth": {"type": "int", "low": 2, "high": 5}}
    found = search(folds[0].train, folds[0].valid, SPEC, base, space, trials=2, seed=0, num_boost_round=100,
                   early_stopping_rounds=10, folds=folds)
    for trial in found.trials:
        assert len(trial.fold_scores) == 3 and trial.score == pytest.approx(np.mean(trial.fold_scores))
    assert found.best_score == min(t.score for t in found.trials) and len(found.best_fold_scores) == 3
    assert found.best_trees > 0
