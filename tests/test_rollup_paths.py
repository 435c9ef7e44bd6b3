"""Rollup deltas: the plain-Python path (small batches) and the numpy path (large batches) give
the same rows, both equal a brute-force recount, replace mode nets to one signed delta per rollup
row and deletes rows that fall to 0 events, and concurrent replace writers on PostgreSQL do not
deadlock. Random frames over several seeds (a property check without shrinking)."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pandas as pd
import pytest

from walleta.catalog import load_catalog
from walleta.events import prepare_events
from walleta.schema import EVENT_COLUMNS, ROLLUP_MEASURES, ROLLUPS
from walleta.store import (
    MAX_BOUND_VALUES,
    PARALLEL_ROLLUP_ROWS,
    ROWS_PER_STATEMENT,
    STAGED_ROLLUP_ROWS,
    Store,
    _rollup_deltas_numpy,
    _rollup_deltas_python,
    _small_batch,
    open_store,
    rollup_deltas,
)

BASE_US = 1_767_225_600_000_000  # 2026-01-01
DAY_US = 86_400_000_000


def _random_frame(rng: np.random.Generator, n: int, *, big_costs: bool = False) -> pd.DataFrame:
    """Prepared events with few distinct keys (so groups repeat), unpriced rows, errors, tiers."""
    frame = pd.DataFrame(
        {
            "ts_us": BASE_US + rng.integers(0, 70, n) * DAY_US + rng.integers(0, DAY_US, n),
            "customer_id": rng.choice(["a", "b", "B", "é", "c d"], n).astype(object),
            "feature": rng.choice(["x", "y", ""], n).astype(object),
            "model": rng.choice(["gpt-4o", "gpt-4.1-mini", "no-such-model"], n).astype(object),
            "input_tokens": rng.integers(0, 5000, n),
            "cached_input_tokens": rng.integers(0, 10, n),
            "output_tokens": rng.integers(0, 900, n),
            "requests": rng.integers(1, 4, n),
            "service_tier": rng.choice(["default", "priority"], n).astype(object),
            "batch": rng.integers(0, 2, n),
            "project_id": rng.choice(["", "p1", "p2"], n).astype(object),
            "status": rng.choice(["ok", "ok", "error"], n).astype(object),
            "request_id": [f"r{rng.integers(0, 2**62)}" for _ in range(n)],
        }
    )
    prepared = prepare_events(frame, load_catalog(), source="test")
    if big_costs:  # sums past int64: Python ints
        costs = [None if rng.random() < 0.1 else 2**61 + int(rng.integers(0, 1000)) for _ in range(len(prepared))]
        prepared["cost_pico"] = pd.Series(costs, dtype=object)
        prepared["provider_cost_pico"] = pd.Series([2**60 if c else None for c in costs], dtype=object)
    return prepared


def _as_dict(deltas: dict[str, tuple[list[str], list[tuple]]]) -> dict[str, dict[tuple, tuple]]:
    """rollup -> key -> every measure (0 where the path left it out), keeping each path's order."""
    out = {}
    for name, (measures, rows) in deltas.items():
        width = len(ROLLUPS[name])
        table = {}
        for row in rows:
            values = dict(zip(measures, row[width:]))
            table[tuple(row[:width])] = tuple(int(values.get(m, 0)) for m in ROLLUP_MEASURES)
        out[name] = table
    return out


def _brute_force(parts: list[tuple[pd.DataFrame, int]]) -> dict[str, dict[tuple, tuple]]:
    """The expected deltas, event by event, straight from the definitions of the measures."""
    out: dict[str, dict[tuple, list[int]]] = {name: {} for name in ROLLUPS}
    for frame, sign in parts:
        for event in frame.to_dict("records"):
            cost, provider = event["cost_pico"], event["provider_cost_pico"]
            unpriced = cost is None or cost is pd.NA
            values = {
                "events": 1,
                "errors": event["requests"] if event["status"] != "ok" else 0,
                "cost_pico": 0 if unpriced else int(cost),
                "provider_cost_pico": 0 if provider is None or provider is pd.NA else int(provider),
                "unpriced_events": int(unpriced),
                "unpriced_requests": event["requests"] if unpriced else 0,
                "unpriced_tokens": event["input_tokens"] + event["output_tokens"] if unpriced else 0,
            }
            for name, keys in ROLLUPS.items():
                key = tuple(event[k] for k in keys)
                total = out[name].setdefault(key, [0] * len(ROLLUP_MEASURES))
                for i, m in enumerate(ROLLUP_MEASURES):
                    total[i] += sign * int(values.get(m, event.get(m, 0)))
    return {name: {k: tuple(v) for k, v in table.items() if any(v)} for name, table in out.items()}


