"""Opening a dataset: a raw folder through validation, or the validated tables."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import ibis

from churnml.data import parquet
from churnml.data.engine import connect_configured
from churnml.data.contract import mappings_from_config
from churnml.data.validation.files import missing_folder, open_dataset
from churnml.data.validation.findings import ValidationError
from churnml.data.validation.run import ValidatedData, validate_tables


def validate_folder(
    con: ibis.BaseBackend,
    folder: parquet.Location,
    tables: dict,
    *,
    checks: dict[str, str] | None = None,
    score_range: tuple[float, float] = (0, 10),
    reference_time: datetime | str | None = None,
) -> ValidatedData:
    """Open a raw dataset folder (user column names, mapped by `tables`) and validate it.

    Raises `churnml.data.validation.findings.ValidationError` naming every table, column and example
    row at fault, a missing folder or table, and every file that cannot be read; `ValueError` for a
    mistake in the config itself (an unknown table or check, a date not in YYYY-MM-DD form).
    """
    mappings = mappings_from_config(tables)
    # a dataset mapped wholly to catalog tables needs no folder
    in_folder = any(not m.catalog for m in mappings.values())
    if in_folder and not (parquet.exists(con, folder) and (parquet.is_remote(folder) or Path(folder).is_dir())):
        raise ValidationError([missing_folder(folder)])
    raw, opened = open_dataset(con, folder, mappings)
    return validate_tables(
        con, raw, mappings, checks=checks, score_range=tuple(score_range), reference_time=reference_time,
        opened=opened,
    )


def validate_configured(data: dict[str, Any], engine: dict[str, Any], folder: Path | None = None) -> dict[str, ibis.Table]:
    """The raw folder (the `data` section's path unless given) validated with its mapping and
    checks, on an engine opened with the `engine` section: the contract-named tables."""
    con = connect_configured(engine)
    return validate_folder(
        con, folder or data["path"], data["tables"], checks=data.get("checks"),
        score_range=tuple(data["score_range"]), reference_time=data.get("reference_time"),
    ).tables
