"""Monthly tier history per customer, computed in SQL: since-when and month-over-month inputs.

`customer_margins` needs, for every customer, the months of its current tier run and the margin
of the last two months. Reading every customer-month into Python would be ~120k rows at 10k
customers; instead one statement classifies each customer-month in the database (the same rules
and exact integer thresholds as `margins._tiers`) and returns one row per customer:

- `first_idx` / `last_idx`: first and last month index with revenue or usage,
- `last_gap`: the last month index with neither (inside the customer's history),
- `miss_<tier>`: the last month index whose tier was not <tier>,
- `margin_now` / `margin_before` / `revenue_now` / `revenue_before`: the last and previous month.

Usage months and revenue entries are combined with one UNION ALL + GROUP BY (customer, month), not
a FULL OUTER JOIN: SQLite runs that join of two unindexed CTEs as a nested loop (minutes at 10k
customers). Single-month entries are converted row by row (exact integer products) and summed in
that one GROUP BY; month indexes are computed from the month text, not joined.

Revenue is converted in SQL as amount x (whole pico-dollars per minor unit); single-month
entries are summed there, multi-month entries (annual plans) are spread by the recognition rule
in Python and passed in as VALUES. When a rate is not a whole number of pico-dollars per minor
unit, or the rule changes single-month entries, `tier_history` returns None and the caller
falls back to the row-by-row path. Thresholds compare as exact integers (PostgreSQL: NUMERIC;
SQLite: 64-bit, which SQLite itself turns into doubles only past ~9.2e18, i.e. more than
~$92,000 of revenue in one customer-month for a threshold with two decimals).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..fx import FxTable
from ..revenue import monthly_revenue
from ..schema import UNATTRIBUTED
from ..store import Store
from .period import month_end, month_range
from .sources import read, _END, _SINGLE_MONTH, _counted_kinds, group_sum, integral_factor, to_usd_pico

__all__ = ["tier_history", "since_and_change", "revenue_and_paying_by_month", "HISTORY_TIERS"]

HISTORY_TIERS = ("healthy", "moderate", "at_risk", "losing", "free", "no_usage", "unpriced", "unconverted", "unattributed")


def _lit(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _tier_case(store: Store, thresholds: object) -> str:
    """The SQL CASE that classifies a customer-month (columns revenue, unconverted, cost,
    requests, unpriced), mirroring `margins._tiers`."""
    exact = (lambda x: f"CAST({x} AS NUMERIC)") if store.dialect == "postgresql" else (lambda x: x)
    margin, revenue = exact("(revenue - cost)"), exact("revenue")
    steps = []
    for name in ("healthy", "moderate", "at_risk"):
        num, den = getattr(thresholds, name).as_integer_ratio()
        steps.append(f"WHEN {margin} * {den} >= {revenue} * {num} THEN '{name}'")
    return (
        f"CASE WHEN customer_id = {_lit(UNATTRIBUTED)} THEN 'unattributed' "
        "WHEN requests = 0 AND revenue = 0 AND unconverted = 0 THEN 'inactive' "
        "WHEN requests = 0 THEN 'no_usage' WHEN unconverted > 0 THEN 'unconverted' WHEN revenue = 0 THEN 'free' "
        "WHEN requests = unpriced THEN 'unpriced' WHEN revenue < 0 THEN 'losing' "
        + " ".join(steps) + " ELSE 'losing' END"
    )


def _sql_conversion(store: Store, fx: FxTable | None) -> tuple[pd.DataFrame, str, str, str] | None:
    """What the SQL paths need to recognise and convert single-month entries row by row:
    (facts: kind, currency, first period_start; the counted kinds as a SQL list; the converted
    amount expression; the unconverted flag expression), or None when they do not apply."""
    facts = read(store, "SELECT kind, UPPER(currency) AS currency, MIN(period_start) AS first FROM revenue_entries GROUP BY kind, UPPER(currency)")
    counted, identity = _counted_kinds(tuple(sorted(set(facts["kind"])))) if not facts.empty else (frozenset(), True)
    if not identity:
        return None
    factors = {c: integral_factor(fx, c) for c in set(facts["currency"])}
    if any(f is None and fx is not None and fx.has(c) for c, f in factors.items()):
        return None
    convertible = {c: f for c, f in factors.items() if f is not None}
    convert = " ".join(f"WHEN {_lit(c)} THEN amount_minor * {f}" for c, f in sorted(convertible.items()))
    converted = f"CASE UPPER(currency) {convert} ELSE 0 END" if convert else "0"
    unconverted_flag = (f"CASE WHEN UPPER(currency) IN ({', '.join(_lit(c) for c in sorted(convertible))}) THEN 0 ELSE 1 END"
                        if convertible else "1")
    kinds = ", ".join(_lit(k) for k in sorted(counted)) or "NULL"
    return facts, kinds, converted, unconverted_flag


def revenue_and_paying_by_month(store: Store, fx: FxTable | None, first_month: str, last_month: str) -> pd.DataFrame | None:
    """Recognised revenue (USD pico-dollars, Python int) and customers with revenue > 0 per month
    in [first, last], both computed in SQL from one customer x month GROUP BY (columns month,
    revenue_pico, paying_customers; months without counted entries are absent). None when the SQL
    path does not apply or some currency has no whole-pico rate (nothing is unconverted here):
    then use `revenue_totals` and `revenue_by_customer_month`.

    Month totals are summed as high and low 32-bit halves (truncating division, the same in SQLite
    and PostgreSQL) and recombined in Python, so a month above int64 pico-dollars stays exact."""
    conversion = _sql_conversion(store, fx)
    if conversion is None:
        return None
    facts, kinds, converted, _ = conversion
    if any(integral_factor(fx, c) is None for c in set(facts["currency"])):
        return None
    last_day = month_end(last_month).isoformat()
    spread = _spread_values(store, fx, first_month, last_day, last_month)
    sql = f"""
