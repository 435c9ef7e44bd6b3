"""Exact SQL sums past int64 (money exactness: a year of a big customer's costs passes 2^63 pico).

Analytics statements sum integer pico-dollar columns per group with `CAST(SUM(x) AS BIGINT)`.
When one group's sum passes int64 the statement fails: SQLite raises `integer overflow`,
PostgreSQL fails the CAST (`NumericValueOutOfRange`). The fast statement stays as it is; only
when the database reports that overflow (`is_overflow`) is it rerun in a wide form (`widen`):
every top-level `CAST(SUM(x) AS BIGINT) AS name` (or `CAST(COALESCE(SUM(x), 0) AS BIGINT)`)
becomes two sums that cannot overflow, `SUM(x / D)` and `SUM(x - (x / D) * D)` with D = 2^32
(both databases truncate integer division toward zero, so the remainder has the dividend's
sign and x = (x / D) * D + remainder exactly; `%` is avoided as psycopg reads it as a
placeholder; the parts are below 2^31 and 2^32 in size, so their sums fit
int64 for up to 2^31 rows a group), recombined in Python as hi * D + lo (`combine`): the
result has the fast statement's columns, with Python ints past int64 where needed.

Statements the rewrite cannot keep equivalent are refused (the original error is raised): an
ORDER BY, HAVING or LIMIT (they may name a sum), sums inside sub-queries, or a wide form the
database rejects. Callers that order or limit by a sum catch `is_overflow` and order in Python.
Single values stored in the rollup tables are int64 by the schema; only sums are widened.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from typing import Any, Sequence

__all__ = ["D", "is_overflow", "widen", "combine", "Widened"]

D = 2**32
_PREFIX = "wide__"
_REFUSE = re.compile(r"\b(ORDER\s+BY|HAVING|LIMIT)\b", re.IGNORECASE)
_CAST = re.compile(r"CAST\s*\(\s*(COALESCE\s*\(\s*)?SUM\s*\(", re.IGNORECASE)
_TAIL = re.compile(r"\s+AS\s+BIGINT\s*\)(\s+AS\s+([A-Za-z_][A-Za-z0-9_]*))?", re.IGNORECASE)
_COALESCE_TAIL = re.compile(r"\s*,\s*0\s*\)", re.IGNORECASE)


def is_overflow(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps: SQLAlchemy's `.orig`, a `raise ... from`) is the
    database's integer overflow of a sum (not an error raised while handling one): SQLite's OperationalError 'integer overflow' or
    psycopg's NumericValueOutOfRange."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlite3.OperationalError) and str(current).strip().lower() == "integer overflow":
            return True
        psycopg = sys.modules.get("psycopg")
        if psycopg is not None and isinstance(current, psycopg.errors.NumericValueOutOfRange):
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


class Widened:
    """A wide form of a statement: `statement` and `params` to run, and `names`: for each sum
    rewritten (in order), the column name the fast statement gave it."""

    def __init__(self, statement: str, params: list[Any], names: list[str]) -> None:
        self.statement, self.params, self.names = statement, params, names


def _depths_and_marks(statement: str) -> tuple[list[int], list[int]]:
    """For every character: the parenthesis depth before it (-1 inside a quoted literal or
    identifier), and the positions of the `?` placeholders outside quotes."""
    depths, marks, depth, quote = [], [], 0, ""
    for i, ch in enumerate(statement):
        if quote:
            depths.append(-1)
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
            depths.append(-1)
            continue
        depths.append(depth)
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "?":
            marks.append(i)
    return depths, marks


def _closing(statement: str, depths: list[int], start: int) -> int:
    """Position of the ')' closing the '(' just before `start` (-1 if none)."""
    want = depths[start - 1]
    for i in range(start, len(statement)):
        if statement[i] == ")" and depths[i] == want + 1:
            return i
    return -1


def widen(statement: str, params: Sequence[Any] = ()) -> Widened | None:
    """The wide form of `statement` (see the module doc), or None when it has no top-level
    `CAST(SUM(...) AS BIGINT)` or cannot be rewritten safely (ORDER BY, HAVING, LIMIT)."""
    if _REFUSE.search(statement):
        return None
    depths, marks = _depths_and_marks(statement)
    pieces: list[str] = []
    new_params: list[Any] = []
    names: list[str] = []
    done = 0  # statement[:done] is handled
    used_marks = 0
    for found in _CAST.finditer(statement):
        start = found.start()
        if start < done or depths[start] != 0:
            continue
        close_sum = _closing(statement, depths, found.end())
        if close_sum < 0:
            return None
        expression = statement[found.end():close_sum]
        after = close_sum + 1
        if found.group(1):
            tail = _COALESCE_TAIL.match(statement, after)
            if tail is None:
                continue
            after = tail.end()
        tail = _TAIL.match(statement, after)
        if tail is None:
            continue
        name = tail.group(2) or statement[start:tail.end(1) if tail.group(1) else tail.end()]
        k = len(names)
        inner = [p for p in marks if found.end() <= p < close_sum]
        before = [p for p in marks if done <= p < start]
        new_params.extend(params[used_marks:used_marks + len(before)])
        used_marks += len(before)
        mine = list(params[used_marks:used_marks + len(inner)])
        used_marks += len(inner)
        wrap = ("COALESCE(", ", 0)") if found.group(1) else ("", "")
        hi = f"({expression}) / {D}"
        lo = f"({expression}) - (({expression}) / {D}) * {D}"  # (not `%`: psycopg reads it as a placeholder)
        parts = [f"CAST({wrap[0]}SUM({part}){wrap[1]} AS BIGINT) AS {_PREFIX}{half}{k}" for part, half in ((hi, "hi"), (lo, "lo"))]
        pieces.append(statement[done:start] + ", ".join(parts))
        new_params.extend(mine * 3)
        names.append(name)
        done = tail.end()
    if not names:
        return None
    pieces.append(statement[done:])
    new_params.extend(params[used_marks:])
    return Widened("".join(pieces), new_params, names)


def combine(widened: Widened, columns: list[str], rows: list[tuple]) -> tuple[list[str], list[tuple]]:
    """The wide statement's (columns, rows) as the fast statement's: each hi/lo pair becomes one
    column, hi * D + lo as a Python int (None when both are NULL: no rows summed)."""
    pairs: dict[int, int] = {}
    out_columns: list[str] = []
    for position, column in enumerate(columns):
        if column.lower().startswith(f"{_PREFIX}hi"):
            pairs[position] = int(column[len(_PREFIX) + 2:])
            out_columns.append(widened.names[pairs[position]])
        elif not column.lower().startswith(f"{_PREFIX}lo"):
            out_columns.append(column)
    if not pairs:
        return columns, rows
    out_rows = []
    for row in rows:
        values: list[Any] = []
        skip = False
        for position, value in enumerate(row):
            if skip:
                skip = False
                continue
            if position in pairs:
                hi, lo = value, row[position + 1]
                values.append(None if hi is None and lo is None else int(hi or 0) * D + int(lo or 0))
                skip = True
            else:
                values.append(value)
        out_rows.append(tuple(values))
    return out_columns, out_rows
