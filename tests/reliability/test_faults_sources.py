"""Faults on the API paths: the OpenAI import, the Stripe import and the meter push.

- Killed (SIGKILL) at random points, many times: after every kill the database holds either
  nothing of the interrupted run or all of it; a re-run then gives exactly the data of a clean
  run. For the meter push, the fake Stripe counts identifiers: every planned event is accepted
  exactly once, and an identifier is offered again at most once per kill (the event in flight).
- Network and API faults between the official SDK and the fake server (tests/reliability/chaos.py):
  timeouts, 429 with Retry-After, 5xx, malformed JSON, an HTML gateway page, truncated bodies,
  reset connections. Each import either completes with exactly the clean run's data or fails with
  a WalletaError whose message says what happened, leaving the database unchanged.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from walleta.catalog import load_catalog
from walleta.errors import WalletaError
from walleta.events import record_events
from walleta.meters import Meter, plan_push, push_meter
from walleta.sources.openai_usage import RetryPolicy, import_openai
from walleta.sources.openai_usage import make_client as openai_client
from walleta.sources.stripe_import import import_stripe
from walleta.sources.stripe_import import make_client as stripe_client
from walleta.store import Store, open_store

from ..fakes.openai_admin import FakeOpenAIAdmin, bucket, page
from ..fakes.stripe_data import load_account, ts
from ..fakes.stripe_server import FakeStripe
from . import workers
from .chaos import ChaosProxy
from .support import SOAK, assert_consistent, fork_context, integrity_ok, record_figures

KILLS = 40 if SOAK else 6
SEED = 90210
DAY = 86_400
OCT1 = 1_759_276_800  # 2025-10-01T00:00:00Z
ADMIN_KEY = "sk-admin-TEST-faults"
STRIPE_KEY = "sk_test_faults"
PUSH_NOW = ts("2026-11-20T12:00")

# Columns that say when or by which run a row was written, not what it says.
BOOKKEEPING = {"id", "import_id", "started_us", "finished_us", "sent_us", "created_us", "updated_us", "fetched_us"}


def business_snapshot(store: Store, tables: tuple[str, ...]) -> dict[str, list[tuple]]:
    """The rows of `tables` without bookkeeping columns, sorted: equal means the same data."""
    out = {}
    for table in tables:
        frame = store.query(f"SELECT * FROM {table}")
        keep = [c for c in frame.columns if c not in BOOKKEEPING]
        out[table] = sorted(tuple("" if v is None else str(v) for v in row) for row in frame[keep].itertuples(index=False, name=None))
    return out


def _second_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest, name: str) -> str:
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / name}"
    return request.getfixturevalue("pg_server").create_database()


def _kill_repeatedly(target: Callable[..., None], args: tuple, requests_seen: Callable[[], int], requests_per_run: int,
                     kills: int, rng: random.Random, after_kill: Callable[[], None], tail_seconds: float = 0.3) -> int:
    """Start `target(*args, started)` and SIGKILL it at a random point, `kills` times.

    The point is chosen on the fake server's request counter (it runs in this process): after a
    random number of the run's requests has arrived, plus a random pause of up to `tail_seconds`
    (which also lands kills in the write phase after the last request). Returns how many kills
    hit a live process.
    """
    context = fork_context()
    landed = 0
    for _ in range(kills):
        started = context.Value("i", 0)
        first = requests_seen()
        wanted = first + rng.randint(1, max(1, requests_per_run))
        child = context.Process(target=target, args=(*args, started))
        child.start()
        deadline = time.monotonic() + 60
        while requests_seen() < wanted and child.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, tail_seconds))
        alive = child.is_alive()
        child.kill()
        child.join(60)
        landed += alive and child.exitcode == -9
        after_kill()
    return landed


def _finish(target: Callable[..., None], args: tuple) -> None:
    context = fork_context()
    started = context.Value("i", 0)
    child = context.Process(target=target, args=(*args, started))
    child.start()
    child.join(300)
    assert child.exitcode == 0


# -- OpenAI import ------------------------------------------------------------------------------


def _serve_openai(fake: FakeOpenAIAdmin, days: int = 20, per_page: int = 2) -> None:
    fake.state.empty()
    buckets = [bucket(OCT1 + d * DAY, [
        {"object": "organization.usage.completions.result", "input_tokens": 1000 + d, "output_tokens": 100 + d,
         "input_cached_tokens": d, "num_model_requests": 3, "project_id": f"proj_{p}", "user_id": None, "api_key_id": None,
         "model": "gpt-4o-2024-08-06", "batch": False, "service_tier": "default"} for p in "abc"]) for d in range(days)]
    fake.state.set_pages("completions", [page(buckets[i : i + per_page]) for i in range(0, days, per_page)])
    fake.state.set_pages("costs", [page([bucket(OCT1 + d * DAY, [{"object": "organization.costs.result",
        "amount": {"value": f"{1 + d / 100:.6f}", "currency": "usd"}, "line_item": "gpt-4o, input", "project_id": "proj_a"}])
        for d in range(days)])])


OPENAI_TABLES = ("usage_events", "openai_usage_buckets", "billed_costs")
OPENAI_RANGE = ("2025-10-01", "2025-10-20")


def test_openai_import_killed_at_random_points_then_rerun_equals_clean_run(db_url: str, tmp_path: Path,
                                                                            request: pytest.FixtureRequest) -> None:
    clean = open_store(_second_url(db_url, tmp_path, request, "clean.db"))
    store = open_store(db_url)
    with FakeOpenAIAdmin() as fake:
        _serve_openai(fake)
        import_openai(clean, load_catalog(), client=openai_client(admin_key=ADMIN_KEY, base_url=fake.base_url),
                      since=OPENAI_RANGE[0], until=OPENAI_RANGE[1], retry=RetryPolicy(sleep=lambda _s: None))
        per_run = len(fake.state.requests)
        reference = business_snapshot(clean, OPENAI_TABLES)
        empty = business_snapshot(store, OPENAI_TABLES)
        states = []

        def check() -> None:
            now = business_snapshot(store, OPENAI_TABLES)
            assert now in (empty, reference), "a killed OpenAI import left part of its data"
            states.append(now == reference)
            assert_consistent(store)

        args = (db_url, fake.base_url, ADMIN_KEY, *OPENAI_RANGE)
        landed = _kill_repeatedly(workers.run_openai_import, args, lambda: len(fake.state.requests), per_run, KILLS,
                                  random.Random(SEED), check)
        _finish(workers.run_openai_import, args)
    assert business_snapshot(store, OPENAI_TABLES) == reference
    assert_consistent(store)
    assert integrity_ok(db_url)
    record_figures(f"faults_sources.openai_import_kill[{store.dialect}]", kind="fault", processes_killed=landed,
                   kill_attempts=KILLS, events_lost=0)
    store.close()
    clean.close()


# -- Stripe import ------------------------------------------------------------------------------

STRIPE_TABLES = ("revenue_entries", "stripe_customers", "stripe_subscription_items", "customers", "customer_mappings")


def test_stripe_import_killed_at_random_points_then_rerun_equals_clean_run(db_url: str, tmp_path: Path,
                                                                            request: pytest.FixtureRequest) -> None:
    clean = open_store(_second_url(db_url, tmp_path, request, "clean.db"))
    store = open_store(db_url)
    with FakeStripe(page_size=1, embedded_lines=1) as fake:
        load_account(fake)
        import_stripe(clean, stripe_client(STRIPE_KEY, api_base=fake.url), full=True, sleep=lambda _s: None)
        per_run = len(fake.requests)
        reference = business_snapshot(clean, STRIPE_TABLES)
        empty = business_snapshot(store, STRIPE_TABLES)

        def check() -> None:
            assert business_snapshot(store, STRIPE_TABLES) in (empty, reference), "a killed Stripe import left part of its data"

        args = (db_url, fake.url, STRIPE_KEY)
        landed = _kill_repeatedly(workers.run_stripe_import, args, lambda: len(fake.requests), per_run, KILLS,
                                  random.Random(SEED), check)
        _finish(workers.run_stripe_import, args)
    assert business_snapshot(store, STRIPE_TABLES) == reference
    assert integrity_ok(db_url)
    record_figures(f"faults_sources.stripe_import_kill[{store.dialect}]", kind="fault", processes_killed=landed,
                   kill_attempts=KILLS, revenue_rows=len(reference["revenue_entries"]), rows_lost=0)
    store.close()
    clean.close()


# -- meter push ---------------------------------------------------------------------------------


def _meter_usage(store: Store, customers: int = 12, days: int = 4) -> None:
    store.upsert("customer_mappings", [{"source": "stripe_customer", "key": f"cus_m{n}", "customer_id": f"m{n}",
                                        "confirmed": 1, "method": "manual"} for n in range(customers)], ["source", "key"])
    import pandas as pd

    rows = [{"ts_us": ts(f"2026-11-{15 + d:02d}T0{n % 9}:00") * 1_000_000, "customer_id": f"m{n}", "model": "gpt-4.1-mini",
             "input_tokens": 100 * (n + 1) + d, "output_tokens": 10 * d, "request_id": f"req_m{n}_{d}"}
            for n in range(customers) for d in range(days)]
    record_events(store, pd.DataFrame(rows), load_catalog(), source="log")


def test_meter_push_killed_at_random_points_sends_every_event_exactly_once(db_url: str) -> None:
    store = open_store(db_url)
    _meter_usage(store)
    meter = Meter("llm_tokens", "tokens")
    planned = {e.identifier: e for e in plan_push(store, meter, now=lambda: PUSH_NOW).events}
    assert len(planned) >= 40
    with FakeStripe() as fake:
        fake.clock = lambda: PUSH_NOW

        def check() -> None:
            recorded = set(store.query("SELECT identifier FROM meter_pushes")["identifier"])
            accepted = {e["identifier"] for e in fake.meter_events}
            assert recorded <= accepted, "an event recorded as sent was never accepted"
            assert len(accepted) == len(fake.meter_events), "the fake accepted an identifier twice"

        # Through a pass-through proxy: a request cut off by a kill never reaches the fake (which
        # would otherwise parse the partial form of a dying client as an event).
        proxy = ChaosProxy(fake.url, []).__enter__()
        args = (db_url, proxy.url, STRIPE_KEY, PUSH_NOW)
        remaining = lambda: len(planned) - len(fake.meter_events)  # noqa: E731
        landed = 0
        rng = random.Random(SEED)
        for _ in range(KILLS):  # each run is killed somewhere inside what is left to send
            landed += _kill_repeatedly(workers.run_meter_push, args, lambda: len(fake.requests), max(1, remaining() // 2),
                                       1, rng, check, tail_seconds=0.02)
        _finish(workers.run_meter_push, args)
        proxy.__exit__(None, None, None)
        accepted = {e["identifier"]: e for e in fake.meter_events}
        assert len(fake.meter_events) == len(planned) == len(accepted)  # every event exactly once
        assert set(accepted) == set(planned)
        for identifier, event in planned.items():
            assert int(accepted[identifier]["payload[value]"]) == int(event.value)
        assert fake.duplicates <= landed  # at most the one event in flight per kill is offered again
        recorded = store.query("SELECT identifier, value FROM meter_pushes")
        assert dict(zip(recorded["identifier"], (int(v) for v in recorded["value"]))) == {k: int(e.value) for k, e in planned.items()}
    record_figures(f"faults_sources.meter_push_kill[{store.dialect}]", kind="fault", processes_killed=landed,
                   kill_attempts=KILLS, meter_events=len(planned), events_sent_twice=0, resend_attempts=fake.duplicates)
    store.close()


# -- API faults ---------------------------------------------------------------------------------

# Transient: a correct client retries them. Fatal: a clear error, nothing written.
TRANSIENT = ["429", "429-date", "500", "502", "503", "timeout", "reset"]
GARBLED = ["malformed", "html", "truncated"]


def _openai_outcome(store: Store, proxy_url: str) -> tuple[str, str]:
    retry = RetryPolicy(sleep=lambda _s: None)
    client = openai_client(admin_key=ADMIN_KEY, base_url=proxy_url, timeout=0.5)
    try:
        import_openai(store, load_catalog(), client=client, since=OPENAI_RANGE[0], until=OPENAI_RANGE[1], retry=retry)
    except WalletaError as exc:
        return "failed", str(exc)
    return "imported", ",".join(f"{d:g}" for d in retry.delays)


def _clean_openai_import(fake: FakeOpenAIAdmin, clean: Store) -> None:
    """Serve six days of usage and import them without faults into `clean` (the reference)."""
    _serve_openai(fake, days=6)
    import_openai(clean, load_catalog(), client=openai_client(admin_key=ADMIN_KEY, base_url=fake.base_url),
                  since=OPENAI_RANGE[0], until=OPENAI_RANGE[1], retry=RetryPolicy(sleep=lambda _s: None))


@pytest.mark.parametrize("fault", TRANSIENT)
def test_openai_import_rides_out_transient_api_faults(fault: str, sqlite_url: str, tmp_path: Path) -> None:
    clean = open_store(f"sqlite:///{tmp_path / 'clean.db'}")
    store = open_store(sqlite_url)
    with FakeOpenAIAdmin() as fake:
        _clean_openai_import(fake, clean)
        with ChaosProxy(fake.base_url, [None, fault, fault, None, fault]) as proxy:
            outcome, detail = _openai_outcome(store, proxy.url)
    assert outcome == "imported", detail
    assert business_snapshot(store, OPENAI_TABLES) == business_snapshot(clean, OPENAI_TABLES)
    if fault == "429":
        assert "2" in detail.split(",")  # Retry-After honoured
    record_figures(f"faults_sources.openai_api[{fault}]", kind="fault", faults_injected=proxy.injected, outcome=outcome, events_lost=0)


@pytest.mark.parametrize("fault", GARBLED)
def test_openai_import_garbled_answer_is_a_clear_error_or_retried(fault: str, sqlite_url: str, tmp_path: Path) -> None:
    clean = open_store(f"sqlite:///{tmp_path / 'clean.db'}")
    store = open_store(sqlite_url)
    with FakeOpenAIAdmin() as fake:
        _clean_openai_import(fake, clean)
        before = business_snapshot(store, OPENAI_TABLES)
        with ChaosProxy(fake.base_url, [None, fault]) as proxy:
            try:
                outcome, detail = _openai_outcome(store, proxy.url)
            except Exception as exc:  # noqa: BLE001 - the assertion below names it
                outcome, detail = "traceback", f"{type(exc).__name__}: {exc}"
    assert outcome != "traceback", f"a {fault} answer escaped as {detail}"
    if outcome == "failed":
        assert detail.strip() and business_snapshot(store, OPENAI_TABLES) == before
    else:
        assert business_snapshot(store, OPENAI_TABLES) == business_snapshot(clean, OPENAI_TABLES)
    record_figures(f"faults_sources.openai_api[{fault}]", kind="fault", faults_injected=proxy.injected, outcome=outcome, events_lost=0)


@pytest.mark.parametrize("fault", TRANSIENT + GARBLED)
def test_stripe_import_survives_or_fails_clearly_on_api_faults(fault: str, sqlite_url: str, tmp_path: Path) -> None:
    clean = open_store(f"sqlite:///{tmp_path / 'clean.db'}")
    store = open_store(sqlite_url)
    with FakeStripe(page_size=2, embedded_lines=2) as fake:
        load_account(fake)
        import_stripe(clean, stripe_client(STRIPE_KEY, api_base=fake.url), full=True, sleep=lambda _s: None)
        before = business_snapshot(store, STRIPE_TABLES)
        with ChaosProxy(fake.url, [None, None, fault, None, fault], slow_seconds=3) as proxy:
            client = stripe_client(STRIPE_KEY, api_base=proxy.url)
            try:
                import_stripe(store, client, full=True, sleep=lambda _s: None)
                outcome, detail = "imported", ""
            except WalletaError as exc:
                outcome, detail = "failed", str(exc)
            except Exception as exc:  # noqa: BLE001 - the assertion below names it
                outcome, detail = "traceback", f"{type(exc).__name__}: {exc}"
    assert outcome != "traceback", f"a {fault} answer escaped as {detail}"
    if outcome == "failed":
        assert detail.strip() and business_snapshot(store, STRIPE_TABLES) == before
        assert fault in GARBLED or fault == "timeout", f"transient {fault} was not retried: {detail}"
    else:
        assert business_snapshot(store, STRIPE_TABLES) == business_snapshot(clean, STRIPE_TABLES)
    record_figures(f"faults_sources.stripe_api[{fault}]", kind="fault", faults_injected=proxy.injected, outcome=outcome, rows_lost=0)
