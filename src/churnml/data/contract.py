"""The raw-data contract: which tables exist, their columns, and how a user's names map onto them.

A dataset is a folder with one file per table (Parquet, or CSV). A user's own column names are
mapped onto the contract names by a `TableMapping` (built from `conf/data/*.yaml` at the edge);
everything downstream of validation sees contract names only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import ibis

from churnml.data import parquet, spark

ColumnKind = Literal["id", "timestamp", "string", "number"]


@dataclass(frozen=True)
class ContractColumn:
    name: str
    kind: ColumnKind
    required: bool = True


@dataclass(frozen=True)
class ContractTable:
    name: str
    columns: tuple[ContractColumn, ...]
    # the column that places a row in time (None for customers' static profile)
    time_column: str | None

    def column(self, name: str) -> ContractColumn:
        return next(c for c in self.columns if c.name == name)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)


CONTRACT: dict[str, ContractTable] = {
    "customers": ContractTable(
        "customers",
        (ContractColumn("customer_id", "id"), ContractColumn("signup_date", "timestamp")),
        time_column=None,
    ),
    "events": ContractTable(
        "events",
        (
            ContractColumn("customer_id", "id"),
            ContractColumn("timestamp", "timestamp"),
            ContractColumn("event_type", "string"),
            ContractColumn("value", "number", required=False),
        ),
        time_column="timestamp",
    ),
    "orders": ContractTable(
        "orders",
        (
            ContractColumn("customer_id", "id"),
            ContractColumn("timestamp", "timestamp"),
            ContractColumn("amount", "number"),
            ContractColumn("order_id", "string", required=False),
            ContractColumn("quantity", "number", required=False),
        ),
        time_column="timestamp",
    ),
    "feedback": ContractTable(
        "feedback",
        (
            ContractColumn("customer_id", "id"),
            ContractColumn("timestamp", "timestamp"),
            ContractColumn("score", "number"),
            ContractColumn("kind", "string", required=False),
            ContractColumn("text", "string", required=False),
        ),
        time_column="timestamp",
    ),
    "subscriptions": ContractTable(
        "subscriptions",
        (
            ContractColumn("customer_id", "id"),
            ContractColumn("start_date", "timestamp"),
            ContractColumn("end_date", "timestamp"),
            ContractColumn("plan", "string", required=False),
            ContractColumn("mrr", "number", required=False),
        ),
        time_column="start_date",
    ),
}

ACTIVITY_TABLES: tuple[str, ...] = ("events", "orders", "feedback", "subscriptions")
# Columns that may hold nulls by contract (an open subscription has no end yet).
NULLABLE: dict[str, set[str]] = {"subscriptions": {"end_date"}}


@dataclass(frozen=True)
class TableMapping:
    """Where one table lives in a dataset folder and what its columns are called there.

    `columns` maps contract name -> the user's column name; names left out map to themselves.
    `attributes` (customers only) are the static profile columns to keep; None keeps every
    column that is not part of the contract.
    """

    table: str
    file: str
    columns: dict[str, str] = field(default_factory=dict)
    attributes: tuple[str, ...] | None = None
    # a table of the Spark catalog (Hive, Delta, Unity), "db.table" or "catalog.db.table", read
    # instead of `file`
    catalog: str | None = None

    def source_name(self, contract_name: str) -> str:
        return self.columns.get(contract_name, contract_name)


def mappings_from_config(tables: dict[str, dict | None]) -> dict[str, TableMapping]:
    """Build mappings from the `data.tables` section of the config (a plain dict)."""
    mappings: dict[str, TableMapping] = {}
    for name, spec in tables.items():
        if name not in CONTRACT:
            raise ValueError(f"data.tables: unknown table '{name}'; the contract has {sorted(CONTRACT)}")
        if spec is None:  # switched off by the user
            continue
        attributes = spec.get("attributes")
        if spec.get("file") and spec.get("catalog"):
            raise ValueError(f"data.tables.{name}: give a file or a catalog table, not both")
        mappings[name] = TableMapping(
            table=name,
            file=spec.get("file") or f"{name}.parquet",
            columns={k: v for k, v in (spec.get("columns") or {}).items() if v is not None},
            attributes=tuple(attributes) if attributes is not None else None,
            catalog=spec.get("catalog") or None,
        )
    return mappings


class UnreadableTable(ValueError):
    """A raw file that exists but cannot be opened as a table; `str()` says which file and why."""


_PARQUET_MAGIC = b"PAR1"


def read_table(con: ibis.BaseBackend, path: parquet.Location) -> ibis.Table:
    """Open one raw file lazily: Parquet (a file or a folder of parts, local or a URI) or CSV.

    Raises `UnreadableTable` naming the file and the reason (empty, not Parquet, unsupported type)
    instead of the engine's own error.
    """
    if parquet.is_remote(path):  # a folder or file on the cluster's file system: Spark reads it
        return _opened(lambda: parquet.read(con, path), path, "Parquet")
    path = Path(path)
    if path.is_dir():
        if not any(path.rglob("*.parquet")):
            raise UnreadableTable(f"{path} is a folder with no .parquet files in it")
        return _opened(lambda: parquet.read(con, path), path, "Parquet")
    suffix = "".join(path.suffixes).lower()
    if suffix.endswith(".parquet") or suffix.endswith(".pq"):
        _check_parquet_file(path)
        return _opened(lambda: con.read_parquet(str(path)), path, "Parquet")
    if suffix.endswith(".csv") or suffix.endswith(".csv.gz"):
        if path.stat().st_size == 0:
            raise UnreadableTable(f"{path} is not a readable CSV file (0 bytes: an interrupted export?)")
        return _opened(lambda: con.read_csv(str(path)), path, "CSV")
    raise UnreadableTable(f"{path} has an unsupported file type ('{path.suffix}'); use Parquet or CSV")


def _check_parquet_file(path: Path) -> None:
    """Catch the common ways a file is not Parquet before the engine does, in words: empty (an
    export that stopped), or without Parquet's marker at both ends (a CSV or Excel file renamed)."""
    size = path.stat().st_size
    if size == 0:
        raise UnreadableTable(f"{path} is not a readable Parquet file (0 bytes: an interrupted export?)")
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(max(size - 4, 0))
        tail = f.read(4)
    if head != _PARQUET_MAGIC:
        raise UnreadableTable(
            f"{path} is not a readable Parquet file (it does not start with Parquet's marker: "
            "a CSV or Excel file saved under a .parquet name?)"
        )
    if tail != _PARQUET_MAGIC:
        raise UnreadableTable(
            f"{path} is not a readable Parquet file (it is cut short: an interrupted export or copy?)"
        )


