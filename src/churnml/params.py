"""Reading the configuration, for entry points only (pipelines/ and the command line).

`conf/` is the source of truth; `params.yaml` is its composition, written by DVC on `dvc exp run`
(Hydra composition) or by `make params`. Library functions never call this module: an entry
point reads params once and hands plain values down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def compose_text(config_dir: Path, overrides: list[str] | None = None, config_name: str = "config") -> str:
    """The YAML text DVC writes to params.yaml for these overrides (same Hydra call, same dump)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(Path(config_dir).resolve()), version_base=None):
        cfg = compose(config_name=config_name, overrides=list(overrides or []))
    OmegaConf.resolve(cfg)
    return OmegaConf.to_yaml(cfg)


def compose(config_dir: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    return yaml.safe_load(compose_text(config_dir, overrides))


def load_params(path: Path = Path("params.yaml")) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run from the project root, or `make params`")
    return yaml.safe_load(path.read_text())


def main() -> None:
    """`python -m churnml.params [overrides...]`: rewrite params.yaml from conf/."""
    import sys

    Path("params.yaml").write_text(compose_text(Path("conf"), sys.argv[1:]), encoding="utf-8")
    print("params.yaml composed from conf/")


if __name__ == "__main__":
    main()
