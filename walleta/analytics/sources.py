"""The inputs of every analytics view, each read from a small table (never raw usage events).

- `revenue_by_customer_month`: recognised revenue per customer, month and currency, with its USD
  value. The recognition rule is `walleta.revenue.monthly_revenue` (spread over the service
  period by days, kinds that are not revenue left out). While the revenue rollup
  (`walleta.revenue_rollup`) is fresh, this is one key range of it; while it is stale, entries
  whose service period lies in one month are summed in SQL (the rule gives them to that month
  whole) and only multi-month entries (annual plans) go through `monthly_revenue` row by row.
- USD conversion is per (customer, month, currency) with the explicit FX table; a currency
  without a rate is never summed in: its amount is reported as unconverted.
- `customer_attributes`: name, plan and signup date from the customers table.
- `usage_by_customer`: rollup sums per customer (and optionally month) for a month range.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Sequence

import numpy as np
import pandas as pd

from ..fx import FxTable
from ..money import PICO_PER_USD, minor_to_major, minor_unit_exponent
from ..revenue import monthly_revenue
from ..revenue_rollup import MULTI_MONTH_RANGE, SINGLE_MONTH, counted_kinds, is_fresh
from ..schema import TOKEN_COLUMNS, UNATTRIBUTED
from ..store import Store
from ..wide_sums import is_overflow
from .columns import INT, TEXT, object_column, scan_frame
from .exact import SAFE, exact_ints, exact_sums
from .period import month_end

__all__ = [
    "read",
    "revenue_by_customer_month",
    "revenue_by_customer",
    "revenue_by_month",
    "customer_attributes",
    "usage_by_customer",
    "usage_sql",
    "UNKNOWN",
    "NO_PLAN",
]

def read(store: Store, statement: str, params: Sequence[object] = ()) -> pd.DataFrame:
    """Like `Store.query`, but columns are built directly: integers as int64 (object when a
    value is NULL or beyond int64), text as plain object columns. Analytics loop over and merge on
    text keys a lot; pandas' default Arrow-backed strings make those steps several times slower
    (and converting to them costs more than the query), so text columns are built as object
    Series explicitly. Columns are taken one at a time from the rows (`zip(*rows)` over ~100k
    rows is several times slower)."""
    names, rows = store.fetch(statement, params)
    if not rows:
        return pd.DataFrame({n: pd.Series(dtype=object) for n in names})
    data: dict[str, object] = {}
    for position, name in enumerate(names):
        values = [row[position] for row in rows]
        sample = values[0]
        if type(sample) is int:
            try:
                data[name] = np.array(values, dtype=np.int64)
                continue
            except (OverflowError, TypeError, ValueError):
                pass
        if isinstance(sample, float):
            data[name] = np.array(values)
        else:
            data[name] = object_column(values)
    return pd.DataFrame(data, copy=False)


UNKNOWN = "(unknown)"
NO_PLAN = "(no plan)"

_END = "CASE WHEN period_end IS NULL OR period_end = '' OR period_end < period_start THEN period_start ELSE period_end END"
# Which entries span several months, in SQL (see `walleta.revenue_rollup`). In WHERE clauses the
# cheap period_start range comes first: SQLite evaluates the terms in order, so the string work
# is done only for entries in range (2-3x faster per query).
_SINGLE_MONTH_RULE = f"SUBSTR(period_start, 1, 7) = SUBSTR({_END}, 1, 7)"  # the definition; revenue_rollup's tests equal it
REVENUE_COLUMNS = ["customer_id", "month", "currency", "amount_minor", "revenue_pico"]


def _bounds(first_month: str | None, last_month: str | None) -> tuple[str, str, str, str]:
    lo = first_month or "0000-01"
    hi = last_month or "9999-12"
    return lo, hi, f"{lo}-01", month_end(hi).isoformat() if last_month else "9999-12-31"


def _all_entries(store: Store, lo_day: str, hi_day: str) -> pd.DataFrame:
    return read(store, 
        "SELECT customer_id, period_start, period_end, amount_minor, currency, kind FROM revenue_entries "
        f"WHERE period_start <= ? AND {_END} >= ?",
        [hi_day, lo_day],
    )


_GROUP_SQL = {"customer_id": "customer_id", "month": "SUBSTR(period_start, 1, 7)"}


def _revenue_rows(store: Store, first_month: str | None, last_month: str | None, by: Sequence[str]) -> pd.DataFrame:
    """Recognised revenue in minor units per (*by, currency), by ⊆ (customer_id, month); from
    the revenue rollup when it is fresh (unsorted), else from the entries (sorted)."""
    lo, hi, lo_day, hi_day = _bounds(first_month, last_month)
    by = list(by)
    if is_fresh(store):
        columns = [*((k, k, TEXT) for k in by), ("currency", "currency", TEXT), ("amount_minor", "amount_minor", INT)]
        if "customer_id" in by and ("month" in by or lo == hi):  # the rollup's key: already one row per (*by, currency)
            return scan_frame(store, columns, "FROM rollup_revenue_month WHERE month >= ? AND month <= ?", [lo, hi])
        keys = "".join(f"{k}, " for k in by)
        grouped = (f"SELECT {keys}currency, CAST(SUM(amount_minor) AS BIGINT) AS amount_minor FROM rollup_revenue_month "
                   f"WHERE month >= ? AND month <= ? GROUP BY {keys}currency")
        return scan_sums(store, columns, grouped, [lo, hi])
    select = "".join(f"{_GROUP_SQL[k]} AS {k}, " for k in by)
    group = "".join(f"{_GROUP_SQL[k]}, " for k in by)
    single = read(store, 
        f"SELECT {select}UPPER(currency) AS currency, kind, CAST(SUM(amount_minor) AS BIGINT) AS amount_minor FROM revenue_entries "
        f"WHERE period_start >= ? AND period_start <= ? AND {SINGLE_MONTH} GROUP BY {group}UPPER(currency), kind",
        [lo_day, hi_day],
    )
    counted, identity = counted_kinds(tuple(sorted(set(single["kind"]))) if not single.empty else ())
    parts, spread = [], []
    if not identity:
        spread.append(monthly_revenue(_all_entries(store, lo_day, hi_day)))
    else:
        if not single.empty:
            parts.append(single[single["kind"].isin(counted)])
        multi = read(store, 
            "SELECT customer_id, period_start, period_end, amount_minor, currency, kind FROM revenue_entries "
            f"WHERE {MULTI_MONTH_RANGE}",
            [hi_day, lo_day],
        )
        if not multi.empty:
            spread.append(monthly_revenue(multi))
    parts += [frame[(frame["month"] >= lo) & (frame["month"] <= hi)] for frame in spread if not frame.empty]
    columns = [*by, "currency", "amount_minor"]
    parts = [part[columns] for part in parts if not part.empty]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    frame = pd.concat(parts, ignore_index=True)
    # Keys as plain object arrays: Arrow-backed strings (from the recognition rule's frame) make
    # every later per-row step (dicts, isin, merges) several times slower.
    out = frame.astype({"amount_minor": np.int64}).groupby([*by, "currency"], as_index=False, sort=True)["amount_minor"].sum()
    for key in [*by, "currency"]:
        out[key] = pd.Series(out[key].to_numpy(dtype=object), index=out.index, dtype=object)
    return out


def revenue_by_customer_month(
    store: Store, fx: FxTable | None, first_month: str | None = None, last_month: str | None = None
) -> pd.DataFrame:
    """Recognised revenue per (customer_id, month, currency) for months [first, last].

    Columns: customer_id, month, currency, amount_minor (int, the currency's minor units),
    revenue_pico (Python int USD pico-dollars, or None when `fx` has no rate for the currency).
    """
    frame = _revenue_rows(store, first_month, last_month, ["customer_id", "month"])
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REVENUE_COLUMNS})
    frame = frame.sort_values(["customer_id", "month", "currency"], ignore_index=True)
    frame["revenue_pico"] = to_usd_pico(frame["amount_minor"], frame["currency"], fx)
    return frame


def integral_factor(fx: FxTable | None, currency: str) -> int | None:
    """USD pico-dollars per minor unit of `currency` when that is a whole number (any rate with
    up to ten decimals for a two-decimal currency), else None (no rate, or a finer rate)."""
    if fx is None or not fx.has(currency):
        return None
    factor = fx.rates[currency.upper()] * PICO_PER_USD / (Decimal(10) ** minor_unit_exponent(currency))
    return int(factor) if factor == factor.to_integral_value() else None


def revenue_totals(
    store: Store, fx: FxTable | None, first_month: str | None, last_month: str | None, by: Sequence[str] = ("customer_id",)
) -> pd.DataFrame:
    """Recognised revenue over months [first, last] per `by` (⊆ customer_id, month) in USD.

    Columns: *by, revenue_pico (Python int, converted currencies only), unconverted_revenue,
    unconverted_currencies (see `revenue_by_customer`). Conversion is per (customer, month,
    currency); when every rate is a whole number of pico-dollars per minor unit this equals one
    conversion per (*by, currency), which is what is computed (summed in SQL first)."""
    by = list(by)
    rows = _revenue_rows(store, first_month, last_month, by)
    factors = whole_pico_factors(fx, rows["currency"])
    if factors is None:
        return revenue_by_customer(revenue_by_customer_month(store, fx, first_month, last_month), by)
    if len(by) == 1 and not rows.empty:
        return _totals_by_key(rows, by[0], factors)
    rows["revenue_pico"] = to_usd_pico(rows["amount_minor"], rows["currency"], fx)
    return revenue_by_customer(rows, by)


def whole_pico_factors(fx: FxTable | None, currencies: pd.Series) -> dict[str, int] | None:
    """Whole pico-dollars per minor unit of each of the currencies that has a rate (`integral_factor`);
    None when some rate is not a whole number of them (then convert row by row with the FX table)."""
    factors = {str(c): integral_factor(fx, str(c)) for c in pd.unique(currencies.to_numpy(dtype=object))}
    if any(f is None and fx is not None and fx.has(c) for c, f in factors.items()):
        return None
    return {c: f for c, f in factors.items() if f is not None}


def convert_minor(codes: np.ndarray, amounts: np.ndarray, factors: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(USD pico-dollars, has a rate) per row: amount x `factors[currency]` (whole pico-dollars
    per minor unit), an exact integer product (int64 when it cannot overflow, else Python ints);
    0 for a currency without a factor. `amounts`: int64 or Python ints (`exact_ints`)."""
    factor = np.zeros(len(codes), dtype=np.int64)
    has_rate = np.zeros(len(codes), dtype=bool)
    for code, value in factors.items():
        chosen = codes == code
        factor[chosen] = value
        has_rate |= chosen
    if not len(amounts):
        return np.zeros(0, dtype=np.int64), has_rate
    largest = max(abs(int(amounts.max())), abs(int(amounts.min()))) * max(factors.values(), default=0)
    if amounts.dtype == object or largest >= SAFE:
        return exact_ints([int(a) * int(f) for a, f in zip(amounts.tolist(), factor.tolist())]), has_rate
    return amounts * factor, has_rate


def _totals_by_key(rows: pd.DataFrame, key: str, factors: dict[str, int]) -> pd.DataFrame:
    """`revenue_by_customer` of `rows` (columns key, currency, amount_minor) converted with
    whole-pico `factors`, summed per key with numpy (exact): the same frame, sorted by key."""
    codes, keys = pd.factorize(rows[key].to_numpy(dtype=object), sort=True)
    amounts = exact_ints(rows["amount_minor"].to_numpy())
    usd, has_rate = convert_minor(rows["currency"].to_numpy(dtype=object), amounts, factors)
    totals = exact_sums(codes, len(keys), usd)
    out = pd.DataFrame({key: object_column(keys), "revenue_pico": object_column(totals.tolist()),
                        "unconverted_revenue": object_column(np.full(len(keys), "", dtype=object)),
                        "unconverted_currencies": object_column(np.full(len(keys), "", dtype=object))})
    if has_rate.all():
        return out
    missing = rows[~has_rate].assign(revenue_pico=None)
    text = revenue_by_customer(missing, [key]).set_index(key)
    for column in ("unconverted_revenue", "unconverted_currencies"):
        out[column] = object_column(text[column].reindex(out[key]).fillna("").to_numpy(dtype=object))
    return out


def to_usd_pico(amount_minor: pd.Series, currency: pd.Series, fx: FxTable | None) -> pd.Series:
    """Minor units -> USD pico-dollars per row (Python ints; None without a rate).

    Equal to `fx.to_usd_pico` row by row; when a rate times 10^12 is a whole number of
    pico-dollars per minor unit (any rate with up to ten decimals) it is one integer product."""
    out = np.full(len(amount_minor), None, dtype=object)
    amounts = amount_minor.to_numpy()
    codes = currency.to_numpy(dtype=object)
    for code in pd.unique(codes):
        rows = codes == code
        if fx is None or not fx.has(code):
            continue
        factor = fx.rates[code.upper()] * PICO_PER_USD / (Decimal(10) ** minor_unit_exponent(code))
        if factor == factor.to_integral_value():
            out[rows] = amounts[rows].astype(object) * int(factor)
        else:
            out[rows] = np.array([fx.to_usd_pico(int(a), code) for a in amounts[rows]], dtype=object)
    return pd.Series(out, index=amount_minor.index, dtype=object)


def _unconverted_text(group: pd.DataFrame) -> str:
    parts = [f"{c} {minor_to_major(int(a), c)}" for c, a in zip(group["currency"], group["amount_minor"]) if a != 0]
    return ", ".join(parts)


def group_sum(frame: pd.DataFrame, keys: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
    """Exact group sums of integer (or Python-int object) columns, sorted by `keys`.

    Columns that fit int64 are summed in int64 when no group can overflow; otherwise each value
    is split into a high and a low 32-bit half, both halves are summed in int64 and recombined as
    Python ints (exact for groups of up to 2^31 rows). Values beyond int64 are summed as Python
    ints. None/NA count as 0. Money columns come back as Python ints (object dtype)."""
    keys, columns = list(keys), list(columns)
    table = pd.DataFrame({k: frame[k] for k in keys}, index=frame.index)
    plans: dict[str, str] = {}
    for column in columns:
        values = frame[column]
        if values.dtype == object or isinstance(values.dtype, pd.api.extensions.ExtensionDtype):
            values = _int64_or_python(values)
        else:
            values = values.fillna(0).astype(np.int64)
        if values.dtype == object:
            plans[column] = "python"
            table[column] = values
        elif len(values) and max(abs(int(values.max())), abs(int(values.min()))) * len(values) >= 2**62:
            plans[column] = "split"
            raw = values.to_numpy(dtype=np.int64)
            table[f"{column}__hi"] = raw >> 32
            table[f"{column}__lo"] = raw & 0xFFFFFFFF
        else:
            plans[column] = "int64"
            table[column] = values
    if not keys:
        return pd.DataFrame({c: [_total(table, c, plans[c])] for c in columns})
    grouped = table.groupby(keys, sort=True)
    fast = [c for c in columns if plans[c] == "int64"] + [f"{c}__{h}" for c in columns if plans[c] == "split" for h in ("hi", "lo")]
    out = grouped[fast].sum() if fast else grouped.size().to_frame("_n")[[]]
    for column in columns:
        if plans[column] == "split":
            hi = out.pop(f"{column}__hi").to_numpy().astype(object)
            lo = out.pop(f"{column}__lo").to_numpy().astype(object)
            out[column] = pd.Series(hi * 2**32 + lo, index=out.index, dtype=object)
        elif plans[column] == "python":
            out[column] = grouped[column].agg(lambda v: sum(int(x) for x in v))
    out = out.reset_index()[[*keys, *columns]]
    for key in keys:  # keep object keys object (pandas would infer Arrow-backed strings)
        if frame[key].dtype == object and out[key].dtype != object:
            out[key] = pd.Series(out[key].to_numpy(dtype=object), index=out.index, dtype=object)
    return out


def _total(table: pd.DataFrame, column: str, plan: str) -> int:
    if plan == "split":
        return int(table[f"{column}__hi"].sum()) * 2**32 + int(table[f"{column}__lo"].sum())
    return sum(int(v) for v in table[column])


def _int64_or_python(values: pd.Series) -> pd.Series:
    """An integer column with None/NA as 0: int64 when every value fits int64, else Python ints.
    (Whether sums can overflow is `group_sum`'s concern.)"""
    raw = values.to_numpy(dtype=object, na_value=0) if isinstance(values.dtype, pd.api.extensions.ExtensionDtype) else values.to_numpy(dtype=object)
    missing = pd.isna(raw)
    if missing.any():
        raw = raw.copy()
        raw[missing] = 0
    try:
        return pd.Series(raw.astype(np.int64), index=values.index)
    except OverflowError:
        return pd.Series([int(v) for v in raw], index=values.index, dtype=object)


def revenue_by_customer(monthly: pd.DataFrame, keys: Sequence[str] = ("customer_id",)) -> pd.DataFrame:
    """Sum `revenue_by_customer_month` rows per `keys`.

    Columns: *keys, revenue_pico (Python int: converted currencies only), unconverted_revenue
    (text such as 'CHF 120.00', '' when everything converted), unconverted_currencies."""
    keys = list(keys)
    empty_columns = {"revenue_pico": pd.Series(dtype=object), "unconverted_revenue": pd.Series(dtype=object),
                     "unconverted_currencies": pd.Series(dtype=object)}
    if monthly.empty:
        return pd.DataFrame({**{k: pd.Series(dtype=object) for k in keys}, **empty_columns})
    out = group_sum(monthly.assign(_one=1), keys, ["revenue_pico"])
    out["revenue_pico"] = pd.Series(out["revenue_pico"].tolist(), index=out.index, dtype=object)
    missing = monthly[monthly["revenue_pico"].isna()]
    if missing.empty:
        out["unconverted_revenue"] = ""
        out["unconverted_currencies"] = ""
        return out
    per_currency = missing.groupby([*keys, "currency"], as_index=False, sort=True)["amount_minor"].sum()
    per_currency = per_currency[per_currency["amount_minor"] != 0]
    text = {}
    codes = {}
    for group, rows in per_currency.groupby(keys, sort=True):
        key = group if isinstance(group, tuple) else (group,)
        text[key] = _unconverted_text(rows)
        codes[key] = ", ".join(sorted(set(rows["currency"])))
    index = [tuple(r) for r in out[keys].itertuples(index=False, name=None)]
    out["unconverted_revenue"] = [text.get(k, "") for k in index]
    out["unconverted_currencies"] = [codes.get(k, "") for k in index]
    return out


def revenue_by_month(store: Store, fx: FxTable | None, first_month: str | None, last_month: str | None) -> pd.DataFrame:
    """Revenue per month (USD pico, converted currencies only) with unconverted amounts as text."""
    return revenue_by_customer(revenue_by_customer_month(store, fx, first_month, last_month), ["month"])


def customer_attributes(store: Store) -> pd.DataFrame:
    """customer_id, name, plan ('(no plan)' when empty), signup_date ('' when unknown)."""
    frame = scan_frame(store, [(c, c, TEXT) for c in ("customer_id", "name", "plan", "signup_date")], "FROM customers")
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ("customer_id", "name", "plan", "signup_date")})
    plans = frame["plan"].to_numpy(dtype=object)
    frame["plan"] = object_column(np.where(plans == "", NO_PLAN, plans))
    return frame


