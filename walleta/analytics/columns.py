"""Read a few columns of many rows as numpy arrays, fast (issue 6, Features page speed).

`sources.read` builds one Python tuple per row (the DBAPI's fetchall), which costs about a
microsecond per value: ~180 ms for the ~100k (customer, feature) rows of one month at 10M events.
On SQLite, `scan` instead asks for ONE row: each column concatenated with `group_concat` in a
single aggregate query (SQLite feeds every row to all the aggregates in turn, so the i-th item of
each column comes from the same row), then splits the text and parses the integers (exactly:
`_parse_ints`). About 3x cheaper than the row read, SQL included.

Safety: text is split on U+001F (unit separator) and the number of parts must equal COUNT(*), so
a value containing the separator sends the call to the plain row-by-row read, which returns the
same arrays; so does an integer column holding anything but integers, or text over SQLite's length
limit (1 GB by default). PostgreSQL always uses the row-by-row read. NULL reads as 0 (integers)
or '' (text).
"""

from __future__ import annotations

import sqlite3
from typing import Sequence

import numpy as np
import pandas as pd

from ..store import Store
from . import parallel_reads

__all__ = ["scan", "scan_many", "scan_frame", "object_column", "union_positions", "aligned", "INT", "TEXT"]

INT, TEXT = "int", "text"
_TEXT_SEP = "\x1f"
_INT64_MAX = np.iinfo(np.int64).max


def scan(store: Store, columns: Sequence[tuple[str, str, str]], source: str, params: Sequence[object] = ()) -> dict[str, np.ndarray]:
    """Rows of `SELECT <expressions> <source>` as one array per column, all in the same row order.

    `columns`: (name, SQL expression, INT or TEXT). `source`: 'FROM ... WHERE ...' (no GROUP BY or
    ORDER BY; the row order is the database's scan order). INT columns come back as int64 arrays
    (object arrays of Python ints if a value does not fit int64), TEXT columns as object arrays of
    str."""
    if store.dialect == "sqlite":
        try:
            fast = _scan_concatenated(store, columns, source, params)
        except (sqlite3.DataError, ValueError, OverflowError):  # DataError: the text is over SQLite's length limit
            fast = None
        if fast is not None:
            return fast
    return _scan_rows(store, columns, source, params)


def scan_many(store: Store, reads: Sequence[tuple[Sequence[tuple[str, str, str]], str, Sequence[object]]]) -> list[dict[str, np.ndarray]]:
    """`scan` of each (columns, source, params) of `reads`, in order. On SQLite the one-row
    statements run side by side (`parallel_reads.fetch_all`: the database builds one while
    Python parses another), then each is parsed as `scan` does, with the same fallbacks."""
    if store.dialect != "sqlite" or len(reads) < 2:
        return [scan(store, columns, source, params) for columns, source, params in reads]
    try:
        found = parallel_reads.fetch_all(store, [(_concatenated_sql(columns, source), params) for columns, source, params in reads])
    except sqlite3.DataError:  # a text over SQLite's length limit: each read on its own, as `scan` does
        return [scan(store, columns, source, params) for columns, source, params in reads]
    out = []
    for (columns, source, params), rows in zip(reads, found):
        try:
            parsed = _parse_concatenated(columns, rows[0])
        except (ValueError, OverflowError):
            parsed = None
        out.append(parsed if parsed is not None else _scan_rows(store, columns, source, params))
    return out


def _scan_concatenated(store: Store, columns: Sequence[tuple[str, str, str]], source: str,
                       params: Sequence[object]) -> dict[str, np.ndarray] | None:
    """The one-row read (SQLite); None when a value contains the separator (counts differ).
    Raises ValueError / OverflowError when an integer column holds something else."""
    _, rows = store.fetch(_concatenated_sql(columns, source), params)
    return _parse_concatenated(columns, rows[0])


def _concatenated_sql(columns: Sequence[tuple[str, str, str]], source: str) -> str:
    """SELECT COUNT(*) and each column concatenated (`group_concat`) over the rows of `source`."""
    parts = []
    for _, expression, kind in columns:
        if kind == INT:
            parts.append(f"group_concat(COALESCE({expression}, 0), ',')")
        else:
            parts.append(f"group_concat(COALESCE({expression}, ''), '{_TEXT_SEP}')")  # a literal: char(31) is a call per row
    return f"SELECT COUNT(*), {', '.join(parts)} {source}"


