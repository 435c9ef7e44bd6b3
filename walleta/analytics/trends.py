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

Speed (issue 6): SQLite sorts every row of a GROUP BY that is not a prefix of the rollup's key
(~2 us a row), so the customer and plan views avoid it. The top customers of a period that is
not whole months are found exactly from month-rollup bounds and day seeks (`_top_by_bounds`,
see `customer_seeks`); plan by month reads each plan's customers by key seeks, one statement per
plan (`_monthly_by_plan`). The frame is assembled from the result rows with numpy exact sums
(`_assemble`).
With nothing remembered (issue 6, first view), a view that remembers its closed months reads the
whole period at once and keeps the closed part (`_closed_then_open`), and independent statements
run side by side on two connections (`parallel_reads`: the seek statements of the plans, the
day ranges of a read grouped by day). Measured and rejected at 10M events: reading the rollup
rows plainly (`columns.scan`) and grouping in numpy. SQLite turns every integer into text for
it (~0.2 us a value, ~4x a SUM), so 8 measures of the year's 120k customer-months cost ~210 ms
against ~130 ms of seeks, and the 28k feature x model rows of 90 days about what the sort costs.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Callable, Hashable

import numpy as np
import pandas as pd

from ..errors import InputError
from ..exact_merge import merge_filled
from ..fx import FxTable
from ..schema import UNATTRIBUTED
from ..store import Store
from ..wide_sums import is_overflow
from . import closed_months, parallel_reads
from .columns import object_column
from .display import pct
from .exact import exact_ints_filled, exact_sums
from .period import Period, month_range, previous_month
from .customer_seeks import MAX_PARAMS, customer_day_rows, days_of, month_costs
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
        rows = _daily_from_feature_model(store, period, by)
    elif monthly:  # whole months by customer or plan: the customer-month rollup (one row per customer-month)
        if by == "customer":
            rows = _monthly_by_customer(store, period, top)
        else:
            rows = _monthly_by_plan(store, period.first_month, period.last_month)
    elif by == "customer":
        rows = _daily_by_customer(store, period, top)
    else:
        rows = _by_day_ranges(store, _by_plan_statement("rollup_customer_day", "day"), period.first_day, period.last_day)
    return _assemble(rows, [by] if by else [], grain, monthly, period)


_COLUMNS_AFTER_KEYS = ["days_in_bucket", "ai_cost_pico", "requests", "input_tokens", "cached_input_tokens", "output_tokens",
                       "reasoning_tokens", "total_tokens", "unpriced_requests", "unpriced_tokens"]


def _assemble(rows: list[tuple], keys: list[str], grain: str, monthly: bool, period: Period) -> pd.DataFrame:
    """The trend frame from rows (day or month, *key values, *_TREND_MEASURES): rows summed per
    (bucket, *keys) exactly (None counts 0; int64 while no sum can pass 2^62, else Python ints:
    `exact_sums`), sorted by bucket, cost (highest first) and keys. Columns are taken apart once
    (`zip`) and grouped with numpy: no Python work per row and measure."""
    if not rows:
        return pd.DataFrame(columns=["bucket", *keys, "days_in_bucket", "ai_cost_pico", "requests", "total_tokens"])
    width = len(keys)
    columns = list(zip(*rows))
    days, day_codes = _codes(columns[0])
    buckets, bucket_of_day = _codes(days if monthly else [bucket_of(d, grain) for d in days])
    group = bucket_of_day[day_codes]
    names: list[np.ndarray] = []
    for column in columns[1:1 + width]:
        values, codes = _codes(column)
        group = group * len(values) + codes
        names.append(values)
    groups, inverse = np.unique(group, return_inverse=True)
    sums = [exact_sums(inverse.reshape(-1), len(groups), exact_ints_filled(c)) for c in columns[1 + width:]]
    key_codes: list[np.ndarray] = []
    rest = groups
    for values in reversed(names):
        key_codes.insert(0, rest % len(values))
        rest = rest // len(values)
    cost = sums[_TREND_MEASURES.index("cost_pico")]
    descending = -cost if cost.dtype == np.int64 else -np.unique(cost, return_inverse=True)[1].reshape(-1)
    order = np.lexsort([*reversed(key_codes), descending, rest])
    in_period: dict[str, int] = {}
    for d in _days(period):
        label = bucket_of(d.isoformat(), grain)
        in_period[label] = in_period.get(label, 0) + 1
    data: dict[str, object] = {"bucket": object_column(buckets[rest[order]])}
    for name, values, codes in zip(keys, names, key_codes):
        data[name] = object_column(values[codes[order]])
    data["days_in_bucket"] = np.array([in_period[b] for b in buckets], dtype=np.int64)[rest[order]]
    data["ai_cost_pico"] = pd.Series(cost[order].tolist(), dtype=object)
    measures = {m: sums[i][order] for i, m in enumerate(_TREND_MEASURES) if m != "cost_pico"}
    tokens = measures["input_tokens"], measures["output_tokens"]
    if tokens[0].dtype == np.int64 and tokens[1].dtype == np.int64:  # each below 2^62: the sum fits
        measures["total_tokens"] = tokens[0] + tokens[1]
    else:
        measures["total_tokens"] = np.array([a + b for a, b in zip(tokens[0].tolist(), tokens[1].tolist())], dtype=object)
    for name in _COLUMNS_AFTER_KEYS[2:]:
        values = measures[name]
        data[name] = values if values.dtype == np.int64 else _ints(values.tolist())
    return pd.DataFrame(data)


