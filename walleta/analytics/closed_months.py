"""What a page derives from closed months, kept in memory while nothing it was read from changes.

A page re-rendered while usage flows into the current month should not re-read a year of rollups.
`remember(store, name, args, before_month, compute)` returns `compute()` (which must read only
months before `before_month`) from memory for as long as `walleta.generations.fingerprint(store,
before_month)` and the `extra` stamps are unchanged. Stamps are read BEFORE computing, so a write
during the computation can only make the next call compute again, never hide the write. Results
are shared between callers: frames come back as shallow copies (copy-on-write), lists must be
treated as read-only.

Used for: the since-when history of the months before the period's last (`tier_history`), the
closed days and months of the trends and the monthly summary (`trends`), and whole results over
periods of closed months, i.e. ending before the last month with usage (`remember_closed`:
customer margins, feature and plan breakdowns, reconciliation lines). Inputs other than the
rollups are stamped too: the revenue rollup's counter (nothing is remembered while it is stale),
a digest of the customers table where names or plans are shown, of the billed lines for
reconciliation (`columns_digest` of the rows it then computes from), and the FX rates, thresholds and catalog as arguments. Entries are per database
(URL and store id), name and arguments; at most `SIZE` entries and about `CELLS` values are
kept (least recently used first out).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable, TypeVar

import numpy as np
import pandas as pd

from .. import generations
from ..catalog import Catalog
from ..fx import FxTable
from ..revenue_rollup import is_fresh
from ..store import Store
from .period import next_month

__all__ = ["remember", "remember_closed", "columns_digest", "catalog_key", "customers_digest", "fx_key", "cache_info", "cache_clear",
           "SIZE", "CELLS"]

T = TypeVar("T")
SIZE = 64  # entries at most
CELLS = 2_000_000  # values held at most (frame cells, list items x width): ~100-200 MB
_CACHE: "OrderedDict[tuple[Hashable, ...], tuple[tuple[Hashable, ...], Any, int]]" = OrderedDict()
_LOCK = threading.Lock()
_STATS: dict[str, dict[str, int]] = {}


def remember(store: Store, name: str, args: tuple[Hashable, ...], before_month: str, compute: Callable[[], T], *,
             extra: Callable[[Store], Hashable] | None = None, revenue: bool = False) -> T:
    """`compute()`, from memory when the same (database, `name`, `args`) was computed while every
    month before `before_month` (and `extra(store)`, e.g. `customers_digest`) looked as it does
    now. `revenue=True`: the result reads revenue, so it is computed every time while the revenue
    rollup is stale (revenue then comes from the entries, which the counters do not cover); so is
    everything on a database without a store id."""
    stamp = generations.fingerprint(store, before_month) if not revenue or is_fresh(store) else None
    if stamp is None:
        _count(name, "misses")
        return compute()
    if extra is not None:
        stamp = (*stamp, extra(store))
    key = (store.url, name, args)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] == stamp:
            _CACHE.move_to_end(key)
            _STATS.setdefault(name, {"hits": 0, "misses": 0})["hits"] += 1
            return _shared(hit[1])
    _count(name, "misses")
    value = compute()
    with _LOCK:
        _CACHE[key] = (stamp, value, _cells(value))
        _CACHE.move_to_end(key)
        while len(_CACHE) > SIZE or (len(_CACHE) > 1 and sum(entry[2] for entry in _CACHE.values()) > CELLS):
            _CACHE.popitem(last=False)
    return _shared(value)


def _cells(value: object) -> int:
    """About how many values `value` holds (for the memory bound)."""
    if isinstance(value, pd.DataFrame):
        return len(value) * max(len(value.columns), 1)
    if isinstance(value, list):
        return len(value) * (len(value[0]) if value and isinstance(value[0], tuple) else 1)
    return 1


def _shared(value: T) -> T:
    """A remembered frame as a new frame over the same data: with pandas' copy-on-write, a
    caller that adds or changes columns or values changes its own copy, never the memory."""
    return value.copy(deep=False) if isinstance(value, pd.DataFrame) else value  # type: ignore[return-value]


def remember_closed(store: Store, name: str, args: tuple[Hashable, ...], last_month: str, compute: Callable[[], T], *,
                    extra: Callable[[Store], Hashable] | None = None, revenue: bool = False) -> T:
    """`remember` for a result over months up to `last_month`, when that month is closed (before
    the last month with usage); a period reaching the live month is computed every time."""
    latest = store.scalar("SELECT MAX(month) FROM rollup_customer_month")
    if latest is None or last_month >= latest:
        return compute()
    return remember(store, name, args, next_month(last_month), compute, extra=extra, revenue=revenue)


def _count(name: str, outcome: str) -> None:
    with _LOCK:
        _STATS.setdefault(name, {"hits": 0, "misses": 0})[outcome] += 1


def fx_key(fx: FxTable | None) -> Hashable:
    """An FX table as a cache argument (its rates)."""
    return None if fx is None else tuple(sorted(fx.rates.items()))


def catalog_key(catalog: Catalog) -> Hashable:
    """A price catalog as a cache argument: a digest of every price row, alias and setting."""
    text = repr((catalog.as_of, catalog.long_context_threshold, sorted(catalog.aliases.items()), catalog.rows))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def columns_digest(columns: dict[str, np.ndarray]) -> str:
    """A digest of rows given as named columns (text, int64 or Python ints), in their order:
    for results that compare with rows read by the caller (reconciliation stamps with the bill
    rows it then computes from, so they are read once). Text values are joined with U+001F,
    columns with U+001E; two different sets of rows give the same text only through values
    holding those characters (or, for the order, rows in another order: one needless
    recomputation)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, values in columns.items():
        digest.update(f"{name}:{len(values)}:".encode())
        if values.dtype == np.int64:
            digest.update(np.ascontiguousarray(values).astype("<i8", copy=False).tobytes())
        else:
            items = values.tolist()
            try:
                text = "\x1f".join(items)
            except TypeError:  # not all text (e.g. Python ints)
                text = "\x1f".join(map(str, items))
            digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def customers_digest(store: Store) -> str:
    """A digest of every customer's id, name, plan and signup date (for results that show or group
    by them): any change to those columns of the customers table changes it, whoever made it."""
    return _table_digest(store, "customers", ("customer_id", "name", "plan", "signup_date"), "1 = 1", [])


