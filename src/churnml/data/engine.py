"""The query engine: an embedded DuckDB behind Ibis, with bounded memory and a spill folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ibis


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
    # DuckDB runs an ASOF join as a nested loop when it guesses the left side is small; behind a
    # union or a memtable its guess is often a few dozen rows for what is really a whole customer
    # base, and the label joins then take minutes instead of a second. Always plan a real ASOF.
    config["asof_loop_join_threshold"] = 0
    return ibis.duckdb.connect(**config)


def connect_configured(engine: dict[str, Any]) -> ibis.BaseBackend:
    """`connect` with the `engine` config section's memory limit, spill folder and threads."""
    return connect(memory_limit=engine.get("memory_limit"), temp_directory=engine.get("temp_directory"),
                   threads=engine.get("threads"))
