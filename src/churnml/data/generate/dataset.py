"""Write the synthetic raw dataset: the five contract tables and churn_truth as Parquet, plus
ground_truth.json, chunk by chunk into a folder replaced atomically."""

from __future__ import annotations

import calendar
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from churnml.data.generate.chunk import simulate_chunk
from churnml.data.generate.parameters import GenerationParams
from churnml.data.generate.summary import merge_stats, summarise
from churnml.data.generate.tables import SCHEMAS, WRITER_OPTIONS
from churnml.data.generate.truth import ground_truth
from churnml.data.io import atomic_path

__all__ = ["generate_dataset", "GenerationParams"]


def generate_dataset(
    out_dir: Path,
    n_customers: int = 5000,
    months: int = 18,
    end_date: str = "2026-06-30",
    seed: int = 42,
    chunk_size: int = 50_000,
) -> dict:
    """Write a synthetic raw dataset (five contract tables plus the planted truth) into `out_dir`.

    The folder is replaced atomically. The same arguments give byte-identical files. Returns the
    summary also stored under ``summary`` in ``ground_truth.json``.
    """
    if n_customers < 1:
        raise ValueError("n_customers must be at least 1")
    if months < 1:
        raise ValueError("months must be at least 1")
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    params = GenerationParams()
    start, end_excl = window(end_date, months)
    n_days = (end_excl - start).days
    base_us = int(np.datetime64(start.isoformat(), "us").astype(np.int64))

    with atomic_path(Path(out_dir)) as tmp:
        tmp.mkdir(parents=True)
        stats, rows = _write_tables(tmp, n_customers, n_days, base_us, seed, chunk_size, params)
        summary = summarise(stats, rows)
        parameters = {
            "n_customers": n_customers,
            "months": months,
            "start_date": start.isoformat(),
            "end_date": (end_excl - timedelta(days=1)).isoformat(),
            "seed": seed,
            "chunk_size": chunk_size,
        }
        truth = ground_truth(__name__, parameters, params, summary)
        (tmp / "ground_truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    return summary


def _write_tables(
    folder: Path, n_customers: int, n_days: int, base_us: int, seed: int, chunk_size: int, params: GenerationParams
) -> tuple[dict[str, Any], dict[str, int]]:
    """Simulate chunk after chunk, each from ``SeedSequence(seed, spawn_key=(chunk,))``, appending its
    tables to the Parquet files in `folder`; returns the merged counts and the rows per table."""
    id_width = max(7, len(str(n_customers)))
    stats: dict[str, Any] = {}
    rows = dict.fromkeys(SCHEMAS, 0)
    writers = {
        name: pq.ParquetWriter(folder / f"{name}.parquet", schema, **WRITER_OPTIONS)
        for name, schema in SCHEMAS.items()
    }
    try:
        for k, first in enumerate(range(0, n_customers, chunk_size)):
            n = min(chunk_size, n_customers - first)
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))
            chunk = simulate_chunk(rng, first, n, n_days, base_us, id_width, rows["orders"], params)
            for name, table in chunk.tables.items():
                writers[name].write_table(table)
                rows[name] += table.num_rows
            merge_stats(stats, chunk.stats)
            del chunk
    finally:
        for writer in writers.values():
            writer.close()
    return stats, rows


def window(end_date: str, months: int) -> tuple[date, date]:
    """(first day, day after the last) of `months` months ending at `end_date` inclusive."""
    end_excl = date.fromisoformat(str(end_date)[:10]) + timedelta(days=1)
    total = end_excl.year * 12 + (end_excl.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    day = min(end_excl.day, calendar.monthrange(year, month)[1])
    return date(year, month, day), end_excl
