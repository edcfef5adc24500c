"""DVC stage observations: validated tables -> the label-times table."""

import sys
from dataclasses import asdict
from pathlib import Path

import common
import pandas as pd

from churnml.data.contract import read_table
from churnml.data.io import write_json, write_parquet
from churnml.features.label_times import build_observations
from churnml.features.label_times import label_spec, split_spec


def main() -> int:
    params = common.start("observations")
    labels, paths = params["labels"], params["paths"]
    con = common.engine(params)
    tables = common.validated_tables(params, con)
    custom = None
    if labels["definition"] == "custom":
        source = labels["custom"]["path"]
        if not source or not Path(source).exists():
            raise FileNotFoundError(f"labels.custom.path: label-times file '{source}' not found")
        custom = read_table(con, Path(source)).to_pandas()
    cutoffs = labels["cutoffs"]
    frame, summary = build_observations(
        tables, label_spec(labels), split_spec(labels),
        freq=cutoffs["freq"],
        start=pd.Timestamp(cutoffs["start"]).to_pydatetime() if cutoffs.get("start") else None,
        end=pd.Timestamp(cutoffs["end"]).to_pydatetime() if cutoffs.get("end") else None,
        min_history_days=int(cutoffs["min_history_days"]), custom=custom,
    )
    write_parquet(frame, Path(paths["observations"]))
    write_json(asdict(summary), Path(paths["reports"]) / "observations.json")
    print(f"  {len(frame):,} labelled observations over {frame['cutoff'].nunique()} cutoffs")
    for split, info in summary.by_split.items():
        print(f"  {split}: {info['rows']:,} rows, churn rate {info['churn_rate']:.1%}")
    for reason, count in summary.counts.items():
        print(f"  {reason}: {count:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
