"""Feature-build benchmark: churnml against its floor and a plain pandas implementation.

In one run, on the same generated data (events, orders, feedback, subscriptions) and the same
monthly cutoffs:
  (a) floor:   one DuckDB GROUP BY customer_id, event_type pass over the events;
  (b) pandas:  the engagement features written the straightforward way (filter per cutoff,
               groupby, pivot);
  (c) churnml: `write_features` for every family, and for the engagement family alone (the
               same features as (b)).
Each runs in its own process, so its peak RSS is its own. Ratios are what to read: the machine
is noisy, the reference is measured in the same run.

    python benchmarks/features.py                       # 200k customers, ~20M events, 6 cutoffs
    python benchmarks/features.py --large               # also 1M customers, ~100M events (churnml only)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"
WINDOWS = [7, 30, 90]


def dataset(customers: int) -> Path:
    """Generate (once) a raw dataset of this size with the project's own generator."""
    from churnml.data.generate.dataset import generate_dataset

    folder = DATA / f"c{customers}"
    if not (folder / "customers.parquet").exists():
        generate_dataset(folder, n_customers=customers, months=18, seed=7)
    return folder


def cutoffs(n: int) -> list:
    import pandas as pd

    end = pd.Timestamp("2026-07-01")
    return list(pd.date_range(end=end, periods=n, freq="MS"))


# ---------------------------------------------------------------- the three contenders


def run_floor(folder: Path, n_cutoffs: int) -> dict:
    import duckdb

    con = duckdb.connect()
    started = time.perf_counter()
    rows = con.sql(
        f"SELECT customer_id, event_type, count(*) AS n FROM read_parquet('{folder}/events.parquet') GROUP BY ALL"
    ).fetchall()
    return {"seconds": time.perf_counter() - started, "rows": len(rows)}


def run_pandas(folder: Path, n_cutoffs: int) -> dict:
    import pandas as pd

    started = time.perf_counter()
    events = pd.read_parquet(folder / "events.parquet")
    customers = pd.read_parquet(folder / "customers.parquet", columns=["customer_id", "signup_date"])
    frames = []
    for cutoff in cutoffs(n_cutoffs):
        ids = customers.loc[customers.signup_date < cutoff, "customer_id"]
        past = events[events.timestamp < cutoff]
        out = pd.DataFrame(index=pd.Index(ids, name="customer_id"))
        for w in WINDOWS:
            recent = past[past.timestamp >= cutoff - pd.Timedelta(days=w)]
            g = recent.groupby("customer_id")
            out[f"eng_events_{w}d"] = g.size()
            out[f"eng_active_days_{w}d"] = recent.assign(day=recent.timestamp.dt.floor("D")).groupby("customer_id").day.nunique()
            out[f"eng_value_{w}d"] = g.value.sum()
            by_type = recent.pivot_table(index="customer_id", columns="event_type", values="timestamp", aggfunc="count")
            for t in by_type.columns:
                out[f"eng_{t}_{w}d"] = by_type[t]
        counts = out.filter(like="_d").fillna(0)
        out[counts.columns] = counts
        last30 = out["eng_events_30d"]
        prior = (out["eng_events_90d"] - last30) / 2
        out["eng_trend_30_60"] = ((last30 - prior) / (last30 + prior)).fillna(0)
        out["eng_days_since_last_event"] = (cutoff - past.groupby("customer_id").timestamp.max()).dt.total_seconds() / 86400
        frames.append(out.reset_index().assign(cutoff=cutoff))
    result = pd.concat(frames, ignore_index=True)
    return {"seconds": time.perf_counter() - started, "rows": len(result), "columns": result.shape[1]}


