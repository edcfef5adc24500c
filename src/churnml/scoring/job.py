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

from churnml.data.dataset import validate_configured
from churnml.data.io import write_json, write_table
from churnml.features.label_times import label_spec
from churnml.modeling import tracking
from churnml.scoring.batch import default_as_of, score_customers


def score_dataset(
    params: dict[str, Any],
    *,
    data_dir: Path | None = None,
    as_of: str | None = None,
    model_uri: str | None = None,
    out: Path | None = None,
    top_k: int | None = None,
    explain: str | None = None,
) -> Path:
    """Score every eligible customer of a raw dataset; returns the scores file.

    Arguments left as None take their value from `params`.
    """
    score_cfg, track = params["score"], params["tracking"]
    tables = validate_configured(params["data"], params["engine"], data_dir)
    when = pd.Timestamp(as_of or score_cfg.get("as_of") or default_as_of(tables)).normalize().to_pydatetime()
    tracking.configure(track["uri"], track["experiment"], track.get("artifact_location"))
    booster, version = tracking.load_booster(model_uri or score_cfg["model_uri"])
    started = time.perf_counter()
    scores, summary = score_customers(
        tables, booster, as_of=when, label_spec=label_spec(params["labels"]),
        risk_tiers=dict(score_cfg["risk_tiers"]), top_k=int(top_k or score_cfg["top_k"]),
        explain=explain or score_cfg["explain"], model_version=version,
        value=params["evaluate"]["economics"], customers_per_chunk=int(params["engine"]["customers_per_chunk"]),
        progress=sys.stderr.isatty(), device=params["model"].get("device", "cpu"),
    )
    target = out or Path(params["paths"]["scores"])
    written = time.perf_counter()
    write_table(scores, target)
    summary["phases_s"]["write"] = round(time.perf_counter() - written, 2)
    summary["runtime_s"] = round(time.perf_counter() - started, 2)
    summary_path = write_json(summary, target.with_name(target.stem + "_summary.json"))
    tracking.log_scoring_run(track.get("scoring_experiment") or f"{track['experiment']}-scoring",
                             track.get("artifact_location"), summary,
                             scores["churn_probability"].to_numpy(), summary_path)
    tiers = ", ".join(f"{name} {count:,}" for name, count in summary["tiers"].items())
    drifted = summary["drifted_features"]
    print(f"scored {summary['scored']:,} of {summary['customers']:,} customers as of {summary['as_of']} "
          f"with model v{version} ({tiers}); not scored: {summary['already_churned']:,} already churned, "
          f"{summary['not_yet_signed_up']:,} not yet signed up; {summary['runtime_s']}s")
    print(f"drift (PSI > 0.25): {', '.join(drifted[:10]) + (' ...' if len(drifted) > 10 else '') if drifted else 'none'}")
    return target
