"""PostgreSQL's index size limit gives a clear StorageError, not an "unreachable server" one."""

from __future__ import annotations

import secrets

import pandas as pd
import pytest

from walleta.catalog import load_catalog
from walleta.errors import StorageError
from walleta.events import record_events
from walleta.store import open_store


def test_an_identifier_postgresql_cannot_index_is_reported_as_too_large(pg_url: str) -> None:
    store = open_store(pg_url)
    frame = pd.DataFrame({"ts_us": [1_767_225_600_000_000, 1_767_225_600_000_001],
                          "customer_id": [secrets.token_hex(5_000), "acme"],  # 10,000 incompressible characters
                          "model": ["gpt-4o", "gpt-4o"], "input_tokens": [1, 2], "request_id": ["r1", "r2"]})
    with pytest.raises(StorageError, match="too large for the database") as caught:
        record_events(store, frame, load_catalog(), source="csv")
    assert "cannot be reached" not in str(caught.value) and "nothing of this write was saved" in str(caught.value)
    assert store.scalar("SELECT COUNT(*) FROM usage_events") == 0  # all or nothing
