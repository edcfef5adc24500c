"""The `churnml` command line: generate the default dataset, score a dataset, promote a model,
target a retention campaign and measure it.

This is an edge: it reads params.yaml (the composed conf/) once and hands plain values on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from typing import TYPE_CHECKING

import pandas as pd

from churnml.data.validation.findings import ValidationError

if TYPE_CHECKING:
    from churnml.modeling.evaluation import Economics


def _generate(args: argparse.Namespace) -> int:
    from churnml.data.generate.dataset import generate_dataset

    started = time.perf_counter()
    summary = generate_dataset(
        Path(args.out), n_customers=args.customers, months=args.months, end_date=args.end_date, seed=args.seed,
        shape=args.shape,
    )
    print(json.dumps(summary, indent=2, default=str))
    print(f"wrote {args.out} in {time.perf_counter() - started:.1f}s")
    return 0


def _score(args: argparse.Namespace) -> int:
    from churnml.params import load_params
    from churnml.scoring.job import score_dataset

    scores_path = score_dataset(
        load_params(Path(args.params)),
        data_dir=Path(args.data) if args.data else None,
        as_of=args.as_of,
        model_uri=args.model,
        out=args.out or None,  # a path, or on Spark a URI (which Path would mangle)
        top_k=args.top_k,
        explain=args.explain,
    )
    print(f"scores: {scores_path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from churnml.params import load_params
    from churnml.retention.job import report_dataset

    folder = report_dataset(load_params(Path(args.params)), data_dir=Path(args.data) if args.data else None,
                            scores_path=Path(args.scores) if args.scores else None,
                            out=Path(args.out) if args.out else None)
    print(f"retention report: {folder / 'retention.html'}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from churnml.modeling import tracking
    from churnml.params import load_params

    track = load_params(Path(args.params))["tracking"]
    tracking.configure(track["uri"], track["experiment"], track.get("artifact_location"))
    name = args.name or track["registered_model"]
    previous = tracking.promote(name, str(args.version), track["champion_alias"], args.reason)
    print(f"{name} v{args.version} is now @{track['champion_alias']}"
          f"{f' (was v{previous})' if previous else ''}: {args.reason}")
    return 0


def _economics(args: argparse.Namespace, economics: dict) -> Economics:
    """The campaign's economics: flags given on the command line win over evaluate.economics."""
    from churnml.modeling.evaluation import Economics

    def pick(flag: float | None, key: str) -> float:
        return float(economics[key]) if flag is None else float(flag)

    return Economics(contact_cost=pick(args.contact_cost, "contact_cost"),
                     offer_cost=pick(args.offer_cost, "offer_cost"),
                     success_rate=pick(args.success_rate, "success_rate"))


def _target(args: argparse.Namespace) -> int:
    from churnml.retention import targeting
    from churnml.params import load_params

    params = load_params(Path(args.params))
    target_cfg = params.get("target") or {}
    econ = _economics(args, params["evaluate"]["economics"])
    share = float(target_cfg.get("control_share", 0.1) if args.control_share is None else args.control_share)
    source = Path(args.scores)
    scores = targeting.check_scores(targeting.read_scores(source), str(source))
    as_of = targeting.scores_as_of(scores, str(source))
    digest = targeting.file_digest(source)
    campaign_id = targeting.check_campaign_id(args.campaign_id or targeting.default_campaign_id(as_of, digest))
    targets = targeting.select_targets(scores, econ, campaign_id=campaign_id, control_share=share,
                                       budget=args.budget, max_cost=args.max_cost)
    totals = targeting.campaign_totals(targets, econ)
    versions = sorted(scores["model_version"].dropna().astype(str).unique()) if "model_version" in scores else []
    campaign = {
        "campaign_id": campaign_id,
        "as_of": None if as_of is None else f"{as_of:%Y-%m-%d}",
        "economics": {"contact_cost": econ.contact_cost, "offer_cost": econ.offer_cost,
                      "success_rate": econ.success_rate, "control_share": share,
                      "budget": args.budget, "max_cost": args.max_cost},
        "scores": {"path": str(source), "sha256": digest, "customers": int(len(scores)),
                   "positive_net_value": int((targeting.expected_net_value(
                       scores["churn_probability"], scores["customer_value"], econ) > 0).sum()),
                   "model_version": ",".join(versions) or None},
        # what campaign-report measures against: the project's churn definition over this horizon
        "labels": {"definition": params["labels"]["definition"], "horizon_days": int(params["labels"]["horizon_days"])},
        **totals,
    }
    folder = Path(args.out) if args.out else Path(target_cfg.get("out_dir", "data/campaigns")) / campaign_id
    targeting.write_campaign(folder, targets, campaign, targeting.profit_by_budget(scores, econ))
    counts = totals["counts"]
    print(f"campaign {campaign_id}: contact {counts['treated']:,} customers, hold out {counts['control']:,} "
          f"as control; expected cost {totals['expected_cost']:,.2f}, expected net value "
          f"{totals['expected_net_value']:,.2f}; written to {folder}")
    if counts["control"] == 0:
        print("note: the control group is empty, so campaign-report will not be able to measure this campaign")
    return 0


