"""Write the synthetic raw dataset: the contract tables of a shape (the mixed default writes all
five) and churn_truth as Parquet, plus ground_truth.json, chunk by chunk into a folder replaced atomically."""

from __future__ import annotations

import calendar
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from churnml.data.generate.chunk import Chunk, simulate_chunk
from churnml.data.generate.parameters import GenerationParams
from churnml.data.generate.retail import RetailParams, simulate_retail_chunk
from churnml.data.generate.retail_truth import retail_ground_truth, retail_summary
from churnml.data.generate.summary import merge_stats, summarise
from churnml.data.generate.tables import SCHEMAS, WRITER_OPTIONS
from churnml.data.generate.truth import ground_truth
from churnml.data.io import atomic_path

__all__ = ["generate_dataset", "GenerationParams", "RetailParams", "SHAPES"]

# What each shape writes besides ground_truth.json. mixed: subscribers and pay-as-you-go customers
# with every table; subscription: a contractual business, every customer subscribed; orders: a
# retailer that only sees purchases (simulated by churnml.data.generate.retail).
SHAPE_TABLES: dict[str, tuple[str, ...]] = {
    "mixed": tuple(SCHEMAS),
    "subscription": ("customers", "events", "subscriptions", "churn_truth"),
    "orders": ("customers", "orders", "churn_truth"),
}
SHAPES = tuple(SHAPE_TABLES)
SUBSCRIPTION_NOTE = (
    "shape subscription: every customer is a subscriber; orders and feedback are simulated but not "
    "written, so the service cause shows only in support visits and the price cause in customers and "
    "subscriptions."
)
Simulate = Callable[[np.random.Generator, int, int, int, int, int, int], Chunk]


def generate_dataset(
    out_dir: Path,
    n_customers: int = 5000,
    months: int = 18,
    end_date: str = "2026-06-30",
    seed: int = 42,
    chunk_size: int = 50_000,
    shape: str = "mixed",
) -> dict:
    """Write a synthetic raw dataset of `shape` (one of SHAPES) plus the planted truth into `out_dir`.

    The folder is replaced atomically. The same arguments give byte-identical files. Returns the
    summary also stored under ``summary`` in ``ground_truth.json``.
    """
    if shape not in SHAPE_TABLES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {shape!r}")
    if n_customers < 1:
        raise ValueError("n_customers must be at least 1")
    if months < 1:
        raise ValueError("months must be at least 1")
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    start, end_excl = window(end_date, months)
    n_days = (end_excl - start).days
    base_us = int(np.datetime64(start.isoformat(), "us").astype(np.int64))
    parameters: dict[str, Any] = {
        "n_customers": n_customers,
        "months": months,
        "start_date": start.isoformat(),
        "end_date": (end_excl - timedelta(days=1)).isoformat(),
        "seed": seed,
        "chunk_size": chunk_size,
    }
    if shape != "mixed":  # the mixed document stays as it always was
        parameters["shape"] = shape
    names = SHAPE_TABLES[shape]

    with atomic_path(Path(out_dir)) as tmp:
        tmp.mkdir(parents=True)
        if shape == "orders":
            retail = RetailParams()
            simulate: Simulate = partial(simulate_retail_chunk, p=retail)
            stats, rows = _write_tables(tmp, names, n_customers, n_days, base_us, seed, chunk_size, simulate)
            summary = retail_summary(stats, rows)
            truth = retail_ground_truth(__name__, parameters, retail, summary)
        else:
            params = GenerationParams()
            if shape == "subscription":
                params = replace(params, subscription_share=1.0)
            simulate = partial(simulate_chunk, p=params)
            stats, rows = _write_tables(tmp, names, n_customers, n_days, base_us, seed, chunk_size, simulate)
            summary = summarise(stats, rows)
            truth = ground_truth(__name__, parameters, params, summary)
            if shape == "subscription":
                truth["notes"].append(SUBSCRIPTION_NOTE)
        (tmp / "ground_truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    return summary


def _write_tables(
    folder: Path, names: tuple[str, ...], n_customers: int, n_days: int, base_us: int, seed: int, chunk_size: int,
    simulate: Simulate,
) -> tuple[dict[str, Any], dict[str, int]]:
    """Simulate chunk after chunk, each from ``SeedSequence(seed, spawn_key=(chunk,))``, appending its
    tables `names` to the Parquet files in `folder`; returns the merged counts and the rows per table."""
    id_width = max(7, len(str(n_customers)))
    stats: dict[str, Any] = {}
    rows = dict.fromkeys(names, 0)
    writers = {name: pq.ParquetWriter(folder / f"{name}.parquet", SCHEMAS[name], **WRITER_OPTIONS) for name in names}
    try:
        for k, first in enumerate(range(0, n_customers, chunk_size)):
            n = min(chunk_size, n_customers - first)
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))
            # order ids run on across chunks; a shape without orders simply numbers none
            chunk = simulate(rng, first, n, n_days, base_us, id_width, rows.get("orders", 0))
            for name in names:
                table = chunk.tables[name]
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
