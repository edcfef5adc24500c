"""The `churnml` command line: generate the default dataset, score a dataset, promote a model.

This is an edge: it reads params.yaml (the composed conf/) once and hands plain values on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd

from churnml.validate import ValidationError


def _generate(args: argparse.Namespace) -> int:
    from churnml.generate import generate_dataset

    started = time.perf_counter()
    summary = generate_dataset(
        Path(args.out), n_customers=args.customers, months=args.months, end_date=args.end_date, seed=args.seed
    )
    print(json.dumps(summary, indent=2, default=str))
    print(f"wrote {args.out} in {time.perf_counter() - started:.1f}s")
    return 0


def _score(args: argparse.Namespace) -> int:
    scores_path = score_dataset(
        params_path=Path(args.params),
        data_dir=Path(args.data) if args.data else None,
        as_of=args.as_of,
        model_uri=args.model,
        out=Path(args.out) if args.out else None,
        top_k=args.top_k,
        explain=args.explain,
    )
    print(f"scores: {scores_path}")
    return 0


def score_dataset(
    *,
    params_path: Path,
    data_dir: Path | None,
    as_of: str | None,
    model_uri: str | None,
    out: Path | None,
    top_k: int | None,
    explain: str | None,
) -> Path:
    """Validate a raw dataset, score it with a registered model, write the scores atomically.

    Arguments left as None take their value from params.yaml. The DVC score stage calls this too.
    """
    from churnml import tracking
    from churnml.dataset import validate_folder
    from churnml.engine import connect
    from churnml.io import write_json, write_table
    from churnml.params import load_params
    from churnml.score import default_as_of, score_customers
    from churnml.settings import engine_options, label_spec

    params = load_params(params_path)
    data, score_cfg, track = params["data"], params["score"], params["tracking"]
    con = connect(**engine_options(params["engine"]))
    validated = validate_folder(
        con, data_dir or Path(data["path"]), data["tables"], checks=data.get("checks"),
        score_range=tuple(data["score_range"]), reference_time=data.get("reference_time"),
    )
    tables = validated.tables
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


def _promote(args: argparse.Namespace) -> int:
    from churnml import tracking
    from churnml.params import load_params

    track = load_params(Path(args.params))["tracking"]
    tracking.configure(track["uri"], track["experiment"], track.get("artifact_location"))
    name = args.name or track["registered_model"]
    previous = tracking.promote(name, str(args.version), track["champion_alias"], args.reason)
    print(f"{name} v{args.version} is now @{track['champion_alias']}"
          f"{f' (was v{previous})' if previous else ''}: {args.reason}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="churnml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write the synthetic default dataset (raw contract, all five tables)")
    gen.add_argument("--out", default="data/raw/default", help="dataset folder to write")
    gen.add_argument("--customers", type=int, default=5000, help="number of customers (default 5000)")
    gen.add_argument("--months", type=int, default=18, help="months of history (default 18)")
    gen.add_argument("--end-date", default="2026-06-30", help="last day of the data (default 2026-06-30)")
    gen.add_argument("--seed", type=int, default=42)
    gen.set_defaults(func=_generate)

    score = sub.add_parser("score", help="score every eligible customer with a registered model")
    score.add_argument("--data", help="raw dataset folder (default: data.path in params)")
    score.add_argument("--as-of", help="score date YYYY-MM-DD (default: the day after the last activity)")
    score.add_argument("--model", help="model URI (default: score.model_uri, models:/churnml@champion)")
    score.add_argument("--out", help="scores file, .parquet or .csv (default: paths.scores)")
    score.add_argument("--top-k", type=int, help="reasons per customer (default: score.top_k)")
    score.add_argument("--explain", choices=["at-risk", "all", "none"], help="whose reasons to give")
    score.add_argument("--params", default="params.yaml", help="composed config (default params.yaml)")
    score.set_defaults(func=_score)

    promote = sub.add_parser("promote", help="give a registered model version the champion alias by hand")
    promote.add_argument("version", help="model version number, e.g. 7")
    promote.add_argument("--reason", required=True, help="why, recorded on the model version")
    promote.add_argument("--name", help="registered model (default: tracking.registered_model)")
    promote.add_argument("--params", default="params.yaml", help="composed config (default params.yaml)")
    promote.set_defaults(func=_promote)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError, ValidationError) as error:
        print(f"churnml {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