WITH single AS (
  SELECT customer_id, SUBSTR(period_start, 1, 7) AS month, {converted} AS revenue
  FROM revenue_entries
  WHERE period_start >= {_lit(first_month + '-01')} AND period_start <= {_lit(last_day)} AND kind IN ({kinds}) AND {_SINGLE_MONTH}
),
spread(customer_id, month, revenue, unconverted) AS ({spread}),
per_customer AS (
  SELECT customer_id, month, CAST(SUM(revenue) AS BIGINT) AS revenue
  FROM (SELECT customer_id, month, revenue FROM single UNION ALL SELECT customer_id, month, revenue FROM spread) both_kinds
  GROUP BY customer_id, month
)
SELECT month, CAST(SUM(revenue / 4294967296) AS BIGINT) AS hi, CAST(SUM(revenue - (revenue / 4294967296) * 4294967296) AS BIGINT) AS lo,
       SUM(CASE WHEN revenue > 0 THEN 1 ELSE 0 END) AS paying_customers
FROM per_customer GROUP BY month ORDER BY month
"""
    frame = read(store, sql)
    revenue = [int(h) * 2**32 + int(lo) for h, lo in zip(frame["hi"].tolist(), frame["lo"].tolist())]
    return pd.DataFrame({
        "month": pd.Series(frame["month"].tolist(), dtype=object),
        "revenue_pico": pd.Series(revenue, dtype=object),
        "paying_customers": pd.Series([int(v) for v in frame["paying_customers"].tolist()], dtype=np.int64),
    })


def tier_history(store: Store, fx: FxTable | None, last_month: str, thresholds: object) -> tuple[pd.DataFrame, list[str]] | None:
    """One row per customer with history up to `last_month` (see the module docstring), and the
    list of months the indexes refer to; None when the SQL path does not apply."""
    conversion = _sql_conversion(store, fx)
    if conversion is None:
        return None
    facts, kinds, converted, unconverted_flag = conversion
    first_usage = store.scalar("SELECT MIN(month) FROM rollup_customer_month")
    starts = [m for m in (first_usage, *(str(f)[:7] for f in facts["first"])) if m]
    if not starts or min(starts) > last_month:
        return pd.DataFrame(columns=["customer_id"]), []
    months = month_range(min(starts), last_month)
    index = {m: i for i, m in enumerate(months)}
    last_day = month_end(last_month).isoformat()
    spread = _spread_values(store, fx, months[0], last_day, last_month)
    last, before = index[last_month], index[last_month] - 1
    misses = ", ".join(f"MAX(CASE WHEN tier <> '{t}' THEN idx END) AS miss_{t}" for t in HISTORY_TIERS)
    year0, month0 = int(months[0][:4]), int(months[0][5:7])
    month_idx = f"(CAST(SUBSTR(j.month, 1, 4) AS INTEGER) - {year0}) * 12 + CAST(SUBSTR(j.month, 6, 2) AS INTEGER) - {month0}"
    sql = f"""
