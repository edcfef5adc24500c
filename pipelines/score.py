"""DVC stage score: the champion scores the customers active at the end of the data.

The same function as `churnml score`, with every choice taken from params.yaml.
"""

import sys
from pathlib import Path

import common

from churnml.cli import score_dataset
from churnml.validate import ValidationError


def main() -> int:
    common.start("score")
    try:
        score_dataset(params_path=Path("params.yaml"), data_dir=None, as_of=None, model_uri=None, out=None,
                      top_k=None, explain=None)
    except (ValueError, RuntimeError, FileNotFoundError, ValidationError) as error:
        print(f"score: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