def _campaign_report(args: argparse.Namespace) -> int:
    from churnml.data.dataset import validate_configured
    from churnml.retention import campaign as measure
    from churnml.modeling.evaluation import Economics
    from churnml.data.io import read_json, write_json
    from churnml.features.label_times import label_spec, observed_until
    from churnml.params import load_params

    folder = Path(args.campaign)
    for name in ("campaign.json", "targets.parquet"):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} not found: is {folder} a folder written by `churnml target`?")
    record = read_json(folder / "campaign.json")
    if not record.get("as_of"):
        raise ValueError(f"{folder / 'campaign.json'} has no as_of (its scores had no as_of column): "
                         "there is no date to measure churn from")
    targets = pd.read_parquet(folder / "targets.parquet")
    params = load_params(Path(args.params))
    tables = validate_configured(params["data"], params["engine"], Path(args.data))
    as_of = pd.Timestamp(record["as_of"]).to_pydatetime()
    until = observed_until(tables)
    spec = measure.measurement_spec(label_spec(params["labels"]), record["labels"]["horizon_days"])
    try:
        outcomes = measure.measure_outcomes(tables, targets, as_of, spec, until)
    except ValueError as error:
        raise ValueError(f"campaign {record['campaign_id']}: {error}") from None
    econ_cfg = record["economics"]
    econ = Economics(contact_cost=econ_cfg["contact_cost"], offer_cost=econ_cfg["offer_cost"],
                     success_rate=econ_cfg["success_rate"])
    result = measure.compare_groups(outcomes, targets["customer_value"], econ)
    window_end = pd.Timestamp(as_of) + pd.Timedelta(days=spec.horizon_days)
    report = {
        "campaign_id": record["campaign_id"],
        "as_of": record["as_of"],
        "window": {"start": record["as_of"], "end": f"{window_end:%Y-%m-%d}", "definition": spec.definition,
                   "horizon_days": spec.horizon_days},
        "data": {"path": str(args.data), "observed_until": f"{until:%Y-%m-%d}"},
        "expected_net_value": record.get("expected_net_value"),
        **result,
    }
    path = write_json(report, folder / "campaign_report.json")
    print(_campaign_summary(report))
    print(f"report: {path}")
    return 0


def _campaign_summary(report: dict) -> str:
    """A few readable lines from a campaign report."""
    def interval(part: dict, fmt: str) -> str:
        if part["ci_low"] is None:
            return "n/a"
        return f"{format(part['ci_low'], fmt)} to {format(part['ci_high'], fmt)}"

    window, diff = report["window"], report["difference"]
    lines = [f"campaign {report['campaign_id']}: churn in [{window['start']}, {window['end']}) "
             f"({window['definition']} definition)"]
    for group in ("treated", "control"):
        g = report["groups"][group]
        rate = "n/a" if g["churn_rate"] is None else f"{g['churn_rate']:.1%}"
        lines.append(f"  {group:8s} {g['measured']:,} measured of {g['targeted']:,}: {g['churned']:,} churned ({rate})")
    p_value = "n/a" if diff["p_value"] is None else f"{diff['p_value']:.3g}"
    points = {key: None if diff[key] is None else 100 * diff[key] for key in ("estimate", "ci_low", "ci_high")}
    lines.append(f"  churn difference (control - treated): {points['estimate']:+.1f} points, "
                 f"{diff['confidence']:.0%} CI {interval(points, '+.1f')}, p = {p_value}")
    lines.append(f"  retained by the campaign: {report['retained']['estimate']:,.1f} customers "
                 f"(CI {interval(report['retained'], ',.1f')})")
    net = report["net_value"]
    lines.append(f"  realised net value: {net['estimate']:,.2f} (CI {interval(net, ',.2f')}); "
                 f"expected when targeted: {report['expected_net_value']:,.2f}")
    for group in ("treated", "control"):
        gone, missing = report["groups"][group]["not_observed"], report["groups"][group]["not_found"]
        if not gone and not missing:
            continue
        lines.append(f"  not measured ({group}): {gone:,} no longer a customer at the as-of date, "
                     f"{missing:,} not in the customers table")
    return "\n".join(lines)


