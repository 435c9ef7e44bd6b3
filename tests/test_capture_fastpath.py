"""The short caller path of a tracked call (perf-capture pass of issue 3): what it queues, fork
detection without getpid(), query strings in the endpoint-kind cache, Attribution as a value."""

from __future__ import annotations

import os

import openai
import pytest

import walleta
from walleta.capture import Attribution, recorder_of
from walleta.capture.transport import CallRecord
from walleta.schema import UNATTRIBUTED

from .capture_harness import Harness

MESSAGES = [{"role": "user", "content": "Say hello"}]


def test_in_memory_body_is_queued_as_a_tuple_and_read_back_field_by_field(sqlite_url: str) -> None:
    h = Harness(sqlite_url, flush_interval=3600, batch_size=10**6)
    with walleta.attribute(customer="acme", feature="chat", user="u1"):
        result = h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    queued = list(h.recorder._queue)
    assert len(queued) == 1 and type(queued[0]) is tuple  # nothing built on the caller's thread
    record = CallRecord.received(queued[0])
    assert (record.kind, record.attribution) == ("chat", Attribution("acme", "chat", "u1"))
    assert record.request_id == result._request_id and record.status_code == 200
    assert record.body() == record.response.content and b'"usage"' in record.body()
    assert record.ts_us > 0 and record.start_ns <= record.end_ns and record.chunks is None and not record.injected
    rows = h.rows()
    assert [(r["customer_id"], r["feature"], r["user_id"], r["request_id"]) for r in rows] == [("acme", "chat", "u1", result._request_id)]
    assert rows[0]["input_tokens"] == result.usage.prompt_tokens and rows[0]["output_tokens"] == result.usage.completion_tokens


def test_endpoint_kind_ignores_the_query_string(sqlite_url: str) -> None:
    h = Harness(sqlite_url)
    h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_query={"api-version": "2026-01-01"})
    with pytest.raises(openai.NotFoundError):
        h.client.files.create(file=("a.jsonl", b"{}"), purpose="batch")  # POST, not billable: passes through
    assert [(r["status"], r["model"]) for r in h.rows()] == [("ok", "gpt-4o")]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_its_own_recorder_thread(sqlite_url: str) -> None:
    h = Harness(sqlite_url)
    h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert h.recorder.flush()
    parent_thread = h.recorder._thread
    pid = os.fork()
    if pid == 0:  # child: the recorder's thread did not survive the fork; the first call restarts it
        code = 1
        try:
            with walleta.attribute(customer="child"):
                h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            recorder = recorder_of(h.client)
            code = 0 if recorder.flush(timeout=30) and recorder._thread is not parent_thread and recorder._pid == os.getpid() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # (no second call here: the fake's request-id counter was forked too, the ids would collide)
    assert sorted(r["customer_id"] for r in h.rows()) == sorted(["child", UNATTRIBUTED])
    assert h.recorder._thread is parent_thread and parent_thread.is_alive()


def test_attribution_is_an_immutable_value() -> None:
    value = Attribution("acme", "chat")
    assert value == Attribution(customer="acme", feature="chat", user="") and hash(value) == hash(Attribution("acme", "chat"))
    assert repr(value) == "Attribution(customer='acme', feature='chat', user='')"
    with pytest.raises(AttributeError):
        value.customer = "x"  # type: ignore[misc]
    assert value.merged(None, "other", 7) == Attribution("acme", "other", "7")
    with walleta.attribute(customer=42) as current:  # fields converted with str(), once
        assert current == Attribution("42", "", "")
