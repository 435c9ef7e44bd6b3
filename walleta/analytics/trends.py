"""Trends: AI cost and usage by day, week or month, overall or by model, feature, customer or
plan; and the monthly revenue / cost / margin summary.

Buckets: `day` (YYYY-MM-DD), `week` (ISO weeks starting on Monday, labelled by that Monday's
date) and `month` (YYYY-MM). A bucket cut by the period's edges is kept with `days_in_bucket`
saying how many of its days are inside, so a partial week is not mistaken for a drop.
By customer, only the `top` customers by cost in the period get their own series; the rest are
summed into `(other customers)`, so the buckets still add up to the total.
By plan, a customer's plan is its current plan in the customers table.
Sources: rollup_feature_model_day (overall, model, feature), rollup_customer_day (customer, plan
by day or week), rollup_customer_month (customer, plan by month, and the monthly summary).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from ..errors import InputError
from ..fx import FxTable
from ..schema import UNATTRIBUTED
from ..store import Store
from .display import pct
from .period import Period
from .sources import read, NO_PLAN, UNKNOWN, group_sum, revenue_by_customer_month, revenue_totals, usage_sql
from .tier_history import revenue_and_paying_by_month

__all__ = ["GRAINS", "DIMENSIONS", "trend", "monthly_summary", "OTHER_CUSTOMERS", "bucket_of"]

GRAINS = ("day", "week", "month")
DIMENSIONS = ("model", "feature", "customer", "plan")
OTHER_CUSTOMERS = "(other customers)"
_TREND_MEASURES = ("requests", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_pico", "unpriced_requests", "unpriced_tokens")


def bucket_of(day: str, grain: str) -> str:
    """The bucket label of a YYYY-MM-DD day: itself, its week's Monday, or its month."""
    if grain == "day":
        return day
    if grain == "month":
        return day[:7]
    value = date.fromisoformat(day)
    return (value - timedelta(days=value.weekday())).isoformat()


def _check(grain: str, by: str | None) -> None:
    if grain not in GRAINS:
        raise InputError(f"unknown grain {grain!r}: use one of {', '.join(GRAINS)}")
    if by is not None and by not in DIMENSIONS:
        raise InputError(f"unknown dimension {by!r}: use one of {', '.join(DIMENSIONS)}")


def trend(store: Store, period: Period, *, grain: str = "day", by: str | None = None, top: int | None = 10) -> pd.DataFrame:
    """AI cost and usage per bucket (and per `by` value) over the exact days of `period`.

    Columns: bucket, [by], days_in_bucket, ai_cost_pico, requests, input_tokens,
    cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, unpriced_requests,
    unpriced_tokens. Sorted by bucket, then cost (highest first)."""
    _check(grain, by)
    monthly = grain == "month" and period.is_whole_months and by in ("customer", "plan")
    if by in (None, "model", "feature"):
        daily = _daily_from_feature_model(store, period, by)
    elif monthly:  # whole months by customer or plan: the customer-month rollup (one row per customer-month)
        if by == "customer":
            daily = _monthly_by_customer(store, period, top)
        else:
            daily = _by_plan(store, "rollup_customer_month", "month", period.first_month, period.last_month)
    elif by == "customer":
        daily = _daily_by_customer(store, period, top)
    else:
        daily = _by_plan(store, "rollup_customer_day", "day", period.first_day, period.last_day)
    keys = [by] if by else []
    if daily.empty:
        return pd.DataFrame(columns=["bucket", *keys, "days_in_bucket", "ai_cost_pico", "requests", "total_tokens"])
    days = sorted(set(daily["day"]))
    buckets = {d: d if monthly else bucket_of(d, grain) for d in days}
    daily["bucket"] = daily["day"].map(buckets)
    out = group_sum(daily, ["bucket", *keys], list(_TREND_MEASURES))
    in_period = pd.Series([bucket_of(d.isoformat(), grain) for d in _days(period)]).value_counts()
    out["days_in_bucket"] = out["bucket"].map(in_period).astype(np.int64)
    out["ai_cost_pico"] = pd.Series([int(v) for v in out["cost_pico"]], index=out.index, dtype=object)
    out["total_tokens"] = out["input_tokens"] + out["output_tokens"]
    out["_cost"] = out["ai_cost_pico"].map(int)
    out = out.sort_values(["bucket", "_cost", *keys], ascending=[True, False, *([True] * len(keys))])
    columns = ["bucket", *keys, "days_in_bucket", "ai_cost_pico", "requests", "input_tokens", "cached_input_tokens",
               "output_tokens", "reasoning_tokens", "total_tokens", "unpriced_requests", "unpriced_tokens"]
    return out[columns].reset_index(drop=True)


