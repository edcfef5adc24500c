"""The retention-report job, shared by `churnml report` and the DVC report stage: validate a raw
dataset, measure retention against a scores file, write the report and log it to MLflow.

It takes the composed config as a dict the caller has already read (params.yaml, read once at
the edge); arguments given explicitly win over it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from churnml.data.dataset import validate_configured
from churnml.features.label_times import label_spec, observed_until
from churnml.modeling import tracking
from churnml.retention.report import ClvSpec, build_retention, write_retention
from churnml.retention.targeting import check_score_table, read_score_table


def report_dataset(
    params: dict[str, Any], *, data_dir: Path | None = None, scores_path: Path | None = None, out: Path | None = None
) -> Path:
    """Measure retention on a raw dataset and its scores; returns the report folder.

    Arguments left as None take their value from `params`.
    """
    track, config = params["tracking"], params["retention"]
    # first: a store that cannot be written stops the report before any output is replaced
    tracking.configure(track["uri"], track["experiment"], track.get("artifact_location"))
    tables = validate_configured(params["data"], params["engine"], data_dir)
    scores_file = scores_path or Path(params["paths"]["scores"])
    # the scores stay on the engine of the tables: checked and joined there, never collected
    con = tables["customers"]._find_backend(use_default=True)
    scores = check_score_table(read_score_table(con, scores_file), str(scores_file))
    result = build_retention(
        tables, scores, spec=label_spec(params["labels"]), until=observed_until(tables),
        segments=list(config.get("segments") or []), recent_months=int(config["recent_months"]),
        clv=ClvSpec(**config["clv"]), value_months=float(params["evaluate"]["economics"]["value_months"]),
    )
    # the DVC stage's outputs sit where dvc.yaml says; an ad-hoc report keeps everything in its folder
    folder = out or Path(params["paths"]["retention"])
    reports = Path(params["paths"]["reports"])
    paths = write_retention(result, folder, folder / "retention.json" if out else reports / "retention.json",
                            None if out else reports / "plots" / "churn_rate.csv")
    tracking.log_retention_run(track.get("retention_experiment") or f"{track['experiment']}-retention",
                               track.get("artifact_location"), result.headline, paths)
    head = result.headline
    print(f"retention as of {head['as_of']} ({head['definition']} definition): churn {_pct(head['churn_rate_latest'])} "
          f"in {head['churn_rate_latest_month']}, {_pct(head['churn_rate_mean_recent'])} a month over the "
          f"{head['recent_period']}; repeat purchase rate {_pct(head['repeat_purchase_rate'])}, "
          f"average order {head['average_order_value']}, predicted CLV {head['predicted_clv_total']:,.0f} in all, "
          f"value at risk {head['value_at_risk_total']:,.0f}")
    for note in result.notes:
        print(f"note: {note}")
    return folder


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
