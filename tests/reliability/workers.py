"""Child-process entry points of the reliability suite (run through `support.fork_context()`).

The forkserver imports this module once, so walleta, pandas and SQLAlchemy are loaded before any
child is forked. Each function is a complete process body: it opens its own store, does its work
with walleta's public API and reports through the shared values or queue it is given.
"""

from __future__ import annotations

import resource
import signal
import time
import traceback
from typing import Any

import httpx2
import openai
import pandas as pd

import walleta
import walleta.cli  # noqa: F401 - pre-load every command module in the forkserver
from walleta.catalog import load_catalog
from walleta.errors import WalletaError
from walleta.events import record_events
from walleta.fx import load_fx
from walleta.headline import headline
from walleta.schema import ROLLUPS
from walleta.simulator.engine import UsageData, simulate
from walleta.simulator.plans import load_scenario
from walleta.store import open_store

from .support import usage_batches

load_catalog()  # cached: children price without reading the CSV again


def bulk_import(url: str, seed: int, batches: int, rows: int, overlap: int, progress: Any) -> None:
    """Write `usage_batches(seed, ...)` batch by batch; `progress.value` = batches committed."""
    store = open_store(url)
    catalog = load_catalog()
    progress.value = 0
    for number, frame in enumerate(usage_batches(seed, batches, rows, overlap=overlap), start=1):
        record_events(store, frame, catalog, source="file")
        progress.value = number
    store.close()


def writer_frames(writer: int, batches: int, rows: int) -> list[pd.DataFrame]:
    """The batches of logged calls app server `writer` records (unique request ids)."""
    frames = usage_batches(1000 + writer, batches, rows, prefix=f"w{writer}_")
    for number, frame in enumerate(frames):
        frame["request_id"] = [f"req_w{writer}_b{number}_{i}" for i in range(len(frame))]
    return frames


def file_frames(seed: int, batches: int, rows: int, overlap: int) -> list[pd.DataFrame]:
    """A usage file's chunks: anonymous rows (content uids), each chunk overlapping the last."""
    frames = usage_batches(seed, batches, rows, overlap=overlap, prefix="file")
    for frame in frames:
        frame["request_id"] = ""
    return frames


def usage_writer(url: str, writer: int, batches: int, rows: int, go: Any) -> None:
    """A live app server: many small batches of logged calls with unique request ids."""
    store = open_store(url, create=False)
    catalog = load_catalog()
    frames = writer_frames(writer, batches, rows)
    go.wait()
    for frame in frames:
        record_events(store, frame, catalog, source="log")
    store.close()


def file_reimport(url: str, seed: int, batches: int, rows: int, overlap: int, rounds: int, go: Any) -> None:
    """Import the same overlapping file `rounds` times (content uids: repeats add nothing)."""
    store = open_store(url, create=False)
    catalog = load_catalog()
    frames = file_frames(seed, batches, rows, overlap)
    go.wait()
    for _ in range(rounds):
        for frame in frames:
            record_events(store, frame, catalog, source="file")
    store.close()


def rollup_reader(url: str, go: Any, stop: Any, results: Any) -> None:
    """The app's queries, repeated until `stop` is set, checking what every answer must satisfy.

    - One statement reads the event count from the raw table and from every rollup: they come
      from one snapshot, so they must be equal.
    - The Overview headline (walleta.headline) only ever sees AI cost grow while usage is added.
    Puts (reads, violations, first error) on `results`.
    """
    store = open_store(url, create=False)
    fx = load_fx()
    parts = [f"(SELECT CAST(COALESCE(SUM(events), 0) AS BIGINT) FROM {name})" for name in ROLLUPS]
    statement = "SELECT (SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events), " + ", ".join(parts)
    reads = violations = 0
    last_cost = 0
    error = ""
    go.wait()
    try:
        while not stop.is_set():
            counts = [int(v) for v in store.query(statement).iloc[0].tolist()]
            violations += len(set(counts)) != 1
            cost = headline(store, fx).cost_pico
            violations += cost < last_cost
            last_cost = cost
            store.query(
                "SELECT customer_id, CAST(SUM(cost_pico) AS BIGINT) AS cost FROM rollup_customer_month_model "
                "GROUP BY customer_id ORDER BY cost DESC LIMIT 10"
            )
            reads += 3
            time.sleep(0.02)  # an app user, not a busy loop hogging the CPU the writers need
    except Exception:  # noqa: BLE001 - reported to the parent, which fails the test
        error = traceback.format_exc()
    results.put((reads, violations, error))
    store.close()


def write_under_file_size_limit(url: str, limit_bytes: int, seed: int, rows: int, results: Any) -> None:
    """Disk full: cap this process's file size (RLIMIT_FSIZE) and try to write a big batch.

    Puts (outcome, exception class, message, traceback) on `results`, outcome one of
    'walleta-error', 'other-error', 'written'.
    """
    store = open_store(url)
    catalog = load_catalog()
    frame = usage_batches(seed, 1, rows, prefix="full")[0]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    try:
        record_events(store, frame, catalog, source="file")
    except WalletaError as exc:
        results.put(("walleta-error", type(exc).__name__, str(exc), ""))
    except Exception as exc:  # noqa: BLE001 - the parent asserts on it
        results.put(("other-error", type(exc).__name__, str(exc), traceback.format_exc()))
    else:
        results.put(("written", "", "", ""))



