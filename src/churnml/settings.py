"""Plain config sections (dicts from params.yaml) turned into the typed values the library takes.

Entry points call these right after reading params once; nothing here reads a file.
"""

from __future__ import annotations

from typing import Any

from churnml.observations import LabelSpec, SplitSpec


def label_spec(labels: dict[str, Any]) -> LabelSpec:
    inactivity = labels.get("inactivity") or {}
    custom = labels.get("custom") or {}
    event_types = inactivity.get("event_types")
    return LabelSpec(
        definition=labels["definition"],
        lead_days=int(labels.get("lead_days", 0)),
        horizon_days=int(labels["horizon_days"]),
        grace_days=int(labels.get("grace_days", 0)),
        activity_tables=tuple(inactivity.get("tables") or ("events", "orders")),
        event_types=tuple(event_types) if event_types else None,
        active_window_days=inactivity.get("active_window_days"),
        fallback=custom.get("fallback") or "inactivity",
    )


def split_spec(labels: dict[str, Any]) -> SplitSpec:
    split = labels.get("split") or {}
    return SplitSpec(
        test_cutoffs=int(split.get("test_cutoffs", 2)),
        valid_cutoffs=int(split.get("valid_cutoffs", 1)),
        test_fraction=float(split.get("test_fraction", 0.2)),
        valid_fraction=float(split.get("valid_fraction", 0.1)),
        purge=bool(split.get("purge", True)),
    )


def engine_options(engine: dict[str, Any]) -> dict[str, Any]:
    return {
        "memory_limit": engine.get("memory_limit"),
        "temp_directory": engine.get("temp_directory"),
        "threads": engine.get("threads"),
    }
