"""The feature catalog: what each feature is, and how to say its value in plain language.

Explanations render a driver from its catalog entry, so every feature the engine builds has one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import pandas as pd

Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class FeatureInfo:
    name: str
    family: str  # engagement | purchase | feedback | subscription | profile
    window: int | None  # days before the cutoff; None for all history / point values
    kind: Kind
    # "{value}" is the formatted value; e.g. "Logins in the last 30 days: {value}"
    template: str
    unit: str = ""  # "days", "currency", "ratio", "share", "" (a count or a label)
    # a count or sum over its window: the same measure over a wider window says what came before
    additive: bool = False

    def describe(self, value: object) -> str:
        return self.template.format(value=format_value(value, self.unit, self.kind))


# how a missing value reads, by unit: a recency of nothing is "never", a trend of nothing has
# nothing to compare
MISSING_TEXT = {"days": "never", "ratio": "no activity to compare", "share": "nothing to compare"}


def is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def format_value(value: object, unit: str = "", kind: str = "numeric") -> str:
    if is_missing(value):
        return "unknown" if kind == "categorical" else MISSING_TEXT.get(unit, "none recorded")
    if isinstance(value, str):
        return value
    number = float(value)  # type: ignore[arg-type]
    if unit == "days":
        return f"{number:.0f} days"
    if unit == "currency":
        return f"{number:,.2f}"
    if unit == "ratio":
        return f"{number:+.0%}" if -1 <= number <= 1 else f"{number:.2f}"
    if unit == "share":
        return f"{number:.0%}"
    return f"{number:.0f}" if number.is_integer() else f"{number:.2f}"


def wider_window(info: FeatureInfo, by_name: dict[str, FeatureInfo]) -> FeatureInfo | None:
    """The same additive measure over the next wider window, e.g. pur_orders_90d for pur_orders_30d."""
    if not info.additive or info.window is None or not info.name.endswith(f"_{info.window}d"):
        return None
    stem = info.name[: -len(f"_{info.window}d")]
    wider = [other for other in by_name.values() if other.additive and other.window is not None
             and other.window > info.window and other.name == f"{stem}_{other.window}d"]
    return min(wider, key=lambda other: other.window) if wider else None


def sentence(info: FeatureInfo, row: dict | pd.Series, by_name: dict[str, FeatureInfo]) -> str:
    """The feature's value in words, with what came before when a wider window says so:
    "Purchases in the last 30 days: 1, down from 4 per 30 days in the 60 days before"."""
    value = row[info.name]
    text = info.describe(value)
    wider = wider_window(info, by_name)
    if wider is None or is_missing(value) or is_missing(row[wider.name]):
        return text
    span = wider.window - info.window
    before = (float(row[wider.name]) - float(value)) / span * info.window
    if abs(before - float(value)) < 1e-9:
        return f"{text}, the same pace as in the {span} days before"
    direction = "down" if float(value) < before else "up"
    # a pace is a count per period, so one decimal is enough ("0.5 per 30 days")
    rate = format_value(before, info.unit) if info.unit == "currency" else f"{before:.1f}".removesuffix(".0")
    return f"{text}, {direction} from {rate} per {info.window} days in the {span} days before"


def catalog_frame(catalog: list[FeatureInfo]) -> pd.DataFrame:
    return pd.DataFrame([asdict(info) for info in catalog])


def catalog_from_frame(frame: pd.DataFrame) -> list[FeatureInfo]:
    infos = []
    for row in frame.to_dict("records"):
        window = row.get("window")
        row["window"] = None if window is None or pd.isna(window) else int(window)
        row["unit"] = "" if row.get("unit") is None or pd.isna(row.get("unit")) else row["unit"]
        row["additive"] = bool(row.get("additive", False))
        infos.append(FeatureInfo(**row))
    return infos
