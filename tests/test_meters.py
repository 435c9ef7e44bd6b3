"""Meter push through the real stripe 16 client to a fake Stripe on 127.0.0.1."""

from __future__ import annotations

import io
import itertools
import os
import time
from datetime import datetime, timezone
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from tests.fakes.stripe_data import ts
from tests.fakes.stripe_server import FakeStripe
from walleta.catalog import load_catalog
from walleta.errors import SourceError
from walleta.events import record_events
from walleta.meters import Meter, meter_identifier, plan_push, push_meter
from walleta.sources.stripe_import import make_client
from walleta.store import open_store

ROOT = Path(__file__).resolve().parent.parent
NOW = ts("2026-11-20T12:00")
CLOCK = lambda: NOW  # noqa: E731
REQUEST_IDS = itertools.count()


def usage(store, rows: list[tuple[str, str, str, int, int]]) -> None:
    """rows: (customer, 'YYYY-MM-DDTHH:MM', model, input tokens, output tokens)."""
    frame = pd.DataFrame(
        [{"ts_us": ts(when) * 1_000_000, "customer_id": c, "model": m, "input_tokens": i, "output_tokens": o,
          "request_id": f"req_{next(REQUEST_IDS)}"} for c, when, m, i, o in rows]
    )
    record_events(store, frame, load_catalog(), source="test")


def setup_customers(store) -> None:
    store.upsert("customers", [
        {"customer_id": c, "name": c, "email": "", "stripe_customer_id": s, "plan": "", "signup_date": "", "source": "test"}
        for c, s in (("acme", ""), ("globex", "cus_B"), ("nomap", ""))
    ], ["customer_id"])
    store.upsert("customer_mappings", [{"source": "stripe_customer", "key": "cus_A", "customer_id": "acme", "confirmed": 1,
                                        "method": "manual"}], ["source", "key"])


@pytest.fixture
def store(db_url):
    store = open_store(db_url)
    setup_customers(store)
    usage(store, [
        ("acme", "2026-11-18T09:00", "gpt-4.1-mini", 1_000_000, 500_000),  # 0.40 + 0.80 = 120 cents
        ("acme", "2026-11-18T22:30", "gpt-4.1-mini", 200, 100),
        ("acme", "2026-11-19T01:00", "gpt-4.1-mini", 300, 200),
        ("globex", "2026-11-19T05:00", "gpt-4.1-mini", 10, 5),
        ("globex", "2026-11-18T05:00", "mystery-model-x", 7, 3),  # unpriced
        ("nomap", "2026-11-19T05:00", "gpt-4.1-mini", 50, 50),  # no Stripe customer
        ("acme", "2026-10-16T05:00", "gpt-4.1-mini", 40, 40),  # older than 35 days (limit: 2026-10-16T12:10)
        ("acme", "2026-11-20T08:00", "gpt-4.1-mini", 60, 60),  # today: window still open
    ])
    yield store
    store.close()


@pytest.fixture
def fake():
    with FakeStripe() as server:
        server.clock = CLOCK
        yield server


def client_for(fake):
    return make_client("sk_test_meter", api_base=fake.url)


def event(customer: str, stripe_id: str, day: str, value: int, meter: str = "llm_tokens") -> dict[str, str]:
    """A v1 meter event exactly as the form-encoded POST body carries it."""
    return {"event_name": meter, "payload[stripe_customer_id]": stripe_id, "payload[value]": str(value),
            "identifier": f"walleta:{meter}:{customer}:{day}T00:00Z", "timestamp": str(ts(day))}


