"""Database helpers for the import tests (the fixtures themselves live in tests/conftest.py)."""

from __future__ import annotations

from typing import Any


def snapshot(store: Any) -> dict[str, list[tuple]]:
    """Every row of every table, sorted: two equal snapshots mean an unchanged database."""
    from sqlalchemy import inspect

    tables = sorted(inspect(store.engine).get_table_names())
    out: dict[str, list[tuple]] = {}
    for table in tables:
        frame = store.query(f"SELECT * FROM {table}")
        out[table] = sorted((tuple("" if v is None else str(v) for v in row) for row in frame.itertuples(index=False, name=None)))
    return out
