"""DVC stage train: leakage guard, Optuna search, XGBoost refit, calibration, baselines.

Everything is logged to one MLflow run (trials and baselines as nested runs), and the model is
registered as a new version. Whether it becomes champion is the evaluate stage's gate.
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
from churnml.modeling.booster import (booster_params, imbalance, predict_raw, set_calibration, set_profile, train_booster, valid_score)
from churnml.modeling.provenance import data_fingerprint, git_commit
from churnml.modeling.search import Trial, check_space, search
from churnml.modeling.matrix import split_xy
from churnml.modeling.redundancy import redundant_features


def main() -> int:
    params = common.start("train")
    paths, model_cfg, train_cfg, track = params["paths"], params["model"], params["train"], params["tracking"]
    seed = int(params["seed"])
    # first: a store that cannot be written stops the stage before any output is replaced
    tracking.configure(track["uri"], track["experiment"], track.get("artifact_location"))
    spec = FeatureSpec.from_dict(read_json(Path(paths["features"]).with_name("feature_spec.json")))
    rows = common.labelled(params)
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

    with tracking.start_run("the training run", run_name="train") as run:
        mlflow.log_params(common.flatten(params))
        mlflow.set_tags({"mlflow.source.git.commit": git_commit(), "churnml.stage": "train"})
        inputs = [params["data"]["path"], paths["observations"], paths["features"]]
        mlflow.set_tags({f"churnml.data.{path}": digest for path, digest in data_fingerprint(inputs).items()})

        trials = int(search_cfg.get("trials") or 0)
        if trials > 0:
            def log_trial(trial: Trial) -> None:
                with tracking.start_run(f"search trial {trial.number}", run_name=f"trial-{trial.number}", nested=True):
                    mlflow.log_params(trial.params)
                    mlflow.log_metrics({f"valid_{base['eval_metric']}": trial.score, "trees": trial.trees})

            found = search(train, valid, spec, base, search_cfg["space"], trials=trials, seed=seed,
                           num_boost_round=rounds, early_stopping_rounds=patience, weights=weights,
                           timeout_s=search_cfg.get("timeout_s"), on_trial=log_trial)
            base.update(found.best_params)
            mlflow.log_params({f"best.{k}": v for k, v in found.best_params.items()})
            mlflow.log_metric("search_trials", len(found.trials))

        booster = train_booster(train, valid, spec, base, rounds, patience, weights)
        calibration = fit_calibration(valid[1], predict_raw(booster, valid[0], spec), seed,
                                      method=train_cfg.get("calibration", "auto"),
                                      auc_tolerance=float(train_cfg.get("calibration_auc_tolerance", AUC_TOLERANCE)))
        set_calibration(booster, calibration)
        set_profile(booster, feature_profile(train[0], catalog, spec.levels))  # for drift checks when scoring
        mlflow.log_params({"calibration.method": calibration["method"], "features.dropped": len(dropped)})
        mlflow.set_tags({"churnml.calibration.reason": calibration["reason"]})
        mlflow.log_metrics({
            f"valid_{base['eval_metric']}": valid_score(booster), "trees": booster.num_boosted_rounds(),
            "train_rows": len(train[1]), "valid_rows": len(valid[1]),
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
            booster, name="model", signature=infer_signature(example, booster.inplace_predict(example)),
            input_example=example, registered_model_name=track["registered_model"],
        )
        version = str(info.registered_model_version)
        mlflow.set_tag("churnml.model_version", version)

        # baselines: the same training rows, scored on the same test rows; metrics come from evaluate
        baseline_runs, scores = {}, test_rows[CUSTOMER_KEYS].reset_index(drop=True)
        for name, scorer in fit_baselines(train[0], train[1], catalog, seed).items():
            with tracking.start_run(f"the {name} baseline", run_name=f"baseline-{name}", nested=True) as child:
                mlflow.set_tags({"churnml.baseline": name, "churnml.stage": "train"})
                baseline_runs[name] = child.info.run_id
            scores[name] = scorer(x_test)

    model_dir = Path(paths["model_dir"])
    write_parquet(scores, model_dir / "baseline_scores.parquet")
    with atomic_path(model_dir / "model.ubj") as tmp:
        booster.save_model(tmp)
    write_json({"run_id": run.info.run_id, "model_uri": info.model_uri, "registered_model": track["registered_model"],
                "version": version, "calibration": calibration["method"], "baseline_runs": baseline_runs,
                "params": {k: v for k, v in base.items() if k not in ("device", "nthread")}},
               model_dir / "train.json")
    print(f"  trained {booster.num_boosted_rounds()} trees on {len(train[1]):,} rows "
          f"({trials} search trials, {len(catalog)} features, {len(dropped)} dropped as redundant); "
          f"registered {track['registered_model']} v{version}; baselines: {', '.join(baseline_runs)}")
    print(f"  calibration: {calibration['method']} ({calibration['reason']})")
    return 0


if __name__ == "__main__":
    sys.exit(common.run("train", main))