WITH single AS (
  SELECT customer_id, SUBSTR(period_start, 1, 7) AS month, {converted} AS revenue,
         {unconverted_flag} AS unconverted
  FROM revenue_entries
  WHERE period_start >= {_lit(months[0] + '-01')} AND period_start <= {_lit(last_day)} AND kind IN ({kinds}) AND {_SINGLE_MONTH}
),
spread(customer_id, month, revenue, unconverted) AS ({spread}),
usage AS (
  SELECT customer_id, month, cost_pico AS cost, requests, unpriced_requests AS unpriced FROM rollup_customer_month WHERE month <= {_lit(last_month)}
),
joined AS (
  SELECT customer_id, month, SUM(revenue) AS revenue, MAX(unconverted) AS unconverted,
         SUM(cost) AS cost, SUM(requests) AS requests, SUM(unpriced) AS unpriced
  FROM (SELECT customer_id, month, 0 AS revenue, 0 AS unconverted, cost, requests, unpriced FROM usage
        UNION ALL SELECT customer_id, month, revenue, unconverted, 0, 0, 0 FROM single
        UNION ALL SELECT customer_id, month, revenue, unconverted, 0, 0, 0 FROM spread) both_sides
  GROUP BY customer_id, month
),
tiers AS (
  SELECT j.customer_id AS customer_id, {month_idx} AS idx, j.revenue AS revenue, j.cost AS cost,
         {_tier_case(store, thresholds)} AS tier
  FROM joined j WHERE j.month >= {_lit(months[0])} AND j.month <= {_lit(last_month)}
),
flagged AS (
  SELECT customer_id, idx, revenue, cost, tier,
         CASE WHEN idx - LAG(idx) OVER (PARTITION BY customer_id ORDER BY idx) > 1 THEN idx - 1 END AS gap_before
  FROM tiers
)
SELECT customer_id, MIN(idx) AS first_idx, MAX(idx) AS last_idx, MAX(gap_before) AS last_gap, {misses},
  CAST(SUM(CASE WHEN idx = {last} THEN revenue - cost ELSE 0 END) AS BIGINT) AS margin_now,
  CAST(SUM(CASE WHEN idx = {before} THEN revenue - cost ELSE 0 END) AS BIGINT) AS margin_before,
  CAST(SUM(CASE WHEN idx = {last} THEN revenue ELSE 0 END) AS BIGINT) AS revenue_now,
  CAST(SUM(CASE WHEN idx = {before} THEN revenue ELSE 0 END) AS BIGINT) AS revenue_before
