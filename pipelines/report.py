"""DVC stage report: the retention measures, CLV and segments on the whole data and its scores.

The same job as `churnml report` (churnml.retention.job), with every choice taken from params.yaml.
"""

import sys

import common

from churnml.data.validation.findings import ValidationError
from churnml.retention.job import report_dataset


def main() -> int:
    params = common.start("report")
    try:
        report_dataset(params)
    except (ValueError, RuntimeError, FileNotFoundError, ValidationError) as error:
        print(f"report: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
