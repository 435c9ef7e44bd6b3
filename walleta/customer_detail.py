"""One customer up close: its months, features, models and largest days over a range of months.

Small read-only queries over the customer rollups, for the Customers page's drill-down. The
rollups are keyed by time first, so each query names the months or days it wants: one
primary-key seek per (month or day, customer) instead of a scan of every customer's rows.
Money stays in integer pico-dollars; shares are exact Decimal fractions.
"""

from __future__ import annotations

import calendar
from decimal import Decimal

import pandas as pd

from .analytics.sources import to_usd_pico
from .analytics.tier_history import first_data_month
from .fx import FxTable
from .periods import month_range
from .revenue import monthly_revenue
from .revenue_rollup import facts
from .store import Store

__all__ = ["customer_months", "customer_features", "customer_models", "customer_largest_days"]

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


def customer_months(store: Store, fx: FxTable | None, customer_id: str, first_month: str | None, last_month: str) -> pd.DataFrame:
    """Revenue, AI cost and margin of one customer per month in [first (None: the first month
    with usage or revenue), last], months with usage or revenue only: the customer's rows of
    `analytics.margins.monthly_customer_margins`, read for that customer alone.

    Columns: month, revenue_pico (USD pico-dollars, Python int, converted currencies only),
    ai_cost_pico, margin_pico, requests, unpriced_requests; sorted by month."""
    columns = ["month", "revenue_pico", "ai_cost_pico", "margin_pico", "requests", "unpriced_requests"]
    known = facts(store)  # None while the revenue rollup is stale
    first = first_month or first_data_month(store, known)
    if first is None or first > last_month:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    where, params = _one_of("month", month_range(first, last_month))
    _, usage = store.fetch(
        f"SELECT month, CAST(cost_pico AS BIGINT), requests, unpriced_requests FROM rollup_customer_month WHERE {where} AND customer_id = ?",
        [*params, customer_id],
    )
    revenue = _revenue_by_month(store, fx, customer_id, first, last_month, fresh=known is not None)
    rows: dict[str, list[int]] = {month: [0, int(cost or 0), int(requests), int(unpriced)] for month, cost, requests, unpriced in usage}
    for month, amount in revenue.items():
        rows.setdefault(month, [0, 0, 0, 0])[0] = amount
    months = sorted(rows)
    return pd.DataFrame({
        "month": pd.Series(months, dtype=object),
        "revenue_pico": pd.Series([rows[m][0] for m in months], dtype=object),
        "ai_cost_pico": pd.Series([rows[m][1] for m in months], dtype=object),
        "margin_pico": pd.Series([rows[m][0] - rows[m][1] for m in months], dtype=object),
        "requests": pd.Series([rows[m][2] for m in months], dtype="int64"),
        "unpriced_requests": pd.Series([rows[m][3] for m in months], dtype="int64"),
    })


def _revenue_by_month(store: Store, fx: FxTable | None, customer_id: str, first: str, last: str, *, fresh: bool) -> dict[str, int]:
    """Recognised revenue of one customer per month in [first, last] (USD pico-dollars; months
    with counted entries only), converted per (month, currency) as every page converts it; from
    the revenue rollup when it is `fresh`, else from the customer's entries."""
    if fresh:
        where, params = _one_of("month", month_range(first, last))
        amounts = store.query(
            f"SELECT month, currency, amount_minor FROM rollup_revenue_month WHERE {where} AND customer_id = ?", [*params, customer_id]
        )
    else:
        entries = store.query(
            "SELECT customer_id, period_start, period_end, amount_minor, currency, kind FROM revenue_entries WHERE customer_id = ?",
            [customer_id],
        )
        amounts = monthly_revenue(entries) if not entries.empty else pd.DataFrame(columns=["month", "currency", "amount_minor"])
        amounts = amounts[(amounts["month"] >= first) & (amounts["month"] <= last)]
        amounts = amounts.groupby(["month", "currency"], as_index=False, sort=True)["amount_minor"].sum()
    if amounts.empty:
        return {}
    converted = to_usd_pico(amounts["amount_minor"], amounts["currency"], fx)
    out: dict[str, int] = {}
    for month, value in zip(amounts["month"], converted):
        out[month] = out.get(month, 0) + (int(value) if value is not None else 0)
    return out


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
