"""Atomic outputs: write beside the target, then rename into place.

A crash half-way leaves the previous output intact, because the rename is the only step that
touches the target and it is atomic on one filesystem. What a killed process leaves beside the
target (its temp file or folder) is removed by the next write to the same target: temp names
carry the writer's PID, so only the litter of dead processes is touched.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from churnml.data import spark

log = logging.getLogger(__name__)

# About when this process started (io is imported at the start of every entry point): temp files
# of the older naming, without a PID, are litter once they are older than that.
_PROCESS_START = time.time()


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it replaces `target` (a file or a folder).

    A writer may put scratch data beside the temp path under `<temp name>.parts`; it is cleaned
    up with the temp path when its process dies.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    # the suffix stays last, for writers that pick a format from it (XGBoost, matplotlib)
    tmp = target.with_name(f".{target.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{target.suffix}")
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
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove the temp files and folders a killed writer of `target` left beside it; returns them.

    Only names of atomic_path's own patterns are considered, and of those only the ones whose
    PID is no longer running on this machine (or, for the older names without a PID, that are
    older than this process): a temp file of a writer still at work is left alone.
    """
    target = Path(target)
    stem, suffix = re.escape(target.stem), re.escape(target.suffix)
    patterns = [
        re.compile(rf"\.{stem}\.tmp-(?:(?P<pid>\d+)-)?[0-9a-f]{{8}}{suffix}(?:\.parts)?"),
        re.compile(rf"\.{re.escape(target.name)}\.old-(?:(?P<pid>\d+)-)?[0-9a-f]{{8}}"),
    ]
    removed = []
    for path in target.parent.iterdir():
        if not path.name.startswith(f".{target.stem}"):
            continue
        match = next((m for m in (p.fullmatch(path.name) for p in patterns) if m), None)
        if match is None or not _abandoned(path, match["pid"]):
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:  # another writer cleaned it up first
            continue
        log.info("removed %s, left behind by a writer that did not finish", path)
        removed.append(path)
    return removed


def _abandoned(path: Path, pid: str | None) -> bool:
    if pid is None:
        try:
            return path.lstat().st_mtime < _PROCESS_START
        except FileNotFoundError:
            return False
    return not pid_alive(int(pid))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (a reused id counts as running)."""
    if pid == os.getpid() or os.name == "nt":  # on Windows, signal 0 would be a Ctrl-C
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return True  # cannot tell: keep the file
    return True


def write_atomic(target: Path, write: Callable[[Path], Any]) -> Path:
    with atomic_path(target) as tmp:
        write(tmp)
    return Path(target)


# Fixed Parquet writer settings, written down rather than left to each library's defaults: the
# same rows give the same bytes on every rerun, so DVC sees an unchanged output and stops there.
PARQUET_COMPRESSION = "snappy"
PARQUET_ROW_GROUP_SIZE = 122_880


def write_parquet(frame: pd.DataFrame, target: Path) -> Path:
    return write_atomic(target, lambda tmp: frame.to_parquet(
        tmp, index=False, engine="pyarrow", compression=PARQUET_COMPRESSION, row_group_size=PARQUET_ROW_GROUP_SIZE))


def copy_parquet(con: Any, table: Any, path: Path | str, order_by: list[str]) -> None:
    """Write an engine table to `path` in the order of `order_by`: one Parquet file on DuckDB, a
    Parquet folder written by the executors on Spark.

    The engine runs with preserve_insertion_order off, so without an ORDER BY the rows land in
    whatever order the threads finish. `order_by` must make the order total (a unique key, or
    every column) for reruns to give the same bytes. Not atomic by itself: write to an
    `atomic_path`.
    """
    if spark.is_spark(con):
        spark.write_parquet(con, table, str(path), order_by, PARQUET_COMPRESSION)
        return
    con.to_parquet(table.order_by(order_by), str(path),
                   compression=PARQUET_COMPRESSION, row_group_size=PARQUET_ROW_GROUP_SIZE)


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
