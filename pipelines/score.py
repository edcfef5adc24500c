"""DVC stage score: the champion scores the customers active at the end of the data.

The same job as `churnml score` (churnml.scoring.job), with every choice taken from params.yaml.
"""

import sys

import common

from churnml.data.validation.findings import ValidationError
from churnml.scoring.job import score_dataset


def main() -> int:
    params = common.start("score")
    try:
        score_dataset(params)
    except (ValueError, RuntimeError, FileNotFoundError, ValidationError) as error:
        print(f"score: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
