"""DVC stage features: validated tables + observations -> the feature table and its catalog."""

import sys
from pathlib import Path

import common

from churnml.data import parquet
from churnml.features.catalog import catalog_frame
from churnml.features.build import feature_catalog, plan_features, write_features
from churnml.data.io import atomic_path, write_json


def main() -> int:
    params = common.start("features")
    features, paths = params["features"], params["paths"]
    con = common.engine(params)
    tables = common.validated_tables(params, con)
    observations = parquet.read(con, paths["observations"])
    spec = plan_features(
        tables,
        families=features["families"],
        windows=features["windows"],
        negative_score_threshold=features["negative_score_threshold"],
        event_types=features.get("event_types"),
        feedback_kinds=features.get("feedback_kinds"),
        attributes=params["data"]["tables"]["customers"].get("attributes"),
        max_levels=int(features["max_levels"]),
        horizon_days=int(params["labels"]["horizon_days"]),
    )
    chunks = write_features(con, tables, observations, spec, paths["features"],
                            customers_per_chunk=int(params["engine"]["customers_per_chunk"]))
    catalog = catalog_frame(feature_catalog(spec))
    with atomic_path(Path(paths["catalog"])) as tmp:
        catalog.to_csv(tmp, index=False)
    write_json(spec.to_dict(), Path(paths["features"]).with_name("feature_spec.json"))
    print(f"  {len(catalog)} features in families {', '.join(spec.families)} ({chunks} chunk(s) of customers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
