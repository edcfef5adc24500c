"""DVC stage train: leakage guard, Optuna search over rolling-origin folds, the held-out model,
calibration, baselines, and the refit on every labelled row.

Two models come out. The held-out model (models/model.ubj) never sees the test cutoffs: evaluate
measures it and the gate decides on it. With train.refit, the refit (models/model_refit.ubj) is
the same recipe on every labelled row, train, valid and test: it is the registered version, the
one that scores. Everything is logged to one MLflow run (trials and baselines as nested runs, the
held-out model as the artifact held_out_model/model.ubj). Whether the version becomes champion
is the evaluate stage's gate.

On Spark (engine.backend: spark) both models learn from every labelled row with xgboost.spark;
everything else here works on a bounded stratified sample of them (train.spark.sample_rows), and
the MLflow run says so.
"""

import sys
from pathlib import Path

import common
import mlflow
import pandas as pd
from mlflow.models import infer_signature

from churnml.modeling import tracking
from churnml.modeling.baselines import fit_baselines
from churnml.modeling.calibration import AUC_TOLERANCE, fit_calibration
from churnml.scoring.drift import feature_profile
from churnml.features.build import CUSTOMER_KEYS, FeatureSpec, feature_catalog
from churnml.data.io import atomic_path, read_json, write_json, write_parquet
from churnml.modeling.leakage import LeakageError, raise_for_leakage, single_feature_auc
from churnml.modeling.booster import (booster_params, fit_of, fit_rounds, imbalance, predict_raw, mark_refit, set_calibration, set_fit, set_profile, train_booster, valid_score)
from churnml.modeling.distributed import SparkTraining
from churnml.modeling.folds import FoldPlan, fold_masks, purge_days, refit_rounds, rolling_origin_folds
from churnml.modeling.provenance import data_fingerprint, git_commit
from churnml.modeling.search import FoldData, Trial, check_space, cross_validate, search
from churnml.modeling.matrix import design_matrix, split_xy
from churnml.modeling.redundancy import redundant_features


def fold_data(rows: pd.DataFrame, plan: FoldPlan, index: int, spec: FeatureSpec, mode: str) -> FoldData:
    """The design matrices of fold `index`, with the class-imbalance handling of its own training rows."""
    train_mask, valid_mask = fold_masks(rows, plan.folds[index])
    y_train = rows.loc[train_mask, "label"].to_numpy(dtype="float64")
    extra, weights = imbalance(y_train, mode)
    return FoldData((design_matrix(rows[train_mask], spec), y_train),
                    (design_matrix(rows[valid_mask], spec), rows.loc[valid_mask, "label"].to_numpy(dtype="float64")),
                    weights, extra)


def refit(rows: pd.DataFrame, spec: FeatureSpec, catalog: list, params: dict, held_out, mode: str, power: float,
          ceiling: int, plan: FoldPlan, on_spark: SparkTraining | None):
    """The held-out model's recipe on every labelled row (train, valid and test), its rounds
    scaled from the train rows to all of them. On Spark, `rows` is the sample: the fit is on
    every row, the drift profile on the sample."""
    x_all, y_all = design_matrix(rows, spec), rows["label"].to_numpy(dtype="float64")
    if on_spark is None:
        rows_all, rows_fit = len(y_all), int((rows["split"] == "train").sum())
    else:
        rows_all, rows_fit = on_spark.rows(), on_spark.rows(["train"])
    n = refit_rounds(held_out.num_boosted_rounds(), rows_all, rows_fit, power, ceiling)
    if on_spark is None:
        extra, weights = imbalance(y_all, mode)
        booster = fit_rounds((x_all, y_all), spec, {**params, **extra}, n, weights)
    else:
        booster = on_spark.fit(spec, params, n, mode)
    return mark_refit(booster, held_out, rows_all, feature_profile(x_all, catalog, spec.levels),
                      {"held_out_rows": rows_fit, "held_out_rounds": held_out.num_boosted_rounds(),
                       "rounds_power": power, "validation": plan.describe()})


def scoring_rows(booster) -> int:
    return int(fit_of(booster)["rows"])


