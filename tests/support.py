"""Helpers shared by the end-to-end tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(cmd, cwd, check=True):
    """Run a command with the project's virtual environment first on PATH."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def fresh_mlflow_db(template, target):
    """A new, empty MLflow store at `target` (a file path), copied from the `empty_mlflow_db`
    fixture's; returns its sqlite URI."""
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"
