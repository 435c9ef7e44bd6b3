"""The storage layer on SQLite and PostgreSQL: schema round-trip, rollups, idempotent and
replacing bulk writes, atomicity, schema versioning, import bookkeeping, upserts, concurrency.

Every test taking `store` or `db_url` runs twice (ids `sqlite` and `postgresql`).
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import MetaData, String, Text, create_engine, inspect, text
from sqlalchemy.exc import DataError

from walleta.catalog import load_catalog
from walleta.errors import SchemaError
from walleta.events import record_events
from walleta.migrations import V3_TEXT_COLUMNS
from walleta.schema import (
    EVENT_COLUMNS,
    ROLLUP_MEASURES,
    ROLLUPS,
    SCHEMA_VERSION,
    TOKEN_COLUMNS,
    Customer,
    CustomerMapping,
    StripeCustomer,
    StripeSubscriptionItem,
    metadata,
)
from walleta.store import Store, WriteResult, open_store

from .factories import make_events, write_batches

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

# Written here independently of walleta.store, so a wrong rollup expression there is caught.
_BRUTE_FORCE_MEASURES = {
    "events": "COUNT(*)",
    "requests": "SUM(requests)",
    **{t: f"SUM({t})" for t in TOKEN_COLUMNS},
    "images": "SUM(images)",
    "characters": "SUM(characters)",
    "tool_calls": "SUM(tool_calls)",
    "errors": "SUM(CASE WHEN status = 'ok' THEN 0 ELSE requests END)",
    "cost_pico": "SUM(CASE WHEN cost_pico IS NULL THEN 0 ELSE cost_pico END)",
    "provider_cost_pico": "SUM(CASE WHEN provider_cost_pico IS NULL THEN 0 ELSE provider_cost_pico END)",
    "unpriced_events": "SUM(CASE WHEN cost_pico IS NULL THEN 1 ELSE 0 END)",
    "unpriced_requests": "SUM(CASE WHEN cost_pico IS NULL THEN requests ELSE 0 END)",
    "unpriced_tokens": "SUM(CASE WHEN cost_pico IS NULL THEN input_tokens + output_tokens ELSE 0 END)",
}


def _rows(store: Store, statement: str) -> dict[tuple, tuple]:
    """Rows of a keyed query as {key tuple: measures tuple} of plain Python ints/str."""
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(statement)
        rows = cur.fetchall()
        cur.close()
    finally:
        raw.close()
    return {tuple(r[:-len(ROLLUP_MEASURES)]): tuple(int(v) for v in r[-len(ROLLUP_MEASURES):]) for r in rows}


def brute_force(store: Store, name: str) -> dict[tuple, tuple]:
    keys = ", ".join(ROLLUPS[name])
    measures = ", ".join(f"CAST({_BRUTE_FORCE_MEASURES[m]} AS BIGINT)" for m in ROLLUP_MEASURES)
    return _rows(store, f"SELECT {keys}, {measures} FROM usage_events GROUP BY {keys}")


def rollup(store: Store, name: str) -> dict[tuple, tuple]:
    keys = ", ".join(ROLLUPS[name])
    return _rows(store, f"SELECT {keys}, {', '.join(ROLLUP_MEASURES)} FROM {name}")


def assert_rollups_match_events(store: Store) -> None:
    assert set(_BRUTE_FORCE_MEASURES) == set(ROLLUP_MEASURES), "a rollup measure has no brute-force expression"
    for name in ROLLUPS:
        expected, actual = brute_force(store, name), rollup(store, name)
        assert actual.keys() == expected.keys(), name
        for key, measures in expected.items():
            assert dict(zip(ROLLUP_MEASURES, actual[key])) == dict(zip(ROLLUP_MEASURES, measures)), (name, key)


def snapshot(store: Store) -> dict[str, Any]:
    """Everything a write can change: every event row and every rollup row."""
    events = store.query(f"SELECT {', '.join(EVENT_COLUMNS)} FROM usage_events ORDER BY uid")
    return {
        "events": [tuple(_plain(v) for v in row) for row in events.itertuples(index=False)],
        **{name: rollup(store, name) for name in ROLLUPS},
    }


def _plain(value: Any) -> Any:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def count(store: Store, table: str = "usage_events") -> int:
    return int(store.scalar(f"SELECT COUNT(*) FROM {table}"))


# ---------------------------------------------------------------------------------------------
# schema round-trip
# ---------------------------------------------------------------------------------------------

# Three hand-written events. ts_us values need all 53+ bits of precision to survive exactly, and
# every token class and quantity is non-zero somewhere and distinct, so a swapped column shows.
HAND_EVENTS: list[dict[str, Any]] = [
    {
        "uid": "req:abc-1", "ts_us": 1_767_225_599_999_999, "day": "2025-12-31", "month": "2025-12",
        "customer_id": "cus_1", "feature": "chat", "model": "gpt-4o-2024-08-06", "provider": "openai",
        "input_tokens": 12_345, "cached_input_tokens": 2_001, "cache_write_tokens": 302,
        "output_tokens": 4_321, "reasoning_tokens": 1_003, "input_audio_tokens": 404,
        "output_audio_tokens": 505, "input_image_tokens": 606, "output_image_tokens": 707,
        "images": 0, "image_size": "", "image_quality": "", "audio_seconds": 12.5, "characters": 0,
        "tool_calls": 2, "requests": 1, "service_tier": "default", "batch": 0, "project_id": "proj_a",
        "api_key_id": "key_a", "user_id": "user-1", "request_id": "abc-1", "latency_ms": 812,
        "status": "ok", "estimated": 0, "provider_cost_pico": 123_000_000_001,
        "cost_pico": 123_456_789_012, "price_status": "priced", "price_note": "", "source": "test",
        "import_id": 7,
    },
    {
        "uid": "req:abc-2", "ts_us": 1_767_225_600_000_001, "day": "2026-01-01", "month": "2026-01",
        "customer_id": "cus_2", "feature": "images", "model": "gpt-image-1", "provider": "openai",
        "input_tokens": 50, "cached_input_tokens": 0, "cache_write_tokens": 0, "output_tokens": 4_160,
        "reasoning_tokens": 0, "input_audio_tokens": 0, "output_audio_tokens": 0,
        "input_image_tokens": 11, "output_image_tokens": 4_160, "images": 3, "image_size": "1024x1024",
        "image_quality": "high", "audio_seconds": 0.0, "characters": 99, "tool_calls": 0, "requests": 3,
        "service_tier": "flex", "batch": 1, "project_id": "proj_b", "api_key_id": "", "user_id": "",
        "request_id": "abc-2", "latency_ms": None, "status": "error", "estimated": 1,
        "provider_cost_pico": None, "cost_pico": 2**62 + 1, "price_status": "priced",
        "price_note": "image", "source": "test", "import_id": None,
    },
    {
        "uid": "content:ffff", "ts_us": 1_769_904_000_000_000, "day": "2026-02-01", "month": "2026-02",
        "customer_id": "(unattributed)", "feature": "(none)", "model": "gpt-99-unknown",
        "provider": "openai", "input_tokens": 900, "cached_input_tokens": 100, "cache_write_tokens": 0,
        "output_tokens": 80, "reasoning_tokens": 40, "input_audio_tokens": 0, "output_audio_tokens": 0,
        "input_image_tokens": 0, "output_image_tokens": 0, "images": 0, "image_size": "",
        "image_quality": "", "audio_seconds": 0.0, "characters": 0, "tool_calls": 0, "requests": 2,
        "service_tier": "default", "batch": 0, "project_id": "", "api_key_id": "", "user_id": "",
        "request_id": "", "latency_ms": 15, "status": "ok", "estimated": 0, "provider_cost_pico": None,
        "cost_pico": None, "price_status": "unpriced", "price_note": "model not in catalog",
        "source": "test", "import_id": None,
    },
]

INT_COLUMNS = {
    "ts_us", *TOKEN_COLUMNS, "images", "characters", "tool_calls", "requests", "batch", "estimated",
}
NULLABLE_INT_COLUMNS = {"latency_ms", "provider_cost_pico", "cost_pico", "import_id"}


def hand_frame() -> pd.DataFrame:
    assert all(list(e) == list(EVENT_COLUMNS) for e in HAND_EVENTS), "HAND_EVENTS must list EVENT_COLUMNS in order"
    columns = {}
    for name in EVENT_COLUMNS:
        values = [e[name] for e in HAND_EVENTS]
        if name in INT_COLUMNS:
            columns[name] = pd.Series(values, dtype="int64")
        elif name == "audio_seconds":
            columns[name] = pd.Series(values, dtype="float64")
        else:
            columns[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns)


def test_schema_round_trip_every_column(store: Store) -> None:
    result = store.write_events(hand_frame())
    assert result == WriteResult(inserted=3, replaced=0, skipped=0)

    back = store.query(f"SELECT {', '.join(EVENT_COLUMNS)} FROM usage_events ORDER BY ts_us")
    assert list(back.columns) == list(EVENT_COLUMNS)
    assert len(back) == 3
    for expected, row in zip(HAND_EVENTS, back.to_dict("records")):
        for name in EVENT_COLUMNS:
            value = row[name]
            if isinstance(value, type(pd.NA)) or (isinstance(value, float) and pd.isna(value)):
                value = None
            want = expected[name]
            assert value == want, (expected["uid"], name, value, want)
            if want is None:
                continue
            if name in INT_COLUMNS or name in NULLABLE_INT_COLUMNS:
                # Integers come back as exact integers: never floats, and never Python bools.
                assert isinstance(value, int) and not isinstance(value, bool), (name, type(value))
            elif name == "audio_seconds":
                assert isinstance(value, float)
            else:
                assert isinstance(value, str), (name, type(value))
    # NULL cost stays NULL (unpriced), it is not read back as 0.
    assert store.scalar("SELECT COUNT(*) FROM usage_events WHERE cost_pico IS NULL") == 1
    assert store.scalar("SELECT uid FROM usage_events WHERE cost_pico IS NULL") == "content:ffff"
    assert store.scalar("SELECT cost_pico FROM usage_events WHERE uid = ?", ["req:abc-2"]) == 2**62 + 1
    assert_rollups_match_events(store)


def test_make_events_is_deterministic_and_consistent() -> None:
    frame = make_events(2_000, seed=4)
    pd.testing.assert_frame_equal(frame, make_events(2_000, seed=4))
    assert not frame.equals(make_events(2_000, seed=5))
    assert list(frame.columns) == list(EVENT_COLUMNS)
    assert frame["uid"].is_unique
    stamps = pd.to_datetime(frame["ts_us"], unit="us", utc=True)
    assert frame["day"].tolist() == stamps.dt.strftime("%Y-%m-%d").tolist()
    assert frame["month"].tolist() == stamps.dt.strftime("%Y-%m").tolist()
    input_parts = frame[["cached_input_tokens", "cache_write_tokens", "input_audio_tokens", "input_image_tokens"]]
    output_parts = frame[["reasoning_tokens", "output_audio_tokens", "output_image_tokens"]]
    assert (input_parts.sum(axis=1) <= frame["input_tokens"]).all()
    assert (output_parts.sum(axis=1) <= frame["output_tokens"]).all()
    unpriced = frame["cost_pico"].isna()
    assert 0 < unpriced.sum() < len(frame)
    assert (frame.loc[unpriced, "price_status"] == "unpriced").all()
    assert (frame.loc[~unpriced, "price_status"] == "priced").all()
    assert all(type(v) is int for v in frame.loc[~unpriced, "cost_pico"])
    assert set(frame["status"]) == {"ok", "error"}


def test_bool_flags_are_stored_as_integers(store: Store) -> None:
    frame = make_events(6, seed=2)
    frame["batch"] = [True, False, True, False, True, True]
    frame["estimated"] = frame["batch"].to_numpy() & False
    assert store.write_events(frame).inserted == 6
    back = store.query("SELECT batch, estimated FROM usage_events ORDER BY uid")
    expected = frame.sort_values("uid")
    assert back["batch"].tolist() == [int(v) for v in expected["batch"]]
    assert all(type(v) is int for v in back["batch"].tolist() + back["estimated"].tolist())
    assert_rollups_match_events(store)


def test_factory_frames_round_trip(store: Store) -> None:
    frame = make_events(300, seed=3)
    store.write_events(frame)
    back = store.query(f"SELECT {', '.join(EVENT_COLUMNS)} FROM usage_events ORDER BY uid")
    expected = frame.sort_values("uid", ignore_index=True)
    for name in EVENT_COLUMNS:
        assert [_plain(v) for v in back[name].tolist()] == [_plain(v) for v in expected[name].tolist()], name


# ---------------------------------------------------------------------------------------------
# rollups
# ---------------------------------------------------------------------------------------------


def test_rollups_equal_a_brute_force_group_by(store: Store) -> None:
    for seed in range(3):  # several writes: rollup rows are added to, not just created
        store.write_events(make_events(400, seed=seed))
    assert count(store) == 1_200
    assert_rollups_match_events(store)
    # Every rollup accounts for every event and every pico-dollar.
    total_cost = int(store.scalar("SELECT CAST(SUM(COALESCE(cost_pico, 0)) AS BIGINT) FROM usage_events"))
    for name in ROLLUPS:
        assert int(store.scalar(f"SELECT CAST(SUM(events) AS BIGINT) FROM {name}")) == 1_200, name
        assert int(store.scalar(f"SELECT CAST(SUM(cost_pico) AS BIGINT) FROM {name}")) == total_cost, name


def test_rebuild_rollups_reproduces_incremental_rollups(store: Store) -> None:
    store.write_events(make_events(500, seed=11))
    before = {name: rollup(store, name) for name in ROLLUPS}
    store.rebuild_rollups()
    assert {name: rollup(store, name) for name in ROLLUPS} == before
    assert_rollups_match_events(store)


# ---------------------------------------------------------------------------------------------
# idempotency and replacement
# ---------------------------------------------------------------------------------------------


def test_writing_the_same_frame_twice_adds_nothing(store: Store) -> None:
    frame = make_events(250, seed=5)
    assert store.write_events(frame) == WriteResult(inserted=250, replaced=0, skipped=0)
    before = snapshot(store)
    assert store.write_events(frame) == WriteResult(inserted=0, replaced=0, skipped=250)
    assert snapshot(store) == before
    assert count(store) == 250


def test_partly_new_frame_inserts_only_new_rows(store: Store) -> None:
    first = make_events(200, seed=6)
    store.write_events(first)
    mixed = pd.concat([first.iloc[50:150], make_events(30, seed=7)], ignore_index=True)
    assert store.write_events(mixed) == WriteResult(inserted=30, replaced=0, skipped=100)
    assert count(store) == 230
    assert_rollups_match_events(store)


def test_replace_mode_replaces_rows_without_double_counting(store: Store) -> None:
    original = make_events(200, seed=8)
    store.write_events(original)

    changed = original.iloc[:80].copy()
    changed["input_tokens"] = changed["input_tokens"] + 1_000
    changed["output_tokens"] = changed["output_tokens"] * 2
    changed["requests"] = 7
    # Some rows move to another rollup key: the old key must lose them entirely.
    changed.loc[changed.index[:20], "customer_id"] = "cus_moved"
    changed.loc[changed.index[20:30], "cost_pico"] = None  # re-fetched, now unpriced
    changed.loc[changed.index[20:30], "price_status"] = "unpriced"
    fresh = make_events(15, seed=9)
    result = store.write_events(pd.concat([changed, fresh], ignore_index=True), on_conflict="replace")
    assert result == WriteResult(inserted=15, replaced=80, skipped=0)

    assert count(store) == 215
    expected = pd.concat([changed, original.iloc[80:], fresh], ignore_index=True)
    stored = store.query("SELECT uid, input_tokens, output_tokens, requests, customer_id FROM usage_events")
    merged = expected[["uid", "input_tokens", "output_tokens", "requests", "customer_id"]].merge(
        stored, on="uid", suffixes=("_want", "_got")
    )
    assert len(merged) == 215
    for column in ("input_tokens", "output_tokens", "requests", "customer_id"):
        assert merged[f"{column}_want"].tolist() == merged[f"{column}_got"].tolist(), column

    assert_rollups_match_events(store)
    for name in ROLLUPS:
        totals = store.query(
            f"SELECT CAST(SUM(events) AS BIGINT) AS events, CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, "
            f"CAST(SUM(requests) AS BIGINT) AS requests FROM {name}"
        ).iloc[0]
        assert int(totals["events"]) == 215, name
        assert int(totals["input_tokens"]) == int(expected["input_tokens"].sum()), name
        assert int(totals["requests"]) == int(expected["requests"].sum()), name
        assert int(store.scalar(f"SELECT COUNT(*) FROM {name} WHERE events <= 0")) == 0, name

    # Replacing with identical rows changes nothing.
    before = snapshot(store)
    again = store.write_events(pd.concat([changed, fresh], ignore_index=True), on_conflict="replace")
    assert again == WriteResult(inserted=0, replaced=95, skipped=0)
    assert snapshot(store) == before


# ---------------------------------------------------------------------------------------------
# atomicity
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["ignore", "replace"])
def test_a_failing_write_changes_nothing(store: Store, mode: str) -> None:
    base = make_events(120, seed=10)
    store.write_events(base)
    before = snapshot(store)

    # Half known uids (replace mode deletes those first), half new; one row breaks NOT NULL.
    bad = pd.concat([base.iloc[:40], make_events(40, seed=12)], ignore_index=True)
    bad["input_tokens"] = bad["input_tokens"] + 5
    bad.loc[60, "model"] = None
    with pytest.raises(Exception) as raised:
        store.write_events(bad, on_conflict=mode)  # type: ignore[arg-type]
    assert "model" in str(raised.value).lower() or "null" in str(raised.value).lower()

    assert snapshot(store) == before
    assert_rollups_match_events(store)
    # The store is still usable afterwards (no transaction left open, staging cleaned up).
    assert store.write_events(make_events(10, seed=13)).inserted == 10
    assert count(store) == 130
    assert_rollups_match_events(store)


def test_a_failing_caller_transaction_rolls_back_the_write(store: Store) -> None:
    store.write_events(make_events(50, seed=14))
    before = snapshot(store)
    with pytest.raises(RuntimeError, match="caller failed"):
        with store.transaction() as cur:
            assert store.write_events(make_events(25, seed=15), cur=cur).inserted == 25
            raise RuntimeError("caller failed")
    assert snapshot(store) == before


# ---------------------------------------------------------------------------------------------
# schema lifecycle
# ---------------------------------------------------------------------------------------------


def test_init_schema_on_an_existing_database_keeps_data(db_url: str) -> None:
    store = open_store(db_url)
    try:
        store.write_events(make_events(60, seed=16))
        store.upsert("customers", [customer("cus_a", name="A")], key=["customer_id"])
        before = snapshot(store)
        store.init_schema()
        store.init_schema()
        assert snapshot(store) == before
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
    finally:
        store.close()
    reopened = open_store(db_url)
    try:
        assert snapshot(reopened) == before
        assert count(reopened, "customers") == 1
        assert reopened.get_meta("schema_version") == str(SCHEMA_VERSION)
    finally:
        reopened.close()


def test_a_newer_schema_version_is_refused(db_url: str) -> None:
    store = open_store(db_url)
    store.write_events(make_events(5, seed=17))
    store.set_meta("schema_version", str(SCHEMA_VERSION + 1))
    store.close()
    with pytest.raises(SchemaError, match="newer"):
        open_store(db_url)
    # Refusing leaves the database as it was.
    raw = open_store(db_url, create=False)
    try:
        assert raw.get_meta("schema_version") == str(SCHEMA_VERSION + 1)
        assert count(raw) == 5
    finally:
        raw.close()


def _create_schema_2_database(url: str) -> None:
    """An empty database exactly as schema version 2 built it: the columns schema 3 widened to
    TEXT are VARCHAR(255) again, and walleta_meta says 2. Written with SQLAlchemy directly."""
    old = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(old)
    for table, column in V3_TEXT_COLUMNS:
        old.tables[table].c[column].type = String(255)
    engine = create_engine(url)
    try:
        old.create_all(engine)
        with engine.begin() as conn:
            conn.execute(old.tables["walleta_meta"].insert(), [{"key": "schema_version", "value": "2"}])
            conn.execute(old.tables["customers"].insert(), [{"customer_id": "acme", "name": "Acme"}])
            conn.execute(old.tables["customer_mappings"].insert(),
                         [{"source": "openai_project", "key": "proj_1", "customer_id": "acme"}])
    finally:
        engine.dispose()


def test_schema_2_database_upgrades_to_text_identifiers(db_url: str) -> None:
    """Schema 3 widens every identifier column to TEXT: a version-2 database upgrades, keeps its
    rows, and then accepts a 20,000-character customer id in every table that holds one."""
    _create_schema_2_database(db_url)
    if db_url.startswith("postgresql"):  # the old DDL really is bounded there: the upgrade matters
        engine = create_engine(db_url)
        try:
            with pytest.raises(DataError), engine.begin() as conn:
                conn.execute(text("INSERT INTO rollup_customer_day (customer_id, day) VALUES (:c, '2026-01-01')"),
                             {"c": "c" * 256})
        finally:
            engine.dispose()
    store = open_store(db_url)
    try:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION) == "8"
        if store.dialect == "postgresql":  # SQLite does not enforce VARCHAR lengths: nothing to alter
            types = {(t, c["name"]): c["type"] for t in {t for t, _ in V3_TEXT_COLUMNS}
                     for c in inspect(store.engine).get_columns(t)}
            for table, column in V3_TEXT_COLUMNS:
                assert isinstance(types[(table, column)], Text), (table, column, types[(table, column)])
        assert store.query("SELECT customer_id, name FROM customers").values.tolist() == [["acme", "Acme"]]
        assert store.scalar("SELECT customer_id FROM customer_mappings WHERE key = ?", ["proj_1"]) == "acme"

        name = ("ü" + "x" * 9) * 2_000  # 20,000 characters
        frame = pd.DataFrame({"ts_us": [1_767_225_600_000_000], "customer_id": [name], "feature": [name],
                              "model": [name], "project_id": [name], "input_tokens": [5]})
        assert record_events(store, frame, load_catalog(), source="file").inserted == 1
        for rollup, keys in ROLLUPS.items():
            stored = store.query(f"SELECT {', '.join(k for k in keys if k not in ('day', 'month', 'batch', 'service_tier'))} "
                                 f"FROM {rollup}")
            assert stored.values.tolist() == [[name] * stored.shape[1]], rollup
        store.upsert("customers", [Customer(customer_id=name, name="long").model_dump()], ["customer_id"])
        store.upsert("customer_mappings", [CustomerMapping(source="openai_user", key=name, customer_id=name).model_dump()],
                     ["source", "key"])
        store.upsert("stripe_customers", [StripeCustomer(stripe_customer_id=name).model_dump()], ["stripe_customer_id"])
        item = StripeSubscriptionItem(item_id=name, subscription_id="sub_1", stripe_customer_id=name, status="active")
        store.upsert("stripe_subscription_items", [item.model_dump()], ["item_id"])
        assert store.scalar("SELECT name FROM customers WHERE customer_id = ?", [name]) == "long"
        assert store.scalar("SELECT customer_id FROM customer_mappings WHERE key = ?", [name]) == name
        assert store.scalar("SELECT COUNT(*) FROM stripe_customers WHERE stripe_customer_id = ?", [name]) == 1
        assert store.scalar("SELECT COUNT(*) FROM stripe_subscription_items WHERE item_id = ?", [name]) == 1
    finally:
        store.close()


def test_meta_round_trip(store: Store) -> None:
    assert store.get_meta("demo_version") is None
    store.set_meta("demo_version", "1")
    store.set_meta("demo_version", "2")
    assert store.get_meta("demo_version") == "2"


# ---------------------------------------------------------------------------------------------
# import bookkeeping
# ---------------------------------------------------------------------------------------------


def test_import_runs_and_cursors(store: Store) -> None:
    assert store.last_cursor("openai_usage") is None
    first = store.start_import("openai_usage", kind="completions", content_hash="h1")
    second = store.start_import("openai_usage", kind="completions")
    assert isinstance(first, int) and isinstance(second, int) and second > first
    run = store.query("SELECT status, finished_us, started_us, content_hash FROM import_runs WHERE id = ?", [first]).iloc[0]
    assert run["status"] == "running" and run["content_hash"] == "h1" and _plain(run["finished_us"]) is None

    store.finish_import(first, status="ok", rows_read=10, rows_imported=9, rows_rejected=1, cursor="c1", message="done")
    assert store.last_cursor("openai_usage") == "c1"
    store.finish_import(second, status="failed", cursor="c2", message="boom")
    assert store.last_cursor("openai_usage") == "c1"  # a failed run does not move the cursor

    third = store.start_import("openai_usage")
    store.finish_import(third, status="partial", rows_read=5, rows_imported=5, cursor="c3")
    assert store.last_cursor("openai_usage") == "c3"
    fourth = store.start_import("openai_usage")
    store.finish_import(fourth, status="ok")  # no cursor: keeps the previous one
    assert store.last_cursor("openai_usage") == "c3"
    assert store.last_cursor("stripe") is None

    row = store.query(
        "SELECT status, rows_read, rows_imported, rows_rejected, cursor, message, started_us, finished_us "
        "FROM import_runs WHERE id = ?",
        [first],
    ).iloc[0]
    assert (row["status"], int(row["rows_read"]), int(row["rows_imported"]), int(row["rows_rejected"])) == ("ok", 10, 9, 1)
    assert (row["cursor"], row["message"]) == ("c1", "done")
    assert int(row["finished_us"]) >= int(row["started_us"]) > 1_600_000_000_000_000


def test_events_written_with_an_import_id_in_one_transaction(store: Store) -> None:
    run = store.start_import("csv", kind="usage")
    frame = make_events(40, seed=18, import_id=run)
    with store.transaction() as cur:
        store.write_events(frame, cur=cur)
        store.finish_import(run, status="ok", rows_read=40, rows_imported=40, cursor="line:40", cur=cur)
    assert int(store.scalar("SELECT COUNT(*) FROM usage_events WHERE import_id = ?", [run])) == 40
    assert store.last_cursor("csv") == "line:40"


# ---------------------------------------------------------------------------------------------
# upsert
# ---------------------------------------------------------------------------------------------


def customer(customer_id: str, **fields: Any) -> dict[str, Any]:
    """A complete customers row (the table's text columns are NOT NULL without SQL defaults)."""
    row = {"customer_id": customer_id, "name": "", "plan": "", "signup_date": "", "email": "",
           "stripe_customer_id": "", "seats": None, "source": "test"}
    row.update(fields)
    return row


def test_upsert_customers(store: Store) -> None:
    rows = [customer("cus_a", name="Acme", plan="pro", seats=5), customer("cus_b", name="Beta", plan="free")]
    assert store.upsert("customers", rows, key=["customer_id"]) == 2
    assert store.upsert(
        "customers",
        [customer("cus_b", name="Beta Ltd", plan="team", seats=12), customer("cus_c", name="Gamma", plan="pro", seats=1)],
        key=["customer_id"],
    ) == 2
    assert store.upsert("customers", [], key=["customer_id"]) == 0
    store.upsert("customers", [customer("cus_a", name="Acme", plan="enterprise", seats=5)], key=["customer_id"])

    got = store.query("SELECT customer_id, name, plan, seats FROM customers ORDER BY customer_id")
    records = [(r.customer_id, r.name, r.plan, _plain(r.seats)) for r in got.itertuples()]
    assert records == [
        ("cus_a", "Acme", "enterprise", 5),
        ("cus_b", "Beta Ltd", "team", 12),
        ("cus_c", "Gamma", "pro", 1),
    ]
    # Upserting the same rows again is idempotent.
    store.upsert("customers", rows[1:], key=["customer_id"])
    assert count(store, "customers") == 3


def test_upsert_with_a_composite_key(store: Store) -> None:
    store.upsert(
        "customer_mappings",
        [{"source": "openai_project", "key": "proj_1", "customer_id": "cus_a", "confirmed": 0, "method": "auto"}],
        key=["source", "key"],
    )
    store.upsert(
        "customer_mappings",
        [{"source": "openai_project", "key": "proj_1", "customer_id": "cus_b", "confirmed": 1, "method": "manual"},
         {"source": "stripe", "key": "proj_1", "customer_id": "cus_c", "confirmed": 1, "method": "manual"}],
        key=["source", "key"],
    )
    got = store.query("SELECT source, key, customer_id, confirmed, method FROM customer_mappings ORDER BY source")
    assert [tuple(r) for r in got.itertuples(index=False)] == [
        ("openai_project", "proj_1", "cus_b", 1, "manual"),
        ("stripe", "proj_1", "cus_c", 1, "manual"),
    ]


# ---------------------------------------------------------------------------------------------
# SQLite specifics
# ---------------------------------------------------------------------------------------------


def test_sqlite_file_is_in_wal_mode(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    try:
        assert str(store.scalar("PRAGMA journal_mode")).lower() == "wal"
        assert int(store.scalar("PRAGMA busy_timeout")) >= 5_000
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# concurrency
# ---------------------------------------------------------------------------------------------

WRITERS, BATCHES, BATCH_SIZE = 4, 50, 100


def test_concurrent_writers_lose_nothing(db_url: str) -> None:
    setup = open_store(db_url)  # create the schema once, before the writers start
    setup.close()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WRITERS)
    workers = [
        context.Process(target=write_batches, args=(db_url, w, BATCHES, BATCH_SIZE, barrier), name=f"writer-{w}")
        for w in range(WRITERS)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=600)
    for process in workers:
        if process.is_alive():
            process.kill()
            process.join()
    assert [p.exitcode for p in workers] == [0] * WRITERS

    total = WRITERS * BATCHES * BATCH_SIZE
    store = open_store(db_url)
    try:
        assert count(store) == total
        assert int(store.scalar("SELECT COUNT(DISTINCT uid) FROM usage_events")) == total
        for name in ROLLUPS:
            assert int(store.scalar(f"SELECT CAST(SUM(events) AS BIGINT) FROM {name}")) == total, name
        assert_rollups_match_events(store)
    finally:
        store.close()


def test_schema_3_database_upgrades_to_the_event_time_index(db_url: str) -> None:
    """Schema 4 indexes raw events by time instead of by (customer, time): a version-3 database
    (the old index, its events) upgrades, keeps its rows, and gets the new index."""
    engine = create_engine(db_url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_usage_events_ts"))
            conn.execute(text("CREATE INDEX ix_usage_events_customer_ts ON usage_events (customer_id, ts_us)"))
            conn.execute(metadata.tables["walleta_meta"].insert(), [{"key": "schema_version", "value": "3"}])
    finally:
        engine.dispose()
    store = open_store(db_url)
    try:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        names = {ix["name"] for ix in inspect(store.engine).get_indexes("usage_events")}
        assert "ix_usage_events_ts" in names and "ix_usage_events_customer_ts" not in names
        frame = pd.DataFrame({"ts_us": [1_767_225_600_000_000], "customer_id": ["acme"], "model": ["gpt-4o"],
                              "input_tokens": [5]})
        assert record_events(store, frame, load_catalog(), source="file").inserted == 1
    finally:
        store.close()


# Version 4's rollups: the same columns, keyed by customer/dimension first, plus a time index.
_V4_ROLLUP_KEYS = {
    "rollup_customer_month_model": ("customer_id", "month", "model"),
    "rollup_customer_month_feature": ("customer_id", "month", "feature"),
    "rollup_customer_day": ("customer_id", "day"),
    "rollup_feature_model_day": ("feature", "model", "day"),
    "rollup_project_model_day": ("project_id", "model", "day", "service_tier", "batch"),
    "rollup_customer_month": ("customer_id", "month"),
}


def _downgrade_rollups_to_schema_4(store: Store) -> None:
    """Rebuild every rollup (rows kept) in version 4's layout and mark the database version 4."""
    with store.transaction() as cur:
        for name, keys in _V4_ROLLUP_KEYS.items():
            time_key = "day" if "day" in keys else "month"
            columns = [f"{k} {'INTEGER' if k == 'batch' else 'TEXT'} NOT NULL" for k in keys]
            columns += [f"{m} BIGINT DEFAULT 0 NOT NULL" for m in ROLLUP_MEASURES]
            rowid = " WITHOUT ROWID" if store.dialect == "sqlite" else ""
            cur.execute(f"ALTER TABLE {name} RENAME TO old_{name}")
            cur.execute(f"CREATE TABLE {name} ({', '.join(columns)}, PRIMARY KEY ({', '.join(keys)})){rowid}")
            cur.execute(f"INSERT INTO {name} SELECT {', '.join((*keys, *ROLLUP_MEASURES))} FROM old_{name}")
            cur.execute(f"DROP TABLE old_{name}")
            cur.execute(f"CREATE INDEX ix_{name}_{time_key} ON {name} ({time_key})")
        cur.execute(store.sql("UPDATE walleta_meta SET value = ? WHERE key = ?"), ["4", "schema_version"])


def test_schema_4_rollups_are_rebuilt_time_first(db_url: str) -> None:
    """Schema 5 keys every rollup by its time column first: a version-4 database (customer-first
    keys, separate time indexes, rows in them) upgrades with every rollup row kept, the new keys,
    no old index, and rollups that stay exact on later writes."""
    store = open_store(db_url)
    store.write_events(make_events(400, seed=1))
    before = {name: rollup(store, name) for name in ROLLUPS}
    _downgrade_rollups_to_schema_4(store)
    inspector = inspect(store.engine)
    assert inspector.get_pk_constraint("rollup_customer_day")["constrained_columns"] == ["customer_id", "day"]
    store.close()

    store = open_store(db_url)
    try:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION) == "8"
        inspector = inspect(store.engine)
        for name, keys in ROLLUPS.items():
            assert keys[0] in ("day", "month"), name
            assert inspector.get_pk_constraint(name)["constrained_columns"] == list(keys), name
            # the same columns, in the same order, as create_all gives a new database
            assert [c["name"] for c in inspector.get_columns(name)] == [c.name for c in metadata.tables[name].columns], name
            assert not inspector.get_indexes(name), (name, inspector.get_indexes(name))
            assert rollup(store, name) == before[name], name
        if store.dialect == "postgresql":  # the constraint is named as on a new database
            assert inspector.get_pk_constraint("rollup_customer_day")["name"] == "rollup_customer_day_pkey"
        store.write_events(make_events(300, seed=2))
        assert_rollups_match_events(store)
    finally:
        store.close()


def test_time_range_reads_of_raw_events_use_the_time_index(sqlite_url: str) -> None:
    """The hourly meter windows and the usage rule read raw events by time range: SQLite's
    planner must search `ix_usage_events_ts`, not scan the table (10M rows take seconds).
    (SQLite only: PostgreSQL picks plans from table statistics.)"""
    store = open_store(sqlite_url)
    plan = store.query(
        "EXPLAIN QUERY PLAN SELECT customer_id, COUNT(*) FROM usage_events "
        "WHERE day >= ? AND day <= ? AND ts_us >= ? AND ts_us < ? GROUP BY customer_id",
        ["2026-01-01", "2026-01-02", 1_767_225_600_000_000, 1_767_398_400_000_000],
    )
    assert any("ix_usage_events_ts" in str(detail) for detail in plan["detail"]), plan["detail"].tolist()


def test_schema_5_gets_the_bill_index_by_day(db_url: str) -> None:
    """Schema 6 indexes billed_costs by day (with the columns reconciliation reads): a version-5
    database without it gains it on open, rows kept; on SQLite a month's bill is read from it."""
    store = open_store(db_url)
    store.upsert("billed_costs", [
        {"uid": f"b{i}", "day": f"2026-0{1 + i % 3}-1{i % 9}", "project_id": "p", "api_key_id": "", "line_item": "gpt-5, input",
         "amount_pico": 10**12 * (i + 1), "currency": "USD", "quantity": None, "quantity_unit": "", "source": "test"} for i in range(30)
    ], ["uid"])
    with store.transaction() as cur:  # as version 5 left it
        cur.execute("DROP INDEX ix_billed_costs_day")
        cur.execute(store.sql("UPDATE walleta_meta SET value = ? WHERE key = ?"), ["5", "schema_version"])
    assert "ix_billed_costs_day" not in {i["name"] for i in inspect(store.engine).get_indexes("billed_costs")}
    store.close()

    store = open_store(db_url)
    try:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION) == "8"
        index = {i["name"]: i for i in inspect(store.engine).get_indexes("billed_costs")}["ix_billed_costs_day"]
        assert index["column_names"] == ["day", "project_id", "line_item", "currency", "amount_pico"]
        assert store.scalar("SELECT COUNT(*) FROM billed_costs") == 30
        if store.dialect == "sqlite":
            plan = " ".join(str(r[-1]) for r in store.fetch(
                "EXPLAIN QUERY PLAN SELECT day, project_id, line_item, currency, amount_pico FROM billed_costs "
                "WHERE day >= '2026-02-01' AND day <= '2026-02-28'")[1])
            assert "COVERING INDEX ix_billed_costs_day" in plan, plan
    finally:
        store.close()


