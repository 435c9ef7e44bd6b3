"""Shared set-up for the capture tests: real OpenAI clients against the fake API, instrumented.

`Harness(store_url, mode)` builds a sync or async `OpenAI` client talking to `FakeOpenAI`
through `httpx2.MockTransport` ("mock") or a real local HTTP server ("server"), instruments it
with a deterministic token counter, and reads back the stored rows.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import openai

import walleta
from walleta.capture import Recorder, recorder_of
from walleta.store import Store, open_store

from .openai_fake import FakeOpenAI, LocalServer

ROW_COLUMNS = (
    "uid", "customer_id", "feature", "user_id", "project_id", "model", "input_tokens", "cached_input_tokens",
    "cache_write_tokens", "output_tokens", "reasoning_tokens", "input_audio_tokens", "output_audio_tokens",
    "input_image_tokens", "output_image_tokens", "images", "image_size", "image_quality", "audio_seconds",
    "characters", "tool_calls", "requests", "service_tier", "batch", "request_id", "latency_ms", "status",
    "estimated", "cost_pico", "price_status", "price_note", "source", "provider", "day", "month", "ts_us",
)


class WordCounter:
    """Injected token counter for exact expectations: one token per whitespace-separated word."""

    def count(self, text: str, model: str) -> int:
        return len(text.split())


def words(*texts: str) -> int:
    return sum(len(t.split()) for t in texts)


def chat_estimate(messages: list[dict[str, Any]]) -> int:
    """The cookbook formula with WordCounter: 3 per message + words of role and content, + 3."""
    return 3 + sum(3 + words(m["role"]) + words(m["content"]) for m in messages)


class Harness:
    """One instrumented client (sync or async) and its store."""

    def __init__(self, store: Store | str, *, is_async: bool = False, mode: str = "mock", fake: FakeOpenAI | None = None,
                 max_retries: int = 0, project: str | None = None, **instrument_options: Any) -> None:
        self.fake = fake or FakeOpenAI()
        self.store = store if isinstance(store, Store) else open_store(store)
        self.is_async = is_async
        self.server: LocalServer | None = None
        options: dict[str, Any] = {"api_key": "sk-test", "max_retries": max_retries, "project": project}
        if mode == "server":
            self.server = self.fake.serve()
            options["base_url"] = self.server.base_url
        else:
            transport = httpx2.MockTransport(self.fake.handler)
            options["http_client"] = httpx2.AsyncClient(transport=transport) if is_async else httpx2.Client(transport=transport)
        self.client: Any = (openai.AsyncOpenAI if is_async else openai.OpenAI)(**options)
        instrument_options.setdefault("counter", WordCounter())
        instrument_options.setdefault("flush_interval", 0.05)
        walleta.instrument(self.client, store=self.store, **instrument_options)

    @property
    def recorder(self) -> Recorder:
        return recorder_of(self.client)

    def rows(self) -> list[dict[str, Any]]:
        """Every stored event (after a flush), oldest first, as plain dicts."""
        assert self.recorder.flush(), "recorder could not write"
        frame = self.store.query(f"SELECT {', '.join(ROW_COLUMNS)} FROM usage_events ORDER BY id")
        return [
            {k: (None if v is None or (isinstance(v, float) and v != v) else (int(v) if k == "cost_pico" else v)) for k, v in row.items()}
            for row in frame.to_dict("records")
        ]

    def close(self) -> None:
        if self.is_async:
            if not self.client.is_closed():
                asyncio.run(self.client.close())
        else:
            self.client.close()
        if self.server is not None:
            self.server.close()
