"""Monthly tier history per customer: since-when and month-over-month inputs.

`customer_margins` needs, for every customer, the months of its current tier run and the margin
of the last two months. Every customer-month is classified (the same rules and exact integer
thresholds as `margins._tiers`) and reduced to one row per customer:

- `first_idx` / `last_idx`: first and last month index with revenue or usage,
- `last_gap`: the last month index with neither (inside the customer's history),
- `miss_<tier>`: the last month index whose tier was not <tier>,
- `margin_now` / `margin_before` / `revenue_now` / `revenue_before`: the last and previous month.

How: plain scans, no GROUP BY in the database. SQLite sorts a GROUP BY or window input of
~150k customer-month rows slowly (about a second at 10k customers); reading the rows in table
order and grouping them with numpy takes a fraction of that, on PostgreSQL too. Both rollups are
read one month at a time (`WHERE month = ?`, their keys start with the month), so the month of a
row is known from its statement instead of read as text.
1. `rollup_customer_month` for the months: customer, cost, requests and unpriced requests, one
   row per customer-month (its primary key).
2. Recognised revenue per (customer, month, currency): the revenue rollup
   (`walleta.revenue_rollup`; derived from the entries while the rollup is stale), converted
   row by row as amount x (whole pico-dollars per minor unit), an exact integer product. A
   customer-month is unconverted when a currency without a rate has a non-zero amount.
Rows are keyed by (customer code, month index) and summed per key exactly (int64 when no sum can
overflow, else Python ints). When a rate is not a whole number of pico-dollars per minor unit,
`tier_history` returns None and the caller falls back to the row-by-row path.

Closed months in memory: the reduction of the months before the last one is kept per database,
months, thresholds and FX rates, and reused while `walleta.generations.fingerprint` (read before
the data) is unchanged; the last month is read at every call and folded in (`_extend`). Live
usage lands in the current month, so a page re-rendered while usage flows reads one month.
`customer_month_rows` gives the same customer-month rows as a table (monthly margins).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from ..fx import FxTable
from ..revenue_rollup import RollupFacts, facts
from ..schema import UNATTRIBUTED
from ..store import Store
from . import closed_months
from .columns import INT, TEXT, aligned, object_column, scan_many, union_positions
from .exact import SAFE, exact_ints, exact_sums
from .period import month_range, next_month
from .sources import _revenue_rows as sources_revenue_rows
from .sources import convert_minor, integral_factor, read, whole_pico_factors

__all__ = ["tier_history", "since_and_change", "customer_month_rows", "revenue_and_paying_by_month", "first_data_month", "HISTORY_TIERS"]

HISTORY_TIERS = ("healthy", "moderate", "at_risk", "losing", "free", "no_usage", "unpriced", "unconverted", "unattributed", "inactive")


_USAGE_COLUMNS = [("customer_id", "customer_id", TEXT), ("cost_pico", "cost_pico", INT), ("requests", "requests", INT),
                  ("unpriced_requests", "unpriced_requests", INT)]
_REVENUE_COLUMNS = [("customer_id", "customer_id", TEXT), ("currency", "currency", TEXT), ("amount_minor", "amount_minor", INT)]


def _month_reads(table: str, columns: list[tuple[str, str, str]], months: list[str]) -> list[tuple]:
    """`scan_many` reads of `columns` of `table`, one per month (`WHERE month = ?`, one range of
    the month-first key each): the month of a row is known from its statement, so no month text
    is read, split or looked up (~35% of a whole-range scan of the customer-month rollup)."""
    return [(columns, f"FROM {table} WHERE month = ?", [month]) for month in months]


def _by_month(parts: list[dict[str, np.ndarray]], columns: list[tuple[str, str, str]]) -> pd.DataFrame:
    """The month reads' arrays (one part per month, in month order) end to end, plus
    `month_index` (the part's position)."""
    sizes = [len(part[columns[0][0]]) for part in parts]
    out: dict[str, object] = {}
    for name, _, kind in columns:
        values = np.concatenate([part[name] for part in parts])  # int64, or objects when a part holds Python ints
        out[name] = object_column(values) if kind == TEXT else values
    out["month_index"] = np.repeat(np.arange(len(parts), dtype=np.int64), sizes)
    return pd.DataFrame(out, copy=False)


def _entry_amounts(store: Store, months: list[str]) -> pd.DataFrame:
    """Recognised revenue per (customer, month, currency) for `months` (a contiguous range),
    derived from the entries (while the revenue rollup is stale), in minor units: the columns of
    the rollup read (customer_id, currency, amount_minor) and month_index (position in
    `months`)."""
    rows = sources_revenue_rows(store, months[0], months[-1], ["customer_id", "month"])
    index = _month_index(months, rows["month"].to_numpy(dtype=object))
    inside = index >= 0
    return pd.DataFrame({"customer_id": object_column(rows["customer_id"].to_numpy(dtype=object)[inside]), "month_index": index[inside],
                         "currency": object_column(rows["currency"].to_numpy(dtype=object)[inside]),
                         "amount_minor": rows["amount_minor"].to_numpy()[inside]}, copy=False)


def _to_usd(rows: pd.DataFrame, fx: FxTable | None) -> pd.DataFrame | None:
    """Revenue rows (`_entry_amounts` columns) converted: columns customer_id, month_index,
    revenue (USD pico-dollars, 0 without a rate) and unconverted (1 when the amount is not zero
    and has no rate); None when some rate is not a whole number of pico-dollars per minor unit
    (then the fast paths do not apply)."""
    if rows.empty:
        return pd.DataFrame({"customer_id": pd.Series(dtype=object), "month_index": pd.Series(dtype=np.int64),
                             "revenue": pd.Series(dtype=object), "unconverted": pd.Series(dtype=np.int64)})
    factors = whole_pico_factors(fx, rows["currency"])
    if factors is None:
        return None
    amounts = exact_ints(rows["amount_minor"].to_numpy())
    revenue, has_rate = convert_minor(rows["currency"].to_numpy(dtype=object), amounts, factors)
    return pd.DataFrame({"customer_id": object_column(rows["customer_id"]), "month_index": rows["month_index"].to_numpy(dtype=np.int64),
                         "revenue": revenue, "unconverted": (~has_rate & (amounts != 0)).astype(np.int64)})


def _month_index(months: list[str], values: np.ndarray) -> np.ndarray:
    """Each YYYY-MM value's position in `months` (-1 when absent)."""
    codes, uniques = pd.factorize(values)
    position = {m: i for i, m in enumerate(months)}
    lookup = np.array([position.get(m, -1) for m in uniques], dtype=np.int64)
    return lookup[codes] if len(codes) else np.zeros(0, dtype=np.int64)


def revenue_and_paying_by_month(store: Store, fx: FxTable | None, first_month: str, last_month: str) -> pd.DataFrame | None:
    """Recognised revenue (USD pico-dollars, Python int) and customers with revenue > 0 per month
    in [first, last] (columns month, revenue_pico, paying_customers; months without counted
    entries are absent), from the revenue rows summed per (customer, month). None when the fast
    path does not apply or some currency has no whole-pico rate (nothing is unconverted here):
    then use `revenue_totals` and `revenue_by_customer_month`."""
    known = facts(store)
    if known is not None:
        return _rollup_revenue_and_paying(store, fx, first_month, last_month, known)
    months = month_range(first_month, last_month)
    amounts = _entry_amounts(store, months)
    if any(integral_factor(fx, str(c)) is None for c in set(amounts["currency"])):
        return None
    rows = _to_usd(amounts, fx)
    assert rows is not None  # every currency has a whole-pico rate
    columns = {"month": pd.Series(dtype=object), "revenue_pico": pd.Series(dtype=object), "paying_customers": pd.Series(dtype=np.int64)}
    if rows.empty:
        return pd.DataFrame(columns)
    idx = rows["month_index"].to_numpy(dtype=np.int64)
    customer, _ = pd.factorize(rows["customer_id"].to_numpy(dtype=object))
    keys, inverse = np.unique(customer.astype(np.int64) * len(months) + idx, return_inverse=True)
    revenue = exact_sums(inverse, len(keys), rows["revenue"].to_numpy())
    key_month = keys % len(months)
    present, month_of = np.unique(key_month, return_inverse=True)
    totals = exact_sums(month_of, len(present), revenue)
    paying = np.zeros(len(present), dtype=np.int64)
    np.add.at(paying, month_of, (revenue > 0).astype(np.int64))
    return pd.DataFrame({
        "month": pd.Series([months[int(i)] for i in present], dtype=object),
        "revenue_pico": pd.Series([int(v) for v in totals], dtype=object),
        "paying_customers": pd.Series(paying.astype(np.int64), dtype=np.int64),
    })


def _rollup_revenue_and_paying(store: Store, fx: FxTable | None, first_month: str, last_month: str,
                               known: RollupFacts) -> pd.DataFrame | None:
    """`revenue_and_paying_by_month` from the revenue rollup, summed in SQL: per month and
    currency the amount and the customers with a positive amount (one scan in key order when no
    customer-month has two currencies; else grouped per currency, and the customer-months in
    several currencies are read row by row and counted after conversion). None when some
    currency has no whole-pico rate (or a zero one)."""
    factors = {code: integral_factor(fx, code) for code in known.currencies}
    if any(not f for f in factors.values()):
        return None
    totals = _month_currency_totals(store, first_month, last_month, known)
    columns = {"month": pd.Series(dtype=object), "revenue_pico": pd.Series(dtype=object), "paying_customers": pd.Series(dtype=np.int64)}
    if totals.empty:
        return pd.DataFrame(columns)
    revenue: dict[str, int] = {}
    paying: dict[str, int] = {}
    for month, code, amount, positive in zip(totals["month"], totals["currency"], totals["amount_minor"], totals["positive"]):
        revenue[month] = revenue.get(month, 0) + int(amount) * int(factors[code])  # type: ignore[arg-type]
        paying[month] = paying.get(month, 0) + int(positive)
    if known.mixed_currency_months:
        _recount_mixed(store, first_month, last_month, factors, paying)  # type: ignore[arg-type]
    months = sorted(revenue)
    return pd.DataFrame({
        "month": pd.Series(months, dtype=object),
        "revenue_pico": pd.Series([revenue[m] for m in months], dtype=object),
        "paying_customers": pd.Series([paying[m] for m in months], dtype=np.int64),
    })


def _month_currency_totals(store: Store, first_month: str, last_month: str, known: RollupFacts) -> pd.DataFrame:
    """Rows (month, currency, amount_minor, positive) from the revenue rollup: the amount and
    the number of rows with a positive amount per month and currency present in the months."""
    if not known.currencies:  # no revenue at all
        return pd.DataFrame(columns=["month", "currency", "amount_minor", "positive", "n"])
    if known.mixed_currency_months or len(known.currencies) > 8:
        return read(store,
            "SELECT month, currency, CAST(SUM(amount_minor) AS BIGINT) AS amount_minor, "
            "SUM(CASE WHEN amount_minor > 0 THEN 1 ELSE 0 END) AS positive, COUNT(*) AS n FROM rollup_revenue_month "
            "WHERE month >= ? AND month <= ? GROUP BY month, currency",
            [first_month, last_month],
        )
    # One pass in key order (GROUP BY month needs no sort), one column pair per currency.
    sums = ", ".join(
        f"CAST(SUM(CASE WHEN currency = ? THEN amount_minor ELSE 0 END) AS BIGINT) AS a{i}, "
        f"SUM(CASE WHEN currency = ? AND amount_minor > 0 THEN 1 ELSE 0 END) AS p{i}, SUM(CASE WHEN currency = ? THEN 1 ELSE 0 END) AS n{i}"
        for i in range(len(known.currencies))
    )
    params = [code for code in known.currencies for _ in range(3)]
    wide = read(store, f"SELECT month, {sums} FROM rollup_revenue_month WHERE month >= ? AND month <= ? GROUP BY month",
                [*params, first_month, last_month])
    rows = [
        (month, code, int(wide[f"a{i}"].iloc[r]), int(wide[f"p{i}"].iloc[r]), int(wide[f"n{i}"].iloc[r]))
        for r, month in enumerate(wide["month"].tolist()) for i, code in enumerate(known.currencies)
        if int(wide[f"n{i}"].iloc[r])
    ]
    return pd.DataFrame(rows, columns=["month", "currency", "amount_minor", "positive", "n"])


def _recount_mixed(store: Store, first_month: str, last_month: str, factors: dict[str, int], paying: dict[str, int]) -> None:
    """Count customer-months with revenue in several currencies once, after conversion: their
    rows were counted per currency in `paying`."""
    mixed = read(store,
        "SELECT r.month, r.customer_id, r.currency, r.amount_minor FROM rollup_revenue_month r JOIN ("
        "SELECT month, customer_id FROM rollup_revenue_month WHERE month >= ? AND month <= ? "
        "GROUP BY month, customer_id HAVING COUNT(*) > 1) m ON m.month = r.month AND m.customer_id = r.customer_id",
        [first_month, last_month],
    )
    per_customer: dict[tuple[str, str], int] = {}
    for month, customer, code, amount in zip(mixed["month"], mixed["customer_id"], mixed["currency"], mixed["amount_minor"]):
        paying[month] -= int(amount) > 0
        per_customer[(month, customer)] = per_customer.get((month, customer), 0) + int(amount) * factors[code]
    for (month, _), value in per_customer.items():
        paying[month] += value > 0


def _tier_codes(revenue: np.ndarray, cost: np.ndarray, used: np.ndarray, unconverted: np.ndarray, thresholds: object) -> np.ndarray:
    """Tier of each customer-month as an index into `_TIER_NAMES` (the rules of `margins._tiers`;
    `used`: 0 no requests, 1 every request unpriced, 2 some priced)."""
    wide = max((max(abs(int(a.max())), abs(int(a.min()))) for a in (revenue, cost) if len(a)), default=0)
    ratios = [getattr(thresholds, name).as_integer_ratio() for name in ("healthy", "moderate", "at_risk")]
    scale = max(max(abs(n), d) for n, d in ratios)
    if revenue.dtype == object or cost.dtype == object or 2 * wide * scale >= SAFE:
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
    list of months the indexes refer to; None when the fast path does not apply.

    The months before `last_month` are reduced once and kept in memory (`_closed_history`) for as
    long as nothing they were read from changes (`walleta.generations`); the last month is read
    at every call (live usage lands there) and folded in (`_extend`)."""
    known = facts(store)
    start = first_data_month(store, known)
    if start is None or start > last_month:
        return pd.DataFrame(columns=["customer_id"]), []
    months = month_range(start, last_month)
    closed = _closed_history(store, fx, months[:-1], thresholds, known) if len(months) > 1 else _EMPTY_CLOSED
    current = _customer_months(store, fx, [last_month], thresholds, known)
    if closed is None or current is None:
        return None
    return _extend(closed, current, len(months) - 1), months


def first_data_month(store: Store, known: RollupFacts | None) -> str | None:
    """The first month with usage or revenue (None when there is neither); `known`:
    `revenue_rollup.facts(store)`."""
    first_usage = store.scalar("SELECT MIN(month) FROM rollup_customer_month")
    if known is not None:
        first_entry = known.first_entry_month
    else:
        first_start = store.scalar("SELECT MIN(period_start) FROM revenue_entries")
        first_entry = str(first_start)[:7] if first_start else None
    starts = [m for m in (first_usage, first_entry) if m]
    return min(starts) if starts else None


class CustomerMonths(NamedTuple):
    """Customer-month rows sorted by (customer code, month index); the first six fields are
    `_per_customer`'s arguments."""

    names: np.ndarray  # customer ids; `customer` indexes into it
    customer: np.ndarray
    month: np.ndarray  # index into the months read
    tier: np.ndarray  # index into _TIER_NAMES
    revenue: np.ndarray  # USD pico-dollars (exact: int64 or Python ints)
    cost: np.ndarray
    requests: np.ndarray
    unpriced_requests: np.ndarray


def _customer_months(store: Store, fx: FxTable | None, months: list[str], thresholds: object, known: RollupFacts | None) -> CustomerMonths | None:
    """Every customer-month with usage or revenue in `months` (a contiguous range), sorted by
    (customer, month): customer names, each row's customer code (into names) and month index
    (into `months`), tier code, revenue and cost (USD pico-dollars, exact). None when some rate
    is not a whole number of pico-dollars per minor unit."""
    fresh = known is not None  # revenue from its rollup, read with the usage (side by side)
    reads = _month_reads("rollup_customer_month", _USAGE_COLUMNS, months)
    if fresh:
        reads += _month_reads("rollup_revenue_month", _REVENUE_COLUMNS, months)
    parts = scan_many(store, reads)
    usage = _by_month(parts[:len(months)], _USAGE_COLUMNS)
    revenue = _to_usd(_by_month(parts[len(months):], _REVENUE_COLUMNS) if fresh else _entry_amounts(store, months), fx)
    if revenue is None:
        return None
    n_usage, size = len(usage), len(months)
    customers = np.concatenate([usage["customer_id"].to_numpy(dtype=object), revenue["customer_id"].to_numpy(dtype=object)])
    idx = np.concatenate([usage["month_index"].to_numpy(), revenue["month_index"].to_numpy()])
    codes, names = pd.factorize(customers)
    names = np.asarray(names, dtype=object)
    keys, inverse = np.unique(codes.astype(np.int64) * size + idx, return_inverse=True)
    usage_slot, revenue_slot = inverse[:n_usage], inverse[n_usage:]
    count = len(keys)
    cost_values = exact_ints(usage["cost_pico"].to_numpy()) if n_usage else np.zeros(0, dtype=np.int64)
    cost = np.zeros(count, dtype=cost_values.dtype)
    cost[usage_slot] = cost_values
    requests, unpriced = np.zeros(count, dtype=np.int64), np.zeros(count, dtype=np.int64)
    requests[usage_slot] = usage["requests"].to_numpy(dtype=np.int64)
    unpriced[usage_slot] = usage["unpriced_requests"].to_numpy(dtype=np.int64)
    used = np.where(requests == 0, 0, np.where(requests == unpriced, 1, 2))
    revenue_values = revenue["revenue"].to_numpy() if len(revenue) else np.zeros(0, dtype=np.int64)
    money = exact_sums(revenue_slot, count, exact_ints(revenue_values))
    unconverted = np.zeros(count, dtype=np.int64)
    if len(revenue):
        np.maximum.at(unconverted, revenue_slot, revenue["unconverted"].to_numpy(dtype=np.int64))
    customer, month = keys // size, keys % size
    tier = _tier_codes(money, cost, used, unconverted, thresholds)
    tier[names[customer] == UNATTRIBUTED] = _TIER_NAMES.index("unattributed")
    return CustomerMonths(names, customer, month, tier, money, cost, requests, unpriced)


def customer_month_rows(store: Store, fx: FxTable | None, first_month: str | None, last_month: str,
                        thresholds: object) -> pd.DataFrame | None:
    """`margins.monthly_customer_margins` from the two plain scans: one row per customer-month
    with usage or revenue in [first (default: the first month with data), last], sorted by
    (customer_id, month). None when some rate is not a whole number of pico-dollars per minor
    unit (the caller then takes the row-by-row path)."""
    columns = ["customer_id", "month", "revenue_pico", "ai_cost_pico", "margin_pico", "requests", "unpriced_requests", "tier"]
    known = facts(store)
    start = first_month or first_data_month(store, known)
    if start is None or start > last_month:
        return pd.DataFrame({c: pd.Series(dtype=np.int64 if c in ("requests", "unpriced_requests") else object) for c in columns})
    months = month_range(start, last_month)
    rows = _customer_months(store, fx, months, thresholds, known)
    if rows is None:
        return None
    ids = rows.names[rows.customer]
    order = np.lexsort((rows.month, pd.factorize(ids, sort=True)[0]))
    revenue, cost = rows.revenue[order].tolist(), rows.cost[order].tolist()
    return pd.DataFrame({
        "customer_id": object_column(ids[order]), "month": object_column(np.asarray(months, dtype=object)[rows.month[order]]),
        "revenue_pico": object_column(revenue), "ai_cost_pico": object_column(cost),
        "margin_pico": object_column([r - c for r, c in zip(revenue, cost)]),
        "requests": rows.requests[order], "unpriced_requests": rows.unpriced_requests[order],
        "tier": object_column(np.asarray(_TIER_NAMES, dtype=object)[rows.tier[order]]),
    })


_HISTORY_COLUMNS = ["customer_id", "first_idx", "last_idx", "last_gap", *(f"miss_{t}" for t in HISTORY_TIERS),
                    "margin_now", "margin_before", "revenue_now", "revenue_before"]
_EMPTY_CLOSED = pd.DataFrame({c: pd.Series(dtype=object if c in ("customer_id", "margin_now", "margin_before", "revenue_now", "revenue_before") else float)
                              for c in _HISTORY_COLUMNS})
_CACHE_NAME = "tier_history"


def _closed_history(store: Store, fx: FxTable | None, months: list[str], thresholds: object,
                    known: RollupFacts | None) -> pd.DataFrame | None:
    """`_per_customer` over `months` (the months before the period's last), remembered while
    nothing it was read from changes (`closed_months.remember`; not while the revenue rollup is
    stale)."""

    def compute() -> pd.DataFrame | None:
        rows = _customer_months(store, fx, months, thresholds, known)
        if rows is None:
            return None
        return _per_customer(*rows[:6], len(months) - 1) if len(rows.customer) else _EMPTY_CLOSED

    args = (months[0], months[-1], _threshold_key(thresholds), closed_months.fx_key(fx))
    return closed_months.remember(store, _CACHE_NAME, args, next_month(months[-1]), compute, revenue=True)


def _threshold_key(thresholds: object) -> tuple[object, ...]:
    return tuple(getattr(thresholds, name).as_integer_ratio() for name in ("healthy", "moderate", "at_risk"))


def _extend(closed: pd.DataFrame, current: CustomerMonths, last: int) -> pd.DataFrame:
    """The `_per_customer` frame of months 0..last from the frame of months 0..last-1 (`closed`)
    and the customer-months of month `last` (`current`, month index 0): the same values as
    reducing every month at once."""
    names, customer, tier, revenue, cost = current.names, current.customer, current.tier, current.revenue, current.cost
    ids, (before, now) = union_positions([closed["customer_id"], pd.Series(names[customer], dtype=object)], listed=2)
    was, active = before >= 0, now >= 0

    def earlier(column: str) -> np.ndarray:
        return aligned(closed[column].to_numpy(dtype=float), before, np.nan)

    def money(values: np.ndarray, position: np.ndarray) -> list[int]:
        return aligned(values, position, 0).tolist()  # Python ints (int64 items become ints)

    tier_now = np.full(len(ids), -1)
    tier_now[active] = tier[now[active]]
    last_idx = earlier("last_idx")
    out: dict[str, object] = {"customer_id": object_column(ids), "first_idx": np.where(was, earlier("first_idx"), float(last)),
                              "last_idx": np.where(active, float(last), last_idx),
                              "last_gap": np.where(was & active & (last_idx < last - 1), float(last - 1), earlier("last_gap"))}
    for name in HISTORY_TIERS:
        out[f"miss_{name}"] = np.where(active & (tier_now != _TIER_NAMES.index(name)), float(last), earlier(f"miss_{name}"))
    margin = revenue.astype(object) - cost.astype(object) if revenue.dtype == object or cost.dtype == object else revenue - cost
    out["margin_now"] = object_column(money(margin, now))
    out["margin_before"] = object_column(money(closed["margin_now"].to_numpy(dtype=object), before))
    out["revenue_now"] = object_column(money(revenue, now))
    out["revenue_before"] = object_column(money(closed["revenue_now"].to_numpy(dtype=object), before))
    return pd.DataFrame(out, copy=False)


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
    frame = pd.DataFrame({k: object_column(v) if k == "customer_id" else v for k, v in out.items()
                          if k.startswith(("customer", "first", "last", "miss"))})
    for label in ("margin_now", "margin_before", "revenue_now", "revenue_before"):
        frame[label] = pd.Series(out[label], dtype=object)
    return frame


def since_and_change(frame: pd.DataFrame, history: pd.DataFrame, months: list[str], last_month: str) -> pd.DataFrame:
    """Add tier_since and the month-over-month columns to a period frame (customer_id, tier).

    Vectorised over customers: month indexes as float arrays (NaN = none), the money columns
    looked up by position as Python ints (no float on the money path)."""
    from .display import pct_of_positive

    last = len(months) - 1 if months and months[-1] == last_month else None
    n = len(frame)
    position = pd.Index(history["customer_id"]).get_indexer(frame["customer_id"]) if len(history) else np.full(n, -1)

    def index_column(column: str) -> np.ndarray:
        values = pd.to_numeric(history[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan) if column in history else np.zeros(0)
        return aligned(values, position, np.nan)

    def money_column(column: str) -> list[int]:
        values = history[column].to_numpy(dtype=object) if column in history else np.zeros(0, dtype=object)
        return aligned(values, position, 0).tolist()  # Python ints (`_per_customer`)

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
        # Inactive: months without rows are inactive too, so the run starts after the last month
        # whose tier was not inactive (a month whose entries net to zero is inactive, not activity).
        start = np.where(tiers == "inactive", np.where(np.isnan(miss), 0, miss + 1), bound + 1)
        valid = (start <= last) & ((tiers == "inactive") | ~no_history)
        labels = np.array([*months, None], dtype=object)
        since = labels[np.where(valid, np.nan_to_num(start, nan=len(months)), len(months)).astype(np.int64)].tolist()
    out = frame.copy(deep=False)  # new columns only: the caller's frame is left as it was
    out["tier_since"] = pd.Series(since, index=frame.index, dtype=object)
    values = {c: money_column(c) for c in ("margin_now", "margin_before", "revenue_now", "revenue_before")}
    out["last_month"] = last_month
    out["last_month_margin_pico"] = pd.Series(values["margin_now"], index=frame.index, dtype=object)
    out["prev_month_margin_pico"] = pd.Series(values["margin_before"], index=frame.index, dtype=object)
    out["mom_margin_change_pico"] = pd.Series([a - b for a, b in zip(values["margin_now"], values["margin_before"])], index=frame.index, dtype=object)
    now = pct_of_positive(values["margin_now"], values["revenue_now"])
    before = pct_of_positive(values["margin_before"], values["revenue_before"])
    out["mom_margin_pct_change"] = pd.Series(
        [a - b if a is not None and b is not None else None for a, b in zip(now, before)], index=frame.index, dtype=object,
    )
    return out
