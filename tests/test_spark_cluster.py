"""One run in Spark's local-cluster mode: executors in JVMs of their own, so the tables, the
purchase-process model and churnml's code are shipped to separate worker processes and their
results serialised back, as on a real cluster, not only inside one process as under local[2].

A process holds one Spark context, and the rest of the suite's is local[2]: this runs in a
subprocess of its own.
"""

from __future__ import annotations

import sys
import textwrap

import ibis
import pandas as pd
import pytest

from churnml.data.engine import connect
from churnml.features.build import build_features, plan_features
from support import ROOT, run
from test_features import OBS, frames
from test_spark import assert_identical

pytestmark = pytest.mark.spark

FAMILIES = dict(engagement=True, purchase=True, purchase_process=True, feedback=True, subscription=True,
                profile=True)

SCRIPT = textwrap.dedent("""
    import sys
    import ibis
    sys.path.insert(0, {tests!r})
    from churnml.data.engine import connect_configured
    from churnml.data import parquet
    from churnml.features.build import build_features, plan_features
    from test_features import OBS, frames
    from test_spark_cluster import FAMILIES

    con = connect_configured({{"backend": "spark", "spark": {{
        "master": "local-cluster[2,1,1024]", "app_name": "churnml-cluster-test", "shuffle_partitions": 4,
        "conf": {{"spark.ui.enabled": "false", "spark.sql.codegen.wholeStage": "false"}}}}}})
    con._session.sparkContext.setLogLevel("ERROR")
    # two executor JVMs, each with its own Python workers
    assert con._session.sparkContext._jsc.sc().getExecutorMemoryStatus().size() == 3
    tables = {{k: ibis.memtable(v) for k, v in frames().items()}}
    spec = plan_features(tables, families=FAMILIES, windows=[7, 30, 90], horizon_days=30)
    parquet.write(con, build_features(tables, ibis.memtable(OBS), spec), {out!r}, ["customer_id", "cutoff"])
    con._session.stop()
""")


def test_features_on_a_local_cluster_match_duckdb(spark_engine, tmp_path):
    """spark_engine only to share its skip: without Java there is no cluster either."""
    out = tmp_path / "features.parquet"
    script = tmp_path / "cluster.py"
    script.write_text(SCRIPT.format(tests=str(ROOT / "tests"), out=str(out)))
    run([sys.executable, str(script)], tmp_path)
    assert out.is_dir()
    connect()
    tables = {k: ibis.memtable(v) for k, v in frames().items()}
    spec = plan_features(tables, families=FAMILIES, windows=[7, 30, 90], horizon_days=30)
    duck = build_features(tables, ibis.memtable(OBS), spec).to_pandas()
    assert "ppr_p_alive" in duck.columns  # computed by mapInPandas on the executors
    assert_identical(duck, pd.read_parquet(out), ["customer_id", "cutoff"])
