"""Storage faults: a bulk import killed with SIGKILL at random points, a read-only database, a full disk.

Invariants after every fault:
- the stored events are exactly the union of the batches committed so far (a batch is all or
  nothing), every rollup equals a brute-force recount, and SQLite's integrity check passes;
- a re-run of the same import completes, and its totals and rollups equal a clean run's exactly
  (no event lost, none doubled);
- a read-only or full database gives a WalletaError that says what is wrong (exit status 1 and
  one line at the CLI, no traceback), and the data already stored is untouched.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest
from sqlalchemy import event

from walleta import cli
from walleta.catalog import load_catalog
from walleta.errors import WalletaError
from walleta.events import prepare_events, record_events
from walleta.store import open_store

from . import workers
from .support import (
    SOAK,
    assert_consistent,
    assert_totals_agree,
    fork_context,
    integrity_ok,
    record_figures,
    sqlite_path,
    stored_rollups,
    stored_uids,
    totals,
    usage_batches,
)

SEED = 20260901
ITERATIONS = 150 if SOAK else 12
BATCHES, ROWS, OVERLAP = 6, 120, 20
FULL_CHECK_EVERY = 4  # the key-by-key rollup recount after every 4th kill (and at the end)


@pytest.fixture
def clean_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A second, empty database of the same kind, for the clean reference run."""
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'clean.db'}"
    return request.getfixturevalue("pg_server").create_database()


def _clean_run(url: str) -> tuple[float, list[set[str]]]:
    """Import every batch into `url` without faults; returns the time taken and the uid set
    after each committed batch (prefixes[k] = uids of batches 1..k)."""
    store = open_store(url)
    catalog = load_catalog()
    frames = usage_batches(SEED, BATCHES, ROWS, overlap=OVERLAP)
    started = time.perf_counter()
    for frame in frames:
        record_events(store, frame, catalog, source="file")
    elapsed = time.perf_counter() - started
    prefixes = [set()]
    for frame in frames:
        prefixes.append(prefixes[-1] | set(prepare_events(frame, catalog, source="file")["uid"]))
    store.close()
    return elapsed, prefixes


def test_bulk_import_killed_at_random_points_then_rerun_equals_clean_run(db_url: str, clean_url: str) -> None:
    clean_seconds, prefixes = _clean_run(clean_url)
    clean = open_store(clean_url)
    store = open_store(db_url)
    context = fork_context()
    rng = random.Random(SEED)
    killed_mid_import = 0
    committed_at_kill: list[int] = []
    # On a loaded machine an import can finish before its kill lands (the parent polls late):
    # then it keeps going, up to 3x the iterations, until half of ITERATIONS kills landed mid-import.
    for iteration in range(3 * ITERATIONS):
        if iteration >= ITERATIONS and killed_mid_import >= ITERATIONS // 2:
            break
        progress = context.Value("i", -1)
        child = context.Process(target=workers.bulk_import, args=(db_url, SEED, BATCHES, ROWS, OVERLAP, progress))
        child.start()
        # Kill once a random number of batches is committed, at a random moment inside the next one.
        target = rng.randrange(0, BATCHES)
        deadline = time.monotonic() + 120
        while progress.value < target and child.is_alive() and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, clean_seconds / BATCHES))
        child.kill()
        child.join(60)
        if child.exitcode == -9 and progress.value < BATCHES:
            killed_mid_import += 1
        # After every kill: whole batches only, rollups exact, file sound.
        uids = stored_uids(store)
        assert uids in prefixes, "a killed import left part of a batch behind"
        committed_at_kill.append(prefixes.index(uids))
        assert_totals_agree(store)
        if iteration % FULL_CHECK_EVERY == FULL_CHECK_EVERY - 1:
            assert_consistent(store)
        assert integrity_ok(db_url)
    assert killed_mid_import >= ITERATIONS // 2, f"only {killed_mid_import} kills landed during the import"

    progress = context.Value("i", -1)
    rerun = context.Process(target=workers.bulk_import, args=(db_url, SEED, BATCHES, ROWS, OVERLAP, progress))
    rerun.start()
    rerun.join(300)
    assert rerun.exitcode == 0 and progress.value == BATCHES

    assert stored_uids(store) == prefixes[-1]
    assert totals(store) == totals(clean)
    faulted, reference = stored_rollups(store), stored_rollups(clean)
    for name, frame in reference.items():
        pd.testing.assert_frame_equal(faulted[name], frame, check_dtype=False, obj=name)
    assert_consistent(store)
    assert integrity_ok(db_url)
    record_figures(
        f"faults_store.bulk_import_kill[{store.dialect}]",
        kind="fault",
        processes_killed=killed_mid_import,
        kill_attempts=ITERATIONS,
        distinct_commit_points=len(set(committed_at_kill)),
        events=totals(clean)["events"],
        events_lost=totals(clean)["events"] - totals(store)["events"],
        events_doubled=max(0, totals(store)["events"] - totals(clean)["events"]),
    )
    store.close()
    clean.close()