def small_usage() -> Any:
    """A tiny usage book (3 customers x 2 months) for running fuzzed scenarios."""
    rows = []
    for i, customer in enumerate(("acme", "globex", "=evil")):
        for month in ("2026-01", "2026-02"):
            rows.append({"customer_id": customer, "month": month, "requests": 10 * (i + 1),
                         "input_tokens": 100_000 * (i + 1), "cached_input_tokens": 10_000, "output_tokens": 20_000 * (i + 1),
                         "reasoning_tokens": 1_000, "cost_pico": 123_456_789 * (i + 1), "current_plan": ("Pro", "Free", "Team")[i],
                         "seats": i + 1})
    cells = pd.DataFrame(rows)
    cells["seats"] = pd.array(cells["seats"].tolist(), dtype="Int64")
    return UsageData(cells=cells, by_model=None, months=("2026-01", "2026-02"))


def try_plan(path: str) -> tuple[str, str, str, str]:
    """Load a scenario file and simulate it on `small_usage()`.

    Returns (outcome, exception class, message, traceback), outcome one of 'loaded-and-simulated',
    'rejected' (a WalletaError with a message), 'other-error'.
    """
    try:
        scenario = load_scenario(path)
        result = simulate(scenario, small_usage(), None)
        revenue = [int(v) for v in result.cells["revenue_pico"].tolist()]
        assert all(isinstance(v, int) for v in revenue)
    except WalletaError as exc:
        return ("rejected", type(exc).__name__, str(exc), "")
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        return ("other-error", type(exc).__name__, str(exc)[:500], traceback.format_exc()[-3000:])
    return ("loaded-and-simulated", "", "", "")


def try_plan_in_child(path: str, memory_bytes: int, results: Any) -> None:
    """`try_plan` under a memory cap (an exponent bomb must fail, not take the machine)."""
    with open("/proc/self/status") as status:
        vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + memory_bytes, vm + memory_bytes))
    results.put(try_plan(path))


CSV_KINDS = ("usage", "openai-costs", "revenue", "mapping", None)  # None: detected from the header


def import_csv_every_kind(url: str, path: str, error_dir: str, results: Any) -> None:
    """Import one file as every CSV kind (and auto-detected); put one outcome per kind on `results`.

    Outcome: (kind, 'imported' | 'rejected' | 'other-error', exception class, message or
    traceback, database changed although rejected).
    """
    from pathlib import Path

    from walleta.errors import InputError
    from walleta.sources.csv_import import import_csv

    store = open_store(url, create=False)
    tables = ("usage_events", "revenue_entries", "customer_mappings", "billed_costs", "import_runs", "customers")

    def snapshot() -> list[int]:
        return [int(store.scalar(f"SELECT COUNT(*) FROM {t}")) for t in tables]

    data = Path(path).read_bytes()
    for kind in CSV_KINDS:
        before = snapshot()
        try:
            import_csv(store, data, kind=kind, name=Path(path).name, error_path=Path(error_dir) / "errors.csv")
        except InputError as exc:
            results.put((kind, "rejected", type(exc).__name__, str(exc), snapshot() != before))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
            results.put((kind, "other-error", type(exc).__name__, traceback.format_exc()[-2500:], snapshot() != before))
        else:
            results.put((kind, "imported", "", "", False))
    results.put(None)
    store.close()


def run_openai_import(url: str, base_url: str, admin_key: str, since: str, until: str, started: Any) -> None:
    """The OpenAI Usage + Costs import of a fixed range against a (fake) admin API."""
    from walleta.sources.openai_usage import RetryPolicy, import_openai, make_client

    store = open_store(url, create=False)
    client = make_client(admin_key=admin_key, base_url=base_url)
    started.value = 1
    import_openai(store, load_catalog(), client=client, since=since, until=until, retry=RetryPolicy(sleep=lambda _s: None))
    store.close()


def run_stripe_import(url: str, base_url: str, api_key: str, started: Any) -> None:
    """The full Stripe import against a (fake) Stripe."""
    from walleta.sources.stripe_import import import_stripe, make_client

    store = open_store(url, create=False)
    client = make_client(api_key, api_base=base_url)
    started.value = 1
    import_stripe(store, client, full=True, sleep=lambda _s: None)
    store.close()


def run_meter_push(url: str, base_url: str, api_key: str, now: float, started: Any) -> None:
    """Push token usage to a Stripe meter (v1, one request per customer-day) at a fixed clock."""
    from walleta.meters import Meter, push_meter
    from walleta.sources.stripe_import import make_client

    store = open_store(url, create=False)
    client = make_client(api_key, api_base=base_url)
    started.value = 1
    push_meter(store, client, Meter("llm_tokens", "tokens"), now=lambda: now)
    store.close()


def capture_calls(url: str, run: int, total: int, flush_every: int, made: Any, flushed: Any) -> None:
    """An app server recording OpenAI calls through `walleta.instrument` (fake API in memory).

    `made.value` = calls returned to the caller so far; `flushed.value` = calls confirmed written
    by `recorder.flush()` (True). Request ids are `req_<run>_<n>`.
    """
    from tests.openai_fake import FakeOpenAI

    fake = FakeOpenAI(record_requests=False, id_prefix=f"req_{run}_")
    client = openai.OpenAI(api_key="sk-test", max_retries=0, http_client=httpx2.Client(transport=httpx2.MockTransport(fake.handler)))
    walleta.instrument(client, store=url, flush_interval=0.05, batch_size=50)
    recorder = walleta.recorder_of(client)
    for number in range(1, total + 1):
        with walleta.attribute(customer=f"c{number % 7}", feature="chat"):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        made.value = number
        if number % flush_every == 0 and recorder.flush():
            flushed.value = number
    client.close()
