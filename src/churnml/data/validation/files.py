"""Opening a raw dataset folder for validation: a finding for a missing folder and for every file
that exists but cannot be read, so that they are reported with the rest instead of as a traceback.

A table whose file is simply absent is left out here; `schema.missing_tables` reports it when the
contract needs it.
"""

from __future__ import annotations

import ibis

from churnml.data.contract import TableMapping, UnreadableTable, open_mapped
from churnml.data.parquet import Location
from churnml.data.validation.findings import CONFIG, Finding


def missing_folder(folder: Location) -> Finding:
    """The finding for a dataset folder that does not exist."""
    return Finding(
        check="missing_table",
        table="dataset",
        column=None,
        count=1,
        severity="error",
        message=f"dataset folder {folder} does not exist (or is not a folder), so no table can be read.",
        hint=f"Set data.path in {CONFIG} (or --data) to the folder that holds your tables.",
    )


def open_dataset(
    con: ibis.BaseBackend, folder: Location, mappings: dict[str, TableMapping]
) -> tuple[dict[str, ibis.Table], list[Finding]]:
    """(the mapped tables whose files or catalog tables could be opened, a finding per one that
    could not).

    The folder must exist (see `missing_folder`).
    """
    tables: dict[str, ibis.Table] = {}
    findings: list[Finding] = []
    for name, mapping in mappings.items():
        try:
            table = open_mapped(con, folder, mapping)
        except UnreadableTable as exc:
            findings.append(_unreadable(name, mapping, exc))
            continue
        if table is not None:
            tables[name] = table
    return tables, findings


def _unreadable(name: str, mapping: TableMapping, exc: UnreadableTable) -> Finding:
    return Finding(
        check="unreadable_file",
        table=name,
        column=None,
        count=1,
        severity="error",
        message=f"{name}: {exc}",
        hint=(
            f"Export the {name} table again as Parquet (or CSV), or point tables.{name}.file "
            f"(now '{mapping.file}') at the right file in {CONFIG}."
        ),
    )
