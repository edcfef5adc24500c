"""DVC stage validate: raw dataset -> contract-named, typed tables + reports/validation.json.

Every failure writes validation.json with ok: false and exits 1 with a readable message; the
previous validated tables are replaced only when the new ones are complete (atomic write).
"""

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
    report_path = Path(paths["reports"]) / "validation.json"
    where = f"dataset '{data.get('name')}' at {data.get('path')}"
    try:
        con = common.engine(params)
        result = validate_folder(con, Path(data["path"]), data["tables"], checks=data.get("checks"),
                                 score_range=tuple(data["score_range"]), reference_time=data.get("reference_time"))
        report = write_validated(con, result, Path(paths["validated"]))
    except ValidationError as error:
        write_json({"ok": False, "findings": [f.to_dict() for f in error.findings]}, report_path)
        print(f"validation failed for {where}:\n{error}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as error:
        # A mistake in the config (an unknown check, a date not in YYYY-MM-DD form) or a file system
        # error: no finding about the data, but the report still says the stage failed, and why.
        write_json({"ok": False, "error": str(error), "findings": []}, report_path)
        print(f"validation failed for {where}: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        # Anything else is a bug: the report says the stage failed, and the traceback is kept for it.
        write_json({"ok": False, "error": f"{type(error).__name__}: {error}", "findings": []}, report_path)
        raise
    write_json({"ok": True, **report}, report_path)
    for name, info in report["tables"].items():
        print(f"  {name}: {info['rows']:,} rows")
    if result.findings:
        print(findings_report(result.findings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
