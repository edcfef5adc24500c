"""Atomic outputs: write beside the target, then rename into place.

A crash half-way leaves the previous output intact, because the rename is the only step that
touches the target and it is atomic on one filesystem.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it replaces `target` (a file or a folder)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # the suffix stays last, for writers that pick a format from it (XGBoost, matplotlib)
    tmp = target.with_name(f".{target.stem}.tmp-{uuid.uuid4().hex[:8]}{target.suffix}")
    try:
        yield tmp
        if tmp.is_dir():
            _replace_dir(tmp, target)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def _replace_dir(new: Path, target: Path) -> None:
    # Two renames: the old folder is moved aside first, so the target is never half-written.
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def write_atomic(target: Path, write: Callable[[Path], Any]) -> Path:
    with atomic_path(target) as tmp:
        write(tmp)
    return Path(target)


def write_parquet(frame: pd.DataFrame, target: Path) -> Path:
    return write_atomic(target, lambda tmp: frame.to_parquet(tmp, index=False))


def write_table(frame: pd.DataFrame, target: Path) -> Path:
    """Write Parquet or CSV, chosen by the target's suffix."""
    target = Path(target)
    if target.suffix.lower() == ".csv":
        return write_atomic(target, lambda tmp: frame.to_csv(tmp, index=False))
    if target.suffix.lower() in {".parquet", ".pq"}:
        return write_parquet(frame, target)
    raise ValueError(f"{target}: output must end in .parquet or .csv")


def write_json(payload: Any, target: Path) -> Path:
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    return write_atomic(target, lambda tmp: Path(tmp).write_text(text))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