def _codes(values: tuple | list) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values, sorted (object array), and each value's position among them."""
    uniques, inverse = np.unique(np.array(values, dtype=object), return_inverse=True)
    return uniques, inverse.reshape(-1)


def _ints(values: list[int]) -> np.ndarray:
    """int64 when every value fits, else Python ints (object)."""
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:
        return np.array(values, dtype=object)


def _days(period: Period) -> list[date]:
    return [period.start + timedelta(days=i) for i in range(period.day_count)]


def _fetch(store: Store, statement: str, params: list) -> list[tuple]:
    return store.fetch(statement, params)[1]


def _daily_from_feature_model(store: Store, period: Period, by: str | None) -> list[tuple]:
    """Rows (day, [by], *_TREND_MEASURES) from the feature x model day rollup. The days before
    the last day's month are remembered while those months do not change (`closed_months`)."""
    keys = f"day, {by}" if by else "day"
    statement = f"SELECT {keys}, {usage_sql(_TREND_MEASURES)} FROM rollup_feature_model_day WHERE day >= ? AND day <= ? GROUP BY {keys}"
    month_start = period.last_day[:7] + "-01"
    if period.first_day >= month_start:
        return _by_day_ranges(store, statement, period.first_day, period.last_day)
    closed_last = (date.fromisoformat(month_start) - timedelta(days=1)).isoformat()
    return _closed_then_open(store, "trends.daily_feature_model", (by, period.first_day, closed_last), month_start,
                             lambda: _by_day_ranges(store, statement, period.first_day, period.last_day),
                             lambda: _by_day_ranges(store, statement, month_start, period.last_day))


_SPLIT_DAYS = 14  # reads grouped by day over at least this many days are cut into day ranges read side by side


def _by_day_ranges(store: Store, statement: str, first: str, last: str) -> list[tuple]:
    """The rows of `statement` (grouped by day, or by day and more; its two parameters the first
    and last day) for [first, last]: from `parallel_reads.WORKERS` consecutive day ranges read
    side by side when the period has `_SPLIT_DAYS` days or more. A day's groups all come from
    one range, so the rows are the same as from one read."""
    days = (date.fromisoformat(last) - date.fromisoformat(first)).days + 1
    ranges = parallel_reads.day_ranges(first, last, parallel_reads.WORKERS if days >= _SPLIT_DAYS else 1)
    parts = parallel_reads.fetch_all(store, [(statement, [lo, hi]) for lo, hi in ranges])
    return [row for part in parts for row in part]


def _closed_then_open(store: Store, name: str, args: tuple, open_from: str, read_all: Callable[[], list[tuple]],
                      read_open: Callable[[], list[tuple]], extra: Callable[[Store], Hashable] | None = None) -> list[tuple]:
    """Rows (day or month, ...) of a period whose rows before `open_from` (a day 'YYYY-MM-01' or a
    month 'YYYY-MM') are remembered (`closed_months`, name and args) while those months do not
    change. Remembered: the closed rows, then `read_open()` reads the rest. Not remembered:
    `read_all()` reads the whole period in one go (one statement instead of two), split at
    `open_from`. Both reads must group per day or month, so that the split rows are the same."""
    opened: list[list[tuple]] = []

    def compute() -> list[tuple]:
        rows = read_all()
        opened.append([r for r in rows if r[0] >= open_from])
        return [r for r in rows if r[0] < open_from]

    closed = closed_months.remember(store, name, args, open_from[:7], compute, extra=extra)
    return closed + (opened[0] if opened else read_open())


