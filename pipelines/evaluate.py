"""DVC stage evaluate: the out-of-time test, the model beside its baselines, campaign economics,
plots, and the champion/challenger gate.

Writes reports/metrics.json (DVC metrics: `model`, `baselines.<name>`, `campaign`, `test`),
reports/evaluation.csv (the table), reports/gate.json, the DVC plot tables and PNG figures, and
logs all of it to the training run; the baselines' metrics go to their own child runs.
"""

import sys
from pathlib import Path

import common
import mlflow
import pandas as pd

from churnml.modeling import tracking
from churnml.modeling.evaluation import (Economics, campaign_summary, classification_metrics, curves, customer_value, per_cutoff_metrics, profit_curve, ranking_metrics, recall_precision_at)
from churnml.modeling.gate import GateDecision, champion_probabilities, decide, small_test_warning, summarize
from churnml.data.io import atomic_path, write_json
from churnml.modeling.matrix import design_matrix
from churnml.modeling.booster import predict_proba
from churnml.modeling.evaluation_plots import save_evaluation_plots

# baselines whose scores are probabilities; the recency rule is a ranking only
PROBABILISTIC = {"logistic", "rfm"}
TABLE_COLUMNS = ["roc_auc", "pr_auc", "top_decile_lift", "recall_at_10", "precision_at_10", "recall_at_20",
                 "precision_at_20", "log_loss", "brier", "ece"]


def baseline_metrics(name: str, y, scores, top_fraction: float, bins: int) -> dict[str, float]:
    if name in PROBABILISTIC:
        return classification_metrics(y, scores, top_fraction, bins)
    metrics = ranking_metrics(y, scores, top_fraction)
    for pct in (10, 20):
        metrics[f"recall_at_{pct}"], metrics[f"precision_at_{pct}"] = recall_precision_at(y, scores, pct / 100)
    return metrics


def gate(params, trained, spec, test, y, baselines: dict[str, dict], warnings: list[str], top_fraction: float,
         bins: int):
    """Score the current champion on the same test rows and decide whether the candidate replaces it
    (the first model: whether it beats the best baseline)."""
    track, rule = params["tracking"], params["evaluate"]["gate"]
    metric, margin = rule["metric"], float(rule["margin"])
    name, alias = track["registered_model"], track["champion_alias"]
    candidate = classification_metrics(y, test["probability"], top_fraction, bins)[metric]
    holder = tracking.champion_version(name, alias)
    if holder == trained["version"]:  # evaluated again, e.g. after an evaluate-only change
        return GateDecision(False, f"v{holder} is the champion already", metric, margin, candidate, candidate, holder,
                            warnings=tuple(warnings))
    champion, unavailable = None, None
    if holder is not None:
        try:
            # a refit champion saw its own test cutoffs: it is judged, like the candidate, by its
            # held-out model, which did not (and was trained on cutoffs before these)
            booster = tracking.load_held_out(name, holder) or tracking.load_booster(f"models:/{name}/{holder}")[0]
            tables = common.validated_tables(params, common.engine(params))
            probs = champion_probabilities(booster, test, spec, tables)
            champion = classification_metrics(y, probs, top_fraction, bins)[metric]
        except (ValueError, RuntimeError) as error:
            unavailable = str(error).splitlines()[0][:300]
    return decide(metric, candidate, champion, holder, margin, unavailable,
                  baselines={n: m.get(metric) for n, m in baselines.items()},
                  first_must_beat_baselines=bool(rule.get("first_must_beat_baselines", True)), warnings=warnings)


def measured_by(trained: dict) -> str:
    """Which model the test metrics belong to: always the held-out one (models/model.ubj)."""
    if trained.get("model_kind") == "refit":
        return f"held-out model, before refit (v{trained['version']} is its refit on every labelled row)"
    return "held-out model"


