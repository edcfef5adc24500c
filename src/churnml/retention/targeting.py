"""Retention-campaign targeting: who to contact, given the scores and the campaign's economics.

Each customer's expected net retained value is

    churn_probability x customer_value x success_rate - (contact_cost + offer_cost)

Every contact costs the same, so under either limit (at most N contacts, or a total cost of at
most X, which is at most floor(X / cost) contacts) the best campaign is simply the customers with
the highest positive expected net value: any other choice of the same size swaps one of them for
a customer worth no more. Only positive values are worth a contact. Ties go to the higher churn
probability, then the smaller customer_id, so the same scores always give the same campaign.

A random share of the targeted range is held out as a control group, so the campaign's effect
can be measured later (churnml.retention.campaign). See `select_targets` for how.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd

from churnml.data import parquet
from churnml.modeling.evaluation import Economics
from churnml.data.io import atomic_path, write_json, write_table
from churnml.modeling.provenance import file_hash

REQUIRED_COLUMNS = ("customer_id", "churn_probability", "customer_value")
# what `churnml score` writes for each reason: reason_i, reason_i_feature/_value/_contribution, protective*
REASON_COLUMN = re.compile(r"^(reason_\d+|protective)(_feature|_value|_contribution)?$")
# the id names a folder, so it is kept to characters that are safe in a path on every system
CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
GROUPS = ("treated", "control")


# ---- the scores file ----------------------------------------------------------------------------

def _scores_format(location: parquet.Location, exists: bool) -> str:
    """'parquet' or 'csv' by the suffix, or the error `churnml target` and `churnml report` share."""
    if not exists:
        raise FileNotFoundError(f"{location}: scores file not found (write one with `churnml score`)")
    suffix = Path(str(location).rstrip("/")).suffix.lower()
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise ValueError(f"{location}: scores must be a .parquet or .csv file")


def read_scores(path: Path) -> pd.DataFrame:
    """A scores file written by `churnml score`, Parquet or CSV by its suffix."""
    path = Path(path)
    if _scores_format(path, path.exists()) == "parquet":
        return pd.read_parquet(path)
    # ids stay text: "007" must not become 7
    return pd.read_csv(path, dtype={"customer_id": "string"})


def read_score_table(con: ibis.BaseBackend, location: parquet.Location) -> ibis.Table:
    """The scores as an engine table: a Parquet file or folder (Spark's output) read by `con`; a
    CSV file, an ad-hoc export, is read by pandas as `read_scores` reads it."""
    if _scores_format(location, parquet.exists(con, location)) == "parquet":
        return parquet.read(con, location)
    return ibis.memtable(read_scores(Path(location)))


# What each value must be, as (column, rule, in words). A rule holds for pandas Series and Ibis
# columns alike; NaN fails it on both (NaN compares as the largest number in DuckDB and Spark,
# so it is not below infinity), and a missing value counts as failing.
VALUE_RULES = (
    ("churn_probability", lambda x: (x >= 0) & (x <= 1), "a probability in [0, 1]"),
    ("customer_value", lambda x: (x >= 0) & (x < math.inf), "a finite value >= 0"),
)


def _missing_columns(columns: list[str], source: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; a scores file needs {list(REQUIRED_COLUMNS)} "
                         f"(columns present: {', '.join(map(str, columns))})")


def _without_id(source: str, count: int, examples: str) -> ValueError:
    return ValueError(f"{source}: {count} row(s) without a customer_id, e.g.\n{examples}")


def _repeated_ids(source: str, count: int, examples: str) -> ValueError:
    return ValueError(f"{source}: {count} customer_id(s) appear more than once, e.g.\n{examples}")


def _bad_values(source: str, count: int, column: str, what: str, examples: str) -> ValueError:
    return ValueError(f"{source}: {count} row(s) where {column} is not {what}, e.g.\n{examples}")


def _examples(frame: pd.DataFrame, bad: pd.Series, columns: list[str]) -> str:
    """Up to five offending rows, with their position in the file (0 = the first row)."""
    shown = frame.loc[bad, columns].head(5)
    return shown.rename_axis("row").reset_index().to_string(index=False)


def check_scores(scores: pd.DataFrame, source: str) -> pd.DataFrame:
    """The scores with customer_id as text, or a ValueError naming the file, column and example rows."""
    _missing_columns(list(scores.columns), source)
    frame = scores.reset_index(drop=True).copy()
    ids = frame["customer_id"]
    null_id = ids.isna()
    if null_id.any():
        raise _without_id(source, int(null_id.sum()), _examples(frame, null_id, list(REQUIRED_COLUMNS)))
    frame["customer_id"] = ids.astype("string")
    dupes = frame["customer_id"].duplicated(keep=False)
    if dupes.any():
        raise _repeated_ids(source, int(frame["customer_id"][dupes].nunique()),
                            _examples(frame, dupes, list(REQUIRED_COLUMNS)))
    for column, ok, what in VALUE_RULES:
        values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        bad = ~ok(values).fillna(False).astype(bool)  # NaN (missing, or not a number) is bad too
        if bad.any():
            raise _bad_values(source, int(bad.sum()), column, what, _examples(frame, bad, list(REQUIRED_COLUMNS)))
        frame[column] = values
    return frame


def check_score_table(scores: ibis.Table, source: str) -> ibis.Table:
    """`check_scores` run by the engine, for scores too many to collect: the same checks and
    messages, from counts of the bad rows, with up to five of them as examples. An engine table
    has no row positions, so the examples are the first by customer_id, probability and value.
    Returns the scores with customer_id as text and the values as float64."""
    _missing_columns(list(scores.columns), source)
    values = {column: _numbers(scores[column]) for column, _, _ in VALUE_RULES}
    failing = {column: ~ok(values[column]).fill_null(False) for column, ok, _ in VALUE_RULES}
    null_id = scores.customer_id.isnull()
    counts = scores.aggregate(
        null_id=ibis.ifelse(null_id, 1, 0).sum(),
        # fewer distinct ids than ids: some repeat (which ones is asked only then)
        repeated=scores.customer_id.count() - scores.customer_id.nunique(),
        **{column: ibis.ifelse(bad, 1, 0).sum() for column, bad in failing.items()},
    ).to_pandas().iloc[0].fillna(0).astype("int64")  # sums of no rows are null

    def examples(rows: ibis.Table) -> str:
        shown = rows.select(*REQUIRED_COLUMNS).order_by(list(REQUIRED_COLUMNS)).limit(5).to_pandas()
        return shown.to_string(index=False)

    if counts["null_id"]:
        raise _without_id(source, int(counts["null_id"]), examples(scores.filter(null_id)))
    scores = scores.mutate(customer_id=scores.customer_id.cast("string"))
    if counts["repeated"]:
        repeated = scores.group_by("customer_id").aggregate(rows=scores.count()).filter(lambda t: t.rows > 1)
        raise _repeated_ids(source, int(repeated.count().execute()),
                            examples(scores.semi_join(repeated, "customer_id")))
    for column, _, what in VALUE_RULES:
        if counts[column]:
            raise _bad_values(source, int(counts[column]), column, what, examples(scores.filter(failing[column])))
    return scores.mutate(**values)


def _numbers(column: ibis.Value) -> ibis.NumericValue:
    # as pd.to_numeric(errors="coerce"): text that is no number becomes null, and fails the rules
    return column.cast("float64") if column.type().is_numeric() else column.try_cast("float64")


def scores_as_of(scores: pd.DataFrame, source: str) -> pd.Timestamp | None:
    """The one as-of date of the scores (None without an as_of column)."""
    if "as_of" not in scores.columns:
        return None
    dates = pd.to_datetime(scores["as_of"]).dropna().unique()
    if len(dates) != 1:
        shown = ", ".join(f"{pd.Timestamp(d):%Y-%m-%d}" for d in sorted(dates)[:5])
        raise ValueError(f"{source}: a campaign needs scores from one as-of date, found {len(dates)}"
                         f"{': ' + shown if len(dates) else ''}")
    return pd.Timestamp(dates[0]).normalize()


def file_digest(path: Path) -> str:
    """sha256 of the file's bytes."""
    return file_hash(path, "sha256")


def default_campaign_id(as_of: pd.Timestamp | None, digest: str) -> str:
    """`<as-of date>-<8 hex digits of the scores' hash>`: the same scores give the same campaign."""
    return f"{pd.Timestamp(as_of):%Y-%m-%d}-{digest[:8]}" if as_of is not None else f"scores-{digest[:8]}"


def check_campaign_id(campaign_id: str) -> str:
    if not CAMPAIGN_ID.match(campaign_id):
        raise ValueError(f"campaign id {campaign_id!r}: use letters, digits, '.', '_' and '-' only "
                         "(at most 100 characters, starting with a letter or digit); it names a folder")
    return campaign_id


# ---- selection ----------------------------------------------------------------------------------

def expected_net_value(probability: np.ndarray, value: np.ndarray, econ: Economics) -> np.ndarray:
    return np.asarray(probability, float) * np.asarray(value, float) * econ.success_rate - econ.cost


def rank_by_net_value(scores: pd.DataFrame, econ: Economics) -> pd.DataFrame:
    """Every customer with `expected_net_value`, best first; ties: higher probability, then smaller id."""
    ranked = scores.assign(expected_net_value=expected_net_value(
        scores["churn_probability"].to_numpy(), scores["customer_value"].to_numpy(), econ))
    ranked = ranked.sort_values(["expected_net_value", "churn_probability", "customer_id"],
                                ascending=[False, False, True], kind="stable")
    return ranked.reset_index(drop=True)


def control_draw(campaign_id: str, customer_ids: Iterable[str]) -> np.ndarray:
    """A uniform number in [0, 1) per customer, fixed by (campaign_id, customer_id) alone.

    sha256 of the two (a NUL between them, which neither contains), its first 53 bits over 2**53:
    53 bits is all a float holds, so the result is exact and never rounds up to 1.0.
    """
    base = hashlib.sha256(campaign_id.encode("utf-8") + b"\x00")

    def draw(customer_id: str) -> float:
        h = base.copy()
        h.update(str(customer_id).encode("utf-8"))
        return (int.from_bytes(h.digest()[:8], "big") >> 11) / 2.0 ** 53

    return np.fromiter((draw(c) for c in customer_ids), dtype=float)


def in_control(campaign_id: str, customer_ids: Iterable[str], share: float) -> np.ndarray:
    """True for customers in the campaign's control group: those whose draw falls below `share`."""
    if not 0 <= share < 1:
        raise ValueError(f"control_share must lie in [0, 1), got {share}")
    return control_draw(campaign_id, customer_ids) < share


def contact_limit(econ: Economics, budget: int | None, max_cost: float | None) -> int | None:
    """How many customers may be contacted (None: no limit, when contacts cost nothing)."""
    if (budget is None) == (max_cost is None):
        raise ValueError("give exactly one of budget (number of contacts) and max_cost (total cost)")
    if budget is not None:
        if budget < 0:
            raise ValueError(f"budget must be >= 0 contacts, got {budget}")
        return int(budget)
    if max_cost < 0:
        raise ValueError(f"max_cost must be >= 0, got {max_cost}")
    if econ.cost == 0:
        return None
    # round before floor: 0.3 / 0.1 is 2.9999999999999996 in floating point and must give 3
    return int(math.floor(round(max_cost / econ.cost, 9)))


def select_targets(
    scores: pd.DataFrame,
    econ: Economics,
    *,
    campaign_id: str,
    control_share: float,
    budget: int | None = None,
    max_cost: float | None = None,
) -> pd.DataFrame:
    """The campaign: treated customers (to contact) and a control group (held out), best first.

    `scores` are checked scores (`check_scores`). Walking down the customers with a positive
    expected net value, best first, each is in the control group or treated by its hash draw
    (`in_control`), independent of rank or score. Treated customers are taken until the limit
    is reached (`budget` contacts or `max_cost` in total): the limit applies to the treated only,
    since the control group is never contacted and costs nothing. The control group is the
    customers met along the way, so both groups come from the same rank range and the same mix
    of risk; without a limit that binds, it is every positive-value customer the draw holds out.

    The treated are then the best campaign among the customers the draw leaves to treat, and
    holding out costs at most the control group's expected net value (in the summary). Returns
    one row per customer in the range: campaign_id, customer_id, group, rank (1 = best, over both
    groups), churn_probability, customer_value, expected_net_value, then risk_tier, as_of and the
    reason columns when the scores have them.
    """
    limit = contact_limit(econ, budget, max_cost)
    ranked = rank_by_net_value(scores, econ)
    ranked = ranked[ranked["expected_net_value"] > 0].reset_index(drop=True)
    control = in_control(campaign_id, ranked["customer_id"], control_share)
    treated_so_far = np.cumsum(~control)
    if limit is not None and treated_so_far[-1:].sum() >= limit:
        # stop at the limit-th treated customer: nobody ranked after them is in either group
        walked = int(np.searchsorted(treated_so_far, limit, side="left")) + 1 if limit > 0 else 0
        ranked, control = ranked.iloc[:walked], control[:walked]
    carried = [c for c in ("risk_tier", "as_of") if c in ranked.columns]
    carried += [c for c in ranked.columns if REASON_COLUMN.match(str(c))]
    targets = pd.DataFrame({
        "campaign_id": pd.Series([campaign_id] * len(ranked), dtype="string"),
        "customer_id": ranked["customer_id"].astype("string"),
        "group": pd.Series(np.where(control, "control", "treated"), dtype="string"),
        "rank": np.arange(1, len(ranked) + 1, dtype="int64"),
        "churn_probability": ranked["churn_probability"].astype("float64"),
        "customer_value": ranked["customer_value"].astype("float64"),
        "expected_net_value": ranked["expected_net_value"].astype("float64"),
    })
    for column in carried:
        targets[column] = ranked[column].to_numpy()
    if "as_of" in targets.columns:
        targets["as_of"] = pd.to_datetime(targets["as_of"]).astype("datetime64[us]")
    return targets


def campaign_totals(targets: pd.DataFrame, econ: Economics) -> dict[str, Any]:
    """Counts per group and what the treated are expected to cost and return."""
    treated = targets["group"] == "treated"
    return {
        "counts": {group: int((targets["group"] == group).sum()) for group in GROUPS},
        "expected_cost": round(float(treated.sum() * econ.cost), 2),
        "expected_net_value": round(float(targets.loc[treated, "expected_net_value"].sum()), 2),
        # what contacting the control group too would have been expected to add: the price of measuring
        "control_expected_net_value": round(float(targets.loc[~treated, "expected_net_value"].sum()), 2),
    }


# ---- profit by budget ---------------------------------------------------------------------------

def profit_by_budget(scores: pd.DataFrame, econ: Economics, points: int = 1001) -> pd.DataFrame:
    """Expected cumulative net value of contacting the k best customers, k = 0..n, over the whole
    base (control draw aside), thinned to at most `points` rows keeping nobody, everybody and the best k."""
    ranked = rank_by_net_value(scores, econ)
    net = ranked["expected_net_value"].to_numpy()
    n = len(net)
    table = pd.DataFrame({
        "contacted": np.arange(n + 1),
        "expected_cost": np.arange(n + 1) * econ.cost,
        "expected_net_value": np.concatenate([[0.0], np.cumsum(net)]),
        # the net value of the last customer added: where it turns negative, contacting more loses money
        "marginal_net_value": np.concatenate([[np.nan], net]),
    })
    if len(table) > points:
        keep = np.linspace(0, n, max(3, points) - 1).round().astype(int)
        keep = np.unique(np.append(keep, int(table["expected_net_value"].to_numpy().argmax())))
        table = table.iloc[keep].reset_index(drop=True)
    return table


def save_profit_plot(curve: pd.DataFrame, contacted: int, expected: float, path: Path) -> Path:
    """The curve from `profit_by_budget`, with the chosen campaign (`contacted` treated) marked."""
    from churnml.modeling.evaluation_plots import new_axes, save_figure  # matplotlib (headless) only when a plot is drawn

    fig, ax = new_axes("Expected campaign net value by number contacted", "Customers contacted (best first)",
                    "Expected net retained value")
    ax.plot(curve["contacted"], curve["expected_net_value"], linewidth=2, label="contact the k best")
    ax.axvline(contacted, color="tab:red", linestyle="--",
               label=f"chosen: {contacted:,} treated, expected {expected:,.0f}")
    if len(curve):
        best = curve.loc[curve["expected_net_value"].idxmax()]
        ax.scatter([best["contacted"]], [best["expected_net_value"]], color="tab:green", zorder=3,
                   label=f"most valuable without a limit: {int(best['contacted']):,} contacted")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.legend(loc="best")
    return save_figure(fig, Path(path))


# ---- writing ------------------------------------------------------------------------------------

def write_campaign(folder: Path, targets: pd.DataFrame, campaign: dict[str, Any], curve: pd.DataFrame) -> Path:
    """targets.parquet/.csv, campaign.json, profit_by_budget.csv/.png, replacing `folder` as a whole.

    The folder is written beside the target and renamed into place, so its files always belong to
    one targeting run (a report from an earlier run of the same campaign id goes with it).
    """
    folder = Path(folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        write_table(targets, tmp / "targets.parquet")
        write_table(targets, tmp / "targets.csv")
        write_json(campaign, tmp / "campaign.json")
        write_table(curve, tmp / "profit_by_budget.csv")
        save_profit_plot(curve, campaign["counts"]["treated"], campaign["expected_net_value"],
                         tmp / "profit_by_budget.png")
    return folder