USAGE_MEASURES = ("requests", *TOKEN_COLUMNS, "cost_pico", "unpriced_requests", "unpriced_tokens")


def usage_sql(measures: Sequence[str] = USAGE_MEASURES) -> str:
    """`CAST(SUM(m) AS BIGINT) AS m, ...` for the measures named."""
    return ", ".join(f"CAST(SUM({m}) AS BIGINT) AS {m}" for m in measures)


def usage_by_customer(
    store: Store,
    first_month: str,
    last_month: str,
    *,
    by_month: bool = False,
    measures: Sequence[str] = USAGE_MEASURES,
    include_unattributed: bool = True,
) -> pd.DataFrame:
    """Rollup sums per customer (and month) from `rollup_customer_month` for [first, last]."""
    keys = ["customer_id", "month"] if by_month else ["customer_id"]
    where = "" if include_unattributed else " AND customer_id <> ?"
    params: list[str] = [first_month, last_month] + ([] if include_unattributed else [UNATTRIBUTED])
    columns = [(k, k, TEXT) for k in keys] + [(m, m, INT) for m in measures]
    if by_month or first_month == last_month:  # the rollup's key: already one row per key
        return scan_frame(store, columns, f"FROM rollup_customer_month WHERE month >= ? AND month <= ?{where}", params)
    grouped = (f"SELECT {', '.join(keys)}, {usage_sql(measures)} FROM rollup_customer_month "
               f"WHERE month >= ? AND month <= ?{where} GROUP BY {', '.join(keys)}")
    return scan_sums(store, columns, grouped, params)


def scan_sums(store: Store, columns: Sequence[tuple[str, str, str]], grouped: str, params: Sequence[object]) -> pd.DataFrame:
    """`scan_frame` of `columns` (plain column names) over the rows of the grouped statement
    `grouped`; when a sum passes int64, its rows are read in the wide form instead (`Store.fetch`,
    `walleta.wide_sums`): integer columns then hold Python ints where needed (object dtype)."""
    try:
        return scan_frame(store, columns, f"FROM ({grouped}) AS grouped_sums", params)
    except Exception as exc:
        if not is_overflow(exc):
            raise
        return read(store, grouped, params)[[name for name, _, _ in columns]]