def test_schema_6_gets_a_store_id_and_counts_the_upgrade_as_a_change(db_url: str) -> None:
    """Schema 7: a version-6 database (no store id, no change counters) gains its store id on
    open, and the upgrade bumps `generation:all` so nothing cached before it is reused."""
    store = open_store(db_url)
    with store.transaction() as cur:  # as version 6 left it
        cur.execute(store.sql("DELETE FROM walleta_meta WHERE key = ? OR key LIKE ?"), ["store_id", "generation:%"])
        cur.execute(store.sql("UPDATE walleta_meta SET value = ? WHERE key = ?"), ["6", "schema_version"])
    assert store.get_meta("store_id") is None
    store.close()

    store = open_store(db_url)
    try:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION) == "8"
        first_id = store.get_meta("store_id")
        assert first_id and len(first_id) == 32 and store.get_meta("generation:all") == "1"
        store.close()
        store = open_store(db_url)  # a plain re-open is not a change, and keeps the id
        assert store.get_meta("store_id") == first_id and store.get_meta("generation:all") == "1"
    finally:
        store.close()


def _indexes_of_events(store: Store) -> set[str]:
    return {index["name"] for index in inspect(store.engine).get_indexes("usage_events")}


def test_schema_7_gains_the_provider_events_index(db_url: str) -> None:
    """Schema 8: provider usage has its own partial index; a version-7 database gets it on open."""
    store = open_store(db_url)
    assert "ix_usage_events_provider" in _indexes_of_events(store)  # a new database has it
    with store.transaction() as cur:  # as version 7 left it
        cur.execute("DROP INDEX ix_usage_events_provider")
        cur.execute(store.sql("UPDATE walleta_meta SET value = ? WHERE key = ?"), ["7", "schema_version"])
    store.close()
    store = open_store(db_url)
    try:
        assert "ix_usage_events_provider" in _indexes_of_events(store)
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION) == "8"
    finally:
        store.close()


def test_reads_of_provider_usage_use_its_index_not_a_scan_of_every_event(sqlite_url: str) -> None:
    """The Data page's mapping overview and re-mapping name the rows of provider usage with the
    partial index's own predicate, so SQLite reads that index instead of every event: every
    statement they run on `usage_events` is explained and must search the index."""
    from walleta.sources.mapping import mapping_overview, remap_provider_events

    from .sql_trace import traced

    store = open_store(sqlite_url)
    try:
        with traced(store) as statements:
            mapping_overview(store)
            with store.transaction() as cur:
                remap_provider_events(store, cur=cur)
        seen = [s for s in statements if "usage_events" in s and s.lstrip().upper().startswith(("SELECT", "UPDATE"))]
        assert len(seen) >= 4  # three usage columns + the re-mapping UPDATE
        for statement in seen:
            details = " ".join(str(row[-1]) for row in store.fetch(f"EXPLAIN QUERY PLAN {statement}")[1])
            assert "USING INDEX ix_usage_events_provider" in details, (statement, details)
    finally:
        store.close()
