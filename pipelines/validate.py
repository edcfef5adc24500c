"""DVC stage validate: raw dataset -> contract-named, typed tables + reports/validation.json."""

import sys
from pathlib import Path

import common

from churnml.data.dataset import validate_folder
from churnml.data.io import write_json
from churnml.data.validation.findings import ValidationError, findings_report
from churnml.data.validation.run import write_validated


def main() -> int:
    params = common.start("validate")
    data, paths = params["data"], params["paths"]
    con = common.engine(params)
    report_path = Path(paths["reports"]) / "validation.json"
    try:
        result = validate_folder(con, Path(data["path"]), data["tables"], checks=data.get("checks"),
                                 score_range=tuple(data["score_range"]), reference_time=data.get("reference_time"))
    except ValidationError as error:
        write_json({"ok": False, "findings": [f.to_dict() for f in error.findings]}, report_path)
        print(f"validation failed for dataset '{data['name']}' at {data['path']}:\n{error}", file=sys.stderr)
        return 1
    report = write_validated(con, result, Path(paths["validated"]))
    write_json({"ok": True, **report}, report_path)
    for name, info in report["tables"].items():
        print(f"  {name}: {info['rows']:,} rows")
    if result.findings:
        print(findings_report(result.findings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
