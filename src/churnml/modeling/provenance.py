"""Where a model came from: the code commit and the fingerprint of the data it was trained on."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import yaml


def git_commit(folder: Path = Path(".")) -> str:
    """The checked-out commit, with "-dirty" when tracked files differ from it; "unknown" outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def file_md5(path: Path) -> str:
    return file_hash(path, "md5")


def file_hash(path: Path, algorithm: str) -> str:
    """The file's hex digest, read in blocks so a large file does not fill memory."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_fingerprint(paths: list[str], lock: Path = Path("dvc.lock")) -> dict[str, str]:
    """A hash per input path: a file's md5 (as DVC computes it), a folder's hash as DVC recorded
    it in dvc.lock (an ".dir" hash), "unrecorded" for a folder DVC has not hashed, or "missing"."""
    recorded: dict[str, str] = {}
    if lock.exists():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for stage in stages.values():
            for entry in [*stage.get("deps", []), *stage.get("outs", [])]:
                if "md5" in entry:
                    recorded[entry["path"]] = entry["md5"]
    out: dict[str, str] = {}
    for path in paths:
        if Path(path).is_file():
            out[path] = file_md5(Path(path))
        elif Path(path).is_dir():
            out[path] = recorded.get(path, "unrecorded")
        else:
            out[path] = "missing"
    return out