def main() -> int:
    params = common.start("evaluate")
    paths, cfg, track = params["paths"], params["evaluate"], params["tracking"]
    # first: a store that cannot be written stops the stage before any output is replaced
    tracking.configure(track["uri"], track["experiment"], track.get("artifact_location"))
    top, bins = float(cfg["top_fraction"]), int(cfg.get("ece_bins", 10))
    booster, spec, trained = common.trained_model(params)
    rows = common.labelled(params)
    held_out = rows[rows["split"].isin(["valid", "test"])].reset_index(drop=True)
    held_out["probability"] = predict_proba(booster, design_matrix(held_out, spec), spec)
    test = held_out[held_out["split"] == "test"].reset_index(drop=True)
    y = test["label"].to_numpy()

    model = classification_metrics(y, test["probability"], top, bins)
    baseline_scores = test[["customer_id", "cutoff"]].merge(
        pd.read_parquet(Path(paths["model_dir"]) / "baseline_scores.parquet"), on=["customer_id", "cutoff"],
        how="left", validate="one_to_one")
    baselines = {name: baseline_metrics(name, y, baseline_scores[name], top, bins)
                 for name in trained.get("baseline_runs", {})}

    econ_cfg = cfg["economics"]
    econ = Economics(float(econ_cfg["contact_cost"]), float(econ_cfg["offer_cost"]), float(econ_cfg["success_rate"]))
    value = customer_value(test, econ_cfg["value"], float(econ_cfg["value_months"]), float(econ_cfg["constant_value"]))
    campaign = campaign_summary(y, test["probability"], value, econ, [float(b) for b in econ_cfg["budgets"]])
    profit = profit_curve(y, test["probability"], value, econ)
    per_cutoff = per_cutoff_metrics(held_out, "probability", top)

    churners = int(y.sum())
    warnings = [w for w in [small_test_warning(churners, len(y), int(cfg["gate"].get("min_test_churners", 30)))] if w]

    def rounded(metrics: dict) -> dict:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items() if k not in {"rows", "churn_rate"}}

    report = {"model": rounded(model), "baselines": {n: rounded(m) for n, m in baselines.items()},
              "campaign": rounded(campaign),
              "test": {"model": measured_by(trained), "rows": model["rows"], "churners": churners,
                       "churn_rate": round(model["churn_rate"], 6),
                       "cutoffs": sorted(f"{c:%Y-%m-%d}" for c in test["cutoff"].unique()), "warnings": warnings}}
    reports = Path(paths["reports"])
    write_json(report, reports / "metrics.json")
    table = pd.DataFrame([{"model": "xgboost", **model}] + [{"model": n, **m} for n, m in baselines.items()])
    table = table[["model", *[c for c in TABLE_COLUMNS if c in table.columns]]]
    with atomic_path(reports / "evaluation.csv") as tmp:
        table.round(4).to_csv(tmp, index=False)

    plot_dir = reports / "plots"
    model_curves = curves(y, test["probability"])
    tables = {**model_curves, "profit": profit, "per_cutoff": per_cutoff.assign(
        cutoff=per_cutoff["cutoff"].dt.strftime("%Y-%m-%d"))}
    for name, frame in tables.items():
        with atomic_path(plot_dir / f"{name}.csv") as tmp:
            frame.round(6).to_csv(tmp, index=False)
    figures = reports / "figures"
    save_evaluation_plots(model_curves, profit, per_cutoff, figures,
                          baselines={n: curves(y, baseline_scores[n]) for n in baselines})

    decision = gate(params, trained, spec, test, y, baselines, warnings, top, bins)
    write_json(summarize(decision), reports / "gate.json")
    with tracking.start_run("the evaluation to the training run", run_id=trained["run_id"]):
        mlflow.log_metrics({f"test_{k}": v for k, v in model.items()})
        mlflow.log_metrics({f"campaign_{k}": v for k, v in campaign.items()})
        mlflow.log_table(table, "evaluation/evaluation_table.json")
        mlflow.log_artifacts(str(plot_dir), artifact_path="evaluation/plots")
        mlflow.log_artifacts(str(figures), artifact_path="evaluation/figures")
        mlflow.log_artifact(str(reports / "metrics.json"), artifact_path="evaluation")
        mlflow.log_artifact(str(reports / "gate.json"), artifact_path="evaluation")
        mlflow.set_tags({**decision.tags(), "churnml.test_metrics.model": measured_by(trained)})
        for name, run_id in trained.get("baseline_runs", {}).items():
            with tracking.start_run(f"the {name} baseline's test metrics", run_id=run_id, nested=True):
                mlflow.log_metrics({f"test_{k}": v for k, v in baselines[name].items()})
    tracking.record_gate(track["registered_model"], trained["version"], track["champion_alias"],
                         decision.tags(), decision.promote)

    print(f"  out-of-time test of the {measured_by(trained)}: {model['rows']:,} rows, churn {model['churn_rate']:.1%}, cutoffs "
          f"{', '.join(report['test']['cutoffs'])}")
    print(table.round(3).to_string(index=False))
    print(f"  campaign: best threshold {campaign['optimal_threshold']:.3f}, contacting "
          f"{campaign['optimal_contacted']:,}, profit {campaign['optimal_profit']:,.0f}")
    for warning in decision.warnings:
        print(f"  WARNING: {warning}")
    print(f"  gate: v{trained['version']} {decision.label}: {decision.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(common.run("evaluate", main))
