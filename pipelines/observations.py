"""DVC stage observations: validated tables -> the label-times table."""

import sys
from dataclasses import asdict
from pathlib import Path

import common
import pandas as pd

from churnml.data.contract import read_table
from churnml.data.io import write_json, write_parquet
from churnml.data.validation.times import parse_iso_datetime
from churnml.features.label_times import ObservationSummary, build_observations, label_spec
from churnml.features.splits import split_spec


def main() -> int:
    params = common.start("observations")
    try:
        frame, summary = observations(params)
    except (ValueError, FileNotFoundError) as error:
        # a split or a label-times file that cannot work stops here, not as a traceback in train
        print(f"observations: {error}", file=sys.stderr)
        return 1
    paths = params["paths"]
    write_parquet(frame, Path(paths["observations"]))
    write_json(asdict(summary), Path(paths["reports"]) / "observations.json")
    print(f"  {len(frame):,} labelled observations over {frame['cutoff'].nunique()} cutoffs")
    for split, info in summary.by_split.items():
        print(f"  {split}: {info['rows']:,} rows, churn rate {info['churn_rate']:.1%}")
    for reason, count in summary.counts.items():
        print(f"  {reason}: {count:,}")
    return 0


def observations(params: dict) -> tuple[pd.DataFrame, ObservationSummary]:
    """The label-times table and its summary, from the composed params."""
    labels = params["labels"]
    cutoffs = labels["cutoffs"]
    # ISO dates only, checked before any work: 01/07/2026 is 1 July to some and 7 January to others
    start, end = (parse_iso_datetime(str(cutoffs[key]), f"labels.cutoffs.{key}") if cutoffs.get(key) else None
                  for key in ("start", "end"))
    con = common.engine(params)
    tables = common.validated_tables(params, con)
    custom = None
    if labels["definition"] == "custom":
        source = labels["custom"]["path"]
        if not source or not Path(source).exists():
            raise FileNotFoundError(f"labels.custom.path: label-times file '{source}' not found")
        custom = read_table(con, Path(source)).to_pandas()
    return build_observations(
        tables, label_spec(labels), split_spec(labels), freq=cutoffs["freq"], start=start, end=end,
        min_history_days=int(cutoffs["min_history_days"]), custom=custom,
    )


if __name__ == "__main__":
    sys.exit(main())
