"""Monthly tier history per customer: since-when and month-over-month inputs.

`customer_margins` needs, for every customer, the months of its current tier run and the margin
of the last two months. Every customer-month is classified (the same rules and exact integer
thresholds as `margins._tiers`) and reduced to one row per customer:

- `first_idx` / `last_idx`: first and last month index with revenue or usage,
- `last_gap`: the last month index with neither (inside the customer's history),
- `miss_<tier>`: the last month index whose tier was not <tier>,
- `margin_now` / `margin_before` / `revenue_now` / `revenue_before`: the last and previous month.

How: two plain scans, no GROUP BY in the database. SQLite sorts a GROUP BY or window input of
~150k customer-month rows slowly (about a second at 10k customers); reading the rows in table
order and grouping them with numpy takes a fraction of that, on PostgreSQL too.
1. `rollup_customer_month` up to the last month: customer, month, cost and a usage flag
   (no requests / all unpriced / priced), one row per customer-month (its primary key).
2. Single-month revenue entries of the counted kinds (the recognition rule gives them to their
   month whole), converted row by row as amount x (whole pico-dollars per minor unit), an exact
   integer product; multi-month entries (annual plans) are spread by the recognition rule in
   Python and added as rows.
Rows are keyed by (customer code, month index) and summed per key exactly (int64 when no sum can
overflow, else Python ints). When a rate is not a whole number of pico-dollars per minor unit,
or the rule changes single-month entries, `tier_history` returns None and the caller falls back
to the row-by-row path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..fx import FxTable
from ..revenue import monthly_revenue
from ..schema import UNATTRIBUTED
from ..store import Store
from .period import month_end, month_range
from .sources import read, _MULTI_MONTH_RANGE, _SINGLE_MONTH, _counted_kinds, group_sum, integral_factor, to_usd_pico

__all__ = ["tier_history", "since_and_change", "revenue_and_paying_by_month", "HISTORY_TIERS"]

HISTORY_TIERS = ("healthy", "moderate", "at_risk", "losing", "free", "no_usage", "unpriced", "unconverted", "unattributed")
_SAFE = 2**62


def _lit(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


class _Conversion:
    """What the fast paths need to recognise and convert single-month entries row by row: the
    counted kinds and the whole pico-dollars per minor unit of each convertible currency."""

    def __init__(self, currencies: set[str], kinds: frozenset[str], factors: dict[str, int]) -> None:
        self.currencies, self.kinds, self.factors = currencies, kinds, factors


def _conversion(store: Store, fx: FxTable | None) -> _Conversion | None:
    """The counted kinds and whole-pico factors, or None when the fast paths do not apply (the
    rule changes single-month entries, or some rate is not a whole number of pico-dollars)."""
    facts = read(store, "SELECT DISTINCT kind, UPPER(currency) AS currency FROM revenue_entries")
    counted, identity = _counted_kinds(tuple(sorted(set(facts["kind"])))) if not facts.empty else (frozenset(), True)
    if not identity:
        return None
    currencies = set(facts["currency"]) if not facts.empty else set()
    factors = {c: integral_factor(fx, c) for c in currencies}
    if any(f is None and fx is not None and fx.has(c) for c, f in factors.items()):
        return None
    return _Conversion(currencies, counted, {c: f for c, f in factors.items() if f is not None})


def _exact(values: list[int] | np.ndarray) -> np.ndarray:
    """Integers as int64 when every value is below 2^62 in size (so a difference or a small
    multiple of two of them cannot overflow), else as an object array of Python ints."""
    array = values if isinstance(values, np.ndarray) else np.array(values, dtype=object)
    if not len(array):
        return np.zeros(0, dtype=np.int64)
    try:
        as_int = array.astype(np.int64) if array.dtype != np.int64 else array
    except (OverflowError, TypeError, ValueError):
        as_int = None
    if as_int is not None and -_SAFE < int(as_int.min()) and int(as_int.max()) < _SAFE:
        return as_int
    return np.array([int(v) for v in array.tolist()], dtype=object)


def _revenue_rows(store: Store, fx: FxTable | None, conversion: _Conversion, first_month: str, last_month: str) -> pd.DataFrame:
    """Recognised revenue rows of the counted kinds for months [first, last]: columns
    customer_id, month, revenue (USD pico-dollars, 0 when unconverted), unconverted (0/1).
    Single-month entries one row each (unconverted = the currency has no rate); spread
    multi-month entries one row per (customer, month) (unconverted = a non-zero amount without
    a rate). Not summed: several rows can share a (customer, month)."""
    last_day = month_end(last_month).isoformat()
    columns = ["customer_id", "month", "revenue", "unconverted"]
    if conversion.kinds:
        kinds = ", ".join(_lit(k) for k in sorted(conversion.kinds))
        single = read(store,
            "SELECT customer_id, SUBSTR(period_start, 1, 7) AS month, UPPER(currency) AS currency, amount_minor FROM revenue_entries "
            f"WHERE period_start >= ? AND period_start <= ? AND kind IN ({kinds}) AND {_SINGLE_MONTH}",
            [f"{first_month}-01", last_day],
        )
    else:
        single = pd.DataFrame(columns=["customer_id", "month", "currency", "amount_minor"])
    parts = []
    if not single.empty:
        codes = single["currency"].to_numpy(dtype=object)
        factor = np.zeros(len(single), dtype=np.int64)
        unconverted = np.ones(len(single), dtype=np.int64)
        for code, value in conversion.factors.items():
            rows = codes == code
            factor[rows] = value
            unconverted[rows] = 0
        amounts = _exact(single["amount_minor"].to_numpy())
        largest = max(abs(int(amounts.max())), abs(int(amounts.min()))) * max(conversion.factors.values(), default=0)
        if amounts.dtype == object or largest >= _SAFE:
            revenue = _exact([int(a) * int(f) for a, f in zip(amounts.tolist(), factor.tolist())])
        else:
            revenue = amounts * factor
        parts.append(pd.DataFrame({"customer_id": single["customer_id"].to_numpy(dtype=object),
                                   "month": single["month"].to_numpy(dtype=object), "revenue": revenue, "unconverted": unconverted}))
    spread = _spread_rows(store, fx, first_month, last_day, last_month)
    if not spread.empty:
        parts.append(spread)
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    if len(parts) == 1:
        return parts[0][columns]
    revenue = _exact(np.concatenate([p["revenue"].to_numpy() for p in parts]))
    return pd.DataFrame({
        "customer_id": np.concatenate([p["customer_id"].to_numpy(dtype=object) for p in parts]),
        "month": np.concatenate([p["month"].to_numpy(dtype=object) for p in parts]),
        "revenue": revenue,
        "unconverted": np.concatenate([p["unconverted"].to_numpy(dtype=np.int64) for p in parts]),
    })


def _spread_rows(store: Store, fx: FxTable | None, first_month: str, last_day: str, last_month: str) -> pd.DataFrame:
    """Multi-month entries spread by the recognition rule, summed per (customer_id, month):
    columns customer_id, month, revenue (converted currencies only), unconverted (0/1)."""
    multi = read(store,
        "SELECT customer_id, period_start, period_end, amount_minor, currency, kind FROM revenue_entries "
        f"WHERE {_MULTI_MONTH_RANGE}",
        [last_day, f"{first_month}-01"],
    )
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in ("customer_id", "month", "revenue", "unconverted")})
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
    return pd.DataFrame({
        "customer_id": sums["customer_id"].to_numpy(dtype=object),
        "month": sums["month"].to_numpy(dtype=object),
        "revenue": _exact([int(v) for v in sums["converted"].tolist()]),
        "unconverted": (sums["unconverted"].to_numpy(dtype=np.int64) > 0).astype(np.int64),
    })


def _month_index(months: list[str], values: np.ndarray) -> np.ndarray:
    """Each YYYY-MM value's position in `months` (-1 when absent)."""
    codes, uniques = pd.factorize(values)
    position = {m: i for i, m in enumerate(months)}
    lookup = np.array([position.get(m, -1) for m in uniques], dtype=np.int64)
    return lookup[codes] if len(codes) else np.zeros(0, dtype=np.int64)