def _opened(open_fn: Callable[[], ibis.Table], path: Path, kind: str) -> ibis.Table:
    # Any failure to open a file is a read failure, whatever the engine calls it; its first line
    # says what the engine saw and stands in for a traceback.
    try:
        return open_fn()
    except Exception as exc:  # noqa: BLE001 - DuckDB and Spark raise different types
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnreadableTable(f"{path} is not a readable {kind} file ({reason})") from None


def read_catalog_table(con: ibis.BaseBackend, name: str) -> ibis.Table:
    """A table of the Spark catalog, "db.table" or "catalog.db.table"."""
    if not spark.is_spark(con):
        raise UnreadableTable(f"catalog table {name} is read through Spark; set engine.backend: spark")
    *database, table = name.split(".")
    return _opened(lambda: con.table(table, database=tuple(database) if len(database) > 1 else
                                     (database[0] if database else None)), name, "catalog")


def source(folder: parquet.Location, mapping: TableMapping) -> str:
    """Where a mapped table is read from, for messages: its catalog name or its file."""
    return mapping.catalog or str(parquet.join(folder, mapping.file))


def open_mapped(con: ibis.BaseBackend, folder: parquet.Location, mapping: TableMapping) -> ibis.Table | None:
    """The table of one mapping: its catalog table, or its file in `folder`; None when the file
    does not exist. Raises `UnreadableTable` for one that exists but cannot be read."""
    if mapping.catalog:
        return read_catalog_table(con, mapping.catalog)
    location = parquet.join(folder, mapping.file)
    if not parquet.exists(con, location):
        return None
    return read_table(con, location)


def open_raw_tables(
    con: ibis.BaseBackend, folder: parquet.Location, mappings: dict[str, TableMapping]
) -> dict[str, ibis.Table]:
    """Open every mapped table whose file exists, without renaming anything yet.

    `customers` is required; an optional table whose file is absent is left out, and its
    features are simply not built.
    """
    if not parquet.exists(con, folder):
        raise FileNotFoundError(f"dataset folder {folder} does not exist")
    if "customers" not in mappings:
        raise ValueError("data.tables: 'customers' is required by the contract")
    tables: dict[str, ibis.Table] = {}
    for name, mapping in mappings.items():
        table = open_mapped(con, folder, mapping)
        if table is None:
            if name == "customers":
                raise FileNotFoundError(f"table 'customers' is required but {source(folder, mapping)} does not exist")
            continue
        tables[name] = table
    if not set(tables) & set(ACTIVITY_TABLES):
        raise ValueError(
            f"{folder}: the contract needs at least one activity table besides customers "
            f"({', '.join(ACTIVITY_TABLES)}); none was found"
        )
    return tables


def open_contract_tables(con: ibis.BaseBackend, folder: parquet.Location) -> dict[str, ibis.Table]:
    """Open the validated tables (contract names, one `<table>.parquet` file or folder each) written
    by validate, on either engine."""
    tables = {
        name: parquet.read(con, parquet.join(folder, f"{name}.parquet"))
        for name in CONTRACT
        if parquet.exists(con, parquet.join(folder, f"{name}.parquet"))
    }
    if "customers" not in tables:
        raise FileNotFoundError(f"{folder}: no customers.parquet; run the validate stage first")
    return tables