def model_kind_tags(kind: str) -> dict[str, str]:
    """What the registered version is, and which model its test metrics belong to."""
    if kind == "refit":
        return {"churnml.model.kind": "refit", "churnml.model.evaluated_by": "held-out model",
                "churnml.model.note": "refit on every labelled row, test cutoffs included; test_* metrics and "
                                      "the gate are the held-out model's, before refit (artifact held_out_model/)"}
    return {"churnml.model.kind": "held-out", "churnml.model.evaluated_by": "held-out model",
            "churnml.model.note": "trained before the test cutoffs; test_* metrics are this model's"}


def main() -> int:
    params = common.start("train")
    paths, model_cfg, train_cfg, track = params["paths"], params["model"], params["train"], params["tracking"]
    seed = int(params["seed"])
    # first: a store that cannot be written stops the stage before any output is replaced
    tracking.configure(track["uri"], track["experiment"], track.get("artifact_location"))
    spec = FeatureSpec.from_dict(read_json(Path(paths["features"]).with_name("feature_spec.json")))
    on_spark = common.spark_training(params) if common.on_spark(params) else None
    rows = common.labelled(params) if on_spark is None else on_spark.sample
    if on_spark is not None:
        print(f"  {on_spark.describe()}")
    # constant features and copies of another feature teach nothing and split explanations in
    # two: they leave the spec, so the model, scoring and reasons never see them
    dropped = redundant_features(split_xy(rows, spec, "train")[0], feature_catalog(spec))
    spec.dropped = [*spec.dropped, *dropped]
    catalog = feature_catalog(spec)
    for name, why in dropped.items():
        print(f"  dropped feature {name}: {why}")
    if not catalog:
        print(f"train: all {len(dropped)} features are constant or a copy of another on the "
              f"{int((rows['split'] == 'train').sum()):,} training rows (e.g. {', '.join(list(dropped)[:3])}): "
              "nothing to learn from; check the data and features.families", file=sys.stderr)
        return 1
    train, valid = split_xy(rows, spec, "train"), split_xy(rows, spec, "valid")
    test_rows = rows[rows["split"] == "test"]
    # the rows the held-out model learns from and is scored on: on Spark every row, not the sample's
    train_rows, valid_rows = ((len(train[1]), len(valid[1])) if on_spark is None
                              else (on_spark.rows(["train"]), on_spark.rows(["valid"])))
    x_test, _ = split_xy(rows, spec, "test")
    search_cfg = train_cfg.get("search") or {}
    check_space(search_cfg.get("space") or {})

    # leakage guard first: a leaky feature must stop the stage before anything is registered
    leakage = train_cfg.get("leakage") or {}
    aucs = single_feature_auc(train[0], train[1], {i.name for i in catalog if i.kind == "categorical"})
    reports = Path(paths["reports"])
    with atomic_path(reports / "single_feature_auc.csv") as tmp:
        aucs.rename_axis("feature").reset_index().round(6).to_csv(tmp, index=False)
    with atomic_path(reports / "dropped_features.csv") as tmp:
        pd.DataFrame({"feature": list(dropped), "reason": list(dropped.values())}, dtype="string").to_csv(tmp, index=False)
    try:
        raise_for_leakage(aucs, float(leakage.get("max_single_feature_auc", 0.95)), list(leakage.get("allow") or []))
    except LeakageError as error:
        print(f"train: {error}", file=sys.stderr)
        return 1

    base = booster_params(model_cfg, seed, train_cfg.get("nthread"))
    extra, weights = imbalance(train[1], train_cfg.get("imbalance", "none"))
    base.update(extra)
    rounds, patience = int(model_cfg["num_boost_round"]), int(model_cfg["early_stopping_rounds"])
    power = float(train_cfg.get("refit_rounds_power", 1.0))
    labels = params["labels"]
    before_test = rows[rows["split"].isin(["train", "valid"])].reset_index(drop=True)
    plan = rolling_origin_folds(before_test, int(search_cfg.get("folds", 3)), int(search_cfg.get("min_train_cutoffs", 3)),
                                purge_days(labels.get("lead_days", 0), labels["horizon_days"], labels.get("grace_days", 0)))
    folds = [fold_data(before_test, plan, i, spec, train_cfg.get("imbalance", "none")) for i in range(len(plan.folds))]
    print(f"  validation: {plan.describe()}")

    with tracking.start_run("the training run", run_name="train") as run:
        mlflow.log_params(common.flatten(params))
        if on_spark is not None:
            mlflow.log_params(on_spark.mlflow_params())
            mlflow.set_tags({"churnml.train.sample": on_spark.describe()})
            mlflow.log_dict(on_spark.drawn, "train_sample.json")
        mlflow.set_tags({"mlflow.source.git.commit": git_commit(), "churnml.stage": "train"})
        inputs = [params["data"]["path"], paths["observations"], paths["features"]]
        mlflow.set_tags({f"churnml.data.{path}": digest for path, digest in data_fingerprint(inputs).items()})

        metric = base["eval_metric"]
        mlflow.set_tags({"churnml.validation": plan.describe()})
        mlflow.log_metric("cv_folds", len(folds) if plan.rolling else 0)
        trials = int(search_cfg.get("trials") or 0)
        fold_scores, fold_trees = [], []
        if trials > 0:
            def log_trial(trial: Trial) -> None:
                with tracking.start_run(f"search trial {trial.number}", run_name=f"trial-{trial.number}", nested=True):
                    mlflow.log_params(trial.params)
                    mlflow.log_metrics({f"valid_{metric}": trial.score, "trees": trial.trees,
                                        **{f"fold{i}_valid_{metric}": v for i, v in enumerate(trial.fold_scores)}})

            found = search(train, valid, spec, base, search_cfg["space"], trials=trials, seed=seed,
                           num_boost_round=rounds, early_stopping_rounds=patience, weights=weights,
                           timeout_s=search_cfg.get("timeout_s"), on_trial=log_trial,
                           folds=folds if plan.rolling else None)
            base.update(found.best_params)
            mlflow.log_params({f"best.{k}": v for k, v in found.best_params.items()})
            mlflow.log_metric("search_trials", len(found.trials))
            fold_scores, fold_trees = list(found.best_fold_scores), [found.best_trees]
        elif plan.rolling:
            fold_scores, fold_trees = cross_validate(folds, spec, base, rounds, patience)

        if plan.rolling:
            # the folds chose the rounds: their mean early-stopped trees, scaled from the folds'
            # mean training rows to the train split's by the refit rule; the valid slice (the
            # last fold's cutoff) then only scores the model and fits the calibration. On Spark
            # the folds are the sample's and the train split is every row: the same rule scales
            # from the one to the other
            mean_fold_rows = sum(f.train_rows for f in plan.folds) / len(plan.folds)
            held_rounds = refit_rounds(round(sum(fold_trees) / len(fold_trees)), train_rows, round(mean_fold_rows),
                                       power, rounds)
            if on_spark is None:
                booster = fit_rounds(train, spec, base, held_rounds, weights, valid=valid)
            else:
                booster = on_spark.fit(spec, base, held_rounds, train_cfg.get("imbalance", "none"),
                                       fit_splits=["train"], valid_split="valid")
            mlflow.log_metrics({f"cv_valid_{metric}": sum(fold_scores) / len(fold_scores),
                                **{f"cv_fold{i}_valid_{metric}": v for i, v in enumerate(fold_scores)}})
        elif on_spark is None:  # single slice: early stopping on the validation slice, as the search did
            booster = train_booster(train, valid, spec, base, rounds, patience, weights)
        else:
            booster = on_spark.fit(spec, base, rounds, train_cfg.get("imbalance", "none"), fit_splits=["train"],
                                   valid_split="valid", early_stopping_rounds=patience)
        calibration = fit_calibration(valid[1], predict_raw(booster, valid[0], spec), seed,
                                      method=train_cfg.get("calibration", "auto"),
                                      auc_tolerance=float(train_cfg.get("calibration_auc_tolerance", AUC_TOLERANCE)))
        set_calibration(booster, calibration)
        set_profile(booster, feature_profile(train[0], catalog, spec.levels))  # for drift checks when scoring
        set_fit(booster, {"kind": "held-out", "rows": train_rows, "rounds": booster.num_boosted_rounds(),
                          "validation": plan.describe()})
        scoring = booster
        if train_cfg.get("refit", True):
            scoring = refit(rows, spec, catalog, base, booster, train_cfg.get("imbalance", "none"), power, rounds, plan,
                            on_spark)
            mlflow.log_metrics({"refit_rows": scoring_rows(scoring), "refit_trees": scoring.num_boosted_rounds()})
            print(f"  refit: {scoring.num_boosted_rounds()} trees on every labelled row ({scoring_rows(scoring):,}: "
                  f"train, valid and test), from the held-out model's {booster.num_boosted_rounds()} trees on "
                  f"{train_rows:,} rows x ({scoring_rows(scoring):,} / {train_rows:,}) ** {power:g}")
        mlflow.log_params({"train.refit.model": "refit" if scoring is not booster else "held-out"})
        mlflow.log_params({"calibration.method": calibration["method"], "features.dropped": len(dropped)})
        mlflow.set_tags({"churnml.calibration.reason": calibration["reason"]})
        mlflow.log_metrics({
            f"valid_{base['eval_metric']}": valid_score(booster), "trees": booster.num_boosted_rounds(),
            "train_rows": train_rows, "valid_rows": valid_rows,
            "train_churn_rate": float(train[1].mean()), "valid_churn_rate": float(valid[1].mean()),
            "max_single_feature_auc": float(aucs.iloc[0]) if len(aucs) else 0.5,
            **{f"valid_brier_{k[6:]}": v for k, v in calibration.items() if k.startswith("brier_") and v is not None},
            **{f"valid_auc_drop_{k[9:]}": v for k, v in calibration.items() if k.startswith("auc_drop_") and v is not None},
        })
        mlflow.log_artifact(paths["catalog"], artifact_path="features")
        mlflow.log_artifact(str(reports / "single_feature_auc.csv"), artifact_path="features")
        mlflow.log_artifact(str(reports / "dropped_features.csv"), artifact_path="features")
        mlflow.log_dict(calibration, "model_calibration.json")
        example = train[0].head(5)
        info = mlflow.xgboost.log_model(
            scoring, name="model", signature=infer_signature(example, scoring.inplace_predict(example)),
            input_example=example, registered_model_name=track["registered_model"],
            pip_requirements=tracking.model_requirements(),
        )
        version = str(info.registered_model_version)
        kind = "refit" if scoring is not booster else "held-out"
        model_tags = model_kind_tags(kind)
        mlflow.set_tags({"churnml.model_version": version, **model_tags})
        tracking.tag_version(track["registered_model"], version, model_tags)
        if scoring is not booster:
            # the gate scores this one when the version is a later candidate's champion
            tracking.log_held_out(booster)

        # baselines: the same training rows, scored on the same test rows; metrics come from evaluate
        baseline_runs, scores = {}, test_rows[CUSTOMER_KEYS].reset_index(drop=True)
        for name, scorer in fit_baselines(train[0], train[1], catalog, seed).items():
            with tracking.start_run(f"the {name} baseline", run_name=f"baseline-{name}", nested=True) as child:
                mlflow.set_tags({"churnml.baseline": name, "churnml.stage": "train"})
                baseline_runs[name] = child.info.run_id
            scores[name] = scorer(x_test)

    model_dir = Path(paths["model_dir"])
    write_parquet(scores, model_dir / "baseline_scores.parquet")
    with atomic_path(model_dir / "model.ubj") as tmp:  # the held-out model: what evaluate measures
        booster.save_model(tmp)
    refit_path = model_dir / "model_refit.ubj"
    if scoring is not booster:
        with atomic_path(refit_path) as tmp:
            scoring.save_model(tmp)
    else:  # a refit of an earlier run must not pass for this run's
        refit_path.unlink(missing_ok=True)
    write_json({"run_id": run.info.run_id, "model_uri": info.model_uri, "registered_model": track["registered_model"],
                "version": version, "model_kind": kind, "calibration": calibration["method"],
                "baseline_runs": baseline_runs, "validation": plan.describe(),
                "held_out": {"rows": train_rows, "trees": booster.num_boosted_rounds()},
                "refit": None if scoring is booster else {"rows": scoring_rows(scoring), "trees": scoring.num_boosted_rounds(),
                                                          "rounds_power": power},
                "params": {k: v for k, v in base.items() if k not in ("device", "nthread")}},
               model_dir / "train.json")
    print(f"  trained {booster.num_boosted_rounds()} trees on {train_rows:,} rows "
          f"({trials} search trials, {len(catalog)} features, {len(dropped)} dropped as redundant); "
          f"registered {track['registered_model']} v{version} ({kind}: {model_tags['churnml.model.note']}); "
          f"baselines: {', '.join(baseline_runs)}")
    print(f"  calibration: {calibration['method']} ({calibration['reason']})")
    return 0


if __name__ == "__main__":
    sys.exit(common.run("train", main))
