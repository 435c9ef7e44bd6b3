"""Bulk load: N generated events through Walleta's own write path vs plain sqlite3.executemany.

Prints rows/s for
  - baseline: sqlite3.executemany of the same rows into a table with the same columns, no
    indexes, one transaction, WAL + synchronous=NORMAL (the floor for getting rows into SQLite);
  - walleta write: Store.write_events (uid index, customer index, six rollups updated in the
    same transaction) on an already prepared frame;
  - walleta end to end: events.prepare_events (defaults, uids, pricing) + Store.write_events.
Each figure comes with the process CPU time it took (SQLite runs in-process), and the ratio is
also given in CPU time: on a shared machine the wall-clock ratio moves with other processes' load.
Target (issue 2): walleta write within 1.5x of the baseline. Run: python bench/bulk_load.py [--rows N] [--quick]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from walleta.catalog import load_catalog  # noqa: E402
from walleta.events import prepare_events  # noqa: E402
from walleta.schema import EVENT_COLUMNS  # noqa: E402
from walleta.store import _frame_to_rows, open_store  # noqa: E402

MODELS = ["gpt-5.4", "gpt-5.4-mini", "gpt-5-mini", "gpt-4.1-mini", "o4-mini", "text-embedding-3-small", "gpt-5.6-sol"]


def generate(rows: int, seed: int = 1) -> pd.DataFrame:
    """Zipf-skewed customers, mild feature/model skew, lognormal tokens over 2025."""
    rng = np.random.default_rng(seed)
    customers = np.array([f"cust_{i:05d}" for i in range(10_000)], dtype=object)
    ranks = np.minimum(rng.zipf(1.1, rows), 10_000) - 1
    input_tokens = np.round(rng.lognormal(np.log(800), 0.8, rows)).astype(np.int64)
    cached = np.where(rng.random(rows) < 0.4, (input_tokens * rng.random(rows)).astype(np.int64), 0)
    output_tokens = np.round(rng.lognormal(np.log(300), 0.7, rows)).astype(np.int64)
    return pd.DataFrame(
        {
            "ts_us": np.sort(rng.integers(1_735_689_600_000_000, 1_767_225_600_000_000, rows)),
            "customer_id": customers[ranks],
            "feature": np.array([f"feature_{i}" for i in range(20)], dtype=object)[rng.integers(0, 20, rows)],
            "model": np.array(MODELS, dtype=object)[rng.integers(0, len(MODELS), rows)],
            "input_tokens": input_tokens,
            "cached_input_tokens": cached,
            "output_tokens": output_tokens,
            "reasoning_tokens": (output_tokens * 0.3).astype(np.int64),
            "request_id": np.array([f"req_{i:09d}" for i in range(rows)], dtype=object),
            "latency_ms": rng.integers(100, 5000, rows),
        }
    )


def baseline(rows: list[tuple], path: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one executemany of `rows` in one transaction."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"CREATE TABLE events ({', '.join(EVENT_COLUMNS)})")
    started, cpu = time.perf_counter(), time.process_time()
    connection.execute("BEGIN")
    connection.executemany(f"INSERT INTO events VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})", rows)
    connection.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    connection.close()
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100k rows")
    args = parser.parse_args()
    n = 100_000 if args.quick else args.rows
    catalog = load_catalog()
    frame = generate(n)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        prepared = prepare_events(frame, catalog, source="bench")
        prepare_s = time.perf_counter() - started
        base_s, base_cpu = baseline(_frame_to_rows(prepared), Path(folder) / "baseline.db")
        store = open_store(f"sqlite:///{folder}/walleta.db")
        started, cpu = time.perf_counter(), time.process_time()
        result = store.write_events(prepared)
        write_s, write_cpu = time.perf_counter() - started, time.process_time() - cpu
        assert result.inserted == n
    ratio = write_s / base_s
    print(f"rows: {n:,}")
    cpu_ratio = write_cpu / base_cpu
    print(f"baseline sqlite3.executemany : {base_s:7.2f} s  {n / base_s:>10,.0f} rows/s  (CPU {base_cpu:.2f} s)")
    print(f"walleta Store.write_events   : {write_s:7.2f} s  {n / write_s:>10,.0f} rows/s  (CPU {write_cpu:.2f} s; "
          f"{ratio:.2f}x baseline, {cpu_ratio:.2f}x in CPU time; target <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'})")
    print(f"walleta prepare_events       : {prepare_s:7.2f} s  {n / prepare_s:>10,.0f} rows/s")
    total = prepare_s + write_s
    print(f"walleta end to end           : {total:7.2f} s  {n / total:>10,.0f} rows/s  ({total / base_s:.2f}x baseline)")


if __name__ == "__main__":
    main()
