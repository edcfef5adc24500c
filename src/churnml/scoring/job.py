"""The scoring job, shared by `churnml score` and the DVC score stage: validate a raw dataset,
score it with a registered model, write the scores atomically and log the run to MLflow.

It takes the composed config as a dict the caller has already read (params.yaml, read once at
the edge); arguments given explicitly win over it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from churnml.data import parquet, spark
from churnml.data.dataset import validate_configured
from churnml.data.io import write_json, write_table
from churnml.data.validation.times import parse_iso_datetime
from churnml.features.label_times import label_spec
from churnml.modeling import tracking
from churnml.scoring.batch import ScoringRun, default_as_of, score_customers
from churnml.scoring.partitioned import score_partitioned


def score_dataset(
    params: dict[str, Any],
    *,
    data_dir: Path | None = None,
    as_of: str | None = None,
    model_uri: str | None = None,
    out: parquet.Location | None = None,
    top_k: int | None = None,
    explain: str | None = None,
) -> parquet.Location:
    """Score every eligible customer of a raw dataset; returns where the scores are: a file, or on
    Spark a Parquet folder (a path or a URI) written by the executors.

    Arguments left as None take their value from `params`.
    """
    score_cfg, track = params["score"], params["tracking"]
    given = as_of or score_cfg.get("as_of")
    # ISO only, and checked before any work: 01/07/2026 is 1 July to some and 7 January to others
    when = parse_iso_datetime(str(given), "--as-of" if as_of else "score.as_of") if given else None
    tables = validate_configured(params["data"], params["engine"], data_dir)
    when = pd.Timestamp(when or default_as_of(tables)).normalize().to_pydatetime()
    tracking.configure(track["uri"], track["experiment"], track.get("artifact_location"))
    booster, version = tracking.load_booster(model_uri or score_cfg["model_uri"])
    started = time.perf_counter()
    run = ScoringRun(
        as_of=when, label_spec=label_spec(params["labels"]), risk_tiers=dict(score_cfg["risk_tiers"]),
        top_k=int(top_k or score_cfg["top_k"]), explain=explain or score_cfg["explain"], model_version=version,
        value=params["evaluate"]["economics"], device=params["model"].get("device", "cpu"),
        population=score_cfg.get("population", "all"), lapsed_within_days=score_cfg.get("lapsed_within_days", 365),
    )
    target = out or params["paths"]["scores"]
    if spark.is_spark(tables["customers"]._find_backend(use_default=True)):
        summary = score_partitioned(tables, booster, run, target)
    else:
        target = Path(target)
        scores, summary = score_customers(tables, booster, run, progress=sys.stderr.isatty(),
                                          customers_per_chunk=int(params["engine"]["customers_per_chunk"]))
        written = time.perf_counter()
        write_table(scores, target)
        summary["phases_s"]["write"] = round(time.perf_counter() - written, 2)
    summary["runtime_s"] = round(time.perf_counter() - started, 2)
    summary_path = write_json(summary, summary_file(target, Path(params["paths"]["reports"])))
    tracking.log_scoring_run(track.get("scoring_experiment") or f"{track['experiment']}-scoring",
                             track.get("artifact_location"), summary, summary_path)
    drifted = summary["drifted_features"]
    print(summary_line(summary, version))
    print(f"drift (PSI > 0.25): {', '.join(drifted[:10]) + (' ...' if len(drifted) > 10 else '') if drifted else 'none'}")
    return target


def summary_file(target: parquet.Location, reports: Path) -> Path:
    """The summary beside the scores (`scores_summary.json` for `scores.parquet`); for scores on a
    cluster's file system, in the local reports folder, where MLflow and DVC read it."""
    name = f"{Path(str(target).rstrip('/')).stem}_summary.json"
    return reports / name if parquet.is_remote(target) else Path(target).with_name(name)


def summary_line(summary: dict[str, Any], version: str) -> str:
    """The line a scoring run ends with: who was scored, and everyone left out by reason."""
    tiers = ", ".join(f"{name} {count:,}" for name, count in summary["tiers"].items())
    reasons = summary["not_scored"]
    why = {
        "not_yet_signed_up": "not yet signed up",
        "no_active_subscription": "no active subscription",
        "lapsed_too_long": f"lapsed more than {summary['lapsed_within_days']} days (score.lapsed_within_days)",
        "lapsed": f"lapsed, left out by score.population={summary['population']}",
    }
    left_out = ", ".join(f"{reasons[key]:,} {text}" for key, text in why.items() if reasons.get(key))
    caveat = "; lapsed scores are an extrapolation" if summary["scored_lapsed"] else ""
    return (f"scored {summary['scored']:,} of {summary['customers']:,} customers as of {summary['as_of']} "
            f"with model v{version} ({tiers}): {summary['scored_active']:,} active, "
            f"{summary['scored_lapsed']:,} lapsed (score.population={summary['population']}{caveat}); "
            f"not scored: {left_out or 'none'}; {summary['runtime_s']}s")
