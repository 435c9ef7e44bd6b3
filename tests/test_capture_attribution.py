"""Attribution by context (threads, nesting, decorator) and per call (`tag`), never dropped."""

from __future__ import annotations

import contextvars
import threading

import walleta
from walleta.capture import current

from .capture_harness import Harness
from .test_capture_paths import MESSAGES


def test_nested_blocks_decorator_and_defaults(sqlite_url: str) -> None:
    h = Harness(sqlite_url, project="proj_123")

    @walleta.attribute(feature="from-decorator")
    def decorated() -> None:
        h.client.embeddings.create(model="text-embedding-3-small", input="x")

    h.client.embeddings.create(model="text-embedding-3-small", input="x")  # no attribution at all
    with walleta.attribute(customer="acme", feature="outer", user="u1") as outer:
        assert outer == current()
        with walleta.attribute(feature="inner"):  # inherits customer and user
            h.client.embeddings.create(model="text-embedding-3-small", input="x")
        decorated()
        h.client.embeddings.create(model="text-embedding-3-small", input="x")
    assert current() == walleta.capture.Attribution()
    rows = h.rows()
    assert [(r["customer_id"], r["feature"], r["user_id"], r["project_id"]) for r in rows] == [
        ("(unattributed)", "(none)", "", "proj_123"),
        ("acme", "inner", "u1", "proj_123"),
        ("acme", "from-decorator", "u1", "proj_123"),
        ("acme", "outer", "u1", "proj_123"),
    ]
    h.close()


def test_tag_overrides_one_call_and_never_reaches_openai(sqlite_url: str) -> None:
    h = Harness(sqlite_url)
    with walleta.attribute(customer="acme", feature="chat"):
        h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=walleta.tag(customer="Zoë & Co/EU", user="u 7"))
        h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    sent_headers = [r["headers"] for r in h.fake.requests]
    assert all(not k.lower().startswith("x-walleta-") for headers in sent_headers for k in headers)
    rows = h.rows()
    assert [(r["customer_id"], r["feature"], r["user_id"]) for r in rows] == [("Zoë & Co/EU", "chat", "u 7"), ("acme", "chat", "")]
    h.close()


def test_request_user_field_is_the_fallback_user_id(sqlite_url: str) -> None:
    h = Harness(sqlite_url)
    h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, safety_identifier="end-user-9")
    assert h.rows()[0]["user_id"] == "end-user-9"
    h.close()


def test_threads_have_their_own_attribution(sqlite_url: str) -> None:
    h = Harness(sqlite_url)
    barrier = threading.Barrier(3)

    def work(customer: str) -> None:
        with walleta.attribute(customer=customer, feature="threaded"):
            barrier.wait()  # all three blocks are open at once
            for _ in range(10):
                h.client.embeddings.create(model="text-embedding-3-small", input="x")

    threads = [threading.Thread(target=work, args=(c,)) for c in ("t1", "t2", "t3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # A thread does not inherit the starter's context unless asked to (copy_context).
    with walleta.attribute(customer="parent"):
        plain = threading.Thread(target=lambda: h.client.embeddings.create(model="text-embedding-3-small", input="x"))
        carried = threading.Thread(target=contextvars.copy_context().run, args=(lambda: h.client.embeddings.create(model="text-embedding-3-small", input="x"),))
        plain.start(), plain.join(), carried.start(), carried.join()
    counts = h.store.query("SELECT customer_id, COUNT(*) AS n FROM usage_events GROUP BY customer_id ORDER BY customer_id") if h.recorder.flush() else None
    assert counts is not None and counts.values.tolist() == [["(unattributed)", 1], ["parent", 1], ["t1", 10], ["t2", 10], ["t3", 10]]
    h.close()