def run_churnml(folder: Path, n_cutoffs: int, memory_limit: str = "8GB", families: tuple[str, ...] = (
        "engagement", "purchase", "feedback", "subscription", "profile")) -> dict:
    import ibis

    from churnml.data.contract import mappings_from_config, open_raw_tables
    from churnml.data.engine import connect
    from churnml.features.build import plan_features, write_features
    from churnml.features.label_times import candidates

    con = connect(memory_limit=memory_limit, temp_directory=DATA / "duckdb_tmp")
    tables = open_raw_tables(con, folder, mappings_from_config({name: {} for name in (
        "customers", "events", "orders", "feedback", "subscriptions")}))
    started = time.perf_counter()
    spec = plan_features(tables, families=dict.fromkeys(families, True), windows=WINDOWS,
        attributes=["plan", "billing", "country", "channel", "monthly_price"])
    obs = candidates(tables["customers"], [c.to_pydatetime() for c in cutoffs(n_cutoffs)]).select("customer_id", "cutoff")
    out = DATA / "features_out.parquet"
    chunks = write_features(con, tables, obs, spec, out)
    seconds = time.perf_counter() - started
    rows = con.read_parquet(str(out)).count().execute()
    return {"seconds": seconds, "rows": int(rows), "columns": len(ibis.read_parquet(str(out)).columns), "chunks": chunks}


def run_churnml_engagement(folder: Path, n_cutoffs: int) -> dict:
    """churnml restricted to the engagement family: the same features as the pandas contender."""
    return run_churnml(folder, n_cutoffs, families=("engagement",))


CONTENDERS = {"floor": run_floor, "pandas": run_pandas, "churnml": run_churnml,
              "churnml_engagement": run_churnml_engagement}


# ---------------------------------------------------------------- orchestration


def measure(part: str, customers: int, n_cutoffs: int) -> dict:
    """Run one contender in a fresh process; its wall time and its own peak RSS."""
    proc = subprocess.run(
        [sys.executable, __file__, "--part", part, "--customers", str(customers), "--cutoffs", str(n_cutoffs)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{part} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--cutoffs", type=int, default=6)
    parser.add_argument("--large", action="store_true", help="also 1M customers (~100M events), churnml only")
    parser.add_argument("--part", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.part:  # inside the child process
        folder = dataset(args.customers)
        result = CONTENDERS[args.part](folder, args.cutoffs)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    import duckdb

    folder = dataset(args.customers)
    events = duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/events.parquet')").fetchall()[0][0]
    runs = {part: measure(part, args.customers, args.cutoffs)
            for part in ("floor", "pandas", "churnml", "churnml_engagement")}
    for part, r in runs.items():
        print(f"{part:18s} {r['seconds']:8.1f}s  peak RSS {r['peak_rss_mb']:8.0f} MB  rows {r['rows']:,}")
    result = {
        "customers": args.customers, "events": int(events), "cutoffs": args.cutoffs,
        "floor_s": round(runs["floor"]["seconds"], 2),
        "pandas_s": round(runs["pandas"]["seconds"], 2),
        "churnml_s": round(runs["churnml"]["seconds"], 2),
        "ratio_to_floor": round(runs["churnml"]["seconds"] / runs["floor"]["seconds"], 2),
        "speedup_vs_pandas": round(runs["pandas"]["seconds"] / runs["churnml"]["seconds"], 2),
        "peak_rss_mb": round(runs["churnml"]["peak_rss_mb"]),
        "pandas_peak_rss_mb": round(runs["pandas"]["peak_rss_mb"]),
        "churnml_features": runs["churnml"]["columns"] - 2,
        # like for like with (b): the engagement family alone
        "engagement_s": round(runs["churnml_engagement"]["seconds"], 2),
        "engagement_features": runs["churnml_engagement"]["columns"] - 2,
        "engagement_ratio_to_floor": round(runs["churnml_engagement"]["seconds"] / runs["floor"]["seconds"], 2),
        "engagement_speedup_vs_pandas": round(runs["pandas"]["seconds"] / runs["churnml_engagement"]["seconds"], 2),
    }
    if args.large:
        big = 1_000_000
        dataset(big)
        result["large_customers"] = big
        result["large_events"] = int(duckdb.sql(
            f"SELECT count(*) FROM read_parquet('{DATA / f'c{big}'}/events.parquet')").fetchall()[0][0])
        large = measure("churnml", big, args.cutoffs)
        result["large_s"] = round(large["seconds"], 2)
        result["large_peak_rss_mb"] = round(large["peak_rss_mb"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "features.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