def _sum_at(inverse: np.ndarray, size: int, values: np.ndarray) -> np.ndarray:
    """Exact sums of `values` (from `_exact`) into `size` slots: int64 when no slot can pass
    2^62 (largest value x most rows in a slot); else each value is split into 32-bit halves,
    both summed in int64 and recombined as Python ints (exact for up to 2^31 rows a slot)."""
    if values.dtype != np.int64:
        out = np.zeros(size, dtype=object)
        np.add.at(out, inverse, values)
        return out
    if not len(values):
        return np.zeros(size, dtype=np.int64)
    largest = max(abs(int(values.max())), abs(int(values.min())))
    if largest * int(np.bincount(inverse, minlength=size).max()) < _SAFE:
        out = np.zeros(size, dtype=np.int64)
        np.add.at(out, inverse, values)
        return out
    high, low = np.zeros(size, dtype=np.int64), np.zeros(size, dtype=np.int64)
    np.add.at(high, inverse, values >> 32)
    np.add.at(low, inverse, values & 0xFFFFFFFF)
    return _exact(high.astype(object) * 2**32 + low.astype(object))


def revenue_and_paying_by_month(store: Store, fx: FxTable | None, first_month: str, last_month: str) -> pd.DataFrame | None:
    """Recognised revenue (USD pico-dollars, Python int) and customers with revenue > 0 per month
    in [first, last] (columns month, revenue_pico, paying_customers; months without counted
    entries are absent), from the revenue rows summed per (customer, month). None when the fast
    path does not apply or some currency has no whole-pico rate (nothing is unconverted here):
    then use `revenue_totals` and `revenue_by_customer_month`."""
    conversion = _conversion(store, fx)
    if conversion is None or any(integral_factor(fx, c) is None for c in conversion.currencies):
        return None
    rows = _revenue_rows(store, fx, conversion, first_month, last_month)
    columns = {"month": pd.Series(dtype=object), "revenue_pico": pd.Series(dtype=object), "paying_customers": pd.Series(dtype=np.int64)}
    if rows.empty:
        return pd.DataFrame(columns)
    months = month_range(first_month, last_month)
    idx = _month_index(months, rows["month"].to_numpy(dtype=object))
    customer, _ = pd.factorize(rows["customer_id"].to_numpy(dtype=object))
    keys, inverse = np.unique(customer.astype(np.int64) * len(months) + idx, return_inverse=True)
    revenue = _sum_at(inverse, len(keys), rows["revenue"].to_numpy())
    key_month = keys % len(months)
    present, month_of = np.unique(key_month, return_inverse=True)
    totals = _sum_at(month_of, len(present), revenue)
    paying = np.zeros(len(present), dtype=np.int64)
    np.add.at(paying, month_of, (revenue > 0).astype(np.int64))
    return pd.DataFrame({
        "month": pd.Series([months[int(i)] for i in present], dtype=object),
        "revenue_pico": pd.Series([int(v) for v in totals], dtype=object),
        "paying_customers": pd.Series(paying.astype(np.int64), dtype=np.int64),
    })