@pytest.mark.parametrize("seed", range(6))
def test_python_and_numpy_paths_equal_a_brute_force_recount(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for n in (1, 7, int(rng.integers(2, 300)), int(rng.integers(301, 900))):
        new = _random_frame(rng, n, big_costs=seed % 3 == 2)
        old = new.sample(frac=0.5, random_state=seed).reset_index(drop=True)  # replace: new minus old
        for parts in ([(new, 1)], [(old, -1)], [(new, 1), (old, -1)]):
            expected = _brute_force(parts)
            by_python = _rollup_deltas_python(parts)
            by_numpy = _rollup_deltas_numpy(parts)
            assert _as_dict(by_python) == expected
            assert _as_dict(by_numpy) == expected
            small = [(_small_batch(frame), sign) for frame, sign in parts]
            assert _as_dict(_rollup_deltas_python(small)) == expected
            for name in ROLLUPS:  # same rows in the same (sorted) order: one lock order
                width = len(ROLLUPS[name])
                assert [r[:width] for r in by_python[name][1]] == [r[:width] for r in by_numpy[name][1]]
                assert [r[:width] for r in by_numpy[name][1]] == sorted(expected[name])


def _rollups(store: Store) -> dict[str, pd.DataFrame]:
    out = {}
    for name, keys in ROLLUPS.items():
        frame = store.query(f"SELECT {', '.join((*keys, *ROLLUP_MEASURES))} FROM {name}")
        out[name] = frame.sort_values(list(keys)).reset_index(drop=True)
    return out


def _assert_rollups_equal_a_rebuild(store: Store) -> None:
    """The incrementally kept rollups equal `rebuild_rollups` from the raw events (rebuilds them)."""
    kept = _rollups(store)
    store.rebuild_rollups()
    for name, rebuilt in _rollups(store).items():
        pd.testing.assert_frame_equal(kept[name], rebuilt, check_dtype=False, obj=name)


def test_mixed_batches_equal_rebuilt_rollups(store: Store) -> None:
    """Small and large batches, duplicates, replacements that move events and empty rollup rows:
    the incrementally kept rollups equal `rebuild_rollups` from the raw events."""
    rng = np.random.default_rng(11)
    written = []
    for n in (1, 350, 40, 700, 3):
        frame = _random_frame(rng, n)
        store.write_events(frame)
        written.append(frame)
    everything = pd.concat(written, ignore_index=True)
    for size in (2, 320):  # small and large replacements: events move to a brand-new customer
        changed = everything.sample(n=size, random_state=size).copy()
        changed["customer_id"] = f"moved{size}"
        changed["output_tokens"] = changed["output_tokens"] + 1
        result = store.write_events(changed, on_conflict="replace")
        assert result.replaced == size
    same = everything.iloc[:5]  # replacing a row by itself changes nothing
    store.write_events(same, on_conflict="replace")
    for name in ROLLUPS:
        assert store.scalar(f"SELECT COUNT(*) FROM {name} WHERE events <= 0") == 0, name
    _assert_rollups_equal_a_rebuild(store)


def test_concurrent_replace_writers_do_not_deadlock(pg_url: str) -> None:
    """Two writers replace the same events in opposite row orders, many times: rollup rows are
    locked in one key order, so neither hits a deadlock."""
    store = open_store(pg_url)
    base = _random_frame(np.random.default_rng(3), 400)
    store.write_events(base)
    errors: list[BaseException] = []

    def writer(reverse: bool, size: int) -> None:
        try:
            own = open_store(pg_url, create=False)
            for round_ in range(6):
                batch = base.iloc[:size].copy()
                batch["output_tokens"] = batch["output_tokens"] + round_
                if reverse:
                    batch = batch.iloc[::-1]
                own.write_events(batch.reset_index(drop=True), on_conflict="replace")
            own.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(r, s)) for r, s in ((False, 400), (True, 400), (True, 150))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    _assert_rollups_equal_a_rebuild(store)


def test_large_batch_with_random_uids_keeps_the_first_of_a_repeated_uid(sqlite_url: str) -> None:
    """A batch large enough to be inserted in uid order (SQLite): rows come back unchanged, the
    first of two rows sharing a uid wins, and the rollups equal a rebuild."""
    store = open_store(sqlite_url)
    frame = _random_frame(np.random.default_rng(5), 12_000)
    frame["uid"] = [f"csv:{i * 7919 % 12_000:032x}" for i in range(len(frame))]  # not in uid order
    twin = frame.iloc[[10]].copy()
    twin["customer_id"] = "second"
    twin["uid"] = frame["uid"].iloc[5000]
    batch = pd.concat([frame, twin], ignore_index=True)
    result = store.write_events(batch)
    assert (result.inserted, result.skipped) == (12_000, 1)
    stored = store.query("SELECT uid, customer_id, output_tokens FROM usage_events")
    expected = frame[["uid", "customer_id", "output_tokens"]]
    pd.testing.assert_frame_equal(
        stored.sort_values("uid").reset_index(drop=True), expected.sort_values("uid").reset_index(drop=True), check_dtype=False
    )
    _assert_rollups_equal_a_rebuild(store)