# -- read-only database -------------------------------------------------------------------------


@contextmanager
def read_only_view(directory: Path) -> Iterator[Path]:
    """`directory` seen read-only: a read-only bind mount when root (root ignores file modes),
    else the folder and its files made read-only with chmod. Skips when neither is possible."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [directory, *directory.iterdir()]}
        for path in modes:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield directory
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    target = directory.parent / f"{directory.name}-ro"
    target.mkdir()
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(directory), str(target)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"root without a way to make a read-only folder (mount failed: {mounted.stderr.strip()})")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def _seed_database(url: str, rows: int = 300) -> dict[str, int]:
    store = open_store(url)
    record_events(store, usage_batches(SEED, 1, rows)[0], load_catalog(), source="file")
    before = totals(store)
    store.close()
    return before


def test_read_only_sqlite_gives_a_clear_error_and_keeps_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    url = f"sqlite:///{folder / 'walleta.db'}"
    before = _seed_database(url)
    with read_only_view(folder) as view:
        ro_url = f"sqlite:///{view / 'walleta.db'}"
        with pytest.raises(WalletaError) as info:
            store = open_store(ro_url)
            record_events(store, usage_batches(SEED + 1, 1, 50)[0], load_catalog(), source="file")
        message = str(info.value)
        assert "read-only" in message or "cannot open" in message, message
        assert str(view) in message  # says which database
        status = cli.main(["--db", ro_url, "demo"])
        err = capsys.readouterr().err
        assert status == 1
        assert err.startswith("error: ") and "Traceback" not in err
    store = open_store(url)
    assert totals(store) == before
    assert_consistent(store)
    assert integrity_ok(url)
    store.close()
    record_figures("faults_store.read_only[sqlite]", kind="fault", faults_injected=2, events_lost=0)


def test_read_only_postgresql_gives_a_clear_error_and_keeps_data(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    import psycopg

    before = _seed_database(pg_url)
    database = pg_url.rsplit("/", 1)[1]
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    try:
        with pytest.raises(WalletaError) as info:
            store = open_store(pg_url)
            record_events(store, usage_batches(SEED + 1, 1, 50)[0], load_catalog(), source="file")
        assert "read-only" in str(info.value), str(info.value)
        assert cli.main(["--db", pg_url, "demo"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "read-only" in err and "Traceback" not in err
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
    store = open_store(pg_url)
    assert totals(store) == before
    assert_consistent(store)
    store.close()
    record_figures("faults_store.read_only[postgresql]", kind="fault", faults_injected=2, events_lost=0)


# -- disk full ----------------------------------------------------------------------------------


def test_disk_full_by_max_page_count_is_a_clear_error_and_keeps_data(sqlite_url: str) -> None:
    before = _seed_database(sqlite_url)
    store = open_store(sqlite_url)
    pages = int(store.scalar("PRAGMA page_count"))

    @event.listens_for(store.engine, "connect")
    def _cap(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 8}")

    store.engine.dispose()  # new connections get the cap
    with pytest.raises(WalletaError, match="full") as info:
        record_events(store, usage_batches(SEED + 2, 1, 4_000)[0], load_catalog(), source="file")
    assert str(sqlite_path(sqlite_url)) in str(info.value)
    assert totals(store) == before
    store.close()
    again = open_store(sqlite_url)  # no cap: the store works again, nothing half-written
    assert totals(again) == before
    record_events(again, usage_batches(SEED + 3, 1, 40)[0], load_catalog(), source="file")
    assert totals(again)["events"] == before["events"] + 40
    assert_consistent(again)
    assert integrity_ok(sqlite_url)
    again.close()
    record_figures("faults_store.disk_full_page_cap[sqlite]", kind="fault", faults_injected=1, events_lost=0)


def test_disk_full_by_file_size_limit_in_a_child_process(sqlite_url: str) -> None:
    before = _seed_database(sqlite_url)
    path = sqlite_path(sqlite_url)
    assert path is not None
    limit = path.stat().st_size + 64 * 1024
    context = fork_context()
    results = context.Queue()
    child = context.Process(target=workers.write_under_file_size_limit, args=(sqlite_url, limit, SEED + 4, 6_000, results))
    child.start()
    outcome, kind, message, trace = results.get(timeout=120)
    child.join(60)
    assert outcome == "walleta-error", f"{kind}: {message}\n{trace}"
    assert "full" in message and str(path) in message, message
    store = open_store(sqlite_url)
    assert totals(store) == before
    assert_consistent(store)
    assert integrity_ok(sqlite_url)
    store.close()
    record_figures("faults_store.disk_full_rlimit[sqlite]", kind="fault", faults_injected=1, events_lost=0)