def _parse_concatenated(columns: Sequence[tuple[str, str, str]], row: tuple) -> dict[str, np.ndarray] | None:
    """The arrays of a `_concatenated_sql` row; None when a value contains the separator."""
    count, texts = int(row[0]), row[1:]
    out: dict[str, np.ndarray] = {}
    for (name, _, kind), text in zip(columns, texts):
        if count == 0:
            out[name] = np.zeros(0, dtype=np.int64) if kind == INT else np.zeros(0, dtype=object)
            continue
        if kind == TEXT:
            pieces = str(text).split(_TEXT_SEP)
            if len(pieces) != count:
                return None
        out[name] = _parse_ints(str(text), count) if kind == INT else np.array(pieces, dtype=object)
    return out


def _parse_ints(text: str, count: int) -> np.ndarray:
    """`count` comma-separated integers as int64, exactly (ValueError / OverflowError otherwise).

    `np.fromstring` is ~6x faster than `int()` per item but stops quietly at the first item that
    is not an integer and saturates beyond int64, so it is used only for text made of digits and
    commas alone that yields `count` values below the int64 maximum; anything else (negative
    values included) is parsed item by item with `int`."""
    if "-" not in text and not text.encode("ascii", "replace").translate(None, b"0123456789,"):
        values = np.fromstring(text, sep=",", dtype=np.int64)
        if len(values) == count and (not count or values.max() < _INT64_MAX):
            return values
    values = np.array(text.split(","), dtype=np.int64)
    if len(values) != count:
        raise ValueError("integer column: item count differs from the row count")
    return values


def _scan_rows(store: Store, columns: Sequence[tuple[str, str, str]], source: str, params: Sequence[object]) -> dict[str, np.ndarray]:
    """The row-by-row read (any database), same result as `_scan_concatenated`."""
    _, rows = store.fetch(f"SELECT {', '.join(e for _, e, _ in columns)} {source}", params)
    out: dict[str, np.ndarray] = {}
    for position, (name, _, kind) in enumerate(columns):
        if kind == INT:
            values = [_whole(row[position]) for row in rows]
            try:
                out[name] = np.array(values, dtype=np.int64)
            except OverflowError:
                out[name] = np.array(values, dtype=object) if values else np.zeros(0, dtype=np.int64)
        else:
            out[name] = np.array(["" if row[position] is None else str(row[position]) for row in rows], dtype=object)
    return out


def _whole(value: object) -> int:
    """An integer column's value as a Python int (NULL -> 0); anything not whole raises ValueError."""
    if value is None:
        return 0
    if type(value) is int:
        return value
    whole = int(value)  # type: ignore[call-overload]
    if whole != value:
        raise ValueError(f"not an integer: {value!r}")
    return whole


def object_column(values: object) -> pd.Series:
    """Text values as a plain object Series. pandas 3 turns an object array of str into an
    Arrow-backed string column, which is slower to build, to read back with `to_numpy`, and in
    every later per-row step (dict lookups, merges) of the analytics."""
    return pd.Series(np.asarray(values, dtype=object), dtype=object, copy=False)


def scan_frame(store: Store, columns: Sequence[tuple[str, str, str]], source: str, params: Sequence[object] = ()) -> pd.DataFrame:
    """`scan` as a DataFrame whose text columns stay plain object columns (pandas would turn an
    object array of str into Arrow-backed strings, which makes every later per-row step slower;
    see `sources.read`)."""
    arrays = scan(store, columns, source, params)
    return pd.DataFrame({name: object_column(values) if values.dtype == object else values for name, values in arrays.items()}, copy=False)


def union_positions(keys: list[pd.Series], listed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct keys of the first `listed` columns (each column's keys unique), in order of
    first appearance, and for every column the position of each of those keys in it (-1: absent).
    One hash pass over all keys."""
    arrays = [k.to_numpy(dtype=object) for k in keys]
    codes, uniques = pd.factorize(np.concatenate(arrays)) if any(len(a) for a in arrays) else (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object))
    head = codes[: sum(len(a) for a in arrays[:listed])]
    count = int(head.max()) + 1 if len(head) else 0  # codes count up from 0 in order of first appearance
    positions, start = [], 0
    for array in arrays:
        position = np.full(len(uniques), -1, dtype=np.int64)
        position[codes[start:start + len(array)]] = np.arange(len(array))
        positions.append(position[:count])
        start += len(array)
    return np.asarray(uniques, dtype=object)[:count], positions


def aligned(values: np.ndarray, position: np.ndarray, missing: object) -> np.ndarray:
    """`values[position]` with `missing` where position is -1 (e.g. from `union_positions`), in
    `values`' dtype: int64 stays int64 with an int fill, objects stay objects, nothing passes
    through float. An empty `values` gives the fill's own dtype (object for text)."""
    dtype = values.dtype if len(values) else (object if isinstance(missing, str) else np.asarray(missing).dtype)
    out = np.full(len(position), missing, dtype=dtype)
    found = position >= 0
    out[found] = values[position[found]]
    return out
