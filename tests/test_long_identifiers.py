"""Absurdly long identifiers are stored under a stable bounded name on both databases, so one of
them never fails a batch (PostgreSQL cannot index text over ~2,700 bytes)."""

from __future__ import annotations

import secrets

import pandas as pd

from walleta.catalog import load_catalog
from walleta.events import MAX_IDENTIFIER_BYTES, bound_identifier, record_events
from walleta.store import open_store


def test_bound_identifier_is_stable_short_and_keeps_short_names() -> None:
    assert bound_identifier("acme") == "acme"
    exact = "é" * (MAX_IDENTIFIER_BYTES // 2)  # exactly the limit in UTF-8 bytes
    assert bound_identifier(exact) == exact
    huge = "客" * 5_000 + secrets.token_hex(8)
    bounded = bound_identifier(huge)
    assert bounded == bound_identifier(huge) and bounded.startswith("客" * 300)
    assert len(bounded.encode("utf-8")) <= MAX_IDENTIFIER_BYTES
    assert bound_identifier(huge + "x") != bounded  # different inputs stay apart


def test_incompressible_long_customer_is_stored_on_both_databases(db_url: str) -> None:
    store = open_store(db_url)
    long_customer = secrets.token_hex(5_000)  # 10,000 random characters: PostgreSQL would refuse to index it
    frame = pd.DataFrame({
        "ts_us": [1_767_225_600_000_000] * 3,
        "customer_id": [long_customer, long_customer, "acme"],
        "model": ["gpt-4o", "gpt-4o", "gpt-4o"],
        "input_tokens": [100, 200, 300],
        "output_tokens": [10, 20, 30],
        "request_id": ["r1", "r2", "r3"],
    })
    result = record_events(store, frame, load_catalog(), source="csv")
    assert result.inserted == 3
    by_customer = dict(store.query(
        "SELECT customer_id, CAST(SUM(input_tokens) AS BIGINT) AS t FROM rollup_customer_month GROUP BY customer_id"
    ).itertuples(index=False, name=None))
    assert by_customer == {bound_identifier(long_customer): 300, "acme": 300}
