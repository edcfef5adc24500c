"""The package layout: one subpackage per concern, imports running downward only.

data <- features <- modeling <- explain <- scoring / retention <- params <- cli.
A module may import its own package and any package below it, never one above or beside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "churnml"
# each package with the packages it may import (besides itself)
LAYERS = ["data", "features", "modeling", "explain", ("scoring", "retention"), ("params",), "cli"]


def allowed_below() -> dict[str, set[str]]:
    allowed: dict[str, set[str]] = {}
    below: set[str] = set()
    for layer in LAYERS:
        names = (layer,) if isinstance(layer, str) else layer
        for name in names:
            allowed[name] = set(below)
        below |= set(names)
    return allowed


def owner(path: Path) -> str:
    """The top-level part of churnml a source file belongs to: a subpackage or a top module."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def churnml_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level part) of every churnml import in a file, lazy ones inside functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; write churnml.<package>.<module>")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "churnml":
            parts = node.module.split(".")
            if len(parts) == 1:  # from churnml import x
                found += [(node.lineno, alias.name) for alias in node.names]
            else:
                found.append((node.lineno, parts[1]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1]) for a in node.names
                      if a.name.startswith("churnml.")]
    return found


def violations(files: list[Path]) -> list[str]:
    allowed = allowed_below()
    wrong = []
    for path in files:
        mine = owner(path)
        if mine == "__init__":
            continue
        for line, target in churnml_imports(path):
            if target == "__version__" or target == mine:
                continue
            if target not in allowed:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports churnml.{target}, which is no known package")
            elif target not in allowed[mine]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} ({mine}) imports churnml.{target}, "
                             f"which is not below it")
    return wrong


def test_every_module_belongs_to_a_layer():
    parts = {owner(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert parts == set(allowed_below()), "update LAYERS when a package is added or removed"


def test_imports_only_run_downward():
    assert violations(sorted(PACKAGE.rglob("*.py"))) == []


def test_subpackage_inits_define_nothing():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree), f"{init} needs a docstring saying what the package owns"
        assert len(tree.body) == 1, f"{init} defines or imports something; it should hold only its docstring"


@pytest.mark.parametrize("source,expected", [
    ("from churnml.scoring.batch import score_customers\n", "imports churnml.scoring"),
    ("def f():\n    from churnml import cli\n", "imports churnml.cli"),
    ("import churnml.retention.report\n", "imports churnml.retention"),
])
def test_the_check_catches_an_upward_import(tmp_path, monkeypatch, source, expected):
    """A features module importing scoring, cli or retention is reported (the check can fail)."""
    fake = tmp_path / "churnml"
    (fake / "features").mkdir(parents=True)
    module = fake / "features" / "upward.py"
    module.write_text(source)
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    found = violations([module])
    assert len(found) == 1 and expected in found[0]


def _code_sources() -> list[tuple[str, str]]:
    """(name, source) of the code outside the package that imports it: entry points, benchmarks,
    tests and the notebooks' code cells (which no other test imports until they are executed)."""
    import json

    root = PACKAGE.parents[1]
    sources = [(str(p.relative_to(root)), p.read_text())
               for folder in ("pipelines", "benchmarks", "tests") for p in sorted((root / folder).glob("*.py"))]
    for notebook in sorted((root / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        sources.append((str(notebook.relative_to(root)), code))
    return sources


def test_every_churnml_import_outside_the_package_resolves():
    """A module moved without its importers updated fails here, not in a slow notebook run."""
    import importlib

    missing = []
    for name, source in _code_sources():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("churnml"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if not hasattr(module, alias.name):
                        try:
                            importlib.import_module(f"{node.module}.{alias.name}")
                        except ModuleNotFoundError:
                            missing.append(f"{name}:{node.lineno} from {node.module} import {alias.name}")
    assert missing == []
