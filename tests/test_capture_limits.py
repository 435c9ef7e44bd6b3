"""Consumption limits: per-customer monthly budgets in dollars or tokens, from cached totals."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pandas as pd
import pytest

import walleta
from walleta.capture import Limits
from walleta.catalog import load_catalog
from walleta.errors import UsageLimitExceeded
from walleta.events import record_events
from walleta.store import open_store

from .capture_harness import Harness
from .test_capture_paths import MESSAGES


class Clock:
    """Injectable clock (seconds since the epoch)."""

    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now


NOV = datetime(2026, 11, 15, 12, tzinfo=timezone.utc)


def _history(url: str, customer: str, when: datetime, input_tokens: int, output_tokens: int) -> None:
    """Usage already in the database before the app starts (another process, an import)."""
    frame = pd.DataFrame({"ts_us": [int(when.timestamp() * 1e6)], "customer_id": [customer], "model": ["gpt-4o"],
                          "input_tokens": [input_tokens], "output_tokens": [output_tokens], "request_id": [f"old-{customer}-{when:%m}"]})
    record_events(open_store(url), frame, load_catalog(), source="log")


def test_usd_budget_seeded_from_rollups_blocks_before_sending(sqlite_url: str) -> None:
    # acme spent 400k in x $2.50 + 100k out x $10 = $2.00 this month; globex $2.00 last month only.
    _history(sqlite_url, "acme", NOV, 400_000, 100_000)
    _history(sqlite_url, "globex", datetime(2026, 10, 20, tzinfo=timezone.utc), 400_000, 100_000)
    h = Harness(sqlite_url, limits=Limits(usd={"acme": "2.00", "globex": "2.00"}, clock=Clock(NOV)))
    with walleta.attribute(customer="acme"), pytest.raises(UsageLimitExceeded) as raised:
        h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert h.fake.requests == []  # nothing was sent
    assert (raised.value.customer, raised.value.limit, raised.value.spent) == ("acme", "$2.00 per month", "$2.00")
    with walleta.attribute(customer="globex"):  # last month does not count
        h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # unattributed calls are never limited
    assert len(h.fake.requests) == 2
    h.close()


def test_token_budget_counts_calls_as_they_are_recorded_and_resets_next_month(sqlite_url: str) -> None:
    clock = Clock(NOV)
    h = Harness(sqlite_url, limits=Limits(tokens={"trial": 50}, clock=clock))
    with walleta.attribute(customer="trial"):
        h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # 29 tokens
        h.recorder.flush()
        h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # 58 >= 50 after this one
        h.recorder.flush()
        with pytest.raises(UsageLimitExceeded, match="50 tokens per month"):
            h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        clock.now = datetime(2026, 12, 1, 0, 0, 1, tzinfo=timezone.utc).timestamp()
        h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # a new month
    assert len(h.fake.requests) == 3
    h.close()


def test_default_budget_and_hook(sqlite_url: str) -> None:
    _history(sqlite_url, "big", NOV, 4_000_000, 0)  # $10.00
    alerts: list[UsageLimitExceeded] = []
    h = Harness(sqlite_url, limits=Limits(default_usd="5", usd={"vip": "1000"}, on_exceeded=alerts.append, clock=Clock(NOV)))
    with walleta.attribute(customer="big"):
        h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # hook returns: the call goes through
    assert len(h.fake.requests) == 1 and [a.customer for a in alerts] == ["big"]
    assert "limit of $5.00 per month (spent $10.00)" in str(alerts[0])
    h.close()


def test_async_client_raises_before_sending(sqlite_url: str) -> None:
    _history(sqlite_url, "acme", NOV, 1_000, 0)
    h = Harness(sqlite_url, is_async=True, limits=Limits(tokens={"acme": 1_000}, clock=Clock(NOV)))

    async def scenario() -> None:
        with walleta.attribute(customer="acme"):
            with pytest.raises(UsageLimitExceeded):
                await h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        await h.client.close()

    asyncio.run(scenario())
    assert h.fake.requests == []
    h.close()


def test_totals_are_refreshed_from_other_writers(sqlite_url: str) -> None:
    clock = Clock(NOV)
    h = Harness(sqlite_url, limits=Limits(tokens={"shared": 1_000}, clock=clock, refresh_seconds=60))
    with walleta.attribute(customer="shared"):
        h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        h.recorder.flush()
        _history(sqlite_url, "shared", NOV, 2_000, 0)  # another process wrote meanwhile
        clock.now += 61  # the next write by this recorder re-reads the rollups
        h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        h.recorder.flush()
        with pytest.raises(UsageLimitExceeded):
            h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    h.close()
