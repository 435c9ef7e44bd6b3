"""Concurrency: app servers logging usage, a re-import and the app's queries, all at once.

Four writer processes record logged calls (unique request ids) in small batches while a fifth
imports the same overlapping usage file twice and a sixth runs the app's rollup queries in a loop.
Afterwards every event is counted exactly once, the totals equal an independent computation from
the generated rows, and every rollup equals a brute-force recount, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pandas as pd

from walleta.catalog import load_catalog
from walleta.events import prepare_events, record_events
from walleta.fx import load_fx
from walleta.headline import headline
from walleta.store import open_store

from . import workers
from .support import SOAK, assert_consistent, fork_context, integrity_ok, record_figures, totals

WRITERS = 4
WRITER_BATCHES, WRITER_ROWS = (60, 50) if SOAK else (8, 40)
FILE_SEED, FILE_BATCHES, FILE_ROWS, FILE_OVERLAP = 77, 4, 150, 30


def _expected(catalog) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Every distinct event the processes write, prepared independently of the database."""
    frames = [workers.writer_frames(w, WRITER_BATCHES, WRITER_ROWS) for w in range(WRITERS)]
    prepared = [prepare_events(f, catalog, source="log") for group in frames for f in group]
    prepared += [prepare_events(f, catalog, source="file")
                 for f in workers.file_frames(FILE_SEED, FILE_BATCHES, FILE_ROWS, FILE_OVERLAP)]
    return pd.concat(prepared, ignore_index=True).drop_duplicates("uid")


def test_writers_importer_and_reader_together_count_every_event_once(db_url: str) -> None:
    catalog = load_catalog()
    store = open_store(db_url)
    # Half of the file was imported before: the concurrent re-import overlaps it.
    for frame in workers.file_frames(FILE_SEED, FILE_BATCHES, FILE_ROWS, FILE_OVERLAP)[:2]:
        record_events(store, frame, catalog, source="file")

    context = fork_context()
    go, stop, results = context.Event(), context.Event(), context.Queue()
    writers = [
        context.Process(target=workers.usage_writer, args=(db_url, w, WRITER_BATCHES, WRITER_ROWS, go))
        for w in range(WRITERS)
    ]
    importer = context.Process(
        target=workers.file_reimport, args=(db_url, FILE_SEED, FILE_BATCHES, FILE_ROWS, FILE_OVERLAP, 2, go)
    )
    reader = context.Process(target=workers.rollup_reader, args=(db_url, go, stop, results))
    processes = [*writers, importer, reader]
    for process in processes:
        process.start()
    go.set()
    for process in [*writers, importer]:
        process.join(240)
    stop.set()
    reads, violations, error = results.get(timeout=120)
    reader.join(60)
    assert [p.exitcode for p in processes] == [0] * len(processes)
    assert error == ""
    assert reads > 0 and violations == 0

    expected = _expected(catalog)
    got = totals(store)
    assert got["events"] == len(expected)
    assert got["requests"] == int(expected["requests"].sum())
    assert got["input_tokens"] == int(expected["input_tokens"].sum())
    assert got["cost_pico"] == sum(int(v) for v in expected["cost_pico"].dropna())
    assert got["unpriced_events"] == int(expected["cost_pico"].isna().sum())
    assert headline(store, load_fx()).cost_pico == got["cost_pico"]
    assert_consistent(store)
    assert integrity_ok(db_url)
    record_figures(
        f"concurrency.writers_importer_reader[{store.dialect}]",
        kind="concurrency",
        processes=len(processes),
        events=got["events"],
        events_lost=len(expected) - got["events"],
        app_reads=reads,
        snapshot_violations=violations,
    )
    store.close()
