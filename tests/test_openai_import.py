"""The OpenAI Usage + Costs import: the real `openai` client against a fake admin API on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from tests.fakes.databases import snapshot
from tests.fakes.openai_admin import Failure, FakeOpenAIAdmin, bucket, page
from tests.reliability.chaos import ChaosProxy
from walleta.catalog import load_catalog
from walleta.errors import SourceError
from walleta.events import record_events
from walleta.sources.mapping import UNMAPPED, load_mappings, remap_provider_events, set_mappings
from walleta.sources.openai_usage import RetryPolicy, import_openai, list_projects_and_keys, make_client
from walleta.store import Store, open_store

DAY = 86_400
NOV1 = 1_730_419_200  # 2024-11-01T00:00:00Z, the spec examples' bucket
OCT1 = 1_759_276_800  # 2025-10-01T00:00:00Z
ADMIN_KEY = "sk-admin-TEST-never-show-this"


@pytest.fixture(scope="module")
def catalog():  # type: ignore[no-untyped-def]
    return load_catalog()


@pytest.fixture
def fake() -> Iterator[FakeOpenAIAdmin]:
    with FakeOpenAIAdmin() as server:
        yield server


@pytest.fixture
def client(fake: FakeOpenAIAdmin) -> Any:
    return make_client(admin_key=ADMIN_KEY, base_url=fake.base_url)


@pytest.fixture
def db(db_url: str) -> Store:
    return open_store(db_url)


@pytest.fixture
def lite(sqlite_url: str) -> Store:
    return open_store(sqlite_url)


def no_wait() -> RetryPolicy:
    return RetryPolicy(sleep=lambda _s: None)


def completion(project: str, model: str, tokens: int, *, cached: int = 0, key: str = "", user: str = "", tier: str = "default", requests: int = 1) -> dict[str, Any]:
    return {
        "object": "organization.usage.completions.result", "input_tokens": tokens, "output_tokens": tokens // 10,
        "input_cached_tokens": cached, "num_model_requests": requests, "project_id": project, "user_id": user or None,
        "api_key_id": key or None, "model": model, "batch": False, "service_tier": tier,
    }


def multi_page(days: int, per_page: int, start: int = OCT1) -> list[dict[str, Any]]:
    """Completions over `days` daily buckets, two projects a day, `per_page` buckets a page."""
    buckets = [
        bucket(start + d * DAY, [completion("proj_a", "gpt-5-mini-2025-08-07", 1000 + d), completion("proj_b", "gpt-4o-2024-08-06", 2000 + d, key="key_b")])
        for d in range(days)
    ]
    return [page(buckets[i : i + per_page]) for i in range(0, len(buckets), per_page)]


def serve_range(fake: FakeOpenAIAdmin, days: int, per_page: int) -> None:
    fake.state.empty()
    fake.state.set_pages("completions", multi_page(days, per_page))
    fake.state.set_pages("costs", [page([bucket(OCT1 + d * DAY, [{"object": "organization.costs.result", "amount": {"value": 0.1 + d / 100, "currency": "usd"}, "line_item": "gpt-5-mini, input", "project_id": "proj_a"}]) for d in range(days)])])


def test_spec_example_bodies_import(lite: Store, fake: FakeOpenAIAdmin, client: Any, catalog) -> None:  # type: ignore[no-untyped-def]
    fake.state.use_examples()
    report = import_openai(lite, catalog, client=client, since="2024-11-01", until="2024-11-01", retry=no_wait())
    assert report.rows_read == 11 and report.imported == 11  # ten usage results + one cost result
    buckets = lite.query("SELECT endpoint, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, input_audio_tokens, requests, images, characters, audio_seconds, tool_calls, usage_bytes FROM openai_usage_buckets").set_index("endpoint")
    assert buckets.loc["completions"].tolist() == [1000, 400, 100, 500, 50, 5, 0, 0, 0.0, 0, 0]
    assert buckets.loc["audio_transcriptions", "audio_seconds"] == 20.0 and buckets.loc["audio_speeches", "characters"] == 45
    assert buckets.loc["vector_stores", "usage_bytes"] == 1024 and buckets.loc["code_interpreter_sessions", "tool_calls"] == 1
    assert buckets.loc["file_search_calls", "tool_calls"] == 2 and buckets.loc["web_search_calls", "tool_calls"] == 2
    assert lite.scalar("SELECT amount_pico FROM billed_costs") == 60_000_000_000  # $0.06 exactly
    events = lite.query("SELECT model, cost_pico, price_status, price_note, customer_id FROM usage_events").set_index("model", drop=False)
    assert len(events) == 9  # vector store bytes are kept for reconciliation, not as usage events
    # the examples are not grouped by model: unpriced and flagged, never $0
    assert set(events.loc[events["model"] == "", "price_note"]) == {"unknown model ''"}
    assert events.loc["code_interpreter", "cost_pico"] == 30_000_000_000  # one session at $0.03
    assert set(events["customer_id"]) == {UNMAPPED}
    first = fake.state.calls("completions")[0]
    assert first["query"]["group_by[]"] == ["project_id", "user_id", "api_key_id", "model", "batch", "service_tier"]
    assert first["query"]["bucket_width"] == ["1d"] and first["authorization"] == f"Bearer {ADMIN_KEY}"
    assert fake.state.calls("completions")[1]["query"]["page"] == ["page_AAAAAGdGxdEiJdKOAAAAAGcqsYA="]  # the example's cursor followed
    assert fake.state.calls("costs")[0]["query"]["group_by[]"] == ["project_id", "line_item"]
    assert {r["endpoint"] for r in fake.state.requests} >= {"embeddings", "moderations", "images", "audio_speeches", "audio_transcriptions", "vector_stores", "code_interpreter_sessions", "file_search_calls", "web_search_calls", "costs"}


def test_multi_page_responses_are_followed_to_the_end(db: Store, fake: FakeOpenAIAdmin, client: Any, catalog) -> None:  # type: ignore[no-untyped-def]
    serve_range(fake, days=10, per_page=3)
    report = import_openai(db, catalog, client=client, since="2025-10-01", until="2025-10-10", retry=no_wait())
    pages = [c["query"].get("page", [None])[0] for c in fake.state.calls("completions")]
    assert pages == [None, "cur-completions-1", "cur-completions-2", "cur-completions-3"]
    assert db.scalar("SELECT COUNT(*) FROM openai_usage_buckets") == 20
    expected_input = sum(1000 + d + 2000 + d for d in range(10))
    assert int(db.scalar("SELECT CAST(SUM(input_tokens) AS BIGINT) FROM usage_events")) == expected_input
    assert int(db.scalar("SELECT CAST(SUM(input_tokens) AS BIGINT) FROM rollup_customer_day")) == expected_input
    assert int(db.scalar("SELECT CAST(SUM(amount_pico) AS BIGINT) FROM billed_costs")) == sum(100_000_000_000 + d * 10_000_000_000 for d in range(10))
    assert report.unpriced == 0 and report.cost_pico > 0


def test_rate_limit_is_retried_honouring_retry_after(lite: Store, fake: FakeOpenAIAdmin, client: Any, catalog) -> None:  # type: ignore[no-untyped-def]
    serve_range(fake, days=4, per_page=2)
    fake.state.failures.append(Failure("completions", page=2, status=429, headers={"Retry-After": "7"}, body={"error": {"message": "Rate limit reached", "type": "requests"}}))
    slept: list[float] = []
    report = import_openai(lite, catalog, client=client, since="2025-10-01", until="2025-10-04", retry=RetryPolicy(sleep=slept.append))
    assert slept == [7.0]
    assert [c["query"].get("page", [None])[0] for c in fake.state.calls("completions")] == [None, "cur-completions-1", "cur-completions-1"]
    assert lite.scalar("SELECT COUNT(*) FROM openai_usage_buckets") == 8 and report.errors == []


def test_backoff_without_retry_after_grows_exponentially() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    assert [policy._delay(n, None) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_server_error_mid_pagination_rolls_back_everything(db: Store, fake: FakeOpenAIAdmin, client: Any, catalog) -> None:  # type: ignore[no-untyped-def]
    serve_range(fake, days=6, per_page=2)
    import_openai(db, catalog, client=client, since="2025-10-01", until="2025-10-03", retry=no_wait())
    before = snapshot(db)
    fake.state.failures.append(Failure("completions", page=2, status=500, times=100))
    with pytest.raises(SourceError, match=r"gave up after 3 attempts \(HTTP 500\)") as caught:
        import_openai(db, catalog, client=client, since="2025-10-01", until="2025-10-06", retry=RetryPolicy(attempts=3, sleep=lambda _s: None))
    assert ADMIN_KEY not in str(caught.value)
    assert snapshot(db) == before  # nothing half-written


@pytest.mark.parametrize(("fault", "reason"), [("malformed", "the answer is not valid JSON"),
                                               ("html", "the answer is not a page of results (an HTML page)")])
def test_a_garbled_answer_is_retried_then_a_clear_error_and_a_rerun_is_clean(  # type: ignore[no-untyped-def]
        db: Store, fake: FakeOpenAIAdmin, catalog, fault: str, reason: str) -> None:
    """A 200 whose body is not JSON, or a gateway's HTML page, is retried with the backoff like a
    5xx; if it persists: a SourceError naming the endpoint and page, nothing written; a re-run
    then imports exactly the clean totals."""
    serve_range(fake, days=6, per_page=2)
    before = snapshot(db)
    slept: list[float] = []
    with ChaosProxy(fake.base_url, [None] + [fault] * 3) as proxy:  # page 2 of completions stays garbled
        client = make_client(admin_key=ADMIN_KEY, base_url=proxy.url)
        with pytest.raises(SourceError) as caught:
            import_openai(db, catalog, client=client, since="2025-10-01", until="2025-10-06",
                          retry=RetryPolicy(attempts=3, sleep=slept.append))
    assert str(caught.value) == f"OpenAI completions (page 2): gave up after 3 attempts ({reason})"
    assert slept == [1.0, 2.0] and proxy.injected == 3
    assert snapshot(db) == before  # all-or-nothing
    with ChaosProxy(fake.base_url, [None, fault]) as proxy:  # once only: ridden out
        import_openai(db, catalog, client=make_client(admin_key=ADMIN_KEY, base_url=proxy.url),
                      since="2025-10-01", until="2025-10-06", retry=no_wait())
    assert proxy.injected == 1
    assert int(db.scalar("SELECT CAST(SUM(input_tokens) AS BIGINT) FROM rollup_customer_month_model")) == sum(3000 + 2 * d for d in range(6))
    assert db.scalar("SELECT COUNT(*) FROM usage_events") == 12


def test_transient_server_error_mid_pagination_never_double_counts(db: Store, fake: FakeOpenAIAdmin, client: Any, catalog) -> None:  # type: ignore[no-untyped-def]
    serve_range(fake, days=6, per_page=2)
    fake.state.failures.append(Failure("completions", page=2, status=500, times=1))
    import_openai(db, catalog, client=client, since="2025-10-01", until="2025-10-06", retry=no_wait())
    first = int(db.scalar("SELECT CAST(SUM(input_tokens) AS BIGINT) FROM rollup_customer_month_model"))
    assert first == sum(3000 + 2 * d for d in range(6))
    import_openai(db, catalog, client=client, since="2025-10-03", until="2025-10-06", retry=no_wait())  # overlapping range
    assert int(db.scalar("SELECT CAST(SUM(input_tokens) AS BIGINT) FROM rollup_customer_month_model")) == first
    assert db.scalar("SELECT COUNT(*) FROM usage_events") == 12


def test_reimporting_the_same_range_leaves_the_database_unchanged(db: Store, fake: FakeOpenAIAdmin, client: Any, catalog) -> None:  # type: ignore[no-untyped-def]
    serve_range(fake, days=5, per_page=2)
    import_openai(db, catalog, client=client, since="2025-10-01", until="2025-10-05", retry=no_wait())
    before = snapshot(db)
    report = import_openai(db, catalog, client=client, since="2025-10-01", until="2025-10-05", retry=no_wait())
    assert (report.imported, report.updated, report.skipped) == (0, 0, 15)
    assert snapshot(db) == before


def test_a_refetched_bucket_replaces_the_stored_one(db: Store, fake: FakeOpenAIAdmin, client: Any, catalog) -> None:  # type: ignore[no-untyped-def]
    fake.state.empty()
    fake.state.set_pages("completions", [page([bucket(OCT1, [completion("proj_a", "gpt-5-mini", 100)])])])
    import_openai(db, catalog, client=client, since="2025-10-01", until="2025-10-01", retry=no_wait())
    fake.state.set_pages("completions", [page([bucket(OCT1, [completion("proj_a", "gpt-5-mini", 250)])])])
    report = import_openai(db, catalog, client=client, since="2025-10-01", until="2025-10-01", retry=no_wait())
    assert report.updated == 1
    assert db.query("SELECT input_tokens, cost_pico FROM usage_events").to_dict("records") == [{"input_tokens": 250, "cost_pico": 250 * 250_000 + 25 * 2_000_000}]
    assert int(db.scalar("SELECT CAST(SUM(input_tokens) AS BIGINT) FROM rollup_customer_day")) == 250


def test_unknown_enum_values_and_objects_are_kept(lite: Store, fake: FakeOpenAIAdmin, client: Any, catalog) -> None:  # type: ignore[no-untyped-def]
    fake.state.empty()
    odd = completion("proj_a", "gpt-5-mini", 1000, tier="hyperspeed")
    odd["api_source"] = "partner_api"
    odd["input_cache_write_1w_tokens"] = 12  # a field this SDK does not know
    novel = {"object": "organization.usage.teleport.result", "num_model_requests": 3, "project_id": "proj_a", "model": "gpt-5-mini"}
    fake.state.set_pages("completions", [page([bucket(OCT1, [odd, novel])])])
    report = import_openai(lite, catalog, client=client, since="2025-10-01", until="2025-10-01", retry=no_wait())
    assert report.errors == [] and report.rows_read == 2
    stored = lite.query("SELECT service_tier, attributes, raw FROM openai_usage_buckets ORDER BY raw")
    assert "hyperspeed" in set(stored["service_tier"])
    raws = [json.loads(r) for r in stored["raw"]]
    assert {r["object"] for r in raws} == {"organization.usage.completions.result", "organization.usage.teleport.result"}
    kept = next(json.loads(a) for a in stored["attributes"] if "partner_api" in a)
    assert kept["api_source"] == "partner_api" and kept["input_cache_write_1w_tokens"] == 12
    event = lite.query("SELECT service_tier, price_status FROM usage_events WHERE input_tokens = 1000").iloc[0].tolist()
    assert event == ["hyperspeed", "priced"]  # an unknown tier is billed at standard rates, not rejected


def test_default_range_continues_from_the_last_import(lite: Store, fake: FakeOpenAIAdmin, client: Any, catalog) -> None:  # type: ignore[no-untyped-def]
    fake.state.empty()
    now = OCT1 + 10 * DAY + 3_600
    import_openai(lite, catalog, client=client, retry=no_wait(), now=now)
    first = fake.state.calls("completions")[0]["query"]
    assert (int(first["start_time"][0]), int(first["end_time"][0])) == (OCT1 + 10 * DAY - 30 * DAY, now)
    later = now + 2 * DAY
    import_openai(lite, catalog, client=client, retry=no_wait(), now=later)
    second = fake.state.calls("completions")[-1]["query"]
    assert (int(second["start_time"][0]), int(second["end_time"][0])) == (OCT1 + 9 * DAY, later)  # re-reads the last day
    assert lite.last_cursor("openai_api") == str(later)


def test_log_usage_is_the_attribution_source_for_its_days(db: Store, fake: FakeOpenAIAdmin, client: Any, catalog) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    logged = pd.DataFrame({"ts_us": [(OCT1 + DAY + 60) * 1_000_000], "customer_id": ["acme"], "model": ["gpt-5-mini"], "input_tokens": [7], "output_tokens": [1], "request_id": ["req_log1"]})
    record_events(db, logged, catalog, source="log")
    serve_range(fake, days=3, per_page=3)
    import_openai(db, catalog, client=client, since="2025-10-01", until="2025-10-03", retry=no_wait())
    per_day = dict(db.query("SELECT day, CAST(SUM(input_tokens) AS BIGINT) AS t FROM rollup_customer_day GROUP BY day").itertuples(index=False, name=None))
    assert per_day == {"2025-10-01": 3000, "2025-10-02": 7, "2025-10-03": 3004}  # day 2 is the log's alone
    assert db.scalar("SELECT COUNT(*) FROM openai_usage_buckets WHERE day = '2025-10-02'") == 2  # kept for reconciliation


def test_mapping_resolves_customers_and_follows_changes(db: Store, fake: FakeOpenAIAdmin, client: Any, catalog) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as cur:
        set_mappings(db, [("openai_project", "proj_a", "acme"), ("openai_api_key", "key_b", "globex"), ("project", "proj_b", "initech")], cur=cur)
    serve_range(fake, days=2, per_page=2)
    import_openai(db, catalog, client=client, since="2025-10-01", until="2025-10-02", retry=no_wait())
    customers = dict(db.query("SELECT customer_id, CAST(SUM(input_tokens) AS BIGINT) AS t FROM rollup_customer_month_model GROUP BY customer_id").itertuples(index=False, name=None))
    assert customers == {"acme": 2001, "globex": 4001}  # the API key mapping wins over the project mapping
    with db.transaction() as cur:
        cur.execute(db.sql("DELETE FROM customer_mappings WHERE key = 'key_b'"))
        assert remap_provider_events(db, cur=cur) == 2
    customers = dict(db.query("SELECT customer_id, CAST(SUM(input_tokens) AS BIGINT) AS t FROM rollup_customer_month_model GROUP BY customer_id").itertuples(index=False, name=None))
    assert customers == {"acme": 2001, "initech": 4001}
    assert load_mappings(db)["openai_project"] == {"proj_a": "acme", "proj_b": "initech"}


def test_projects_and_keys_are_listed_for_mapping(fake: FakeOpenAIAdmin, client: Any) -> None:
    fake.state.projects = [{"id": "proj_a", "object": "organization.project", "name": "Acme prod", "created_at": 1711471533, "archived_at": None, "status": "active"}]
    fake.state.api_keys = {"proj_a": [{"object": "organization.project.api_key", "id": "key_a1", "name": "backend", "redacted_value": "sk-...abc", "created_at": 1711471533, "owner": {"type": "service_account", "service_account": {"id": "svc_1", "name": "acme-bot", "role": "member", "created_at": 1}}}]}
    listed = list_projects_and_keys(client, retry=no_wait())
    assert listed.to_dict("records") == [
        {"source": "openai_project", "key": "proj_a", "name": "Acme prod", "project_id": "proj_a", "owner": ""},
        {"source": "openai_api_key", "key": "key_a1", "name": "backend", "project_id": "proj_a", "owner": "service_account:acme-bot"},
    ]


def test_a_rejected_admin_key_is_never_shown(lite: Store, fake: FakeOpenAIAdmin, client: Any, catalog) -> None:  # type: ignore[no-untyped-def]
    fake.state.empty()
    fake.state.failures.append(Failure("completions", page=1, status=401, body={"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}))
    with pytest.raises(SourceError, match=r"admin key was rejected \(401\)") as caught:
        import_openai(lite, catalog, client=client, since="2025-10-01", until="2025-10-01", retry=no_wait())
    assert ADMIN_KEY not in str(caught.value) and ADMIN_KEY not in repr(caught.value.__cause__)
