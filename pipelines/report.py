"""DVC stage report: the retention measures, CLV and segments on the whole data and its scores.

The same function as `churnml report`, with every choice taken from params.yaml.
"""

import sys
from pathlib import Path

import common

from churnml.cli import report_dataset
from churnml.validate import ValidationError


def main() -> int:
    common.start("report")
    try:
        report_dataset(params_path=Path("params.yaml"), data_dir=None, scores_path=None, out=None)
    except (ValueError, RuntimeError, FileNotFoundError, ValidationError) as error:
        print(f"report: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
