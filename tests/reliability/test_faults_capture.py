"""Durability of captured usage under SIGKILL, by flush policy.

An app server records OpenAI calls with `walleta.instrument` and calls `recorder.flush()` every
few calls; it is killed at a random moment, many times. Guarantees checked:
- every call confirmed by a successful `flush()` is in the database (flush = durable);
- nothing is counted twice (idempotent `req:<request id>` uids) and nothing is invented;
- what can be lost is bounded by the flush policy: at most the calls made after the last flush
  (the README's "the last flush_interval plus one batch");
- the rollups equal a brute-force recount after every kill; SQLite's integrity check passes.
A run that is not killed loses nothing: interpreter exit flushes.
"""

from __future__ import annotations

import random
import time

from walleta.store import open_store

from . import workers
from .support import SOAK, assert_consistent, fork_context, integrity_ok, record_figures

KILLS = 60 if SOAK else 6
CALLS, FLUSH_EVERY = 120, 10


def _stored(store, run: int) -> int:  # type: ignore[no-untyped-def]
    return int(store.scalar("SELECT COUNT(*) FROM usage_events WHERE request_id LIKE ?", [f"req_{run}_%"]))


def test_flushed_calls_survive_sigkill_and_losses_stay_within_the_flush_window(db_url: str) -> None:
    store = open_store(db_url)
    context = fork_context()
    rng = random.Random(77)
    lost_total = made_total = 0
    for run in range(KILLS):
        made, flushed = context.Value("i", 0), context.Value("i", 0)
        child = context.Process(target=workers.capture_calls, args=(db_url, run, CALLS, FLUSH_EVERY, made, flushed))
        child.start()
        target = rng.randint(1, CALLS)
        deadline = time.monotonic() + 120
        while made.value < target and child.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
        child.kill()
        child.join(60)
        stored = _stored(store, run)
        assert stored >= flushed.value, f"run {run}: {flushed.value} calls were confirmed flushed, only {stored} stored"
        assert stored <= made.value + 1, f"run {run}: more events than calls"  # +1: a call in flight when killed
        assert made.value - stored <= FLUSH_EVERY + 1  # at most the calls since the last flush (+ one in flight)
        lost_total += max(0, made.value - stored)
        made_total += made.value
        assert_consistent(store)
        assert integrity_ok(db_url)
    # A run that ends normally loses nothing (close/exit flushes).
    made, flushed = context.Value("i", 0), context.Value("i", 0)
    child = context.Process(target=workers.capture_calls, args=(db_url, KILLS, 25, 1000, made, flushed))
    child.start()
    child.join(120)
    assert child.exitcode == 0 and _stored(store, KILLS) == 25
    duplicates = store.scalar("SELECT COUNT(*) - COUNT(DISTINCT request_id) FROM usage_events")
    assert duplicates == 0
    record_figures(f"faults_capture.sigkill[{store.dialect}]", kind="fault", processes_killed=KILLS, calls_made=made_total + 25,
                   calls_lost_after_last_flush=lost_total, flushed_calls_lost=0, duplicates=int(duplicates))
    store.close()
