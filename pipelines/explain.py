"""DVC stage explain: SHAP contributions and top reasons for the test set, and the global summary plot."""

import sys
from pathlib import Path

import common
import mlflow
import pandas as pd

from churnml import tracking
from churnml.explain import explain_rows, summary_plot
from churnml.features import CUSTOMER_KEYS
from churnml.io import atomic_path, write_parquet
from churnml.model import design_matrix, predict_proba


def main() -> int:
    params = common.start("explain")
    paths, track = params["paths"], params["tracking"]
    booster, spec, trained = common.trained_model(params)
    rows = common.labelled(params)
    test = rows[rows["split"] == "test"].reset_index(drop=True)
    matrix = design_matrix(test, spec)
    reasons, shap_values = explain_rows(booster, test, matrix, spec, k=3)
    out = pd.concat([test[[*CUSTOMER_KEYS, "label"]],
                     pd.DataFrame({"churn_probability": predict_proba(booster, matrix, spec)}), reasons], axis=1)
    out = out.sort_values(["churn_probability", "customer_id"], ascending=[False, True], kind="stable")
    write_parquet(out.reset_index(drop=True), Path(paths["explanations"]))
    plot = Path(paths["reports"]) / "shap_summary.png"
    with atomic_path(plot) as tmp:
        summary_plot(shap_values, matrix, tmp)

    tracking.configure(track["uri"], track["experiment"], track.get("artifact_location"))
    with mlflow.start_run(run_id=trained["run_id"]):
        mlflow.log_artifact(str(plot), artifact_path="explanations")
    top = out.head(1).iloc[0]
    print(f"  explained {len(out):,} test rows; riskiest: {top['customer_id']} "
          f"({top['churn_probability']:.0%}): {top['reason_1']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
