"""Opening a dataset: a raw folder through validation, or the validated tables."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import ibis

from churnml.contract import mappings_from_config, open_raw_tables
from churnml.validate import ValidatedData, validate_tables


def validate_folder(
    con: ibis.BaseBackend,
    folder: Path,
    tables: dict,
    *,
    checks: dict[str, str] | None = None,
    score_range: tuple[float, float] = (0, 10),
    reference_time: datetime | str | None = None,
) -> ValidatedData:
    """Open a raw dataset folder (user column names, mapped by `tables`) and validate it.

    Raises `churnml.validate.ValidationError` naming every table, column and example row at fault.
    """
    mappings = mappings_from_config(tables)
    raw = open_raw_tables(con, Path(folder), mappings)
    return validate_tables(
        con, raw, mappings, checks=checks, score_range=tuple(score_range), reference_time=reference_time
    )
