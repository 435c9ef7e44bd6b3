"""Benchmark: a usage CSV imported end to end (parse, validate, cost, store) vs pandas.read_csv.

    python bench/import_csv.py            # 1,000,000 rows (the issue's target: >= 200k rows/s)
    python bench/import_csv.py --quick    # 20,000 rows, a smoke run
    python bench/import_csv.py --db postgresql://...   # store into PostgreSQL instead

The file is generated deterministically in a temporary folder (Walleta's usage schema with
request ids, cached and reasoning tokens, tiers and batch flags over eight models and 500
customers). Both timings read the same file in the same run; the import goes into a fresh
database and its phases are timed from the importer's own progress callbacks. The storage
floor (the same events through Walleta's own insert statement, no index, no rollups) bounds what
any SQLite import can reach: parse + validate + cost, then the floor, is printed as the ceiling.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from walleta.catalog import load_catalog  # noqa: E402
from walleta.events import prepare_events  # noqa: E402
from walleta.schema import EVENT_COLUMNS  # noqa: E402
from walleta.sources.csv_import import import_csv  # noqa: E402
from walleta.store import _insert_many, _split_event_columns  # noqa: E402
from walleta.store import open_store  # noqa: E402

TARGET_ROWS_PER_S = 200_000
MODELS = ["gpt-5-mini", "gpt-4.1", "gpt-4.1-mini", "o4-mini", "gpt-5.4", "text-embedding-3-small", "gpt-4o-2024-08-06", "gpt-5-nano"]
FEATURES = ["chat_assistant", "summarize", "semantic_search", "document_qa", "code_review", "email_drafts", "agent_tasks"]


def write_usage_csv(path: Path, rows: int, seed: int = 7) -> None:
    """A deterministic usage CSV in Walleta's schema."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2025-09-01T00:00:00", "s")
    seconds = np.sort(rng.integers(0, 90 * 86_400, rows))
    stamps = np.datetime_as_string(start + seconds.astype("timedelta64[s]"), unit="s")
    input_tokens = rng.lognormal(7.0, 1.0, rows).astype(np.int64) + 1
    output_tokens = rng.lognormal(5.5, 1.0, rows).astype(np.int64)
    cached = np.where(rng.random(rows) < 0.4, (input_tokens * rng.random(rows)).astype(np.int64), 0)
    reasoning = np.where(rng.random(rows) < 0.3, (output_tokens * rng.random(rows) * 0.5).astype(np.int64), 0)
    customers = np.array([f"cus_{i:04d}" for i in range(500)])[np.minimum(rng.zipf(1.3, rows), 500) - 1]
    table = pa.table({
        "timestamp": pa.array(np.char.add(stamps.astype(str), "Z")),
        "customer_id": pa.array(customers),
        "feature": pa.array(np.array(FEATURES)[rng.integers(0, len(FEATURES), rows)]),
        "model": pa.array(np.array(MODELS)[rng.integers(0, len(MODELS), rows)]),
        "input_tokens": pa.array(input_tokens),
        "cached_input_tokens": pa.array(cached),
        "output_tokens": pa.array(output_tokens),
        "reasoning_tokens": pa.array(reasoning),
        "service_tier": pa.array(np.array(["default", "default", "default", "flex", "priority"])[rng.integers(0, 5, rows)]),
        "batch": pa.array(np.where(rng.random(rows) < 0.1, "true", "false")),
        "request_id": pa.array(np.char.add("req_", np.arange(rows).astype(str))),
        "latency_ms": pa.array(rng.integers(80, 20_000, rows)),
    })
    pacsv.write_csv(table, path)


