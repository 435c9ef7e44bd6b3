"""Schema round-trip and idempotent bulk writes on SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd

from walleta.catalog import load_catalog
from walleta.events import prepare_events
from walleta.schema import EVENT_COLUMNS, ROLLUPS
from walleta.store import Store


def _frame(n: int = 50) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts_us": [1_767_225_600_000_000 + i * 3_600_000_000 for i in range(n)],  # 2026-01-01 hourly
            "customer_id": [f"c{i % 3}" for i in range(n)],
            "feature": ["chat" if i % 2 else "search" for i in range(n)],
            "model": ["gpt-4o" if i % 5 else "gpt-99-unknown" for i in range(n)],
            "input_tokens": [1000 + i for i in range(n)],
            "cached_input_tokens": [i for i in range(n)],
            "output_tokens": [200 + i for i in range(n)],
            "reasoning_tokens": [i // 2 for i in range(n)],
            "requests": [1 + i % 2 for i in range(n)],
            "request_id": [f"req_{i}" for i in range(n)],
            "latency_ms": [100 + i for i in range(n)],
        }
    )


def test_round_trip_every_column(store: Store) -> None:
    prepared = prepare_events(_frame(), load_catalog(), source="test")
    result = store.write_events(prepared)
    assert result.inserted == 50
    back = store.query(f"SELECT {', '.join(EVENT_COLUMNS)} FROM usage_events ORDER BY ts_us")
    for column in EVENT_COLUMNS:
        expected = [None if pd.isna(v) else v for v in prepared[column].tolist()]
        actual = [None if pd.isna(v) else v for v in back[column].tolist()]
        assert actual == expected, column
    unpriced = back[back["model"] == "gpt-99-unknown"]
    assert unpriced["cost_pico"].isna().all() and (unpriced["price_status"] == "unpriced").all()


def test_rollups_equal_a_recount_and_rewrites_are_idempotent(store: Store) -> None:
    prepared = prepare_events(_frame(), load_catalog(), source="test")
    store.write_events(prepared)
    again = store.write_events(prepared)
    assert (again.inserted, again.skipped) == (0, 50)
    for name, keys in ROLLUPS.items():
        keys_sql = ", ".join(keys)
        recount = store.query(
            f"SELECT {keys_sql}, COUNT(*) AS events, CAST(SUM(requests) AS BIGINT) AS requests, "
            f"CAST(SUM(COALESCE(cost_pico, 0)) AS BIGINT) AS cost_pico, "
            f"CAST(SUM(CASE WHEN cost_pico IS NULL THEN requests ELSE 0 END) AS BIGINT) AS unpriced_requests "
            f"FROM usage_events GROUP BY {keys_sql} ORDER BY {keys_sql}"
        )
        rollup = store.query(f"SELECT {keys_sql}, events, requests, cost_pico, unpriced_requests FROM {name} ORDER BY {keys_sql}")
        pd.testing.assert_frame_equal(recount, rollup, check_dtype=False, obj=name)