def _days(period: Period) -> list[date]:
    return [period.start + timedelta(days=i) for i in range(period.day_count)]


def _daily_from_feature_model(store: Store, period: Period, by: str | None) -> pd.DataFrame:
    keys = f"day, {by}" if by else "day"
    return read(store, 
        f"SELECT {keys}, {usage_sql(_TREND_MEASURES)} FROM rollup_feature_model_day WHERE day >= ? AND day <= ? GROUP BY {keys}",
        [period.first_day, period.last_day],
    )


def top_customers(store: Store, period: Period, top: int) -> list[str]:
    """The `top` customers by AI cost over the exact days of `period` (unattributed excluded)."""
    if period.is_whole_months:
        source, column, lo, hi = "rollup_customer_month", "month", period.first_month, period.last_month
    else:
        source, column, lo, hi = "rollup_customer_day", "day", period.first_day, period.last_day
    frame = read(store, 
        f"SELECT customer_id, CAST(SUM(cost_pico) AS BIGINT) AS cost FROM {source} WHERE {column} >= ? AND {column} <= ? "
        "AND customer_id <> ? GROUP BY customer_id ORDER BY cost DESC, customer_id LIMIT ?",
        [lo, hi, UNATTRIBUTED, int(top)],
    )
    return frame["customer_id"].tolist()


def _daily_by_customer(store: Store, period: Period, top: int | None) -> pd.DataFrame:
    if top is None:
        return read(store, 
            f"SELECT day, customer_id AS customer, {usage_sql(_TREND_MEASURES)} FROM rollup_customer_day "
            "WHERE day >= ? AND day <= ? GROUP BY day, customer_id",
            [period.first_day, period.last_day],
        )
    chosen = top_customers(store, period, top)
    parts = []
    if chosen:
        marks = ", ".join("?" for _ in chosen)
        parts.append(read(store, 
            f"SELECT day, customer_id AS customer, {usage_sql(_TREND_MEASURES)} FROM rollup_customer_day "
            f"WHERE customer_id IN ({marks}) AND day >= ? AND day <= ? GROUP BY day, customer_id",
            [*chosen, period.first_day, period.last_day],
        ))
    total = _daily_from_feature_model(store, period, None)
    return _with_other(parts[0] if parts else pd.DataFrame(columns=["day", "customer", *_TREND_MEASURES]), total)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def plan_sql(usage_alias: str = "r", customers_alias: str = "c") -> str:
    """SQL for a usage row's plan (customers LEFT JOINed): the customers table's plan,
    '(no plan)' when empty, '(unknown)' without a customer record, '(unattributed)' for usage
    without a customer id."""
    return (
        f"CASE WHEN {usage_alias}.customer_id = {_literal(UNATTRIBUTED)} THEN '(unattributed)' "
        f"WHEN {customers_alias}.customer_id IS NULL THEN {_literal(UNKNOWN)} "
        f"WHEN COALESCE({customers_alias}.plan, '') = '' THEN {_literal(NO_PLAN)} ELSE {customers_alias}.plan END"
    )


def _by_plan(store: Store, rollup: str, key: str, first: str, last: str) -> pd.DataFrame:
    """Trend measures per `key` value (day or month, returned as `day`) and plan, from a customer
    rollup joined to the customers' plans."""
    sums = usage_sql(_TREND_MEASURES).replace("SUM(", "SUM(r.")
    return read(
        store,
        f"SELECT r.{key} AS day, {plan_sql()} AS plan, {sums} "
        f"FROM {rollup} r LEFT JOIN customers c ON c.customer_id = r.customer_id "
        f"WHERE r.{key} >= ? AND r.{key} <= ? GROUP BY 1, 2",
        [first, last],
    )


def _monthly_by_customer(store: Store, period: Period, top: int | None) -> pd.DataFrame:
    lo, hi = period.first_month, period.last_month
    if top is None:
        return read(store, 
            f"SELECT month AS day, customer_id AS customer, {usage_sql(_TREND_MEASURES)} FROM rollup_customer_month "
            "WHERE month >= ? AND month <= ? GROUP BY month, customer_id",
            [lo, hi],
        )
    chosen = top_customers(store, period, top)
    total = read(store, 
        f"SELECT month AS day, {usage_sql(_TREND_MEASURES)} FROM rollup_customer_month WHERE month >= ? AND month <= ? GROUP BY month",
        [lo, hi],
    )
    mine = read(store, 
        f"SELECT month AS day, customer_id AS customer, {usage_sql(_TREND_MEASURES)} FROM rollup_customer_month "
        f"WHERE customer_id IN ({', '.join('?' for _ in chosen) or 'NULL'}) AND month >= ? AND month <= ? GROUP BY month, customer_id",
        [*chosen, lo, hi],
    )
    return _with_other(mine, total)


