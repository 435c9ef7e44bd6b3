"""Shared helpers of the reliability suite: deterministic usage, brute-force recounts, figures.

- `usage_batches(seed, batches, rows)` builds the same usage frames on every call (parent and
  child processes agree on them without passing data around).
- `brute_force_rollups(store)` recomputes every rollup with a plain GROUP BY over `usage_events`,
  written here independently of `walleta.store`; `stored_rollups(store)` reads the rollup tables.
- `assert_consistent(store)` checks the two agree exactly (every key, every measure).
- `totals(store)` is the handful of numbers a clean run and a faulted run must share.
- `record_figures(name, **counts)` adds a test's counts (inputs tried, faults injected, events
  lost) to `test-artifacts/reliability.json`; `bench/reliability_report.py` prints them.
- `fork_context()`: a multiprocessing forkserver that has walleta and pandas imported already,
  so each child process (to be killed, or to run concurrently) starts in milliseconds.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from walleta.schema import ROLLUP_MEASURES, ROLLUPS, TOKEN_COLUMNS
from walleta.store import Store

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "test-artifacts" / "reliability.json"
SOAK = os.environ.get("WALLETA_SOAK", "") not in ("", "0")
DAY_US = 86_400_000_000
START_US = 1_767_225_600_000_000  # 2026-01-01T00:00Z
MODELS = ("gpt-4o", "gpt-4.1-mini", "gpt-5-mini", "o4-mini", "text-embedding-3-small", "no-such-model-zz")
CUSTOMERS = tuple(f"cust_{i:03d}" for i in range(40))
FEATURES = ("chat", "search", "summarize", "agent", "(none)")

# Independent SQL for each rollup measure (not taken from walleta.store).
_MEASURE_SQL: dict[str, str] = {
    "events": "COUNT(*)",
    "errors": "SUM(CASE WHEN status = 'ok' THEN 0 ELSE requests END)",
    "cost_pico": "SUM(CASE WHEN cost_pico IS NULL THEN 0 ELSE cost_pico END)",
    "provider_cost_pico": "SUM(CASE WHEN provider_cost_pico IS NULL THEN 0 ELSE provider_cost_pico END)",
    "unpriced_events": "SUM(CASE WHEN cost_pico IS NULL THEN 1 ELSE 0 END)",
    "unpriced_requests": "SUM(CASE WHEN cost_pico IS NULL THEN requests ELSE 0 END)",
    "unpriced_tokens": "SUM(CASE WHEN cost_pico IS NULL THEN input_tokens + output_tokens ELSE 0 END)",
}


def usage_batches(seed: int, batches: int, rows: int, *, overlap: int = 0, prefix: str = "b") -> list[pd.DataFrame]:
    """`batches` deterministic usage frames of `rows` rows each.

    Half the rows carry a request id (uid `req:...`), half are anonymous file rows (content uid).
    Batch k starts with the last `overlap` rows of batch k-1 (an overlapping re-import). One model
    has no price, some calls failed, a few carry a provider-reported cost.
    """
    rng = np.random.default_rng(seed)
    frames: list[pd.DataFrame] = []
    previous: pd.DataFrame | None = None
    for b in range(batches):
        n = rows - (overlap if previous is not None else 0)
        output = rng.integers(0, 4_000, n)
        frame = pd.DataFrame(
            {
                "ts_us": START_US + rng.integers(0, 90 * DAY_US, n),
                "customer_id": rng.choice(CUSTOMERS, n),
                "feature": rng.choice(FEATURES, n),
                "model": rng.choice(MODELS, n, p=[0.25, 0.25, 0.2, 0.1, 0.15, 0.05]),
                "input_tokens": rng.integers(1, 60_000, n),
                "output_tokens": output,
                "reasoning_tokens": output // 3,
                "requests": rng.integers(1, 3, n),
                "project_id": rng.choice(["proj_a", "proj_b", ""], n),
                "service_tier": rng.choice(["default", "flex", "priority"], n, p=[0.8, 0.1, 0.1]),
                "status": rng.choice(["ok", "error"], n, p=[0.95, 0.05]),
                "request_id": [f"req_{prefix}{seed}_{b}_{i}" if i % 2 == 0 else "" for i in range(n)],
            }
        )
        frame["cached_input_tokens"] = frame["input_tokens"] // 4
        if previous is not None and overlap:
            frame = pd.concat([previous.tail(overlap), frame], ignore_index=True)
        frames.append(frame)
        previous = frame
    return frames


def brute_force_rollups(store: Store) -> dict[str, pd.DataFrame]:
    """Every rollup recomputed from the raw events, sorted by its keys."""
    out = {}
    for name, keys in ROLLUPS.items():
        key_sql = ", ".join(keys)
        measures = ", ".join(
            f"CAST({_MEASURE_SQL.get(m, f'SUM({m})')} AS BIGINT) AS {m}" for m in ROLLUP_MEASURES
        )
        frame = store.query(f"SELECT {key_sql}, {measures} FROM usage_events GROUP BY {key_sql}")
        out[name] = _normalise(frame, keys)
    return out


def stored_rollups(store: Store) -> dict[str, pd.DataFrame]:
    """Every rollup table as stored (rows with zero events dropped), sorted by its keys."""
    out = {}
    for name, keys in ROLLUPS.items():
        frame = store.query(f"SELECT {', '.join((*keys, *ROLLUP_MEASURES))} FROM {name} WHERE events <> 0")
        out[name] = _normalise(frame, keys)
    return out


def _normalise(frame: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    columns = [*keys, *ROLLUP_MEASURES]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    frame = frame.loc[:, columns].copy()
    for m in ROLLUP_MEASURES:
        frame[m] = [int(v) for v in frame[m].tolist()]
    if "batch" in keys:
        frame["batch"] = [int(v) for v in frame["batch"].tolist()]
    return frame.sort_values(list(keys), kind="stable").reset_index(drop=True).astype(object)


def assert_consistent(store: Store) -> None:
    """Every rollup equals a brute-force recount of the raw events, key by key, exactly."""
    recount = brute_force_rollups(store)
    stored = stored_rollups(store)
    for name in ROLLUPS:
        pd.testing.assert_frame_equal(stored[name], recount[name], check_dtype=False, obj=name)


def assert_totals_agree(store: Store) -> None:
    """Cheap check (one statement, one snapshot): every rollup holds as many events, requests and
    pico-dollars as the raw table. `assert_consistent` is the full, key-by-key check."""
    measures = ("COUNT(*)", "SUM(requests)", "SUM(COALESCE(cost_pico, 0))")
    parts = [f"(SELECT CAST(COALESCE({m}, 0) AS BIGINT) FROM usage_events)" for m in measures]
    for name in ROLLUPS:
        parts += [f"(SELECT CAST(COALESCE(SUM({m}), 0) AS BIGINT) FROM {name})" for m in ("events", "requests", "cost_pico")]
    row = [int(v) for v in store.query("SELECT " + ", ".join(parts)).iloc[0].tolist()]
    raw = row[:3]
    for index, name in enumerate(ROLLUPS):
        assert row[3 + 3 * index : 6 + 3 * index] == raw, f"{name} disagrees with usage_events: {row}"


def totals(store: Store) -> dict[str, Any]:
    """Event count, requests, every token class and money sums, as Python ints."""
    sums = ", ".join(f"CAST(COALESCE(SUM({c}), 0) AS BIGINT) AS {c}" for c in ("requests", *TOKEN_COLUMNS))
    row = store.query(
        f"SELECT CAST(COUNT(*) AS BIGINT) AS events, {sums}, "
        "CAST(COALESCE(SUM(cost_pico), 0) AS BIGINT) AS cost_pico, "
        "CAST(SUM(CASE WHEN cost_pico IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS unpriced_events "
        "FROM usage_events"
    ).iloc[0]
    return {k: int(v) if v is not None and not pd.isna(v) else 0 for k, v in row.items()}


def stored_uids(store: Store) -> set[str]:
    """The uid of every stored event."""
    return set(store.query("SELECT uid FROM usage_events")["uid"].tolist())


def sqlite_path(url: str) -> Path | None:
    """The file of a sqlite:/// URL, or None for other databases."""
    match = re.match(r"sqlite:///(.+)$", url)
    return Path(match.group(1)) if match else None


def integrity_ok(url: str) -> bool:
    """PRAGMA integrity_check on a SQLite file (True for other databases)."""
    path = sqlite_path(url)
    if path is None:
        return True
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def record_figures(name: str, **counts: Any) -> None:
    """Add one test's counts to test-artifacts/reliability.json (read by bench/reliability_report.py).

    Safe under pytest-xdist: writers take a file lock. Entries of an earlier test run (another
    PYTEST_XDIST_TESTRUNUID, or another process when not under xdist) are dropped first, so the
    file always describes the latest run.
    """
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACT.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            report = json.loads(ARTIFACT.read_text()) if ARTIFACT.exists() else {}
        except ValueError:
            report = {}
        if report.get("run") != run:
            report = {"run": run, "started_at": int(time.time()), "tests": {}}
        report["tests"][name] = {**counts, "recorded_at": int(time.time())}
        report["finished_at"] = int(time.time())
        ARTIFACT.write_text(json.dumps(report, indent=1, sort_keys=True))


def fork_context() -> Any:
    """A forkserver multiprocessing context whose server pre-imports the worker module."""
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.reliability.workers"])
    return context