def _iso_date(text: str) -> str:
    """--as-of as YYYY-MM-DD: 01/07/2026 means 1 July to some users and 7 January to others, so
    only the ISO form is accepted, and argparse says so (exit 2) before anything runs."""
    from churnml.data.validation.times import parse_iso_datetime

    try:
        when = parse_iso_datetime(text, "--as-of")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--as-of: ")) from None
    if when.time() != datetime.min.time():
        raise argparse.ArgumentTypeError(f"'{text}' has a time of day; give the score date only, YYYY-MM-DD")
    return f"{when:%Y-%m-%d}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="churnml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write a synthetic dataset in the raw contract (--shape picks its tables)")
    gen.add_argument("--out", default="data/raw/default", help="dataset folder to write")
    gen.add_argument("--customers", type=int, default=5000, help="number of customers (default 5000)")
    gen.add_argument("--months", type=int, default=18, help="months of history (default 18)")
    gen.add_argument("--end-date", default="2026-06-30", help="last day of the data (default 2026-06-30)")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument(
        "--shape", choices=("mixed", "subscription", "orders"), default="mixed",
        help="mixed (default): subscribers and pay-as-you-go buyers, all five tables; subscription: every "
        "customer subscribed (customers, events, subscriptions); orders: a retailer that sees only "
        "purchases, customers leave silently (customers, orders)",
    )
    gen.set_defaults(func=_generate)

    score = sub.add_parser("score", help="score every eligible customer with a registered model")
    score.add_argument("--data", help="raw dataset folder (default: data.path in params)")
    score.add_argument("--as-of", type=_iso_date,
                       help="score date, YYYY-MM-DD only (default: the day after the last activity)")
    score.add_argument("--model", help="model URI (default: score.model_uri, models:/<tracking.registered_model>@<tracking.champion_alias>)")
    score.add_argument("--out", help="scores file, .parquet or .csv; on Spark a Parquet folder, a path or URI (default: paths.scores)")
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

    target = sub.add_parser(
        "target", help="pick whom a retention campaign contacts, with a control group held out",
        description="Rank the scored customers by expected net retained value (probability x value x "
                    "success rate - contact and offer cost), contact the best with a positive value up to the "
                    "budget, and hold out a hashed control group from the same range.")
    target.add_argument("--scores", required=True, help="scores file from `churnml score` (.parquet or .csv)")
    limit = target.add_mutually_exclusive_group(required=True)
    limit.add_argument("--budget", type=int, help="at most this many customers contacted")
    limit.add_argument("--max-cost", type=float, help="at most this total contact + offer cost")
    target.add_argument("--contact-cost", type=float,
                        help="cost of one contact (default: evaluate.economics.contact_cost)")
    target.add_argument("--offer-cost", type=float, help="cost of one offer (default: evaluate.economics.offer_cost)")
    target.add_argument("--success-rate", type=float,
                        help="chance the offer keeps a would-be churner (default: evaluate.economics.success_rate)")
    target.add_argument("--control-share", type=float, help="share held out as control (default: target.control_share)")
    target.add_argument("--campaign-id",
                        help="campaign name; also seeds the control draw (default: <as-of>-<scores hash>)")
    target.add_argument("--out", help="campaign folder (default: target.out_dir/<campaign id>)")
    target.add_argument("--params", default="params.yaml", help="composed config (default params.yaml)")
    target.set_defaults(func=_target)

    report = sub.add_parser("report", help="retention report: churn per month, cohorts, purchases, CLV, segments")
    report.add_argument("--data", help="raw dataset folder (default: data.path in params)")
    report.add_argument("--scores", help="scores file from `churnml score` (default: paths.scores)")
    report.add_argument("--out", help="report folder (default: paths.retention)")
    report.add_argument("--params", default="params.yaml", help="composed config (default params.yaml)")
    report.set_defaults(func=_report)

    campaign_cmd = sub.add_parser("campaign-report", help="measure a campaign: churn among the treated against control")
    campaign_cmd.add_argument("--campaign", required=True, help="campaign folder written by `churnml target`")
    campaign_cmd.add_argument("--data", required=True, help="raw dataset folder covering the weeks after the campaign")
    campaign_cmd.add_argument("--params", default="params.yaml", help="composed config (default params.yaml)")
    campaign_cmd.set_defaults(func=_campaign_report)
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
