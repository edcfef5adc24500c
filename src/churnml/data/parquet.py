"""Stage tables in and out, on either engine: a Parquet file or folder, local or on a cluster.

On DuckDB a stage writes one Parquet file; on Spark its executors write a Parquet folder. Every
stage reads either form, so a table written by one engine is read by the other. A location is a
local path, or a URI Spark reads (`s3a://`, `abfss://`, `hdfs://`): those need the Spark engine.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import ibis

from churnml.data import spark
from churnml.data.io import atomic_path, copy_parquet

Location = Path | str


def is_remote(location: Location) -> bool:
    """A URI with a scheme other than file: read and written through Spark's file systems."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def join(location: Location, name: str) -> Location:
    """`name` inside the folder `location`, keeping a URI a URI."""
    return f"{str(location).rstrip('/')}/{name}" if is_remote(location) else Path(location) / name


def _needs_spark(con: ibis.BaseBackend, location: Location) -> None:
    if is_remote(location) and not spark.is_spark(con):
        raise ValueError(f"{location}: a URI is read and written through Spark; set engine.backend: spark")


def exists(con: ibis.BaseBackend, location: Location) -> bool:
    _needs_spark(con, location)
    return spark.exists(con, str(location)) if is_remote(location) else Path(location).exists()


def read(con: ibis.BaseBackend, location: Location) -> ibis.Table:
    """A stage table: one Parquet file, or a folder of part files (Spark's output), on either engine."""
    _needs_spark(con, location)
    if spark.is_spark(con):
        return con.read_parquet(str(location))
    path = Path(location)
    return con.read_parquet(str(path / "**" / "*.parquet") if path.is_dir() else str(path))


def write(con: ibis.BaseBackend, table: ibis.Table, location: Location, order_by: list[str]) -> None:
    """Write `table` sorted by `order_by` (a total order) to `location`, replacing what is there
    only once it is complete: a failed write leaves the previous output as it was."""
    _needs_spark(con, location)
    if not is_remote(location):
        with atomic_path(Path(location)) as tmp:
            copy_parquet(con, table, tmp, order_by)
        return
    target = str(location).rstrip("/")
    tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        copy_parquet(con, table, tmp, order_by)
        spark.replace(con, tmp, target)
    finally:
        if spark.exists(con, tmp):
            spark.delete(con, tmp)


def rows(con: ibis.BaseBackend, location: Location) -> int:
    """The number of rows of a written stage table (from the Parquet footers on both engines)."""
    return int(read(con, location).count().execute())