def top_customers(store: Store, period: Period, top: int) -> list[str]:
    """The `top` customers by AI cost over the exact days of `period` (unattributed excluded;
    ties by customer id). Whole months read the customer-month rollup; other periods use exact
    top-k by bounds (`_top_by_bounds`) when it applies."""
    if not period.is_whole_months and int(top) > 0:
        found = _top_by_threshold(store, period, int(top))
        if found is None:
            found = _top_by_bounds(store, period, int(top))
        if found is not None:
            return found
    if period.is_whole_months:
        source, column, lo, hi = "rollup_customer_month", "month", period.first_month, period.last_month
    else:
        source, column, lo, hi = "rollup_customer_day", "day", period.first_day, period.last_day
    grouped = (f"SELECT customer_id, CAST(SUM(cost_pico) AS BIGINT) AS cost FROM {source} WHERE {column} >= ? AND {column} <= ? "
               "AND customer_id <> ? GROUP BY customer_id")
    try:
        frame = read(store, f"{grouped} ORDER BY cost DESC, customer_id LIMIT ?", [lo, hi, UNATTRIBUTED, int(top)])
    except Exception as exc:  # a customer's cost past int64: exact sums (wide form), ordered in Python
        if not is_overflow(exc):
            raise
        _, rows = store.fetch(grouped, [lo, hi, UNATTRIBUTED])
        return [customer for customer, _ in sorted(rows, key=lambda r: (-int(r[1] or 0), r[0]))][:max(int(top), 0)]
    return frame["customer_id"].tolist()


_MAX_EXACT = 3000  # customers read exactly before giving up on bounds (then one grouped scan)


def _exact_costs(store: Store, customers: list[str], days: list[str]) -> dict[str, int]:
    """Cost over `days` of each of `customers` that has a day row there (day seeks)."""
    rows = customer_day_rows(store, "customer_id, CAST(SUM(cost_pico) AS BIGINT)", customers, days, "GROUP BY customer_id")
    return {customer: 0 if cost is None else int(cost) for customer, cost in rows}


