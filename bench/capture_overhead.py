"""Caller-side overhead of a tracked OpenAI call, in one run, against two baselines.

Three clients send the same chat completion through the same in-process fake transport
(`httpx2.MockTransport` returning the spec example body with a fresh x-request-id):

  - untracked: a plain `OpenAI` client (the floor);
  - tracked:   the same client after `walleta.instrument(...)` writing to a SQLite file (the
               recorder thread runs and writes batches while the calls are made);
  - ORM:       the untracked call followed by a per-call SQLModel `session.add(UsageEvent)` +
               `commit()` into a SQLite file (what a naive logger does).

Calls are interleaved in blocks so drift affects all three alike. Overhead = percentile of the
client minus the same percentile of the untracked client. Targets (issue 3): p50 overhead
<= 20 us, p99 overhead <= 200 us, and >= 20x cheaper than a per-call ORM commit (p50).

Run: python bench/capture_overhead.py [--calls N] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx2  # noqa: E402
import openai  # noqa: E402
from sqlmodel import Session, SQLModel, create_engine  # noqa: E402

import walleta  # noqa: E402
from walleta.capture import recorder_of  # noqa: E402
from walleta.schema import UsageEvent  # noqa: E402
from walleta.store import open_store  # noqa: E402

BODY = json.dumps(
    json.loads((Path(__file__).resolve().parent.parent / "tests" / "data" / "openai" / "chat_completions_create_default.json").read_text())
).encode()
MESSAGES = [{"role": "user", "content": "Say hello"}]
BLOCK = 100


def make_client() -> openai.OpenAI:
    """A plain client whose transport answers every request in memory."""
    ids = itertools.count()

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "application/json", "x-request-id": f"req_{next(ids)}"}, content=BODY)

    return openai.OpenAI(api_key="bench", max_retries=0, http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))


def percentile(values: list[int], q: float) -> float:
    """The q-quantile (0..1) of nanosecond timings, in microseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per client (default 20,000)")
    parser.add_argument("--quick", action="store_true", help="2,000 calls per client")
    args = parser.parse_args()
    calls = 2_000 if args.quick else args.calls
    calls = max(BLOCK, calls // BLOCK * BLOCK)

    with tempfile.TemporaryDirectory() as tmp:
        untracked = make_client()
        tracked = walleta.instrument(make_client(), store=open_store(f"sqlite:///{tmp}/capture.db"))
        orm_client = make_client()
        engine = create_engine(f"sqlite:///{tmp}/orm.db")
        SQLModel.metadata.create_all(engine)
        orm_counter = itertools.count()

        def call_untracked() -> None:
            untracked.chat.completions.create(model="gpt-5.4", messages=MESSAGES)

        def call_tracked() -> None:
            with walleta.attribute(customer="acme", feature="bench"):
                tracked.chat.completions.create(model="gpt-5.4", messages=MESSAGES)

        def call_orm() -> None:
            start = time.perf_counter_ns()
            result = orm_client.chat.completions.create(model="gpt-5.4", messages=MESSAGES)
            usage = result.usage
            with Session(engine) as session:
                session.add(
                    UsageEvent(
                        uid=f"orm:{next(orm_counter)}", ts_us=time.time_ns() // 1000, day="2026-11-26", month="2026-11",
                        customer_id="acme", feature="bench", model=result.model, input_tokens=usage.prompt_tokens,
                        output_tokens=usage.completion_tokens, request_id=result._request_id or "",
                        latency_ms=(time.perf_counter_ns() - start) // 1_000_000, cost_pico=0, price_status="priced",
                    )
                )
                session.commit()

        timings: dict[str, list[int]] = {"untracked": [], "tracked": [], "orm": []}
        functions = {"untracked": call_untracked, "tracked": call_tracked, "orm": call_orm}
        for name, function in functions.items():  # warm-up (imports, pools, tiktoken not needed)
            for _ in range(200):
                function()
        recorder_of(tracked).flush()
        gc.collect()
        clock = time.perf_counter_ns
        started = time.perf_counter()
        for _ in range(calls // BLOCK):
            for name, function in functions.items():
                out = timings[name]
                for _ in range(BLOCK):
                    t0 = clock()
                    function()
                    out.append(clock() - t0)
        elapsed = time.perf_counter() - started
        flush_started = time.perf_counter()
        recorder_of(tracked).flush()
        flush_seconds = time.perf_counter() - flush_started
        store = recorder_of(tracked).store
        stored = int(store.scalar("SELECT COUNT(*) FROM usage_events"))
        tracked.close()

    base50, base99 = percentile(timings["untracked"], 0.5), percentile(timings["untracked"], 0.99)
    rows = []
    for name in ("untracked", "tracked", "orm"):
        p50, p99 = percentile(timings[name], 0.5), percentile(timings[name], 0.99)
        rows.append((name, p50, p99, statistics.fmean(timings[name]) / 1000, p50 - base50, p99 - base99))
    print(f"capture overhead: {calls:,} calls per client, interleaved in blocks of {BLOCK} ({elapsed:.1f} s)")
    print(f"{'client':<10} {'p50 us':>9} {'p99 us':>9} {'mean us':>9} {'p50 overhead':>13} {'p99 overhead':>13}")
    for name, p50, p99, mean, o50, o99 in rows:
        print(f"{name:<10} {p50:9.1f} {p99:9.1f} {mean:9.1f} {o50:13.1f} {o99:13.1f}")
    tracked_o50, tracked_o99 = rows[1][4], rows[1][5]
    orm_o50 = rows[2][4]
    ratio = orm_o50 / tracked_o50 if tracked_o50 > 0 else float("inf")
    expected = calls + 200
    print(f"stored events: {stored:,} of {expected:,} tracked calls (final flush {flush_seconds * 1000:.0f} ms)")
    print(f"tracked p50 overhead {tracked_o50:.1f} us (target <= 20): {'OK' if tracked_o50 <= 20 else 'MISSED'}")
    print(f"tracked p99 overhead {tracked_o99:.1f} us (target <= 200): {'OK' if tracked_o99 <= 200 else 'MISSED'}")
    print(f"per-call ORM commit overhead / tracked overhead (p50): {ratio:.1f}x (target >= 20x): {'OK' if ratio >= 20 else 'MISSED'}")
    return 0 if stored == expected else 1


if __name__ == "__main__":
    sys.exit(main())
