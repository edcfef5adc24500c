"""Apache Spark as the query engine: the session, and moving tables between Ibis and Spark.

The same Ibis expressions run here as on DuckDB (`churnml.data.engine`); this module only opens
the session and does what Ibis has no portable word for: a Spark DataFrame for `mapInPandas`,
a sorted Parquet folder written by the executors, renames on the cluster's file system. pyspark
is an optional extra (`pip install churnml[spark]`) and is imported only here, only when used.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import ibis

# Settings churnml needs whatever the user sets: times are naive UTC in the contract, Parquet
# timestamps are written as plain microseconds (readable by DuckDB and pandas alike), and a
# pandas batch never widens to a copy of a whole partition.
REQUIRED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # a TIMESTAMP is a plain date and time, as in the contract and on DuckDB, not an instant that
    # Parquet would store as UTC-adjusted (pandas then reads it with a time zone)
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def session(settings: dict[str, Any]) -> Any:
    """A SparkSession from the `engine.spark` config section (master, app_name, driver_memory,
    shuffle_partitions, conf). An existing session (spark-submit, Databricks) is reused and only
    its runtime settings are changed."""
    # Python workers run this interpreter, which has churnml, unless the cluster says otherwise
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:  # the extra is not installed
        raise RuntimeError("engine.backend is 'spark' but pyspark is not installed: "
                           "pip install 'churnml[spark]'") from error
    builder = SparkSession.builder.appName(str(settings.get("app_name") or "churnml"))
    if settings.get("master"):
        builder = builder.master(str(settings["master"]))
    if settings.get("driver_memory"):
        builder = builder.config("spark.driver.memory", str(settings["driver_memory"]))
    if settings.get("shuffle_partitions"):
        builder = builder.config("spark.sql.shuffle.partitions", str(int(settings["shuffle_partitions"])))
    for key, value in {**(settings.get("conf") or {}), **REQUIRED_CONF}.items():
        builder = builder.config(str(key), str(value))
    spark = builder.getOrCreate()
    for key, value in REQUIRED_CONF.items():  # a session that already existed keeps its own otherwise
        spark.conf.set(key, value)
    return spark


def connect(settings: dict[str, Any]) -> ibis.BaseBackend:
    """Ibis on the Spark session of `session(settings)`."""
    return _backend_class()().connect(session(settings))


def _backend_class() -> type:
    from ibis.backends.pyspark import Backend

    ibis.pyspark  # noqa: B018 - loading it through ibis registers the options its compiler reads

    class NaiveTimes(Backend):
        """Ibis's PySpark backend, with in-memory tables' naive times kept naive: Ibis registers
        them as Spark's TIMESTAMP (an instant), which Parquet then stores UTC-adjusted and pandas
        reads back with a time zone, where every other path has plain date-times."""

        def _register_in_memory_table(self, op: Any) -> None:
            super()._register_in_memory_table(op)
            naive = [n for n, t in op.schema.items() if t.is_timestamp() and t.timezone is None]
            if naive:
                frame = self._session.table(op.name)
                frame.withColumns({n: frame[n].cast("timestamp_ntz") for n in naive}).createOrReplaceTempView(op.name)

    return NaiveTimes


def spark_schema(schema: ibis.Schema) -> Any:
    """The Spark schema of an Ibis schema, naive timestamps as TIMESTAMP_NTZ (see `NaiveTimes`)."""
    from ibis.backends.pyspark.datatypes import PySparkSchema
    from pyspark.sql import types

    fields = []
    for field, (name, dtype) in zip(PySparkSchema.from_ibis(schema).fields, schema.items()):
        if dtype.is_timestamp() and dtype.timezone is None:
            field = types.StructField(name, types.TimestampNTZType(), field.nullable)
        fields.append(field)
    return types.StructType(fields)


def is_spark(con: Any) -> bool:
    return getattr(con, "name", None) == "pyspark"


def to_frame(con: ibis.BaseBackend, table: ibis.Table) -> Any:
    """The Spark DataFrame of an Ibis table (lazy: nothing runs until it is written or collected)."""
    con._run_pre_execute_hooks(table)  # registers the in-memory tables the expression uses
    return con._session.sql(con.compile(table))


def from_frame(con: ibis.BaseBackend, frame: Any) -> ibis.Table:
    """An Ibis table over a Spark DataFrame, through a temporary view with a fresh name."""
    name = f"churnml_{uuid.uuid4().hex[:12]}"
    frame.createOrReplaceTempView(name)
    return con.table(name)


def write_parquet(con: ibis.BaseBackend, table: ibis.Table, location: str, order_by: list[str],
                  compression: str) -> None:
    """Write `table` as a Parquet folder at `location`, sorted by `order_by` across its part files
    (part-00000 holds the first rows), so that reruns give the same rows in the same order."""
    frame = to_frame(con, table).orderBy(*order_by)
    frame.write.mode("errorifexists").option("compression", compression).parquet(str(location))
    _fixed_names(con, str(location))


def _fixed_names(con: ibis.BaseBackend, location: str) -> None:
    """Name the part files by their number alone and drop the commit marker and checksums: Spark
    puts a fresh job id in every part file's name, so the same rows would be a new folder to DVC."""
    fs, folder = _filesystem(con, location)
    jvm = con._session.sparkContext._jvm
    # under the local file system's wrappers: the checksumming one would write a .crc per rename
    while jvm.java.lang.Class.forName("org.apache.hadoop.fs.FilterFileSystem").isInstance(fs):
        fs = fs.getRawFileSystem()
    paths = [status.getPath() for status in fs.listStatus(folder)]
    for path in paths:  # the checksums first: a local rename would carry them along
        if path.getName() == "_SUCCESS" or path.getName().endswith(".crc"):
            fs.delete(path, False)
    for path in paths:
        part = re.fullmatch(r"part-(\d+)-.*?((?:\.\w+)*\.parquet)", path.getName())
        if part:
            fs.rename(path, jvm.org.apache.hadoop.fs.Path(folder, f"part-{part[1]}{part[2]}"))


