"""DVC stage observations: validated tables -> the label-times table."""

import sys
from dataclasses import asdict
from pathlib import Path

import common
import ibis

from churnml.data.contract import read_table
from churnml.data.io import atomic_path, copy_parquet, write_json
from churnml.data.validation.times import parse_iso_datetime
from churnml.features.label_times import ObservationSummary, label_spec, observation_table
from churnml.features.splits import split_spec


def main() -> int:
    params = common.start("observations")
    try:
        con = common.engine(params)
        table, summary = observations(params, con)
    except (ValueError, FileNotFoundError) as error:
        # a split or a label-times file that cannot work stops here, not as a traceback in train
        print(f"observations: {error}", file=sys.stderr)
        return 1
    paths = params["paths"]
    # the engine writes the rows; only the summary's counts come back here
    with atomic_path(Path(paths["observations"])) as tmp:
        copy_parquet(con, table, tmp, order_by=["cutoff", "customer_id"])
    write_json(asdict(summary), Path(paths["reports"]) / "observations.json")
    labelled = sum(info["rows"] for info in summary.by_split.values())
    print(f"  {labelled:,} labelled observations over {summary_cutoffs(summary)} cutoffs")
    for split, info in summary.by_split.items():
        print(f"  {split}: {info['rows']:,} rows, churn rate {info['churn_rate']:.1%}")
    for reason, count in summary.counts.items():
        print(f"  {reason}: {count:,}")
    return 0


def summary_cutoffs(summary: ObservationSummary) -> int:
    """Cutoffs with labelled rows: the splits never share a cutoff, so their counts add up."""
    return sum(info["cutoffs"] for info in summary.by_split.values())


def observations(params: dict, con: ibis.BaseBackend | None = None) -> tuple[ibis.Table, ObservationSummary]:
    """The label-times table (lazy, on `con`: the configured engine by default) and its summary."""
    labels = params["labels"]
    cutoffs = labels["cutoffs"]
    # ISO dates only, checked before any work: 01/07/2026 is 1 July to some and 7 January to others
    start, end = (parse_iso_datetime(str(cutoffs[key]), f"labels.cutoffs.{key}") if cutoffs.get(key) else None
                  for key in ("start", "end"))
    con = con or common.engine(params)
    tables = common.validated_tables(params, con)
    custom = None
    if labels["definition"] == "custom":
        source = labels["custom"]["path"]
        if not source or not Path(source).exists():
            raise FileNotFoundError(f"labels.custom.path: label-times file '{source}' not found")
        custom = read_table(con, Path(source))
    return observation_table(
        tables, label_spec(labels), split_spec(labels), freq=cutoffs["freq"], start=start, end=end,
        min_history_days=int(cutoffs["min_history_days"]), custom=custom,
    )


if __name__ == "__main__":
    sys.exit(main())