def _tier_codes(revenue: np.ndarray, cost: np.ndarray, used: np.ndarray, unconverted: np.ndarray, thresholds: object) -> np.ndarray:
    """Tier of each customer-month as an index into `_TIER_NAMES` (the rules of `margins._tiers`;
    `used`: 0 no requests, 1 every request unpriced, 2 some priced)."""
    wide = max((max(abs(int(a.max())), abs(int(a.min()))) for a in (revenue, cost) if len(a)), default=0)
    ratios = [getattr(thresholds, name).as_integer_ratio() for name in ("healthy", "moderate", "at_risk")]
    scale = max(max(abs(n), d) for n, d in ratios)
    if revenue.dtype == object or cost.dtype == object or 2 * wide * scale >= _SAFE:
        revenue, cost = revenue.astype(object), cost.astype(object)
    margin = revenue - cost
    conditions = [
        (used == 0) & (revenue == 0) & (unconverted == 0),
        used == 0,
        unconverted > 0,
        revenue == 0,
        used == 1,
        revenue < 0,
        *[(margin * d >= revenue * n) for n, d in ratios],
    ]
    conditions = [np.asarray(c, dtype=bool) for c in conditions]
    return np.select(conditions, list(range(len(conditions))), default=_TIER_NAMES.index("losing"))


_TIER_NAMES = ("inactive", "no_usage", "unconverted", "free", "unpriced", "losing", "healthy", "moderate", "at_risk", "unattributed")