def map_batches(con: ibis.BaseBackend, table: ibis.Table, fn: Callable[[Any], Any], schema: ibis.Schema
                ) -> ibis.Table:
    """`fn` (a pandas frame in, one out) over the rows of `table` on the executors (mapInPandas)."""
    names = list(schema.names)

    def each(batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            yield fn(batch)[names]

    frame = to_frame(con, table).mapInPandas(each, spark_schema(schema))
    return from_frame(con, frame)


def _filesystem(con: ibis.BaseBackend, location: str) -> tuple[Any, Any]:
    jvm = con._session.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(str(location))
    return path.getFileSystem(con._session.sparkContext._jsc.hadoopConfiguration()), path


def exists(con: ibis.BaseBackend, location: str) -> bool:
    """Whether a file or folder exists at `location` on any file system Spark reads."""
    fs, path = _filesystem(con, location)
    return bool(fs.exists(path))


def replace(con: ibis.BaseBackend, new: str, target: str) -> None:
    """Move the finished output `new` onto `target` on the cluster's file system: the old one
    is moved aside first and removed last, so a reader never sees a half-written target. (On an
    object store a rename is a copy: there the window is the copy's, not an instant.)"""
    fs, new_path = _filesystem(con, new)
    _, target_path = _filesystem(con, target)
    jvm = con._session.sparkContext._jvm
    old_path = jvm.org.apache.hadoop.fs.Path(f"{target}.old-{uuid.uuid4().hex[:8]}")
    had_old = fs.exists(target_path)
    if had_old and not fs.rename(target_path, old_path):
        raise OSError(f"could not move {target} aside to replace it")
    if not fs.rename(new_path, target_path):
        if had_old:
            fs.rename(old_path, target_path)
        raise OSError(f"could not rename {new} to {target}")
    if had_old:
        fs.delete(old_path, True)


def delete(con: ibis.BaseBackend, location: str) -> None:
    fs, path = _filesystem(con, location)
    fs.delete(path, True)


def persisted(con: ibis.BaseBackend, table: ibis.Table) -> tuple[ibis.Table, Callable[[], Any]]:
    """`table` kept by the executors once computed (memory, then disk), for work that reads it more
    than once; and the function that lets it go."""
    frame = to_frame(con, table).persist()
    return from_frame(con, frame), frame.unpersist


def broadcast(con: ibis.BaseBackend, value: Any) -> Any:
    """`value` shipped once to each executor; read it there as `.value`."""
    return con._session.sparkContext.broadcast(value)


def partitions(con: ibis.BaseBackend, table: ibis.Table) -> int:
    return int(to_frame(con, table).rdd.getNumPartitions())


def numbered(con: ibis.BaseBackend, table: ibis.Table, order: list[tuple[str, bool]], name: str
             ) -> tuple[ibis.Table, Callable[[], Any]]:
    """`table` with `name` = 1, 2, ... in the order of `order` ((column, ascending) pairs making a
    total order), and the function that releases the rows kept for it.

    A window over the whole table would move every row through one task. Instead the rows are
    range-partitioned by the order, each partition counts its rows, and a row's number is the
    count of the partitions before its own plus its place in it.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = [F.col(column).asc() if ascending else F.col(column).desc() for column, ascending in order]
    # kept: the counts and the numbering must see the same partitions
    frame = to_frame(con, table).orderBy(*keys).withColumn("_partition", F.spark_partition_id()).persist()
    sizes = sorted((row["_partition"], row["count"]) for row in frame.groupBy("_partition").count().collect())
    offsets, before = [], 0
    for partition, size in sizes:
        offsets.append((partition, before))
        before += size
    starts = con._session.createDataFrame(offsets, "_partition int, _offset long")
    place = F.row_number().over(Window.partitionBy("_partition").orderBy(*keys))
    result = (frame.join(F.broadcast(starts), "_partition")
              .withColumn(name, (F.col("_offset") + place).cast("long"))
              .drop("_partition", "_offset"))
    return from_frame(con, result), frame.unpersist