FROM flagged GROUP BY customer_id
"""
    return read(store, sql), months


def _spread_values(store: Store, fx: FxTable | None, first_month: str, last_day: str, last_month: str) -> str:
    """Multi-month entries spread by the recognition rule, as a SQL VALUES list (or an empty SELECT)."""
    multi = read(store, 
        "SELECT customer_id, period_start, period_end, amount_minor, currency, kind FROM revenue_entries "
        f"WHERE period_start <= ? AND {_END} >= ? AND NOT ({_SINGLE_MONTH})",
        [last_day, f"{first_month}-01"],
    )
    empty = "SELECT '' AS customer_id, '' AS month, 0 AS revenue, 0 AS unconverted WHERE 1 = 0"
    if multi.empty:
        return empty
    spread = monthly_revenue(multi)
    spread = spread[(spread["month"] >= first_month) & (spread["month"] <= last_month)]
    if spread.empty:
        return empty
    spread = spread.groupby(["customer_id", "month", "currency"], as_index=False)["amount_minor"].sum()
    spread["pico"] = to_usd_pico(spread["amount_minor"], spread["currency"], fx)
    missing = spread["pico"].isna().to_numpy()
    spread["converted"] = spread["pico"].where(~missing, 0)
    spread["unconverted"] = (missing & (spread["amount_minor"].to_numpy() != 0)).astype(np.int64)
    sums = group_sum(spread, ["customer_id", "month"], ["converted", "unconverted"])
    rows = [f"({_lit(c)}, {_lit(m)}, {int(v)}, {int(u > 0)})"
            for c, m, v, u in zip(sums["customer_id"].tolist(), sums["month"].tolist(), sums["converted"].tolist(), sums["unconverted"].tolist())]
    return "VALUES " + ", ".join(rows)


def since_and_change(frame: pd.DataFrame, history: pd.DataFrame, months: list[str], last_month: str) -> pd.DataFrame:
    """Add tier_since and the month-over-month columns to a period frame (customer_id, tier).

    Vectorised over customers: month indexes as float arrays (NaN = none), the money columns
    looked up by position as Python ints (no float on the money path)."""
    from .display import pct

    last = len(months) - 1 if months and months[-1] == last_month else None
    n = len(frame)
    position = pd.Index(history["customer_id"]).get_indexer(frame["customer_id"]) if len(history) else np.full(n, -1)
    found = position >= 0

    def index_column(column: str) -> np.ndarray:
        out = np.full(n, np.nan)
        if column in history and found.any():
            values = pd.to_numeric(history[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            out[found] = values[position[found]]
        return out

    def money_column(column: str) -> list[int]:
        out = np.zeros(n, dtype=object)
        if column in history and found.any():
            values = history[column].to_numpy(dtype=object)
            picked = values[position[found]]
            out[found] = [0 if v is None or (not isinstance(v, int) and pd.isna(v)) else int(v) for v in picked]
        return [int(v) for v in out]

    tiers = frame["tier"].to_numpy(dtype=object)
    first, last_idx, gap = index_column("first_idx"), index_column("last_idx"), index_column("last_gap")
    miss = np.full(n, np.nan)
    for tier in HISTORY_TIERS:
        chosen = tiers == tier
        if chosen.any():
            miss[chosen] = index_column(f"miss_{tier}")[chosen]
    since: list[str | None] = [None] * n
    if last is not None:
        no_history = np.isnan(first)
        bound = np.fmax(np.fmax(first - 1, miss), gap)
        bound = np.fmax(bound, np.where(last_idx < last, last, np.nan))
        start = np.where(tiers == "inactive", np.where(no_history, 0, last_idx + 1), bound + 1)
        valid = (start <= last) & ((tiers == "inactive") | ~no_history)
        since = [months[int(s)] if ok else None for s, ok in zip(start.tolist(), valid.tolist())]
    out = frame.copy()
    out["tier_since"] = pd.Series(since, index=frame.index, dtype=object)
    values = {c: money_column(c) for c in ("margin_now", "margin_before", "revenue_now", "revenue_before")}
    out["last_month"] = last_month
    out["last_month_margin_pico"] = pd.Series(values["margin_now"], index=frame.index, dtype=object)
    out["prev_month_margin_pico"] = pd.Series(values["margin_before"], index=frame.index, dtype=object)
    out["mom_margin_change_pico"] = pd.Series([a - b for a, b in zip(values["margin_now"], values["margin_before"])], index=frame.index, dtype=object)
    out["mom_margin_pct_change"] = pd.Series(
        [pct(m1, r1) - pct(m0, r0) if r1 > 0 and r0 > 0 else None  # type: ignore[operator]
         for m1, r1, m0, r0 in zip(values["margin_now"], values["revenue_now"], values["margin_before"], values["revenue_before"])],
        index=frame.index, dtype=object,
    )
    return out
