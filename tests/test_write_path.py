"""The fast bulk write path (issue 6) keeps its behaviour: every column round-trips (constant
columns written as SQL literals included), every rollup measure equals a recount after inserts,
ignored duplicates and replacements, sums past int64 per batch stay exact, and a schema-1
database is upgraded with the customer-month rollup filled. SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import inspect

from walleta.catalog import load_catalog
from walleta.events import prepare_events
from walleta.migrations import V2_TIME_INDEXES
from walleta.schema import EVENT_COLUMNS, ROLLUP_MEASURES, ROLLUPS, SCHEMA_VERSION
from walleta.store import Store, open_store

BASE_US = 1_767_225_600_000_000  # 2026-01-01
HOUR_US = 3_600_000_000


def _frame(n: int, *, customers: int = 3, offset: int = 0) -> pd.DataFrame:
    i = np.arange(offset, offset + n)
    return pd.DataFrame(
        {
            "ts_us": BASE_US + i * HOUR_US * 7,
            "customer_id": [f"c{k % customers}" for k in i],
            "feature": "it's \"quoted\"",  # one value in every row: written as a SQL literal
            "model": np.where(i % 7 == 0, "gpt-99-unknown", np.where(i % 2, "gpt-4o", "gpt-4.1-mini")),
            "input_tokens": 1000 + i,
            "cached_input_tokens": i % 50,
            "output_tokens": 200 + i,
            "reasoning_tokens": 0,
            "requests": 1 + i % 3,
            "service_tier": np.where(i % 5 == 0, "priority", "default"),
            "batch": (i % 11 == 0).astype(int),
            "project_id": np.where(i % 2, "proj_a", ""),
            "status": np.where(i % 13 == 0, "error", "ok"),
            "latency_ms": [None if k % 4 == 0 else 100 + k for k in i],
            "request_id": [f"req_{k}" for k in i],
        }
    )


def _recount_matches(store: Store) -> None:
    measure_sql = {
        "events": "COUNT(*)",
        "errors": "SUM(CASE WHEN status <> 'ok' THEN requests ELSE 0 END)",
        "cost_pico": "SUM(COALESCE(cost_pico, 0))",
        "provider_cost_pico": "SUM(COALESCE(provider_cost_pico, 0))",
        "unpriced_events": "SUM(CASE WHEN cost_pico IS NULL THEN 1 ELSE 0 END)",
        "unpriced_requests": "SUM(CASE WHEN cost_pico IS NULL THEN requests ELSE 0 END)",
        "unpriced_tokens": "SUM(CASE WHEN cost_pico IS NULL THEN input_tokens + output_tokens ELSE 0 END)",
    }
    for name, keys in ROLLUPS.items():
        key_sql = ", ".join(keys)
        sums = ", ".join(f"CAST({measure_sql.get(m, f'SUM({m})')} AS BIGINT) AS {m}" for m in ROLLUP_MEASURES)
        recount = store.query(f"SELECT {key_sql}, {sums} FROM usage_events GROUP BY {key_sql} ORDER BY {key_sql}")
        rollup = store.query(f"SELECT {key_sql}, {', '.join(ROLLUP_MEASURES)} FROM {name} ORDER BY {key_sql}")
        pd.testing.assert_frame_equal(recount, rollup, check_dtype=False, obj=name)


def test_every_column_round_trips_with_constant_columns_as_literals(store: Store) -> None:
    prepared = prepare_events(_frame(40), load_catalog(), source="test")
    single = prepare_events(_frame(1, offset=1000), load_catalog(), source="test")  # every column constant but uid
    assert store.write_events(prepared).inserted == 40 and store.write_events(single).inserted == 1
    back = store.query(f"SELECT {', '.join(EVENT_COLUMNS)} FROM usage_events ORDER BY ts_us")
    expected = pd.concat([prepared, single], ignore_index=True)
    for column in EVENT_COLUMNS:
        assert [None if pd.isna(v) else v for v in back[column]] == [None if pd.isna(v) else v for v in expected[column]], column
    assert back["latency_ms"].isna().sum() == 11 and set(back["feature"]) == {"it's \"quoted\""}


def test_rollups_equal_a_recount_after_inserts_duplicates_and_replacements(store: Store) -> None:
    catalog = load_catalog()
    first = prepare_events(_frame(600, customers=400), catalog, source="test")  # > 200 groups: PostgreSQL stages with COPY
    store.write_events(first)
    again = store.write_events(pd.concat([first.iloc[:50], prepare_events(_frame(30, customers=400, offset=600), catalog, source="test")]))
    assert (again.inserted, again.skipped) == (30, 50)
    _recount_matches(store)
    changed = first.iloc[:120].copy()
    changed["output_tokens"] = changed["output_tokens"] * 2
    changed["customer_id"] = "moved"
    changed = prepare_events(changed.drop(columns=["cost_pico", "price_status", "price_note"]), catalog, source="test")
    result = store.write_events(changed, on_conflict="replace")
    assert (result.inserted, result.replaced) == (0, 120)
    _recount_matches(store)
    assert store.scalar("SELECT COUNT(*) FROM rollup_customer_month WHERE events = 0") == 0


def test_batch_sums_past_int64_stay_exact(store: Store) -> None:
    big = 2**61
    frame = _frame(4, customers=4)
    frame["feature"] = [f"f{i}" for i in range(4)]
    frame["model"] = [f"m{i}" for i in range(4)]
    frame["project_id"] = [f"p{i}" for i in range(4)]
    frame["cost_pico"] = pd.array([big + i for i in range(4)], dtype=object)
    frame["price_status"], frame["price_note"] = "priced", ""
    store.write_events(prepare_events(frame, load_catalog(), source="test"))
    costs = store.query("SELECT customer_id, cost_pico FROM rollup_customer_month ORDER BY customer_id")
    assert [int(v) for v in costs["cost_pico"]] == [big + i for i in range(4)]
    _recount_matches(store)


def test_schema_1_database_is_upgraded(db_url: str) -> None:
    store = open_store(db_url)
    store.write_events(prepare_events(_frame(60, customers=5), load_catalog(), source="test"))
    with store.transaction() as cur:
        cur.execute("DROP TABLE rollup_customer_month")
        for index, _ in V2_TIME_INDEXES.values():
            cur.execute(f"DROP INDEX IF EXISTS {index}")
        cur.execute(store.sql("UPDATE walleta_meta SET value = ? WHERE key = ?"), ["1", "schema_version"])
    store.close()
    upgraded = open_store(db_url)
    assert upgraded.get_meta("schema_version") == str(SCHEMA_VERSION)
    _recount_matches(upgraded)
    inspector = inspect(upgraded.engine)
    for name, keys in ROLLUPS.items():  # schema 5: time first, no separate time index
        assert inspector.get_pk_constraint(name)["constrained_columns"] == list(keys), name
        assert not inspector.get_indexes(name), name


@pytest.mark.parametrize("size", [1, 5])
def test_tiny_batches_write_and_roll_up(store: Store, size: int) -> None:
    for offset in range(0, 20, size):
        store.write_events(prepare_events(_frame(size, offset=offset), load_catalog(), source="test"))
    assert store.scalar("SELECT COUNT(*) FROM usage_events") == 20
    _recount_matches(store)