def test_v1_sends_exact_form_fields_once(store, fake):
    meter = Meter("llm_tokens", "tokens")
    dry = push_meter(store, client_for(fake), meter, dry_run=True, now=CLOCK)
    assert fake.requests == []  # the dry run sends nothing
    first = push_meter(store, client_for(fake), meter, now=CLOCK)
    assert first.sent == 4
    assert fake.meter_events == [
        event("acme", "cus_A", "2026-11-18", 1_000_000 + 500_000 + 200 + 100),
        event("globex", "cus_B", "2026-11-18", 7 + 3),  # unpriced, but its tokens are known
        event("acme", "cus_A", "2026-11-19", 300 + 200),
        event("globex", "cus_B", "2026-11-19", 10 + 5),
    ]
    # the dry run showed exactly what was then sent
    assert dry.plan.frame()["identifier"].tolist() == [e["identifier"] for e in fake.meter_events]
    assert [e.v1_params()["payload"]["value"] for e in dry.plan.events] == [e["payload[value]"] for e in fake.meter_events]
    posts = fake.calls("POST", "/v1/billing/meter_events")
    assert [p.headers["idempotency-key"] for p in posts] == [e["identifier"] for e in fake.meter_events]
    assert all(p.headers["authorization"] == "Bearer sk_test_meter" for p in posts)

    # explained, not sent: too old, window still open, no Stripe customer
    reasons = first.plan.skipped_frame().set_index(["customer_id", "window_start"])["reason"]
    assert reasons[("acme", "2026-10-16T00:00Z")].startswith("older than Stripe's 35-day limit")
    assert reasons[("acme", "2026-11-20T00:00Z")].startswith("window not closed yet")
    assert reasons[("nomap", "2026-11-19T00:00Z")].startswith("no Stripe customer")
    assert len(reasons) == 3

    second = push_meter(store, client_for(fake), meter, now=CLOCK)
    assert second.sent == 0 and second.plan.already_sent == 4 and second.plan.events == []
    assert len(fake.meter_events) == 4 and fake.duplicates == 0
    assert store.scalar("SELECT COUNT(*) FROM meter_pushes") == 4


def test_cost_in_cents_holds_back_unpriced_windows(store, fake):
    result = push_meter(store, client_for(fake), Meter("ai_cost", "cost_cents"), now=CLOCK)
    # acme 11-18: 1,000,300 input x $0.40/M + 500,100 output x $1.60/M = $0.40012 + $0.80016 = 120.028 cents -> 120
    # acme 11-19 ($0.00044) and globex 11-19 cost a fraction of a cent -> 0: nothing to bill
    assert fake.meter_events == [event("acme", "cus_A", "2026-11-18", 120, meter="ai_cost")]
    reasons = result.plan.skipped_frame().set_index(["customer_id", "window_start"])["reason"]
    assert reasons[("globex", "2026-11-18T00:00Z")].startswith("unpriced usage (1 requests)")
    # zero cents: acme and globex and nomap on 11-19, and the old acme window (zero is checked first)
    assert result.plan.zero_windows == 4

    credits = plan_push(store, Meter("credits", "credits", credits_per_usd=Decimal("1000")), now=CLOCK)
    # $1.20028 x 1000 credits per dollar = 1200.28 -> 1200; acme 11-19: 300 x 0.4 + 200 x 1.6 = 440 micro-$ -> 0.44 -> 0
    assert [(e.customer_id, e.value) for e in credits.events] == [("acme", 1200)]