def storage_floor(path: Path, catalog: object, folder: Path) -> tuple[float, float]:
    """(wall s, CPU s) of the least any SQLite write path from Python can do with this file's
    events: Walleta's own insert (`store._insert_many`: 32 rows per INSERT statement, only the
    columns that vary bound, the others written as literals) in one transaction (WAL,
    synchronous=NORMAL) into a table of the events' columns with no index and no rollups."""
    frame = pd.read_csv(path, keep_default_na=False)
    frame["ts_us"] = pd.to_datetime(frame.pop("timestamp"), utc=True).astype("int64") // 1_000
    frame["batch"] = frame["batch"] == "true"
    split = _split_event_columns(prepare_events(frame, catalog, source="csv", uid_prefix="csv"))
    connection = sqlite3.connect(folder / "floor.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"CREATE TABLE events ({', '.join(EVENT_COLUMNS)})")
    values = ", ".join(split.constants.get(c, "?") for c in EVENT_COLUMNS)
    started, cpu = time.perf_counter(), time.process_time()
    connection.execute("BEGIN")
    _insert_many(connection.cursor(), f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ", f"({values})", "", split.rows())
    connection.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    connection.close()
    return elapsed, cpu


class PhaseClock:
    """Records when each import phase is first reported."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        self.marks: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def __call__(self, phase: str, _done: int, _total: int) -> None:
        self.marks.setdefault(phase, time.perf_counter() - self.start)
        self.cpu.setdefault(phase, time.process_time() - self.cpu_start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    parser.add_argument("--rows", type=int, help="number of rows (default 1,000,000)")
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file in a temporary folder)")
    args = parser.parse_args(argv)
    rows = args.rows or (20_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="walleta-bench-") as folder:
        path = Path(folder) / "usage.csv"
        write_usage_csv(path, rows)
        size_mb = path.stat().st_size / 2**20
        catalog = load_catalog()
        store = open_store(args.db or f"sqlite:///{Path(folder) / 'bench.db'}")

        started, cpu = time.perf_counter(), time.process_time()
        baseline = pd.read_csv(path)
        pandas_s, pandas_cpu = time.perf_counter() - started, time.process_time() - cpu
        assert len(baseline) == rows
        del baseline

        clock, cpu = PhaseClock(), time.process_time()
        report = import_csv(store, path, kind="usage", catalog=catalog, progress=clock)
        walleta_s, walleta_cpu = time.perf_counter() - clock.start, time.process_time() - cpu
        assert report.imported == rows and not report.errors, report.summary_line()
        floor_s, floor_cpu = storage_floor(path, catalog, Path(folder))

    marks, cpus = clock.marks, clock.cpu
    names = [("read", "reading", "validating"), ("validate", "validating", "pricing"), ("cost (prepare_events)", "pricing", "writing"), ("store (write_events + rollups)", "writing", None)]
    phases = [
        (label, marks.get(begin, 0.0), marks[end] if end else walleta_s, cpus.get(begin, 0.0), cpus[end] if end else walleta_cpu)
        for label, begin, end in names
    ]
    print(f"usage CSV: {rows:,} rows, {size_mb:.1f} MiB, database {store.dialect}")
    print(f"  pandas.read_csv alone            {pandas_s:7.2f} s  {rows / pandas_s:>12,.0f} rows/s   (CPU {pandas_cpu:.2f} s)")
    print(f"  walleta import csv, end to end   {walleta_s:7.2f} s  {rows / walleta_s:>12,.0f} rows/s   (CPU {walleta_cpu:.2f} s; {walleta_s / pandas_s:.1f}x read_csv)")
    for name, begin, end, cpu_begin, cpu_end in phases:
        print(f"    {name:<32} {end - begin:7.2f} s   (CPU {cpu_end - cpu_begin:.2f} s)")
    before_store = marks.get("writing", walleta_s)
    print(f"  parse + validate + cost only     {before_store:7.2f} s  {rows / before_store:>12,.0f} rows/s   (CPU {cpus.get('writing', walleta_cpu):.2f} s)")
    print(f"  storage floor (the same insert, no index, no rollups) {floor_s:.2f} s  {rows / floor_s:>10,.0f} rows/s   (CPU {floor_cpu:.2f} s)")
    ceiling = rows / (before_store + floor_s)
    print(f"  ceiling of any SQLite import: parse + validate + cost, then the floor: {ceiling:,.0f} rows/s")
    print(f"  machine load average at the end: {os.getloadavg()[0]:.1f} (CPU-time figures are less sensitive to it)")
    verdict = "meets" if rows / walleta_s >= TARGET_ROWS_PER_S else "misses"
    print(f"  target {TARGET_ROWS_PER_S:,} rows/s end to end: {verdict} it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
