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
    unit: str = ""  # "days", "currency", "ratio", "" (a count or a label)

    def describe(self, value: object) -> str:
        return self.template.format(value=format_value(value, self.unit))


def format_value(value: object, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "none recorded"
    if isinstance(value, str):
        return value
    number = float(value)  # type: ignore[arg-type]
    if unit == "days":
        return f"{number:.0f} days"
    if unit == "currency":
        return f"{number:,.2f}"
    if unit == "ratio":
        return f"{number:+.0%}" if -1 <= number <= 1 else f"{number:.2f}"
    return f"{number:.0f}" if number.is_integer() else f"{number:.2f}"


def catalog_frame(catalog: list[FeatureInfo]) -> pd.DataFrame:
    return pd.DataFrame([asdict(info) for info in catalog])


def catalog_from_frame(frame: pd.DataFrame) -> list[FeatureInfo]:
    infos = []
    for row in frame.to_dict("records"):
        window = row.get("window")
        row["window"] = None if window is None or pd.isna(window) else int(window)
        row["unit"] = "" if row.get("unit") is None or pd.isna(row.get("unit")) else row["unit"]
        infos.append(FeatureInfo(**row))
    return infos
