"""Prediction quality: churnml's defaults against the peers a user would otherwise pick (issue 15).

For each of the generator's shapes (a subscription product with events; a retailer with orders
only; the mixed default) and each seed, one protocol, the one a user lives through:

1. Generate the whole history. Label it with churnml's own observations stage; the latest
   labelled cutoff T is the test date and its rows (customer, label) are the test rows.
2. Cut the raw tables at T: every row before T, subscriptions still open at T left open. This is
   all anyone knows on the day they score.
3. churnml runs its DVC stages on the cut data (validate, observations, features, train) with its
   defaults and the shape's data and label config, and its registered version scores the
   customers at T (`score.population=active`: exactly the rows the label definition observes).
4. The peers learn from the same labelled rows (every cutoff labelled before T) and score the
   same test rows:
   - recency alone: days since the last activity;
   - RFM logistic regression: log recency, log frequency, log mean spend, standardised;
   - BG/NBD P(no purchase in the horizon), fitted at T on the distinct active days;
   - XGBoost on hand-made RFM and inter-purchase-time features, its hyperparameters chosen by a
     seeded random search on the latest labelled cutoff (trained on the cutoffs whose label
     windows closed before it), then refit on every labelled row with the rounds scaled.
5. ROC AUC, PR AUC and top-decile lift on the test rows, each with a 95% bootstrap interval.

Variants of churnml (--variants) rerun step 3 with other settings: `trials_4` is today's
defaults with the search's old 4 trials; `before_15` is churnml as it was before issue 15: no
refit, one validation slice, no purchase-process family, 4 trials.

    python benchmarks/quality.py                     # 3 shapes x 3 seeds, both variants
    python benchmarks/quality.py --shapes orders --seeds 1 --variants churnml

Results: benchmarks/results/quality.json (per run and the mean over seeds per shape).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
import yaml
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from churnml.data.generate.dataset import generate_dataset
from churnml.features import btyd
from churnml.params import compose_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BIN = Path(sys.executable).parent
DAY = np.timedelta64(1, "D")


@dataclass(frozen=True)
class Shape:
    """A kind of data a user brings: which tables exist, their profile columns, the label config
    a user of such data would write, and which tables count as activity for the peers."""

    tables: tuple[str, ...]
    attributes: tuple[str, ...]
    overrides: tuple[str, ...]
    activity: tuple[str, ...]
    horizon_days: int


SHAPES = {
    "subscription": Shape(
        ("customers", "events", "subscriptions"), ("plan", "billing", "country", "channel", "monthly_price"),
        ("labels=hybrid", "labels.inactivity.tables=[events]"), ("events",), 30),
    "orders": Shape(
        ("customers", "orders"), ("country", "channel"),
        ("labels=inactivity", "labels.inactivity.tables=[orders]", "labels.horizon_days=90",
         "labels.inactivity.active_window_days=365"), ("orders",), 90),
    "mixed": Shape(
        ("customers", "events", "orders", "feedback", "subscriptions"),
        ("plan", "billing", "country", "channel", "monthly_price"), (), ("events", "orders"), 30),
}

VARIANTS = {
    "churnml": (),
    # the defaults before the last search change, and before issue 15 altogether
    "trials_4": ("train.search.trials=4",),
    "before_15": ("train.refit=false", "train.search.folds=1", "features.families.purchase_process=false",
                  "train.search.trials=4"),
}

COLUMNS = {
    "customers": "{customer_id: customer_id, signup_date: signup_date}",
    "events": "{customer_id: customer_id, timestamp: timestamp, event_type: event_type, value: value}",
    "orders": "{customer_id: customer_id, timestamp: timestamp, amount: amount, order_id: order_id, quantity: quantity}",
    "feedback": "{customer_id: customer_id, timestamp: timestamp, score: score, kind: kind, text: text}",
    "subscriptions": "{customer_id: customer_id, start_date: start_date, end_date: end_date, plan: plan, mrr: mrr}",
}
TIME_COLUMN = {"customers": "signup_date", "events": "timestamp", "orders": "timestamp", "feedback": "timestamp",
               "subscriptions": "start_date"}


# ------------------------------------------------------------------------------ churnml's side

def data_yaml(shape: Shape, raw: Path) -> str:
    """The data config a user with this shape of data writes: absent tables mapped to null."""
    lines = ["name: bench", f"path: {raw}", "reference_time: null", "score_range: [0, 10]", "tables:"]
    for name, columns in COLUMNS.items():
        if name not in shape.tables:
            lines.append(f"  {name}: null")
            continue
        lines += [f"  {name}:", f"    file: {name}.parquet", f"    columns: {columns}"]
        if name == "customers":
            lines.append(f"    attributes: [{', '.join(shape.attributes)}]")
    return "\n".join(lines) + "\n"


def make_project(home: Path, shape: Shape, raw: Path, overrides: list[str]) -> Path:
    """A project folder with churnml's conf and stage scripts, the shape's data config and a
    params.yaml composed from them and `overrides`."""
    for folder in ("conf", "pipelines"):
        shutil.copytree(ROOT / folder, home / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (home / "conf/data/bench.yaml").write_text(data_yaml(shape, raw))
    compose(home, overrides)
    return home


def compose(home: Path, overrides: list[str]) -> None:
    (home / "params.yaml").write_text(compose_text(home / "conf", ["data=bench", *overrides]))


def stages(home: Path, names: list[str], log: Path) -> float:
    """Run churnml's stage scripts in `home`, in order; their output goes to `log`. Returns seconds."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    with log.open("a") as out:
        for name in names:
            proc = subprocess.run([sys.executable, f"pipelines/{name}.py"], cwd=home, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
            if proc.returncode != 0:
                raise SystemExit(f"stage {name} failed in {home}; see {log}")
    return time.perf_counter() - started


def resolved_cutoff(project: Path, observations: pd.DataFrame) -> pd.Timestamp:
    """The latest cutoff whose label windows, grace included, closed for every customer: a later
    one labels only the customers whose rule resolves early (inactivity before a subscription's
    grace), and would make a test set of one kind of customer."""
    labels = yaml.safe_load((project / "params.yaml").read_text())["labels"]
    until = pd.Timestamp(json.loads((project / "reports/observations.json").read_text())["observed_until"])
    reach = pd.Timedelta(days=int(labels["lead_days"]) + int(labels["horizon_days"]) + int(labels["grace_days"]))
    cutoffs = observations["cutoff"].drop_duplicates()
    return cutoffs[cutoffs + reach <= until].max()


def truncate(raw: Path, cut: Path, shape: Shape, when: pd.Timestamp) -> None:
    """The raw tables as known on `when`: rows before it; subscriptions still running then, open."""
    cut.mkdir(parents=True)
    for name in shape.tables:
        frame = pd.read_parquet(raw / f"{name}.parquet")
        frame = frame[frame[TIME_COLUMN[name]] < when]
        if name == "subscriptions":
            frame = frame.assign(end_date=frame["end_date"].where(frame["end_date"] < when))
        frame.reset_index(drop=True).to_parquet(cut / f"{name}.parquet", index=False)


# ---------------------------------------------------------------------------- the peers' side

def activity_days(raw: Path, shape: Shape) -> pd.DataFrame:
    """Distinct (customer_id, day) with activity of the shape's kinds: the transactions a BTYD
    model and an RFM table count."""
    parts = [pd.read_parquet(raw / f"{t}.parquet", columns=["customer_id", "timestamp"]) for t in shape.activity]
    days = pd.concat(parts, ignore_index=True)
    days["day"] = days["timestamp"].dt.floor("D")
    return days[["customer_id", "day"]].drop_duplicates().sort_values(["customer_id", "day"], ignore_index=True)


def spend(raw: Path, shape: Shape) -> pd.DataFrame:
    """(customer_id, timestamp, amount): order amounts, else event values (minutes of use)."""
    if "orders" in shape.tables:
        return pd.read_parquet(raw / "orders.parquet", columns=["customer_id", "timestamp", "amount"])
    events = pd.read_parquet(raw / "events.parquet", columns=["customer_id", "timestamp", "value"])
    return events.rename(columns={"value": "amount"}).fillna({"amount": 0.0})


def rfm_ipt(rows: pd.DataFrame, days: pd.DataFrame, money: pd.DataFrame, signup: pd.Series) -> pd.DataFrame:
    """Hand-made recency, frequency, monetary and inter-purchase-time features of each
    (customer_id, cutoff) row, from the data strictly before its cutoff."""
    out = []
    for cutoff, part in rows.groupby("cutoff", sort=True):
        before = days[days["day"] < cutoff]
        gaps = before.groupby("customer_id")["day"].diff().dt.days
        g = before.assign(gap=gaps).groupby("customer_id")
        age = lambda d: (cutoff - d).dt.days  # noqa: E731
        f = pd.DataFrame({
            "recency": age(g["day"].max()),
            "first_age": age(g["day"].min()),
            "days_active": g.size(),
            "gap_mean": g["gap"].mean(),
            "gap_std": g["gap"].std(),
            "gap_last": g["gap"].last(),
        })
        for window in (30, 90, 365):
            recent = before[before["day"] >= cutoff - pd.Timedelta(days=window)]
            f[f"days_active_{window}"] = recent.groupby("customer_id").size()
        paid = money[money["timestamp"] < cutoff].groupby("customer_id")["amount"]
        f["spend_total"], f["spend_mean"] = paid.sum(), paid.mean()
        recent_paid = money[(money["timestamp"] < cutoff) & (money["timestamp"] >= cutoff - pd.Timedelta(days=90))]
        f["spend_90"] = recent_paid.groupby("customer_id")["amount"].sum()
        frame = part[["customer_id", "cutoff"]].join(f, on="customer_id")
        frame["tenure"] = (cutoff - frame["customer_id"].map(signup)).dt.days
        out.append(frame)
    frame = pd.concat(out, ignore_index=True)
    counts = [c for c in frame.columns if c.startswith("days_active") or c.startswith("spend")]
    frame[counts] = frame[counts].fillna(0.0)
    # no activity yet: recency counts from signup, as a user's RFM table would
    frame["recency"] = frame["recency"].fillna(frame["tenure"])
    frame["gap_cv"] = frame["gap_std"] / frame["gap_mean"]
    frame["recency_over_gap"] = frame["recency"] / frame["gap_mean"]
    frame["rate_90_over_365"] = (frame["days_active_90"] / 90) / (frame["days_active_365"] / 365).replace(0, np.nan)
    return frame


PEER_FEATURES = ["recency", "first_age", "days_active", "gap_mean", "gap_std", "gap_last", "days_active_30",
                 "days_active_90", "days_active_365", "spend_total", "spend_mean", "spend_90", "tenure", "gap_cv",
                 "recency_over_gap", "rate_90_over_365"]


def rfm_logistic(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    def design(f: pd.DataFrame) -> np.ndarray:
        return np.column_stack([np.log1p(f["recency"]), np.log1p(f["days_active"]), np.log1p(f["spend_mean"])])
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(design(train), train["label"])
    return model.predict_proba(design(test))[:, 1]


def bg_nbd_no_purchase(test: pd.DataFrame, days: pd.DataFrame, when: pd.Timestamp, horizon: int) -> np.ndarray:
    """P(no purchase in the horizon) from a BG/NBD fitted at `when` on every customer's distinct
    active days (churnml's scipy fit, checked against PyMC-Marketing in benchmarks/btyd.py)."""
    before = days[days["day"] < when].groupby("customer_id")["day"].agg(["min", "max", "size"])
    x = (before["size"] - 1).to_numpy(float)
    t_x = (before["max"] - before["min"]).dt.days.to_numpy(float)
    T = (when - before["min"]).dt.days.to_numpy(float)
    params = btyd.fit(x, t_x, T)
    p_none = pd.Series(btyd.p_no_purchase(params, float(horizon), x, t_x, T), index=before.index)
    # customers with no purchase yet: nothing to go on, so they rank first
    return test["customer_id"].map(p_none).fillna(1.0).to_numpy()


def tuned_xgboost(train: pd.DataFrame, test: pd.DataFrame, horizon: int, seed: int, trials: int) -> np.ndarray:
    """A seeded random search over the usual XGBoost knobs on the latest labelled cutoff, then
    the best refit on every labelled row with its rounds scaled to the rows."""
    last = train["cutoff"].max()
    tune_fit = train[train["cutoff"] + pd.Timedelta(days=horizon) <= last]
    tune_valid = train[train["cutoff"] == last]
    dfit = xgb.DMatrix(tune_fit[PEER_FEATURES], tune_fit["label"])
    dvalid = xgb.DMatrix(tune_valid[PEER_FEATURES], tune_valid["label"])
    rng = np.random.default_rng(seed)
    best = (-1.0, None, 0)
    for _ in range(trials):
        params = {"objective": "binary:logistic", "eval_metric": "auc", "nthread": 2, "seed": seed,
                  "max_depth": int(rng.integers(2, 9)), "eta": float(np.exp(rng.uniform(np.log(0.01), np.log(0.3)))),
                  "min_child_weight": float(np.exp(rng.uniform(0, np.log(30)))),
                  "subsample": float(rng.uniform(0.5, 1.0)), "colsample_bytree": float(rng.uniform(0.5, 1.0)),
                  "lambda": float(np.exp(rng.uniform(np.log(0.1), np.log(10))))}
        booster = xgb.train(params, dfit, 2000, evals=[(dvalid, "valid")], early_stopping_rounds=50, verbose_eval=False)
        if booster.best_score > best[0]:
            best = (booster.best_score, params, booster.best_iteration + 1)
    _, params, rounds = best
    rounds = int(round(rounds * len(train) / len(tune_fit)))
    final = xgb.train(params, xgb.DMatrix(train[PEER_FEATURES], train["label"]), rounds)
    return final.predict(xgb.DMatrix(test[PEER_FEATURES]))


# ------------------------------------------------------------------------------------- metrics

def top_decile_lift(y: np.ndarray, score: np.ndarray) -> float:
    """Churn rate in the top 10% by score over the base rate; rows tied at the boundary count
    in proportion (the expectation under a random tie-break), so coarse scores are not favoured."""
    k = 0.1 * len(y)
    threshold = np.sort(score)[::-1][int(np.ceil(k)) - 1]
    above, tied = score > threshold, score == threshold
    share = (k - above.sum()) / tied.sum()
    churners = y[above].sum() + share * y[tied].sum()
    return float((churners / k) / y.mean())


METRICS = {"roc_auc": roc_auc_score, "pr_auc": average_precision_score, "lift_10": top_decile_lift}


def bootstrap(y: np.ndarray, statistic, resamples: int, seed: int) -> dict[str, list[float]]:
    """For each metric, the 95% percentile interval of statistic(metric, rows) over resamples of
    the test rows (a resample with one class only is skipped: no metric is defined on it)."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in METRICS}
    for _ in range(resamples):
        i = rng.integers(0, len(y), len(y))
        if 0 < y[i].sum() < len(i):
            for name, fn in METRICS.items():
                draws[name].append(statistic(fn, i))
    return {name: [round(float(v), 4) for v in np.percentile(d, [2.5, 97.5])] for name, d in draws.items()}


def measure(y: np.ndarray, score: np.ndarray, resamples: int, seed: int) -> dict[str, dict[str, float]]:
    """Each metric and its 95% percentile bootstrap interval over the test rows."""
    ci = bootstrap(y, lambda fn, i: fn(y[i], score[i]), resamples, seed)
    return {name: {"value": round(float(fn(y, score)), 4), "ci95": ci[name]} for name, fn in METRICS.items()}


PEERS = ("recency", "rfm_logistic", "bg_nbd", "xgboost_rfm_ipt")


def paired(y: np.ndarray, mine: np.ndarray, theirs: np.ndarray, resamples: int, seed: int) -> dict[str, dict]:
    """churnml's metric minus a peer's, each bootstrap resample scoring both on the same rows: the
    two are measured on the same customers, so their difference is far less noisy than either."""
    ci = bootstrap(y, lambda fn, i: fn(y[i], mine[i]) - fn(y[i], theirs[i]), resamples, seed)
    return {name: {"diff": round(float(fn(y, mine) - fn(y, theirs)), 4), "ci95": ci[name]}
            for name, fn in METRICS.items()}


# ------------------------------------------------------------------------------------ one run

@dataclass
class Run:
    shape: str
    seed: int
    customers: int
    months: int
    test_date: str = ""
    test_rows: int = 0
    test_churn_rate: float = 0.0
    train_rows: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    not_scored: dict[str, int] = field(default_factory=dict)
    methods: dict[str, dict] = field(default_factory=dict)
    paired: dict[str, dict] = field(default_factory=dict)  # churnml minus each peer, same resamples


def prepare(home: Path, shape_name: str, seed: int, args: argparse.Namespace) -> None:
    """Steps 1 to 3 in `home`: the data, the test rows (test.parquet) and churnml's scores of them
    (churnml-<variant>/); what happened goes to prepared.json."""
    shape = SHAPES[shape_name]
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    log = home / "stages.log"
    seconds: dict[str, float] = {}
    generate_dataset(home / "raw", n_customers=args.customers, months=args.months, seed=seed, shape=shape_name)

    # the test rows: the latest cutoff the whole history labels
    labels = make_project(home / "labels", shape, home / "raw", list(shape.overrides))
    seconds["label_full_history"] = round(stages(labels, ["validate", "observations"], log), 1)
    full = pd.read_parquet(labels / "data/processed/observations.parquet")
    when = resolved_cutoff(labels, full)
    full[full["cutoff"] == when][["customer_id", "cutoff", "label"]].to_parquet(home / "test.parquet", index=False)
    truncate(home / "raw", home / "cut", shape, when)

    base = make_project(home / "churnml", shape, home / "cut", list(shape.overrides))
    seconds["churnml_validate_observations"] = round(stages(base, ["validate", "observations"], log), 1)
    for variant in args.variants:
        project = home / f"churnml-{variant}"
        shutil.copytree(base, project)
        compose(project, [*shape.overrides, *VARIANTS[variant], f"score.as_of={when:%Y-%m-%d}",
                          "score.population=active", "score.explain=none", "score.model_uri=models:/churnml/1"])
        seconds[variant] = round(stages(project, ["features", "train", "score"], log), 1)
    (home / "prepared.json").write_text(json.dumps({"seconds": seconds, "variants": args.variants}) + "\n")


def evaluate(home: Path, shape_name: str, seed: int, args: argparse.Namespace) -> Run:
    """Steps 4 and 5: the peers on the same rows, and every method's metrics; the scores of every
    test row go to test_scores.parquet."""
    shape = SHAPES[shape_name]
    prepared = json.loads((home / "prepared.json").read_text())
    test = pd.read_parquet(home / "test.parquet")
    when = test["cutoff"].iloc[0]
    run = Run(shape_name, seed, args.customers, args.months, f"{when:%Y-%m-%d}", len(test),
              round(float(test["label"].mean()), 4), seconds=prepared["seconds"])
    scores = test[["customer_id", "label"]].copy()
    for variant in prepared["variants"]:
        scored = pd.read_parquet(home / f"churnml-{variant}/data/scores/scores.parquet")
        scores[variant] = test["customer_id"].map(scored.set_index("customer_id")["churn_probability"])
        run.not_scored[variant] = int(scores[variant].isna().sum())

    # the peers: the same labelled rows churnml trained on, the same test rows
    started = time.perf_counter()
    observed = pd.read_parquet(home / "churnml/data/processed/observations.parquet")[["customer_id", "cutoff", "label"]]
    run.train_rows = len(observed)
    days, money = activity_days(home / "cut", shape), spend(home / "cut", shape)
    signup = pd.read_parquet(home / "cut/customers.parquet").set_index("customer_id")["signup_date"]
    train = observed.merge(rfm_ipt(observed, days, money, signup), on=["customer_id", "cutoff"])
    test_features = test.merge(rfm_ipt(test, days, money, signup), on=["customer_id", "cutoff"])
    scores["recency"] = test_features["recency"].to_numpy(float)
    scores["rfm_logistic"] = rfm_logistic(train, test_features)
    scores["bg_nbd"] = bg_nbd_no_purchase(test_features, days, when, shape.horizon_days)
    scores["xgboost_rfm_ipt"] = tuned_xgboost(train, test_features, shape.horizon_days, seed, args.peer_trials)
    run.seconds["peers"] = round(time.perf_counter() - started, 1)
    scores.to_parquet(home / "test_scores.parquet", index=False)

    y = scores["label"].to_numpy(int)
    methods = [c for c in scores.columns if c not in ("customer_id", "label")]
    for name in methods:
        # a test row churnml did not score (counted in not_scored) ranks below every scored one
        # rather than being dropped, so every method is measured on every test row
        score = scores[name].to_numpy(float)
        scores[name] = np.where(np.isnan(score), np.nanmin(score) - 1.0, score)
        run.methods[name] = measure(y, scores[name].to_numpy(), args.resamples, seed)
    if "churnml" in methods:
        run.paired = {peer: paired(y, scores["churnml"].to_numpy(), scores[peer].to_numpy(), args.resamples, seed)
                      for peer in PEERS}
    return run


def summarise(runs: list[Run]) -> dict[str, dict[str, dict[str, float]]]:
    """The mean of each metric over the seeds, per shape and method."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for shape in dict.fromkeys(r.shape for r in runs):
        mine = [r for r in runs if r.shape == shape]
        table[shape] = {m: {k: round(float(np.mean([r.methods[m][k]["value"] for r in mine])), 4) for k in METRICS}
                        for m in mine[0].methods}
    return table


def markdown(table: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = ["| shape | method | ROC AUC | PR AUC | top-decile lift |", "|---|---|---|---|---|"]
    for shape, methods in table.items():
        for method, m in methods.items():
            lines.append(f"| {shape} | {method} | {m['roc_auc']:.3f} | {m['pr_auc']:.3f} | {m['lift_10']:.2f} |")
    return "\n".join(lines)


def markdown_runs(runs: list[dict]) -> str:
    """Every run: each metric with its 95% bootstrap interval."""
    lines = ["| shape | seed | test rows (churn) | method | ROC AUC | PR AUC | top-decile lift |",
             "|---|---|---|---|---|---|---|"]
    for r in runs:
        for method, m in r["methods"].items():
            cells = [f"{m[k]['value']:.3f} [{m[k]['ci95'][0]:.3f}, {m[k]['ci95'][1]:.3f}]" for k in METRICS]
            lines.append(f"| {r['shape']} | {r['seed']} | {r['test_rows']:,} ({r['test_churn_rate']:.1%}) | {method} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_paired(runs: list[dict]) -> str:
    """churnml minus each peer, per run, with the paired bootstrap interval of the difference."""
    lines = ["| shape | seed | peer | ROC AUC difference | top-decile lift difference |", "|---|---|---|---|---|"]
    for r in runs:
        for peer, d in r.get("paired", {}).items():
            cells = [f"{d[k]['diff']:+.4f} [{d[k]['ci95'][0]:+.4f}, {d[k]['ci95'][1]:+.4f}]" for k in ("roc_auc", "lift_10")]
            lines.append(f"| {r['shape']} | {r['seed']} | {peer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N")
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--peer-trials", type=int, default=20, help="random-search trials of the XGBoost peer")
    parser.add_argument("--resamples", type=int, default=500, help="bootstrap resamples")
    parser.add_argument("--work", type=Path, default=ROOT / "data/interim/bench_quality")
    parser.add_argument("--out", type=Path, default=RESULTS / "quality.json")
    parser.add_argument("--tables", action="store_true", help="print the tables of an earlier --out and stop")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the data and churnml's scores already in --work; rerun only the peers and metrics")
    args = parser.parse_args()
    if args.tables:
        result = json.loads(args.out.read_text())
        print("\n\n".join([markdown(result["mean_over_seeds"]), markdown_runs(result["runs"]),
                             markdown_paired(result["runs"])]))
        return

    runs = []
    for shape in args.shapes:
        for seed in range(1, args.seeds + 1):
            started = time.perf_counter()
            home = args.work / f"{shape}-{seed}"
            if not (args.reuse and (home / "prepared.json").exists()):
                prepare(home, shape, seed, args)
            runs.append(evaluate(home, shape, seed, args))
            print(f"{shape} seed {seed}: {time.perf_counter() - started:.0f} s "
                  + ", ".join(f"{m} {v['roc_auc']['value']:.3f}" for m, v in runs[-1].methods.items()), flush=True)
    table = summarise(runs)
    result = {"command": "python benchmarks/quality.py " + " ".join(sys.argv[1:]),
              "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "mean_over_seeds": table, "runs": [r.__dict__ for r in runs]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(table))


if __name__ == "__main__":
    main()