def _with_other(chosen: pd.DataFrame, total: pd.DataFrame) -> pd.DataFrame:
    """The chosen customers' rows plus '(other customers)' = total - chosen, per bucket."""
    if total.empty:
        return chosen
    rest = total.set_index("day")
    if not chosen.empty:
        rest = rest - group_sum(chosen, ["day"], list(_TREND_MEASURES)).set_index("day").reindex(rest.index, fill_value=0)
    rest = rest.reset_index().assign(customer=OTHER_CUSTOMERS)
    rest = rest[(rest[list(_TREND_MEASURES)] != 0).any(axis=1)]
    return pd.concat([chosen, rest], ignore_index=True)


SUMMARY_COLUMNS = [
    "month", "revenue_pico", "unconverted_revenue", "ai_cost_pico", "margin_pico", "margin_pct", "cost_pct_of_revenue",
    "customers_with_usage", "paying_customers", "requests", "unpriced_requests", "unpriced_tokens",
]


def monthly_summary(store: Store, period: Period, fx: FxTable | None) -> pd.DataFrame:
    """Revenue, AI cost and margin per month over the whole months of `period`.

    Columns: SUMMARY_COLUMNS. `customers_with_usage` excludes the unattributed pseudo-customer;
    `paying_customers` counts customers with revenue > 0 in the month."""
    period = period.whole_months()
    usage = read(store, 
        "SELECT month, CAST(SUM(cost_pico) AS BIGINT) AS cost_pico, CAST(SUM(requests) AS BIGINT) AS requests, "
        "CAST(SUM(unpriced_requests) AS BIGINT) AS unpriced_requests, CAST(SUM(unpriced_tokens) AS BIGINT) AS unpriced_tokens, "
        "SUM(CASE WHEN customer_id <> ? THEN 1 ELSE 0 END) AS customers_with_usage "
        "FROM rollup_customer_month WHERE month >= ? AND month <= ? GROUP BY month",
        [UNATTRIBUTED, period.first_month, period.last_month],
    )
    frame = pd.DataFrame({"month": period.months_list})
    frame = frame.merge(usage, on="month", how="left")
    in_sql = revenue_and_paying_by_month(store, fx, period.first_month, period.last_month)
    if in_sql is not None:  # one SQL statement: no customer x month rows read into Python
        revenue = in_sql.assign(unconverted_revenue="")
        paying = in_sql.set_index("month")["paying_customers"]
    else:
        revenue = revenue_totals(store, fx, period.first_month, period.last_month, ["month"])
        paying = _paying_customers(revenue_by_customer_month(store, fx, period.first_month, period.last_month))
    frame = frame.merge(revenue[["month", "revenue_pico", "unconverted_revenue"]], on="month", how="left")
    frame = frame.merge(paying.reset_index(), on="month", how="left")
    for column in ("requests", "unpriced_requests", "unpriced_tokens", "customers_with_usage", "paying_customers"):
        frame[column] = frame[column].fillna(0).astype(np.int64)
    frame["unconverted_revenue"] = frame["unconverted_revenue"].fillna("")
    revenue_values = [0 if v is None or (not isinstance(v, int) and pd.isna(v)) else int(v) for v in frame["revenue_pico"]]
    cost_values = [0 if v is None or (not isinstance(v, int) and pd.isna(v)) else int(v) for v in frame["cost_pico"]]
    frame["revenue_pico"] = pd.Series(revenue_values, dtype=object)
    frame["ai_cost_pico"] = pd.Series(cost_values, dtype=object)
    frame["margin_pico"] = pd.Series([r - c for r, c in zip(revenue_values, cost_values)], dtype=object)
    frame["margin_pct"] = [pct(r - c, r) if r > 0 else None for r, c in zip(revenue_values, cost_values)]
    frame["cost_pct_of_revenue"] = [pct(c, r) if r > 0 else None for r, c in zip(revenue_values, cost_values)]
    return frame[SUMMARY_COLUMNS]


def _paying_customers(monthly: pd.DataFrame) -> pd.Series:
    """Customers with converted revenue > 0 per month, from `revenue_by_customer_month` rows."""
    if monthly.empty:
        return pd.Series(dtype=np.int64, name="paying_customers").rename_axis("month")
    converted = monthly.assign(revenue_pico=monthly["revenue_pico"].where(monthly["revenue_pico"].notna(), 0))
    sums = group_sum(converted, ["customer_id", "month"], ["revenue_pico"])
    positive = np.array([int(v) > 0 for v in sums["revenue_pico"].tolist()], dtype=bool)
    return sums[positive].groupby("month").size().rename("paying_customers")
