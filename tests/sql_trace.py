"""Record the SQL a SQLite store runs (for tests that check what a function reads)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from sqlalchemy import event

from walleta.store import Store


@contextmanager
def traced(store: Store) -> Iterator[list[str]]:
    """Inside the block, every statement run on `store` (a SQLite store) is appended, with its
    values filled in, to the list yielded. The pool's connections are replaced by traced ones on
    entry and by plain ones on exit."""
    seen: list[str] = []

    def trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(seen.append)

    event.listen(store.engine, "connect", trace)
    store.engine.dispose()
    try:
        yield seen
    finally:
        event.remove(store.engine, "connect", trace)
        store.engine.dispose()