def test_crash_after_n_events_resumes_at_n_plus_one(store, fake):
    usage(store, [(f"c{n}", "2026-11-19T03:00", "gpt-4.1-mini", 100 + n, 0) for n in range(6)])
    store.upsert("customer_mappings", [{"source": "stripe_customer", "key": f"cus_{n}", "customer_id": f"c{n}", "confirmed": 1,
                                        "method": "manual"} for n in range(6)], ["source", "key"])
    meter = Meter("llm_tokens", "tokens")
    planned = [e.identifier for e in plan_push(store, meter, now=CLOCK).events]
    assert len(planned) == 10
    fake.fail("POST", "/v1/billing/meter_events", 429, when=lambda r: r.form.get("identifier") == planned[1],
              body={"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests"}})
    fake.refuse_meter_events_after = 3  # Stripe refuses the 4th event (not retried)
    waits: list[float] = []
    with pytest.raises(SourceError, match="after 3 sent"):
        push_meter(store, client_for(fake), meter, now=CLOCK, sleep=waits.append)
    assert waits == [1.0]  # the 429 on the 2nd event was waited out and retried
    recorded = store.query("SELECT identifier FROM meter_pushes ORDER BY identifier")["identifier"].tolist()
    assert recorded == sorted(planned[:3])
    resumed = push_meter(store, client_for(fake), meter, now=CLOCK)
    assert resumed.sent == 7 and resumed.plan.already_sent == 3
    sent = [e["identifier"] for e in fake.meter_events]
    assert sent == planned and fake.duplicates == 0  # N+1 onwards, nothing twice
    attempts = [p.form["identifier"] for p in fake.calls("POST", "/v1/billing/meter_events")]
    # the 2nd twice (429, then accepted); the refused 4th is the first of the resumed run
    assert attempts == planned[:2] + planned[1:4] + planned[3:]


