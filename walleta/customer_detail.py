"""One customer up close: its features, models and largest days over a range of months.

Small read-only queries over the customer rollups (indexed by customer), for the Customers
page's drill-down. Money stays in integer pico-dollars; shares are exact Decimal fractions.
"""

from __future__ import annotations

import calendar
from decimal import Decimal

import pandas as pd

from .store import Store

__all__ = ["customer_features", "customer_models", "customer_largest_days"]

_SUMS = (
    "CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, "
    "CAST(SUM(cached_input_tokens) AS BIGINT) AS cached_input_tokens, CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, "
    "CAST(SUM(reasoning_tokens) AS BIGINT) AS reasoning_tokens, CAST(SUM(cost_pico) AS BIGINT) AS cost_pico, "
    "CAST(SUM(unpriced_requests) AS BIGINT) AS unpriced_requests"
)
_COLUMNS = ["requests", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_pico", "unpriced_requests"]


def _by(store: Store, table: str, key: str, customer_id: str, first_month: str, last_month: str) -> pd.DataFrame:
    frame = store.query(
        f"SELECT {key}, {_SUMS} FROM {table} WHERE customer_id = ? AND month >= ? AND month <= ? GROUP BY {key}",
        [customer_id, first_month, last_month],
    )
    if frame.empty:
        return pd.DataFrame(columns=[key, *_COLUMNS, "cost_share"])
    frame["cost_pico"] = pd.Series([int(v) for v in frame["cost_pico"]], index=frame.index, dtype=object)
    total = sum(frame["cost_pico"])
    frame["cost_share"] = [None if total == 0 else Decimal(int(c)) / Decimal(total) for c in frame["cost_pico"]]
    frame["_cost"] = [int(v) for v in frame["cost_pico"]]
    return frame.sort_values(["_cost", key], ascending=[False, True]).drop(columns="_cost").reset_index(drop=True)


def customer_features(store: Store, customer_id: str, first_month: str, last_month: str) -> pd.DataFrame:
    """Per feature for one customer, months first..last (YYYY-MM, inclusive), costliest first.

    Columns: feature, requests, input_tokens, cached_input_tokens, output_tokens,
    reasoning_tokens, cost_pico (int), unpriced_requests, cost_share (Decimal fraction of the
    customer's priced cost; None when it has none).
    """
    return _by(store, "rollup_customer_month_feature", "feature", customer_id, first_month, last_month)


def customer_models(store: Store, customer_id: str, first_month: str, last_month: str) -> pd.DataFrame:
    """Per model for one customer, months first..last; same columns as `customer_features`
    with `model` as the key."""
    return _by(store, "rollup_customer_month_model", "model", customer_id, first_month, last_month)


def customer_largest_days(store: Store, customer_id: str, first_month: str, last_month: str, limit: int = 10) -> pd.DataFrame:
    """The customer's costliest days in months first..last: day, requests, tokens, cost_pico,
    unpriced_requests; largest cost first (ties: earlier day first)."""
    year, month = int(last_month[:4]), int(last_month[5:7])
    last_day = f"{last_month}-{calendar.monthrange(year, month)[1]:02d}"
    frame = store.query(
        "SELECT day, requests, input_tokens + output_tokens AS tokens, cost_pico, unpriced_requests "
        "FROM rollup_customer_day WHERE customer_id = ? AND day >= ? AND day <= ? "
        "ORDER BY cost_pico DESC, day ASC LIMIT ?",
        [customer_id, f"{first_month}-01", last_day, int(limit)],
    )
    frame["cost_pico"] = pd.Series([int(v) for v in frame["cost_pico"]], index=frame.index, dtype=object)
    return frame
