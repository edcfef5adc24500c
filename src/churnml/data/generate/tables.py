"""The chunk's rows as Arrow tables in the raw contract's schemas, and the Parquet writer options."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churnml.data.generate.events import Events
from churnml.data.generate.feedback import Feedback
from churnml.data.generate.orders import Orders
from churnml.data.generate.parameters import GenerationParams
from churnml.data.generate.population import Population
from churnml.data.generate.subscriptions import Spells
from churnml.data.generate.timeline import DAY_US, NEVER
from churnml.data.generate.vocab import (
    BILLING,
    CAUSES,
    CHANNELS,
    COUNTRIES,
    EVENT_TYPES,
    FEEDBACK_KINDS,
    FEEDBACK_TEXT,
    PLANS,
)
from churnml.data.generate.weekly import History

TS = pa.timestamp("us")
SCHEMAS: dict[str, pa.Schema] = {
    "customers": pa.schema(
        [
            ("customer_id", pa.string()),
            ("signup_date", TS),
            ("plan", pa.string()),
            ("billing", pa.string()),
            ("country", pa.string()),
            ("channel", pa.string()),
            ("monthly_price", pa.float64()),
        ]
    ),
    "events": pa.schema(
        [
            ("customer_id", pa.string()),
            ("timestamp", TS),
            ("event_type", pa.string()),
            ("value", pa.float64()),
        ]
    ),
    "orders": pa.schema(
        [
            ("customer_id", pa.string()),
            ("timestamp", TS),
            ("amount", pa.float64()),
            ("order_id", pa.string()),
            ("quantity", pa.int64()),
        ]
    ),
    "feedback": pa.schema(
        [
            ("customer_id", pa.string()),
            ("timestamp", TS),
            ("score", pa.float64()),
            ("kind", pa.string()),
            ("text", pa.string()),
        ]
    ),
    "subscriptions": pa.schema(
        [
            ("customer_id", pa.string()),
            ("start_date", TS),
            ("end_date", TS),
            ("plan", pa.string()),
            ("mrr", pa.float64()),
        ]
    ),
    "churn_truth": pa.schema(
        [
            ("customer_id", pa.string()),
            ("churned", pa.bool_()),
            ("churn_date", TS),
            ("churn_cause", pa.string()),
            ("billing", pa.string()),
            ("return_date", TS),
        ]
    ),
}
WRITER_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_size": 1 << 20,
}


def customer_ids(first: int, n: int, id_width: int) -> pa.Array:
    """C followed by the customer's number (from first + 1), zero-padded to `id_width` digits."""
    return _ids("C", first + np.arange(n, dtype=np.int64) + 1, id_width)


def customers_table(cid: pa.Array, base_us: int, pop: Population, p: GenerationParams) -> pa.Table:
    """Plan and monthly price at signup, billing, country, channel."""
    return pa.table(
        {
            "customer_id": cid,
            "signup_date": _timestamps(base_us + pop.signup_day * DAY_US),
            "plan": _strings(PLANS, pop.plan0),
            "billing": _strings(BILLING, pop.bill),
            "country": _strings(COUNTRIES, pop.country),
            "channel": _strings(CHANNELS, pop.channel),
            "monthly_price": np.round(np.array(p.list_price)[pop.plan0] * pop.ratio, 2),
        },
        schema=SCHEMAS["customers"],
    )


def events_table(cid: pa.Array, base_us: int, events: Events) -> pa.Table:
    return pa.table(
        {
            "customer_id": cid.take(pa.array(events.cust)),
            "timestamp": _timestamps(events.us + base_us),
            "event_type": _strings(EVENT_TYPES, events.kind),
            "value": pa.array(events.minutes, pa.float64(), mask=events.no_value),
        },
        schema=SCHEMAS["events"],
    )


def orders_table(cid: pa.Array, base_us: int, orders: Orders, order_offset: int) -> pa.Table:
    """Order ids continue from `order_offset`, the orders written by earlier chunks."""
    return pa.table(
        {
            "customer_id": cid.take(pa.array(orders.cust)),
            "timestamp": _timestamps(orders.us + base_us),
            "amount": orders.amount.astype(np.float64),
            "order_id": _ids("O", order_offset + np.arange(orders.amount.size, dtype=np.int64) + 1, 10),
            "quantity": orders.qty.astype(np.int64),
        },
        schema=SCHEMAS["orders"],
    )


def feedback_table(cid: pa.Array, base_us: int, feedback: Feedback) -> pa.Table:
    return pa.table(
        {
            "customer_id": cid.take(pa.array(feedback.cust)),
            "timestamp": _timestamps(feedback.us + base_us),
            "score": pa.array(feedback.score, pa.float64(), from_pandas=True),
            "kind": _strings(FEEDBACK_KINDS, feedback.kind),
            "text": _strings(FEEDBACK_TEXT, feedback.text),
        },
        schema=SCHEMAS["feedback"],
    )


def subscriptions_table(cid: pa.Array, base_us: int, spells: Spells) -> pa.Table:
    return pa.table(
        {
            "customer_id": cid.take(pa.array(spells.cust)),
            "start_date": _timestamps(base_us + spells.start * DAY_US),
            "end_date": _timestamps(base_us + spells.end * DAY_US, mask=~spells.has_end),
            "plan": _strings(PLANS, spells.plan),
            "mrr": spells.mrr.astype(np.float64),
        },
        schema=SCHEMAS["subscriptions"],
    )


def churn_truth_table(cid: pa.Array, base_us: int, pop: Population, hist: History) -> pa.Table:
    """Who churned, when and why, and when they came back."""
    return truth_rows(cid, base_us, hist.churn_day, hist.cause, pop.bill, hist.return_day)


def truth_rows(
    cid: pa.Array, base_us: int, churn_day: np.ndarray, cause: np.ndarray, bill: np.ndarray, return_day: np.ndarray
) -> pa.Table:
    """The churn_truth table from days since the window opened (NEVER: did not happen), cause
    (index into CAUSES, -1 none) and billing (index into BILLING), one entry per customer."""
    churned, returned = churn_day < NEVER, return_day < NEVER
    return pa.table(
        {
            "customer_id": cid,
            "churned": churned,
            "churn_date": _timestamps(base_us + np.where(churned, churn_day, 0) * DAY_US, mask=~churned),
            "churn_cause": _strings(CAUSES, cause),
            "billing": _strings(BILLING, bill),
            "return_date": _timestamps(base_us + np.where(returned, return_day, 0) * DAY_US, mask=~returned),
        },
        schema=SCHEMAS["churn_truth"],
    )


def _strings(vocab: tuple[str, ...], idx: np.ndarray) -> pa.Array:
    """vocab[idx] as an Arrow string array; a negative index gives null."""
    idx = np.asarray(idx)
    indices = pa.array(idx.astype(np.int32), mask=idx < 0)
    return pa.array(vocab, pa.string()).take(indices)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pa.array(numbers.astype(np.int64)).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _timestamps(us: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(us.astype(np.int64), type=TS, mask=mask)