def test_killed_process_resumes(store, fake, db_url):
    """A push process killed mid-way: the next run sends only the rest."""
    usage(store, [(f"k{n}", "2026-11-19T03:00", "gpt-4.1-mini", 10, 0) for n in range(5)])
    store.upsert("customer_mappings", [{"source": "stripe_customer", "key": f"cus_k{n}", "customer_id": f"k{n}", "confirmed": 1,
                                        "method": "manual"} for n in range(5)], ["source", "key"])
    meter = Meter("llm_tokens", "tokens")
    planned = [e.identifier for e in plan_push(store, meter, now=CLOCK).events]
    # The child process wraps the SDK's create() (not Walleta code) only to die at an exact point.
    script = (
        "import os, sys\n"
        "from walleta.meters import Meter, push_meter\n"
        "from walleta.sources.stripe_import import make_client\n"
        "from walleta.store import open_store\n"
        "client = make_client('sk_test_kill', api_base=sys.argv[2])\n"
        "service = client.v1.billing.meter_events\n"
        "original, accepted = service.create, []\n"
        "def create(params, options=None):\n"
        "    result = original(params, options)\n"
        "    accepted.append(params['identifier'])\n"
        "    if len(accepted) == 3:\n"
        "        os._exit(9)  # killed after Stripe accepted the 3rd event, before it was recorded\n"
        "    return result\n"
        "service.create = create\n"
        f"push_meter(open_store(sys.argv[1]), client, Meter('llm_tokens', 'tokens'), now=lambda: {NOW})\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, db_url, fake.url], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert killed.returncode == 9, killed.stderr
    assert store.scalar("SELECT COUNT(*) FROM meter_pushes") == 2  # the 3rd was accepted but not recorded
    resumed = push_meter(store, client_for(fake), meter, now=CLOCK)
    # the 3rd is sent again with the same identifier: Stripe refuses the duplicate, we record it
    assert resumed.duplicates == 1 and resumed.sent == len(planned) - 3
    assert [e["identifier"] for e in fake.meter_events] == planned
    assert store.scalar("SELECT COUNT(*) FROM meter_pushes") == len(planned)


def test_late_usage_sends_only_the_difference(store, fake):
    meter = Meter("llm_tokens", "tokens")
    push_meter(store, client_for(fake), meter, now=CLOCK)
    usage(store, [("acme", "2026-11-19T23:00", "gpt-4.1-mini", 40, 60)])  # arrives after the push
    result = push_meter(store, client_for(fake), meter, now=CLOCK)
    assert result.sent == 1
    assert fake.meter_events[-1] == {
        "event_name": "llm_tokens", "payload[stripe_customer_id]": "cus_A", "payload[value]": "100",
        "identifier": "walleta:llm_tokens:acme:2026-11-19T00:00Z:600", "timestamp": str(ts("2026-11-19")),
    }
    assert push_meter(store, client_for(fake), meter, now=CLOCK).sent == 0


def test_hour_windows_aggregate_events(store, fake):
    usage(store, [("acme", "2026-11-19T01:40", "gpt-4.1-mini", 1, 1)])
    plan = plan_push(store, Meter("llm_tokens", "tokens", window="hour"), now=CLOCK)
    values = {(e.customer_id, e.window_start): e.value for e in plan.events}
    assert values[("acme", ts("2026-11-19T01:00"))] == 300 + 200 + 2  # two calls in the same hour
    assert values[("acme", ts("2026-11-18T22:00"))] == 300
    assert [e.identifier for e in plan.events][:2] == [
        "walleta:llm_tokens:globex:2026-11-18T05:00Z", "walleta:llm_tokens:acme:2026-11-18T09:00Z"]
    assert len(meter_identifier("m" * 90, "customer", ts("2026-11-19"))) <= 100


def test_v2_stream_batches_of_100_with_session_refresh(store, fake):
    start = ts("2026-11-09T00:00")
    frame = pd.DataFrame([{"ts_us": (start + 3600 * n) * 1_000_000, "customer_id": "acme", "model": "gpt-4.1-mini",
                           "input_tokens": 1 + n, "output_tokens": 0, "request_id": f"req_v2_{n}"} for n in range(250)])
    record_events(store, frame, load_catalog(), source="test")
    meter = Meter("llm_tokens", "tokens", window="hour")
    planned = plan_push(store, meter, now=CLOCK).events
    fake.token_batch_limit = 1  # each session token expires after one batch
    result = push_meter(store, client_for(fake), meter, api="v2", now=CLOCK)
    assert result.sent == len(planned) and 200 < len(planned) <= 300
    batches = fake.stream_batches
    assert [len(events) for _token, events in batches] == [100, 100, len(planned) - 200]
    assert [e["identifier"] for _t, events in batches for e in events] == [e.identifier for e in planned]
    assert [token for token, _events in batches] == [f"mes_token_{n}" for n in range(1, len(batches) + 1)]
    assert fake.sessions == len(batches)
    first = batches[0][1][0]
    assert first == {"event_name": "llm_tokens", "payload": {"stripe_customer_id": "cus_A", "value": str(planned[0].value)},
                     "identifier": planned[0].identifier, "timestamp": "2026-11-09T00:00:00.000Z"}
    assert all(isinstance(e["payload"]["value"], str) for _t, events in batches for e in events)
    sessions = fake.calls("POST", "/v2/billing/meter_event_session")
    assert all(s.headers["authorization"] == "Bearer sk_test_meter" for s in sessions)
    assert push_meter(store, client_for(fake), meter, api="v2", now=CLOCK).sent == 0
    assert store.scalar("SELECT COUNT(*) FROM meter_pushes WHERE api = 'v2'") == len(planned)


def test_cli_push_dry_run(tmp_path):
    db = f"sqlite:///{tmp_path / 'push.db'}"
    store = open_store(db)
    setup_customers(store)
    yesterday = datetime.fromtimestamp(time.time() - 86_400, tz=timezone.utc).strftime("%Y-%m-%d")
    usage(store, [("acme", f"{yesterday}T09:00", "gpt-4.1-mini", 10, 5), ("acme", f"{yesterday}T10:00", "gpt-4.1-mini", 1, 1)])
    env = {k: v for k, v in os.environ.items() if k != "STRIPE_API_KEY"}  # a dry run needs no key
    result = subprocess.run([sys.executable, "-m", "walleta", "--db", db, "push", "stripe-meter", "--meter", "llm_tokens",
                             "--value", "tokens", "--dry-run", "--format", "csv"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    sent = pd.read_csv(io.StringIO(result.stdout), dtype=str)
    assert sent[["identifier", "stripe_customer_id", "value"]].values.tolist() == [
        [f"walleta:llm_tokens:acme:{yesterday}T00:00Z", "cus_A", "17"]]
    assert "would send 1 events" in result.stderr
    assert store.scalar("SELECT COUNT(*) FROM meter_pushes") == 0