def tier_history(store: Store, fx: FxTable | None, last_month: str, thresholds: object) -> tuple[pd.DataFrame, list[str]] | None:
    """One row per customer with history up to `last_month` (see the module docstring), and the
    list of months the indexes refer to; None when the fast path does not apply."""
    conversion = _conversion(store, fx)
    if conversion is None:
        return None
    first_usage = store.scalar("SELECT MIN(month) FROM rollup_customer_month")
    first_entry = store.scalar("SELECT MIN(period_start) FROM revenue_entries")
    starts = [m for m in (first_usage, str(first_entry)[:7] if first_entry else None) if m]
    if not starts or min(starts) > last_month:
        return pd.DataFrame(columns=["customer_id"]), []
    months = month_range(min(starts), last_month)
    # SUBSTR keeps SQLite on the table itself (rows in key order) instead of the month index,
    # which would cost one primary-key lookup per row.
    usage = read(store,
        "SELECT customer_id, month, cost_pico, CASE WHEN requests = 0 THEN 0 WHEN requests = unpriced_requests THEN 1 ELSE 2 END AS used "
        "FROM rollup_customer_month WHERE SUBSTR(month, 1, 7) <= ?",
        [last_month],
    )
    revenue = _revenue_rows(store, fx, conversion, months[0], last_month)
    n_usage, size = len(usage), len(months)
    customers = np.concatenate([usage["customer_id"].to_numpy(dtype=object), revenue["customer_id"].to_numpy(dtype=object)])
    if not len(customers):
        return pd.DataFrame(columns=["customer_id"]), months
    idx = _month_index(months, np.concatenate([usage["month"].to_numpy(dtype=object), revenue["month"].to_numpy(dtype=object)]))
    codes, names = pd.factorize(customers)
    names = np.asarray(names, dtype=object)
    inside = idx >= 0
    keys, inverse = np.unique(codes[inside].astype(np.int64) * size + idx[inside], return_inverse=True)
    from_usage = inside[:n_usage]
    usage_slot, revenue_slot = inverse[: int(from_usage.sum())], inverse[int(from_usage.sum()):]
    from_revenue = inside[n_usage:]
    count = len(keys)
    cost_values = _exact(usage["cost_pico"].to_numpy()[from_usage]) if n_usage else np.zeros(0, dtype=np.int64)
    cost = np.zeros(count, dtype=cost_values.dtype)
    cost[usage_slot] = cost_values
    used = np.zeros(count, dtype=np.int64)
    used[usage_slot] = usage["used"].to_numpy(dtype=np.int64)[from_usage]
    revenue_values = revenue["revenue"].to_numpy()[from_revenue] if len(revenue) else np.zeros(0, dtype=np.int64)
    money = _sum_at(revenue_slot, count, _exact(revenue_values))
    unconverted = np.zeros(count, dtype=np.int64)
    if len(revenue):
        np.maximum.at(unconverted, revenue_slot, revenue["unconverted"].to_numpy(dtype=np.int64)[from_revenue])
    customer, month = keys // size, keys % size
    tier = _tier_codes(money, cost, used, unconverted, thresholds)
    tier[names[customer] == UNATTRIBUTED] = _TIER_NAMES.index("unattributed")
    return _per_customer(names, customer, month, tier, money, cost, size - 1), months


def _per_customer(names: np.ndarray, customer: np.ndarray, month: np.ndarray, tier: np.ndarray, revenue: np.ndarray, cost: np.ndarray,
                  last: int) -> pd.DataFrame:
    """Reduce customer-month rows sorted by (customer, month) to the one-row-per-customer frame."""
    starts = np.flatnonzero(np.r_[True, customer[1:] != customer[:-1]])
    segment = np.cumsum(np.r_[True, customer[1:] != customer[:-1]]) - 1
    same = np.r_[False, customer[1:] == customer[:-1]]
    gap = np.where(same & (np.diff(month, prepend=0) > 1), month - 1, -1)

    def index_of(values: np.ndarray) -> np.ndarray:
        found = np.maximum.reduceat(values, starts)
        return np.where(found >= 0, found, np.nan)

    out = {"customer_id": names[customer[starts]], "first_idx": month[starts].astype(float),
           "last_idx": np.maximum.reduceat(month, starts).astype(float), "last_gap": index_of(gap)}
    for name in HISTORY_TIERS:
        out[f"miss_{name}"] = index_of(np.where(tier != _TIER_NAMES.index(name), month, -1))
    margin = revenue.astype(object) - cost.astype(object) if revenue.dtype == object or cost.dtype == object else revenue - cost
    for label, values, at in (("margin_now", margin, last), ("margin_before", margin, last - 1),
                              ("revenue_now", revenue, last), ("revenue_before", revenue, last - 1)):
        column = np.zeros(len(starts), dtype=object)
        chosen = month == at
        column[segment[chosen]] = values[chosen]
        out[label] = [int(v) for v in column]
    frame = pd.DataFrame({k: v for k, v in out.items() if k.startswith(("customer", "first", "last", "miss"))})
    for label in ("margin_now", "margin_before", "revenue_now", "revenue_before"):
        frame[label] = pd.Series(out[label], dtype=object)
    return frame


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