def _table_digest(store: Store, table: str, fields: tuple[str, ...], where: str, params: list[str]) -> str:
    """blake2b of the rows' fields (U+001F between fields, U+001E between rows), concatenated by
    the database in one value. Rows come in the database's scan order (sorted on PostgreSQL): the
    same rows in another order only give another digest, i.e. one needless recomputation. (Two
    different tables could give the same text only through values holding those two control
    characters.)"""
    sep = "chr" if store.dialect == "postgresql" else "char"
    line = f" || {sep}(31) || ".join(f"COALESCE({f}, '')" for f in fields)
    if store.dialect == "postgresql":
        statement = f"SELECT string_agg({line}, chr(30) ORDER BY {line}) FROM {table} WHERE {where}"
    else:
        statement = f"SELECT group_concat({line}, char(30)) FROM {table} WHERE {where}"
    text = store.scalar(statement, params) or ""
    return hashlib.blake2b(str(text).encode(), digest_size=16).hexdigest()


def cache_info(name: str | None = None) -> dict[str, int]:
    """Hits and misses (computations, cached or not) for `name`, or summed over every name, and
    the entries held (for `name`, or all)."""
    with _LOCK:
        chosen = [s for n, s in _STATS.items() if name is None or n == name]
        entries = sum(1 for key in _CACHE if name is None or key[1] == name)
        return {"hits": sum(s["hits"] for s in chosen), "misses": sum(s["misses"] for s in chosen), "entries": entries}


def cache_clear() -> None:
    """Forget every remembered result (and reset the counters)."""
    with _LOCK:
        _CACHE.clear()
        _STATS.clear()
