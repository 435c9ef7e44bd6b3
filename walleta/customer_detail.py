"""One customer up close: its features, models and largest days over a range of months.

Small read-only queries over the customer rollups, for the Customers page's drill-down. The
rollups are keyed by time first, so each query names the months or days it wants: one
primary-key seek per (month or day, customer) instead of a scan of every customer's rows.
Money stays in integer pico-dollars; shares are exact Decimal fractions.
"""

from __future__ import annotations

import calendar
from decimal import Decimal

import pandas as pd

from .periods import month_range
from .store import Store

__all__ = ["customer_features", "customer_models", "customer_largest_days"]

_SUMS = (
    "CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, "
    "CAST(SUM(cached_input_tokens) AS BIGINT) AS cached_input_tokens, CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, "
    "CAST(SUM(reasoning_tokens) AS BIGINT) AS reasoning_tokens, CAST(SUM(cost_pico) AS BIGINT) AS cost_pico, "
    "CAST(SUM(unpriced_requests) AS BIGINT) AS unpriced_requests"
)
_COLUMNS = ["requests", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_pico", "unpriced_requests"]


# Above this many months or days, one range read instead of a seek each (and bound values stay
# under SQLite's historical limit of 999 per statement).
_MAX_SEEKS = 900


def _one_of(column: str, values: list[str]) -> tuple[str, list[str]]:
    """SQL condition (and its parameters) for `column` being one of the sorted `values`."""
    if len(values) > _MAX_SEEKS:
        return f"{column} >= ? AND {column} <= ?", [values[0], values[-1]]
    return f"{column} IN ({', '.join('?' for _ in values)})", values


def _by(store: Store, table: str, key: str, customer_id: str, first_month: str, last_month: str) -> pd.DataFrame:
    where, params = _one_of("month", month_range(first_month, last_month))
    frame = store.query(
        f"SELECT {key}, {_SUMS} FROM {table} WHERE {where} AND customer_id = ? GROUP BY {key}",
        [*params, customer_id],
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
    days = [
        f"{month}-{day:02d}"
        for month in month_range(first_month, last_month)
        for day in range(1, calendar.monthrange(int(month[:4]), int(month[5:7]))[1] + 1)
    ]
    where, params = _one_of("day", days)
    frame = store.query(
        "SELECT day, requests, input_tokens + output_tokens AS tokens, cost_pico, unpriced_requests "
        f"FROM rollup_customer_day WHERE {where} AND customer_id = ? ORDER BY cost_pico DESC, day ASC LIMIT ?",
        [*params, customer_id, int(limit)],
    )
    frame["cost_pico"] = pd.Series([int(v) for v in frame["cost_pico"]], index=frame.index, dtype=object)
    return frame