@pytest.mark.parametrize("n", [3, 400])
def test_a_uid_repeated_within_a_batch_counts_once(store: Store, n: int) -> None:
    """Small (plain lists) and large (frame) batches: the first row of a repeated uid is stored and
    rolled up, the repeat is skipped (before, the rollups counted both on every path)."""
    frame = _random_frame(np.random.default_rng(n), n)
    twin = frame.iloc[[0]].copy()
    twin["customer_id"] = "second"
    twin["uid"] = frame["uid"].iloc[1]
    result = store.write_events(pd.concat([frame, twin], ignore_index=True))
    assert (result.inserted, result.skipped) == (n, 1)
    assert store.scalar("SELECT COUNT(*) FROM usage_events WHERE customer_id = 'second'") == 0
    _assert_rollups_equal_a_rebuild(store)


def test_staged_upserts_add_to_existing_rollup_rows(store: Store) -> None:
    """Batches with more than STAGED_ROLLUP_ROWS delta rows per rollup go through the staging
    table: written on top of overlapping rows (added, not overwritten), in ignore and replace
    mode, the rollups still equal a rebuild from the raw events."""
    rng = np.random.default_rng(5)
    first, second = _random_frame(rng, 3_000), _random_frame(rng, 3_000)
    deltas = rollup_deltas([(second, 1)])
    assert len(deltas["rollup_customer_day"][1]) > STAGED_ROLLUP_ROWS  # the staged path runs
    store.write_events(first)
    store.write_events(second)
    moved = first.sample(n=1_000, random_state=1).copy()
    moved["customer_id"] = "moved"
    assert store.write_events(moved, on_conflict="replace").replaced == 1_000
    _assert_rollups_equal_a_rebuild(store)


def test_large_batches_on_the_parallel_path_equal_rebuilt_rollups(store: Store) -> None:
    """From PARALLEL_ROLLUP_ROWS events, rollup deltas are computed on a second thread during
    the insert and used only if every row was new: all new, some duplicates (recomputed for
    the rows kept) and replace mode all leave the rollups equal to a rebuild."""
    rng = np.random.default_rng(8)
    first = _random_frame(rng, PARALLEL_ROLLUP_ROWS + 10)
    assert store.write_events(first).inserted == len(first)
    mixed = pd.concat([first.iloc[:5_000], _random_frame(rng, PARALLEL_ROLLUP_ROWS)], ignore_index=True)
    result = store.write_events(mixed)
    assert (result.inserted, result.skipped) == (PARALLEL_ROLLUP_ROWS, 5_000)
    moved = first.iloc[:PARALLEL_ROLLUP_ROWS].copy()
    moved["customer_id"] = "moved"
    assert store.write_events(moved, on_conflict="replace").replaced == PARALLEL_ROLLUP_ROWS
    _assert_rollups_equal_a_rebuild(store)


@pytest.mark.parametrize("n", [31, 32, 33, 65])
def test_rows_around_the_multi_row_statement_size_are_stored_exactly(sqlite_url: str, n: int) -> None:
    """SQLite inserts ROWS_PER_STATEMENT rows per statement and the rest in a last one: every
    row arrives once, with its own values, whatever the remainder (here 32 rows per statement)."""
    assert ROWS_PER_STATEMENT == 32
    store = open_store(sqlite_url)
    frame = _random_frame(np.random.default_rng(n), n)
    assert store.write_events(frame).inserted == n
    stored = store.query("SELECT uid, customer_id, input_tokens, output_tokens FROM usage_events ORDER BY id")
    expected = frame[["uid", "customer_id", "input_tokens", "output_tokens"]]  # small batches keep their order
    assert stored.values.tolist() == expected.values.tolist()
    _assert_rollups_equal_a_rebuild(store)


def test_wide_rows_stay_within_the_oldest_sqlite_limit_on_bound_values(sqlite_url: str) -> None:
    """Every event column varying (45 bound values per row): statements carry at most
    MAX_BOUND_VALUES values (999, SQLite's limit before 3.32), checked on a connection that
    enforces exactly that limit, and all rows arrive."""
    store = open_store(sqlite_url)
    with store.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, MAX_BOUND_VALUES)
        frame = _random_frame(np.random.default_rng(3), 100)
        for column in EVENT_COLUMNS:  # make every column vary from row to row
            if column in ("id", "uid") or frame[column].nunique(dropna=False) > 1:
                continue
            text = frame[column].notna().any() and isinstance(frame[column].dropna().iloc[0], str)
            frame[column] = [f"v{i % 2}" if text else i % 2 for i in range(len(frame))]
        assert all(frame[c].nunique(dropna=False) > 1 for c in EVENT_COLUMNS if c != "id")
        cursor = raw.cursor()
        cursor.execute("BEGIN")
        store.write_events(frame, cur=cursor)
        cursor.execute("COMMIT")
    assert store.scalar("SELECT COUNT(*) FROM usage_events") == 100
