"""Spark benchmark: the features and the scoring of one dataset on Spark local[2] and on DuckDB.

In one run, on the 200,000-customer benchmark dataset (`benchmarks/features.py`'s generator):
  features: `write_features`, every family, for every customer at the last N monthly cutoffs;
  scoring:  what `churnml score` does after validation: who is eligible at the day after the data,
            their features, calibrated probabilities, exact TreeSHAP reasons for the at-risk,
            drift counts, the scores written atomically (DuckDB: one file, chunk by chunk in
            process; Spark: a Parquet folder written by the executors, `score_partitioned`).
Each engine runs in its own process. Its peak memory is the largest sum of the resident memory
of that process and all of its children (the JVM and Spark's Python workers), sampled every
0.2 s. Parity is true only when both engines wrote the same rows: compared in DuckDB with
EXCEPT ALL both ways, so a float that differs in its last bit counts as a difference.

On Spark the REST status API of the driver gives each stage's task count and executor time:
with them, BENCHMARKS.md works out how the run would scale with executors.

    python benchmarks/spark.py                          # 200k customers, 3 cutoffs, local[2]
    python benchmarks/spark.py --customers 20000        # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from features import DATA, RESULTS, WINDOWS, cutoffs, dataset  # noqa: E402

FAMILIES = ("engagement", "purchase", "feedback", "subscription", "profile", "purchase_process")
ATTRIBUTES = ["plan", "billing", "country", "channel", "monthly_price"]
MASTER = "local[2]"


# ---------------------------------------------------------------- memory of a process tree


def _tree_rss_mb(root: int) -> float:
    """Resident memory of `root` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total / 2**20


class PeakMemory:
    """The peak of `_tree_rss_mb(this process)`, sampled in a thread while the block runs."""

    def __enter__(self) -> PeakMemory:
        self.peak_mb, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_mb = max(self.peak_mb, _tree_rss_mb(os.getpid()))

    def __exit__(self, *exc) -> None:
        self.peak_mb = max(self.peak_mb, _tree_rss_mb(os.getpid()))
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------- one engine, in its own process


def model_file() -> Path:
    """The scoring benchmark's model (`benchmarks/score.py`), trained once on a 20,000-customer
    dataset of the same shape and kept as UBJ."""
    path = DATA / "spark_bench_model.ubj"
    if not path.exists():
        from score import train_small_model

        train_small_model(dataset(20_000)).save_model(str(path))
    return path


def stage_times(ui_url: str) -> dict:
    """Task counts and executor seconds of every stage the Spark driver ran, from its REST API."""
    base = f"{ui_url}/api/v1/applications"
    with urllib.request.urlopen(base, timeout=10) as reply:
        app = json.load(reply)[0]["id"]
    with urllib.request.urlopen(f"{base}/{app}/stages?status=complete", timeout=10) as reply:
        stages = json.load(reply)
    tasks = sum(s["numTasks"] for s in stages)
    run_s = sum(s["executorRunTime"] for s in stages) / 1000
    widest = max((s["numTasks"] for s in stages), default=0)
    return {"stages": len(stages), "tasks": tasks, "executor_run_s": round(run_s, 2), "widest_stage_tasks": widest}


