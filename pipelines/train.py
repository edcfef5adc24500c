"""DVC stage train: XGBoost on the training cutoffs, early-stopped on the validation slice,
logged to MLflow, registered, and crowned champion when there is none yet."""

import sys
from pathlib import Path

import common
import mlflow
from mlflow.models import infer_signature

from churnml import tracking
from churnml.features import FeatureSpec
from churnml.io import atomic_path, read_json, write_json
from churnml.model import booster_params, train_booster
from churnml.training import split_xy


def main() -> int:
    params = common.start("train")
    paths, model_cfg, track = params["paths"], params["model"], params["tracking"]
    spec = FeatureSpec.from_dict(read_json(Path(paths["features"]).with_name("feature_spec.json")))
    rows = common.labelled(params)
    train, valid = split_xy(rows, spec, "train"), split_xy(rows, spec, "valid")
    xgb_params = booster_params(model_cfg, params["seed"], params["train"].get("nthread"))

    tracking.configure(track["uri"], track["experiment"], track.get("artifact_location"))
    with mlflow.start_run(run_name="train") as run:
        mlflow.log_params(common.flatten({k: v for k, v in params.items() if k != "paths"}))
        booster = train_booster(train, valid, spec, xgb_params, int(model_cfg["num_boost_round"]),
                                int(model_cfg["early_stopping_rounds"]))
        mlflow.log_metrics({
            "best_iteration": booster.num_boosted_rounds() - 1,
            "train_rows": len(train[1]), "valid_rows": len(valid[1]),
            "train_churn_rate": float(train[1].mean()), "valid_churn_rate": float(valid[1].mean()),
        })
        mlflow.log_artifact(paths["catalog"], artifact_path="features")
        example = train[0].head(5)
        info = mlflow.xgboost.log_model(
            booster, name="model", signature=infer_signature(example, booster.inplace_predict(example)),
            input_example=example, registered_model_name=track["registered_model"],
        )
        version = str(info.registered_model_version)
        crowned = tracking.crown_if_vacant(track["registered_model"], version, track["champion_alias"])
        mlflow.set_tags({"churnml.model_version": version, "churnml.champion": str(crowned).lower()})

    model_dir = Path(paths["model_dir"])
    with atomic_path(model_dir / "model.ubj") as tmp:
        booster.save_model(tmp)
    write_json({"run_id": run.info.run_id, "model_uri": info.model_uri, "registered_model": track["registered_model"],
                "version": version, "champion": crowned}, model_dir / "train.json")
    print(f"  trained {booster.num_boosted_rounds()} trees on {len(train[1]):,} rows; "
          f"registered {track['registered_model']} v{version}{' as champion' if crowned else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
