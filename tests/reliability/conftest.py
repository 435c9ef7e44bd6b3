"""Fixtures of the reliability suite: one store per database kind for property tests.

Hypothesis runs many examples inside one test function; these stores live for the whole
function (the examples use unique row ids, so they share one database).
"""

from __future__ import annotations

from typing import Iterator

import pytest

from walleta.store import Store, open_store


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    store = open_store(sqlite_url)
    yield store
    store.close()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    store = open_store(pg_url)
    yield store
    store.close()