def run_engine(engine: str, customers: int, n_cutoffs: int, out: Path) -> dict:
    import xgboost as xgb

    from churnml.data.contract import mappings_from_config, open_raw_tables
    from churnml.data.engine import connect_configured
    from churnml.data.io import write_table
    from churnml.features.build import plan_features, write_features
    from churnml.features.label_times import LabelSpec, candidates
    from churnml.scoring.batch import ScoringRun, default_as_of, score_customers
    from churnml.scoring.partitioned import score_partitioned

    booster = xgb.Booster(model_file=str(model_file()))
    folder = dataset(customers)
    settings = {"backend": engine, "memory_limit": "4GB", "temp_directory": str(DATA / "duckdb_tmp"),
                "spark": {"master": MASTER, "app_name": "churnml-bench", "driver_memory": "4g",
                          "shuffle_partitions": 8}}
    result: dict = {"engine": engine}
    with PeakMemory() as memory:
        started = time.perf_counter()
        con = connect_configured(settings)
        result["start_s"] = round(time.perf_counter() - started, 2)
        tables = open_raw_tables(con, folder, mappings_from_config({name: {} for name in (
            "customers", "events", "orders", "feedback", "subscriptions")}))

        started = time.perf_counter()
        spec = plan_features(tables, families=dict.fromkeys(FAMILIES, True), windows=WINDOWS, attributes=ATTRIBUTES)
        obs = candidates(tables["customers"], [c.to_pydatetime() for c in cutoffs(n_cutoffs)])
        write_features(con, tables, obs.select("customer_id", "cutoff"), spec, out / "features.parquet")
        result["features_s"] = round(time.perf_counter() - started, 2)

        started = time.perf_counter()
        run = ScoringRun(as_of=default_as_of(tables), label_spec=LabelSpec(definition="hybrid", horizon_days=30),
                         risk_tiers={"high": 0.5, "medium": 0.2, "low": 0.0}, top_k=5, explain="at-risk",
                         model_version="bench")
        if engine == "spark":
            summary = score_partitioned(tables, booster, run, out / "scores.parquet")
        else:
            scores, summary = score_customers(tables, booster, run, customers_per_chunk=250_000)
            write_table(scores, out / "scores.parquet")
        result["score_s"] = round(time.perf_counter() - started, 2)
        result.update(scored=summary["scored"], explained=summary["explained"], score_phases=summary["phases_s"])
        if engine == "spark":
            result["spark_stages"] = stage_times(con._session.sparkContext.uiWebUrl)
            result["spark_cores"] = int(con._session.sparkContext.defaultParallelism)
            con._session.stop()
    result["peak_memory_mb"] = round(memory.peak_mb)
    return result


# ---------------------------------------------------------------- orchestration


def measure(engine: str, customers: int, n_cutoffs: int, out: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--engine", engine, "--customers", str(customers),
                           "--cutoffs", str(n_cutoffs), "--out", str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def same_rows(duck: Path, spark: Path) -> dict:
    """Rows of each output missing from the other (EXCEPT ALL both ways), and the column lists."""
    import duckdb

    con = duckdb.connect()
    a, b = f"read_parquet('{duck}')", f"read_parquet('{spark}/*.parquet')"
    columns = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {a}").fetchall()]
    other = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {b}").fetchall()]
    only_duck = con.sql(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT {', '.join(columns)} FROM {b})").fetchall()[0][0]
    only_spark = con.sql(f"SELECT count(*) FROM (SELECT {', '.join(columns)} FROM {b} EXCEPT ALL SELECT * FROM {a})").fetchall()[0][0]
    rows = con.sql(f"SELECT count(*) FROM {a}").fetchall()[0][0]
    return {"rows": int(rows), "same_columns": columns == other, "only_duckdb": int(only_duck),
            "only_spark": int(only_spark)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--cutoffs", type=int, default=3)
    parser.add_argument("--engine", choices=("duckdb", "spark"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:  # inside the child process
        print(json.dumps(run_engine(args.engine, args.customers, args.cutoffs, args.out)))
        return

    import duckdb

    folder = dataset(args.customers)
    model_file()
    events = duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/events.parquet')").fetchall()[0][0]
    work = DATA / f"spark_bench_{args.customers}"
    runs = {}
    for engine in ("duckdb", "spark"):
        out = work / engine
        subprocess.run(["rm", "-rf", str(out)], check=True)
        out.mkdir(parents=True)
        runs[engine] = measure(engine, args.customers, args.cutoffs, out)
        print(json.dumps(runs[engine]))
    parity = {name: same_rows(work / "duckdb" / f"{name}.parquet", work / "spark" / f"{name}.parquet")
              for name in ("features", "scores")}
    duck, spark = runs["duckdb"], runs["spark"]
    result = {
        "customers": args.customers, "events": int(events), "cutoffs": args.cutoffs, "master": MASTER,
        "features_rows": parity["features"]["rows"], "scored": duck["scored"],
        "duckdb": duck, "spark": spark,
        "features_ratio": round(spark["features_s"] / duck["features_s"], 2),
        "score_ratio": round(spark["score_s"] / duck["score_s"], 2),
        "memory_ratio": round(spark["peak_memory_mb"] / duck["peak_memory_mb"], 2),
        "parity_detail": parity,
        "parity": all(p["same_columns"] and p["only_duckdb"] == 0 and p["only_spark"] == 0 for p in parity.values()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "spark.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