def _top_by_threshold(store: Store, period: Period, top: int) -> list[str] | None:
    """Exact top-k from a few customers, when it applies (else None).

    1. The 4k costliest customers of the period's last month are read exactly (day seeks); the
       k-th best of them, c_k, is at most the k-th best of all customers.
    2. A customer whose every month row (months the period touches, n of them) is below
       ceil(c_k / n) costs less than c_k over the period (costs are never negative), so it can
       neither enter the top k nor tie with it: only customers with a month row >= ceil(c_k / n)
       are read exactly as well. None when c_k is 0 (no cut) or too many customers pass."""
    days = days_of(period.start, period.end)
    if len(days) > MAX_PARAMS // 2:
        return None
    months = month_range(period.first_month, period.last_month)
    seed = [r[0] for r in _fetch(store,
        "SELECT customer_id FROM rollup_customer_month WHERE month = ? AND customer_id <> ? ORDER BY cost_pico DESC, customer_id LIMIT ?",
        [months[-1], UNATTRIBUTED, 4 * top])]
    exact = _exact_costs(store, seed, days)
    if len(exact) < top:
        return None
    kth = sorted(exact.values(), reverse=True)[top - 1]
    if kth <= 0:
        return None
    rows = _fetch(store,
        "SELECT customer_id FROM rollup_customer_month WHERE month >= ? AND month <= ? AND customer_id <> ? AND cost_pico >= ?",
        [months[0], months[-1], UNATTRIBUTED, -(-kth // len(months))])
    more = sorted({r[0] for r in rows} - exact.keys())
    if len(more) > _MAX_EXACT:
        return None
    exact.update(_exact_costs(store, more, days))
    return sorted(exact, key=lambda c: (-exact[c], c))[:top]


def _top_by_bounds(store: Store, period: Period, top: int) -> list[str] | None:
    """Exact top-k without sorting every customer-day of the period.

    Each customer's cost in the months the period touches (`rollup_customer_month`, costs are
    never negative) bounds its cost in the period from above. Customers are read exactly, by
    day seeks, in decreasing order of that bound, until the k-th exact cost is above every bound
    left (a bound equal to it could still tie and win on the id, so it is read too). Customers
    without a day row in the period never appear (as in the grouped query). None when too many
    customers would have to be read (e.g. most costs are 0), or the period has too many days."""
    days = days_of(period.start, period.end)
    if len(days) > MAX_PARAMS // 2:
        return None
    bounds = month_costs(store, period.first_month, period.last_month, UNATTRIBUTED)
    order = sorted(bounds, key=lambda c: (-bounds[c], c))
    exact: dict[str, int] = {}
    done, step = 0, max(4 * top, 40)
    while True:
        batch = order[done:done + step]
        done += len(batch)
        for customer, cost in customer_day_rows(store, "customer_id, CAST(SUM(cost_pico) AS BIGINT)", batch, days, "GROUP BY customer_id"):
            exact[customer] = 0 if cost is None else int(cost)
        ranked = sorted(exact, key=lambda c: (-exact[c], c))[:top]
        if done >= len(order) or (len(ranked) == top and exact[ranked[-1]] > bounds[order[done]]):
            return ranked
        if done >= _MAX_EXACT:
            return None
        step *= 2


_CUSTOMER_DAY_SELECT = f"day, customer_id, {', '.join(_TREND_MEASURES)}"


def _daily_by_customer(store: Store, period: Period, top: int | None) -> list[tuple]:
    """Rows (day, customer, *_TREND_MEASURES): every customer, or the `top` ones and the rest
    as '(other customers)' (total from the feature x model rollup minus theirs)."""
    if top is None:
        return _by_day_ranges(store,
            f"SELECT day, customer_id AS customer, {usage_sql(_TREND_MEASURES)} FROM rollup_customer_day "
            "WHERE day >= ? AND day <= ? GROUP BY day, customer_id",
            period.first_day, period.last_day,
        )
    chosen = top_customers(store, period, top)
    days = days_of(period.start, period.end)
    if chosen and len(days) <= MAX_PARAMS // 2:  # one seek per day and customer (the key is unique)
        mine = customer_day_rows(store, _CUSTOMER_DAY_SELECT, chosen, days)
    elif chosen:
        marks = ", ".join("?" for _ in chosen)
        mine = _fetch(store,
            f"SELECT day, customer_id AS customer, {usage_sql(_TREND_MEASURES)} FROM rollup_customer_day "
            f"WHERE customer_id IN ({marks}) AND day >= ? AND day <= ? GROUP BY day, customer_id",
            [*chosen, period.first_day, period.last_day],
        )
    else:
        mine = []
    return _with_other(mine, _daily_from_feature_model(store, period, None))


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


def _by_plan_statement(rollup: str, key: str) -> str:
    """SELECT of rows (day or month, plan, *_TREND_MEASURES) from a customer rollup joined to the
    customers' plans, for `key` >= ? and <= ?."""
    sums = usage_sql(_TREND_MEASURES).replace("SUM(", "SUM(r.")
    return (f"SELECT r.{key} AS day, {plan_sql()} AS plan, {sums} "
            f"FROM {rollup} r LEFT JOIN customers c ON c.customer_id = r.customer_id "
            f"WHERE r.{key} >= ? AND r.{key} <= ? GROUP BY 1, 2")


def _by_plan(store: Store, rollup: str, key: str, first: str, last: str) -> list[tuple]:
    """Rows (day or month, plan, *_TREND_MEASURES) from a customer rollup joined to the
    customers' plans, in one statement (the reference the faster paths are tested against)."""
    return _fetch(store, _by_plan_statement(rollup, key), [first, last])


def _monthly_by_plan(store: Store, first: str, last: str) -> list[tuple]:
    """`_months_by_plan` with the months before `last` remembered while those months and every
    customer's plan do not change (`closed_months`)."""
    if first >= last:
        return _months_by_plan(store, first, last)
    return _closed_then_open(store, "trends.monthly_by_plan", (first, previous_month(last)), last,
                             lambda: _months_by_plan(store, first, last), lambda: _months_by_plan(store, last, last),
                             extra=closed_months.customers_digest)


def _months_by_plan(store: Store, first: str, last: str) -> list[tuple]:
    """Rows (month, plan, *_TREND_MEASURES) for months [first, last], equal to `_by_plan` on
    the customer-month rollup without its sort of every customer-month.

    One statement per plan value reads that plan's customers by primary-key seeks
    (`month IN (...) AND customer_id IN (customers of the plan)`, grouped by month in key order);
    one more reads the unattributed pseudo-customer. A COUNT per month over the range tells
    whether some usage belongs to customers missing from the customers table; only then are
    the totals of those months read, and '(unknown)' is the total minus everything else. The
    plan, count and unattributed statements are read side by side (`parallel_reads`)."""
    months = month_range(first, last)
    if len(months) > MAX_PARAMS // 2:
        return _by_plan(store, "rollup_customer_month", "month", first, last)
    marks = ", ".join("?" for _ in months)
    measures = usage_sql(_TREND_MEASURES)
    plans = _fetch(store, "SELECT COALESCE(plan, ''), COUNT(*) FROM customers WHERE customer_id <> ? GROUP BY 1", [UNATTRIBUTED])
    plans.sort(key=lambda row: (-row[1], row[0]))  # the plans with most customers first: read side by side, they end together
    jobs = [(f"SELECT month, COUNT(*), {measures} FROM rollup_customer_month WHERE month IN ({marks}) AND customer_id IN "
             "(SELECT customer_id FROM customers WHERE COALESCE(plan, '') = ? AND customer_id <> ?) GROUP BY month",
             [*months, plan, UNATTRIBUTED]) for plan, _ in plans]
    jobs.append(("SELECT month, COUNT(*) FROM rollup_customer_month WHERE month >= ? AND month <= ? GROUP BY month", [first, last]))
    jobs.append((f"SELECT month, COUNT(*), {measures} FROM rollup_customer_month WHERE month IN ({marks}) AND customer_id = ? GROUP BY month",
                 [*months, UNATTRIBUTED]))
    *by_plan, counted, unattributed = parallel_reads.fetch_all(store, jobs)
    counts = dict(counted)
    if not counts:
        return []
    sums: dict[tuple[str, str], list[int]] = {}

    def add(label: str, rows: list[tuple]) -> None:
        for month, count, *values in rows:
            found = sums.setdefault((month, label), [0] * (1 + len(values)))
            for i, v in enumerate((count, *values)):
                found[i] += 0 if v is None else int(v)

    for (plan, _), rows in sorted(zip(plans, by_plan), key=lambda pair: pair[0][0]):
        add(plan or NO_PLAN, rows)
    add("(unattributed)", unattributed)
    seen: dict[str, int] = {}
    for (month, _), values in sums.items():
        seen[month] = seen.get(month, 0) + values[0]
    missing = sorted(m for m, n in counts.items() if n != seen.get(m, 0))
    if missing:  # usage of customers that are not in the customers table
        totals = _fetch(store,
            f"SELECT month, COUNT(*), {measures} FROM rollup_customer_month WHERE month IN ({', '.join('?' for _ in missing)}) GROUP BY month",
            missing)
        for month, *values in totals:
            rest = [0 if v is None else int(v) for v in values]
            for (m, _), known in sums.items():
                if m == month:
                    rest = [a - b for a, b in zip(rest, known)]
            sums[(month, UNKNOWN)] = [a + b for a, b in zip(rest, sums.get((month, UNKNOWN), [0] * len(rest)))]
    return [(month, label, *values[1:]) for (month, label), values in sums.items() if values[0] > 0]


def _monthly_by_customer(store: Store, period: Period, top: int | None) -> list[tuple]:
    lo, hi = period.first_month, period.last_month
    if top is None:
        return _fetch(store,
            f"SELECT month AS day, customer_id AS customer, {usage_sql(_TREND_MEASURES)} FROM rollup_customer_month "
            "WHERE month >= ? AND month <= ? GROUP BY month, customer_id",
            [lo, hi],
        )
    chosen = top_customers(store, period, top)
    total = _fetch(store,
        f"SELECT month AS day, {usage_sql(_TREND_MEASURES)} FROM rollup_customer_month WHERE month >= ? AND month <= ? GROUP BY month",
        [lo, hi],
    )
    mine = _fetch(store,
        f"SELECT month AS day, customer_id AS customer, {usage_sql(_TREND_MEASURES)} FROM rollup_customer_month "
        f"WHERE customer_id IN ({', '.join('?' for _ in chosen) or 'NULL'}) AND month >= ? AND month <= ? GROUP BY month, customer_id",
        [*chosen, lo, hi],
    )
    return _with_other(mine, total)


def _with_other(chosen: list[tuple], total: list[tuple]) -> list[tuple]:
    """The chosen customers' rows plus '(other customers)' = total - chosen per bucket (kept
    when some measure is not 0)."""
    if not total:
        return chosen
    theirs: dict[str, list[int]] = {}
    for row in chosen:
        found = theirs.setdefault(row[0], [0] * len(_TREND_MEASURES))
        for i, v in enumerate(row[2:]):
            found[i] += 0 if v is None else int(v)
    out = list(chosen)
    for row in total:
        taken = theirs.get(row[0])
        rest = [(0 if v is None else int(v)) - (taken[i] if taken else 0) for i, v in enumerate(row[1:])]
        if any(rest):
            out.append((row[0], OTHER_CUSTOMERS, *rest))
    return out


SUMMARY_COLUMNS = [
    "month", "revenue_pico", "unconverted_revenue", "ai_cost_pico", "margin_pico", "margin_pct", "cost_pct_of_revenue",
    "customers_with_usage", "paying_customers", "requests", "unpriced_requests", "unpriced_tokens",
]


def monthly_summary(store: Store, period: Period, fx: FxTable | None) -> pd.DataFrame:
    """Revenue, AI cost and margin per month over the whole months of `period`.

    Columns: SUMMARY_COLUMNS. `customers_with_usage` excludes the unattributed pseudo-customer;
    `paying_customers` counts customers with revenue > 0 in the month. The months before the
    last are remembered while they do not change (`closed_months`; not while the revenue rollup
    is stale)."""
    period = period.whole_months()
    first, last = period.first_month, period.last_month
    if first >= last:
        return _summary(store, period, fx)
    before = previous_month(last)
    closed = closed_months.remember(store, "trends.monthly_summary", (first, before, closed_months.fx_key(fx)), last,
                                    lambda: _summary(store, Period.months(first, before), fx), revenue=True)
    return pd.concat([closed, _summary(store, Period.month(last), fx)], ignore_index=True)


def _summary(store: Store, period: Period, fx: FxTable | None) -> pd.DataFrame:
    """`monthly_summary` of whole-month `period`, read at once."""
    usage = read(store, 
        "SELECT month, CAST(SUM(cost_pico) AS BIGINT) AS cost_pico, CAST(SUM(requests) AS BIGINT) AS requests, "
        "CAST(SUM(unpriced_requests) AS BIGINT) AS unpriced_requests, CAST(SUM(unpriced_tokens) AS BIGINT) AS unpriced_tokens, "
        "SUM(CASE WHEN customer_id <> ? THEN 1 ELSE 0 END) AS customers_with_usage "
        "FROM rollup_customer_month WHERE month >= ? AND month <= ? GROUP BY month",
        [UNATTRIBUTED, period.first_month, period.last_month],
    )
    frame = pd.DataFrame({"month": period.months_list})
    counts = {c: 0 for c in ("requests", "unpriced_requests", "unpriced_tokens", "customers_with_usage", "paying_customers")}
    frame = merge_filled(frame, usage, "month", "left", {**counts, "cost_pico": 0})
    in_sql = revenue_and_paying_by_month(store, fx, period.first_month, period.last_month)
    if in_sql is not None:  # one SQL statement: no customer x month rows read into Python
        revenue = in_sql.assign(unconverted_revenue="")
        paying = in_sql.set_index("month")["paying_customers"]
    else:
        revenue = revenue_totals(store, fx, period.first_month, period.last_month, ["month"])
        paying = _paying_customers(revenue_by_customer_month(store, fx, period.first_month, period.last_month))
    frame = merge_filled(frame, revenue[["month", "revenue_pico", "unconverted_revenue"]], "month", "left", {"revenue_pico": 0, "unconverted_revenue": ""})
    frame = merge_filled(frame, paying.reset_index(), "month", "left", counts)
    for column in counts:  # (empty reads give object columns)
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
