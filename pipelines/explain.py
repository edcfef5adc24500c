"""DVC stage explain: exact SHAP churn drivers on the out-of-time test rows, logged to the
training run for review in the MLflow UI.

Writes data/processed/explanations.parquet (every test row: probability, tier, top reasons and
the protective driver), reports/drivers/ (global and per-segment drivers, the figures, and the
self-contained HTML report churn_drivers.html), and logs them under the run's `drivers/`
artifacts, with the at-risk table also as an MLflow table.
"""

import sys
from pathlib import Path

import common
import mlflow
import pandas as pd

from churnml.modeling import tracking
from churnml.explain.drivers import driver_figures, global_drivers, segment_drivers, segment_series
from churnml.explain.reasons import explain_rows
from churnml.features.build import CUSTOMER_KEYS, feature_catalog
from churnml.data.io import atomic_path, write_parquet
from churnml.modeling.matrix import design_matrix
from churnml.modeling.booster import predict_proba
from churnml.explain.drivers_report import render_report, write_report
from churnml.scoring.batch import risk_tier


def main() -> int:
    params = common.start("explain")
    paths, cfg, track = params["paths"], params["explain"], params["tracking"]
    # first: a store that cannot be written stops the stage before any output is replaced
    tracking.configure(track["uri"], track["experiment"], track.get("artifact_location"))
    booster, spec, trained = common.trained_model(params)
    catalog = feature_catalog(spec)
    rows = common.labelled(params)
    test = rows[rows["split"] == "test"].reset_index(drop=True)
    matrix = design_matrix(test, spec)
    k = int(cfg["top_k"])
    reasons, shap_values = explain_rows(booster, test, matrix, spec, k, device=params["model"].get("device", "cpu"))
    tiers_cfg = dict(params["score"]["risk_tiers"])
    probability = predict_proba(booster, matrix, spec)
    tiers = pd.Series(risk_tier(probability, tiers_cfg), dtype="string")
    out = pd.concat([test[[*CUSTOMER_KEYS, "label"]],
                     pd.DataFrame({"churn_probability": probability, "risk_tier": tiers}), reasons], axis=1)
    out = out.sort_values(["churn_probability", "customer_id"], ascending=[False, True], kind="stable")
    write_parquet(out.reset_index(drop=True), Path(paths["explanations"]))

    drivers = global_drivers(shap_values, catalog)
    segments = segment_drivers(shap_values, catalog, segment_series(
        test, dict(cfg.get("segments") or {}), cfg.get("tenure_columns") or [], cfg["tenure_bands_days"], tiers))
    figures = driver_figures(shap_values, matrix, catalog, int(cfg["dependence_plots"]))
    lowest = min(tiers_cfg, key=tiers_cfg.get)
    latest = out[(out["cutoff"] == out["cutoff"].max()) & (out["risk_tier"] != lowest)]
    at_risk = latest[["customer_id", "cutoff", "churn_probability", "risk_tier",
                      *[f"reason_{i + 1}" for i in range(k)], "protective"]].reset_index(drop=True)
    at_risk["cutoff"] = at_risk["cutoff"].dt.strftime("%Y-%m-%d")

    folder = Path(paths["reports"]) / "drivers"
    for name, frame in {"global_drivers": drivers, "segment_drivers": segments, "at_risk": at_risk}.items():
        with atomic_path(folder / f"{name}.csv") as tmp:
            frame.round(6).to_csv(tmp, index=False)
    for stem, (_, png) in figures.items():
        with atomic_path(folder / f"{stem}.png") as tmp:
            Path(tmp).write_bytes(png)
    cutoff = f"{out['cutoff'].max():%Y-%m-%d}"
    html = render_report(
        title=f"Churn drivers: {track['registered_model']} v{trained['version']}",
        summary={"model": f"{track['registered_model']} v{trained['version']}", "explained rows": len(out),
                 "test cutoffs": ", ".join(sorted(f"{c:%Y-%m-%d}" for c in out["cutoff"].unique())),
                 "at-risk customers at the latest cutoff": f"{len(at_risk):,} of "
                 f"{int((out['cutoff'] == out['cutoff'].max()).sum()):,} on {cutoff}",
                 "at-risk means": f"tier {', '.join(t for t in tiers_cfg if t != lowest)} "
                 f"(probability ≥ {min(v for t, v in tiers_cfg.items() if t != lowest):.0%})"},
        global_drivers=drivers.head(int(cfg["report_drivers"])), figures=dict(figures.values()), segments=segments, at_risk=at_risk,
        max_rows=int(cfg["report_rows"]))
    report = write_report(html, folder / "churn_drivers.html")

    with tracking.start_run("the churn drivers to the training run", run_id=trained["run_id"]):
        mlflow.log_artifacts(str(folder), artifact_path="drivers")
        mlflow.log_table(at_risk, "drivers/at_risk_table.json")
        mlflow.log_metrics({"drivers_at_risk": len(at_risk), "drivers_top_share": float(drivers["share"].iloc[0])})
    top = out.iloc[0]
    print(f"  explained {len(out):,} test rows; {len(at_risk):,} at risk on {cutoff}; report {report}")
    print(f"  top drivers: {', '.join(drivers['feature'].head(5))}")
    print(f"  riskiest: {top['customer_id']} ({top['churn_probability']:.0%}): {top['reason_1']}")
    return 0


if __name__ == "__main__":
    sys.exit(common.run("explain", main))
