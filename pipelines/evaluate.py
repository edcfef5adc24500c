"""DVC stage evaluate: out-of-time test metrics -> reports/metrics.json, plots, and the MLflow run."""

import sys
from pathlib import Path

import common
import mlflow

from churnml import tracking
from churnml.evaluate import curves, ranking_metrics
from churnml.io import atomic_path, write_json
from churnml.model import predict_proba
from churnml.training import split_xy


def main() -> int:
    params = common.start("evaluate")
    paths, track = params["paths"], params["tracking"]
    booster, spec, trained = common.trained_model(params)
    rows = common.labelled(params)
    x_test, y_test = split_xy(rows, spec, "test")
    scores = predict_proba(booster, x_test, spec)
    metrics = ranking_metrics(y_test, scores, float(params["evaluate"]["top_fraction"]))
    test = rows[rows["split"] == "test"]
    report = {"model": {k: round(v, 6) for k, v in metrics.items() if k not in {"rows", "churn_rate"}},
              "test": {"rows": metrics["rows"], "churn_rate": round(metrics["churn_rate"], 6),
                       "cutoffs": sorted(f"{c:%Y-%m-%d}" for c in test["cutoff"].unique())}}
    reports = Path(paths["reports"])
    write_json(report, reports / "metrics.json")
    plot_dir = reports / "plots"
    for name, frame in curves(y_test, scores).items():
        with atomic_path(plot_dir / f"{name}.csv") as tmp:
            frame.round(6).to_csv(tmp, index=False)

    tracking.configure(track["uri"], track["experiment"], track.get("artifact_location"))
    with mlflow.start_run(run_id=trained["run_id"]):
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
        mlflow.log_artifacts(str(plot_dir), artifact_path="evaluation")
        mlflow.log_artifact(str(reports / "metrics.json"), artifact_path="evaluation")
    m = report["model"]
    print(f"  test ({metrics['rows']:,} rows, churn {metrics['churn_rate']:.1%}): ROC AUC {m['roc_auc']:.3f}, "
          f"PR AUC {m['pr_auc']:.3f}, top-decile lift {m['top_decile_lift']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
