"""The query engine behind Ibis: embedded DuckDB (the default), or Apache Spark.

`engine.backend` in the config picks one; every stage then runs the same Ibis expressions on it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import ibis
import pandas as pd

from churnml.data import spark

BACKENDS = ("duckdb", "spark")


def connect(
    memory_limit: str | None = None, temp_directory: Path | None = None, threads: int | None = None
) -> ibis.BaseBackend:
    """An in-process DuckDB connection; past `memory_limit` DuckDB spills to `temp_directory`."""
    config: dict[str, str | int] = {}
    if memory_limit:
        config["memory_limit"] = str(memory_limit)
    if temp_directory:
        Path(temp_directory).mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(temp_directory)
    if threads:
        config["threads"] = int(threads)
    # Keeping insertion order forces DuckDB to buffer results instead of streaming and spilling
    # them; at 100M events that runs out of memory. Outputs that need an order sort explicitly.
    config["preserve_insertion_order"] = False
    return ibis.duckdb.connect(**config)


def connect_configured(engine: dict[str, Any]) -> ibis.BaseBackend:
    """The engine of the `engine` config section: DuckDB with its memory limit, spill folder and
    threads, or Spark with the settings of `engine.spark`."""
    backend = engine.get("backend") or "duckdb"
    if backend == "spark":
        return spark.connect(engine.get("spark") or {})
    if backend != "duckdb":
        raise ValueError(f"engine.backend: unknown engine '{backend}'; use one of {', '.join(BACKENDS)}")
    return connect(memory_limit=engine.get("memory_limit"), temp_directory=engine.get("temp_directory"),
                   threads=engine.get("threads"))


def map_batches(table: ibis.Table, fn: Callable[[pd.DataFrame], pd.DataFrame], schema: ibis.Schema) -> ibis.Table:
    """`fn` applied to the rows of `table` in batches, as a table of `schema`: for work Ibis cannot
    express (closed forms of a fitted model, an XGBoost booster). `fn` must treat rows one by one,
    so that the batches do not matter. On Spark it runs on the executors (mapInPandas) and nothing
    is collected; on DuckDB, in process, and the result comes back as an in-memory table."""
    con = table._find_backend(use_default=True)  # in-memory tables alone: the default, DuckDB
    if spark.is_spark(con):
        return spark.map_batches(con, table, fn, schema)
    out = fn(table.to_pandas())
    return ibis.memtable(out[list(schema.names)], schema=schema)

