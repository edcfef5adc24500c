"""Shared by the end-to-end benchmarks: run the measured work in a child process (so its peak
RSS is its own), then record the result in benchmarks/results/<name>.json."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(script: str, doc: str, name: str, run: Callable[[int], dict], customers: int = 1_000_000) -> None:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=customers)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = run(args.customers)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(result))
        return
    proc = subprocess.run([sys.executable, script, "--child", "--customers", str(args.customers)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} benchmark failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def project_engine():
    """A DuckDB connection with the project's own engine settings (conf/config.yaml), as the
    `churnml` commands run with them; and those settings."""
    import yaml

    from churnml.data.engine import connect

    root = Path(__file__).resolve().parent
    engine = yaml.safe_load((root.parent / "conf" / "config.yaml").read_text())["engine"]
    con = connect(memory_limit=engine["memory_limit"], temp_directory=root / "data" / "duckdb_tmp",
                  threads=engine["threads"])
    return con, engine


def events_floor(con, folder: Path) -> tuple[int, float]:
    """The reference: one DuckDB pass grouping every event by customer, a floor for any work
    over the events. Returns the number of events and the seconds it took."""
    import time

    started = time.perf_counter()
    counts = con.con.sql(f"SELECT customer_id, count(*) AS n FROM read_parquet('{folder}/events.parquet') "
                         "GROUP BY ALL").fetchall()
    return sum(n for _, n in counts), round(time.perf_counter() - started, 2)
