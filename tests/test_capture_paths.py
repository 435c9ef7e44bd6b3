"""Every billable path of the official openai client, sync, recorded field by field.

The real `openai.OpenAI` client talks to the fake API (tests/openai_fake.py) through
`httpx2.MockTransport` ("mock") or a real HTTP server on 127.0.0.1 ("server"); the stored rows
are read back from a real SQLite (or PostgreSQL) database. Costs are hand-computed from
data/prices.csv: gpt-5.4 $2.50 / $0.25 cached / $15 per 1M tokens, gpt-4o $2.50 / $10,
text-embedding-3-small $0.02, dall-e-3 1024x1024 hd $0.08 per image, gpt-image-1 image tokens
$10 in / $40 out and text input $5, tts-1 $15 per 1M characters, whisper-1 $0.006 per minute,
gpt-4o-transcribe $2.50 audio in / $10 text out.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import httpx2
import openai
import pytest
from pydantic import BaseModel

import walleta

from .capture_harness import Harness, chat_estimate, words
from .openai_fake import CHAT_STREAM_TEXT, RICH_CHAT_USAGE, SPEECH_AUDIO, FakeOpenAI

MESSAGES = [{"role": "user", "content": "Say hello to the team"}]
START_US = time.time_ns() // 1000


def expect(row: dict[str, Any], **fields: Any) -> None:
    """Assert every column of a stored row: the given values, defaults for the rest."""
    expected = {
        "customer_id": "(unattributed)", "feature": "(none)", "user_id": "", "project_id": "",
        "input_tokens": 0, "cached_input_tokens": 0, "cache_write_tokens": 0, "output_tokens": 0,
        "reasoning_tokens": 0, "input_audio_tokens": 0, "output_audio_tokens": 0, "input_image_tokens": 0,
        "output_image_tokens": 0, "images": 0, "image_size": "", "image_quality": "", "audio_seconds": 0.0,
        "characters": 0, "tool_calls": 0, "requests": 1, "service_tier": "default", "batch": 0, "status": "ok",
        "estimated": 0, "price_status": "priced", "price_note": "", "source": "log", "provider": "openai",
    }
    expected.update(fields)
    actual = {k: row[k] for k in expected}
    assert actual == expected
    assert row["request_id"].startswith("req_") and row["uid"] == f"req:{row['request_id']}"
    assert START_US <= row["ts_us"] <= time.time_ns() // 1000
    day = time.strftime("%Y-%m-%d", time.gmtime(row["ts_us"] / 1e6))
    assert (row["day"], row["month"]) == (day, day[:7])
    assert isinstance(row["latency_ms"], int) and 0 <= row["latency_ms"] < 60_000


@pytest.fixture
def harness(sqlite_url: str, request: pytest.FixtureRequest) -> Iterator[Harness]:
    mode = getattr(request, "param", "mock")
    h = Harness(sqlite_url, mode=mode)
    yield h
    h.close()


both_transports = pytest.mark.parametrize("harness", ["mock", "server"], indirect=True)


@both_transports
def test_chat_create_records_model_tokens_tier_attribution(harness: Harness) -> None:
    harness.fake.response_model = "gpt-5.4-2026-03-05"  # the API answers with the resolved snapshot
    with walleta.attribute(customer="acme", feature="summarize", user="u-42"):
        result = harness.client.chat.completions.create(model="gpt-5.4", messages=MESSAGES)
        harness.fake.chat_usage = RICH_CHAT_USAGE
        harness.client.chat.completions.create(model="gpt-5.4", messages=MESSAGES, service_tier="flex")
    assert result.choices[0].message.content == "Hello! How can I assist you today?"
    plain, rich = harness.rows()
    common = {"customer_id": "acme", "feature": "summarize", "user_id": "u-42", "model": "gpt-5.4-2026-03-05"}
    expect(plain, **common, input_tokens=19, output_tokens=10, cost_pico=19 * 2_500_000 + 10 * 15_000_000)
    assert plain["request_id"] == result._request_id
    # Every token class of CompletionUsage lands in its column; audio input has no gpt-5.4 price.
    expect(
        rich, **common, input_tokens=2000, cached_input_tokens=1200, cache_write_tokens=300, input_audio_tokens=100,
        input_image_tokens=50, output_tokens=500, reasoning_tokens=200, output_audio_tokens=40,
        cost_pico=None, price_status="unpriced", price_note="no audio input price (gpt-5.4)",
    )


def test_cached_cache_write_and_reasoning_tokens_are_priced(harness: Harness) -> None:
    harness.fake.chat_usage = {
        "prompt_tokens": 2000, "completion_tokens": 500, "total_tokens": 2500,
        "prompt_tokens_details": {"cached_tokens": 1200, "cache_write_tokens": 300, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 200, "audio_tokens": 0},
    }
    harness.client.chat.completions.create(model="gpt-5.4", messages=MESSAGES)
    (row,) = harness.rows()
    # 500 uncached x 2.5 + 1200 cached x 0.25 + 300 cache writes x 2.5 (no write fee) + 500 out x 15
    cost = 500 * 2_500_000 + 1200 * 250_000 + 300 * 2_500_000 + 500 * 15_000_000
    expect(row, model="gpt-5.4", input_tokens=2000, cached_input_tokens=1200, cache_write_tokens=300,
           output_tokens=500, reasoning_tokens=200, cost_pico=cost)


def _plain_chunks(fake: FakeOpenAI, **kwargs: Any) -> list[dict[str, Any]]:
    """What an uninstrumented client receives for the same streamed call."""
    plain = openai.OpenAI(api_key="sk-test", max_retries=0, http_client=httpx2.Client(transport=httpx2.MockTransport(fake.handler)))
    return [c.to_dict() for c in plain.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, **kwargs)]


@both_transports
def test_streamed_chat_gets_usage_without_changing_what_the_caller_sees(harness: Harness) -> None:
    chunks = list(harness.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    sent = harness.fake.requests[-1]["json"]
    assert sent["stream_options"] == {"include_usage": True}  # added on the wire
    assert [c.to_dict() for c in chunks] == _plain_chunks(harness.fake)  # byte-for-byte what a plain client gets
    assert all(c.choices and c.usage is None and "usage" not in c.model_fields_set for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(CHAT_STREAM_TEXT)
    (row,) = harness.rows()
    expect(row, model="gpt-4o", input_tokens=19, output_tokens=10, cost_pico=19 * 2_500_000 + 10 * 10_000_000)


def test_streamed_chat_with_callers_include_usage_is_untouched(harness: Harness) -> None:
    chunks = list(harness.client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 19  # the caller asked for it
    assert [c.to_dict() for c in chunks] == _plain_chunks(harness.fake, stream_options={"include_usage": True})
    (row,) = harness.rows()
    expect(row, model="gpt-4o", input_tokens=19, output_tokens=10, cost_pico=147_500_000)


def test_include_usage_false_is_respected_and_estimated(harness: Harness) -> None:
    list(harness.client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": False}))
    assert harness.fake.requests[-1]["json"]["stream_options"] == {"include_usage": False}
    (row,) = harness.rows()
    tokens_in, tokens_out = chat_estimate(MESSAGES), words("".join(CHAT_STREAM_TEXT))
    expect(row, model="gpt-4o", input_tokens=tokens_in, output_tokens=tokens_out, estimated=1,
           cost_pico=tokens_in * 2_500_000 + tokens_out * 10_000_000)


@both_transports
def test_stream_without_usage_is_estimated_with_the_counter(harness: Harness) -> None:
    harness.fake.send_usage = False
    list(harness.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    (row,) = harness.rows()
    tokens_in, tokens_out = chat_estimate(MESSAGES), words("".join(CHAT_STREAM_TEXT))
    assert (tokens_in, tokens_out) == (3 + 3 + 1 + 5, 7)
    expect(row, model="gpt-4o", input_tokens=tokens_in, output_tokens=tokens_out, estimated=1,
           cost_pico=tokens_in * 2_500_000 + tokens_out * 10_000_000)


def test_cancelled_stream_is_estimated_from_what_arrived(harness: Harness) -> None:
    harness.fake.chunked = True
    stream = harness.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    received = [next(stream), next(stream)]  # role chunk, then "Hello"
    stream.close()
    assert received[1].choices[0].delta.content == "Hello"
    (row,) = harness.rows()
    expect(row, model="gpt-4o", input_tokens=chat_estimate(MESSAGES), output_tokens=1, estimated=1,
           cost_pico=chat_estimate(MESSAGES) * 2_500_000 + 1 * 10_000_000)


class Answer(BaseModel):
    answer: str


def test_chat_parse_stream_helper_raw_and_streaming_response(harness: Harness) -> None:
    parsed = harness.client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(answer="42")
    with harness.client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "".join(CHAT_STREAM_TEXT)
    raw = harness.client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.parse().usage.prompt_tokens == 19
    with harness.client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES) as response:
        assert response.parse().usage.completion_tokens == 10
    rows = harness.rows()
    assert [r["request_id"] for r in rows][2] == raw.headers["x-request-id"]
    for row in rows:
        expect(row, model="gpt-4o", input_tokens=19, output_tokens=10, cost_pico=147_500_000)


@both_transports
def test_responses_create_stream_helper_and_parse(harness: Harness) -> None:
    with walleta.attribute(customer="globex", feature="draft"):
        harness.client.responses.create(model="gpt-5.4", input="Tell me a story")
        events = list(harness.client.responses.create(model="gpt-5.4", input="Tell me a story", stream=True))
        with harness.client.responses.stream(model="gpt-5.4", input="Tell me a story") as stream:
            final = stream.get_final_response()
        harness.client.responses.parse(model="gpt-5.4", input="Tell me a story", text_format=Answer)
        harness.client.responses.create(model="gpt-5.4", input="Tell me a story", service_tier="flex")
    assert events[-1].type == "response.completed" and final.usage.output_tokens == 87
    rows = harness.rows()
    standard = 36 * 2_500_000 + 87 * 15_000_000
    for row in rows[:4]:
        expect(row, customer_id="globex", feature="draft", model="gpt-5.4", input_tokens=36, output_tokens=87, cost_pico=standard)
    # flex tier: $1.25 in / $7.50 out
    expect(rows[4], customer_id="globex", feature="draft", model="gpt-5.4", input_tokens=36, output_tokens=87,
           service_tier="flex", cost_pico=36 * 1_250_000 + 87 * 7_500_000)


def test_responses_stream_without_usage_is_estimated(harness: Harness) -> None:
    harness.fake.send_usage = False
    list(harness.client.responses.create(model="gpt-5.4", input="Tell me a story", stream=True))
    (row,) = harness.rows()
    tokens_in = words("Tell me a story") + 3 + 3
    tokens_out = words("In a peaceful grove beneath a silver moon.")
    expect(row, model="gpt-5.4", input_tokens=tokens_in, output_tokens=tokens_out, estimated=1,
           cost_pico=tokens_in * 2_500_000 + tokens_out * 15_000_000)


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # audio.translations is deprecated in openai 3.x
def test_embeddings_images_audio_moderations(harness: Harness) -> None:
    client = harness.client
    with walleta.attribute(customer="initech", feature="media"):
        client.embeddings.create(model="text-embedding-3-small", input="hello world")
        client.images.generate(model="dall-e-3", prompt="a cat", size="1024x1024", quality="hd", n=2)
        client.images.generate(model="gpt-image-1", prompt="a cat", size="1024x1536", quality="high")
        client.images.edit(model="gpt-image-1", image=("cat.png", b"\x89PNG fake", "image/png"), prompt="add a hat")
        speech_text = "Hello world, this is a speech test."
        audio = client.audio.speech.create(model="tts-1", voice="alloy", input=speech_text)
        client.audio.speech.create(model="gpt-4o-mini-tts", voice="alloy", input=speech_text).read()
        client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("a.wav", b"RIFF fake", "audio/wav"))
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF fake", "audio/wav"))
        text = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF fake", "audio/wav"), response_format="text")
        client.audio.translations.create(model="whisper-1", file=("a.wav", b"RIFF fake", "audio/wav"))
        client.moderations.create(input="is this fine")
    assert audio.read() == SPEECH_AUDIO and text.startswith("The quick brown fox")
    rows = harness.rows()
    who = {"customer_id": "initech", "feature": "media"}
    expect(rows[0], **who, model="text-embedding-3-small", input_tokens=8, cost_pico=8 * 20_000)
    expect(rows[1], **who, model="dall-e-3", images=2, image_size="1024x1024", image_quality="hd", cost_pico=2 * 80_000_000_000)
    gpt_image = 40 * 5_000_000 + 10 * 10_000_000 + 4160 * 40_000_000  # text in, image in, image out
    image_tokens = {"model": "gpt-image-1", "input_tokens": 50, "input_image_tokens": 10, "output_tokens": 4160,
                    "output_image_tokens": 4160, "images": 1, "image_quality": "high", "cost_pico": gpt_image}
    expect(rows[2], **who, **image_tokens, image_size="1024x1536")
    expect(rows[3], **who, **image_tokens, image_size="1024x1024")  # multipart edit: model read from the form
    expect(rows[4], **who, model="tts-1", characters=len(speech_text), cost_pico=len(speech_text) * 15_000_000)
    expect(rows[5], **who, model="gpt-4o-mini-tts", characters=len(speech_text), input_tokens=words(speech_text),
           estimated=1, cost_pico=None, price_status="unpriced", price_note="speech: audio output tokens not reported by the API")
    expect(rows[6], **who, model="gpt-4o-transcribe", input_tokens=14, input_audio_tokens=14, output_tokens=45,
           cost_pico=14 * 2_500_000 + 45 * 10_000_000)
    expect(rows[7], **who, model="whisper-1", audio_seconds=9.5, cost_pico=950_000_000)  # 9.5 s x $0.006/min
    expect(rows[8], **who, model="whisper-1", output_tokens=words(text), estimated=1, cost_pico=None, price_status="unpriced",
           price_note="transcription returned no usage (response_format=text); audio length unknown")
    expect(rows[9], **who, model="whisper-1", audio_seconds=9.5, cost_pico=950_000_000)
    expect(rows[10], **who, model="omni-moderation-2024-09-26", input_tokens=words("is this fine"), estimated=1, cost_pico=0)


@both_transports
def test_streamed_images_speech_and_transcription(harness: Harness) -> None:
    client = harness.client
    image_events = list(client.images.generate(model="gpt-image-1", prompt="a cat", size="1536x1024", stream=True, partial_images=1))
    speech = client.audio.speech.create(model="gpt-4o-mini-tts", voice="alloy", input="Hi there, streaming.", stream_format="sse")
    speech.read()
    transcript = list(client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("a.wav", b"RIFF fake", "audio/wav"), stream=True))
    assert [e.type for e in image_events] == ["image_generation.partial_image", "image_generation.completed"]
    assert transcript[-1].type == "transcript.text.done"
    image, tts, stt = harness.rows()
    expect(image, model="gpt-image-1", input_tokens=50, input_image_tokens=10, output_tokens=4160, output_image_tokens=4160,
           images=1, image_size="1536x1024", image_quality="high", cost_pico=40 * 5_000_000 + 10 * 10_000_000 + 4160 * 40_000_000)
    # gpt-4o-mini-tts: $0.60 per 1M text input tokens, $12 per 1M audio output tokens
    expect(tts, model="gpt-4o-mini-tts", characters=len("Hi there, streaming."), input_tokens=9, output_tokens=120,
           output_audio_tokens=120, cost_pico=9 * 600_000 + 120 * 12_000_000)
    expect(stt, model="gpt-4o-transcribe", input_tokens=14, input_audio_tokens=14, output_tokens=45, cost_pico=14 * 2_500_000 + 45 * 10_000_000)


def test_failed_requests_are_recorded_as_errors(sqlite_url: str) -> None:
    h = Harness(sqlite_url, max_retries=1)
    with pytest.raises(openai.BadRequestError):
        h.client.chat.completions.create(model="error-400", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError):  # 500 is retried once: two failed attempts
        h.client.chat.completions.create(model="error-500", messages=MESSAGES)
    rows = h.rows()
    assert len(rows) == 3
    for row in rows:
        assert row["status"] == "error" and row["estimated"] == 0 and row["input_tokens"] == row["output_tokens"] == 0
        assert row["uid"] == f"req:{row['request_id']}" and row["price_status"] == "unpriced"
    assert [r["model"] for r in rows] == ["error-400", "error-500", "error-500"]
    errors = h.store.scalar("SELECT CAST(SUM(errors) AS BIGINT) FROM rollup_customer_day")
    assert errors == 3
    h.close()


def test_connection_errors_are_recorded_without_request_id(sqlite_url: str) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    client = openai.OpenAI(api_key="sk-test", max_retries=0, http_client=httpx2.Client(transport=httpx2.MockTransport(refuse)))
    walleta.instrument(client, store=sqlite_url, flush_interval=0.05)
    with walleta.attribute(customer="acme"), pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    client.close()
    store = walleta.open_store(sqlite_url)
    row = store.query("SELECT uid, request_id, status, model, customer_id, cost_pico, input_tokens FROM usage_events").iloc[0]
    assert row["uid"].startswith("evt:") and len(row["uid"]) == 36 and row["request_id"] == ""
    assert (row["status"], row["model"], row["customer_id"], row["input_tokens"]) == ("error", "gpt-4o", "acme", 0)
    assert row["cost_pico"] == 0  # priced: a known model with no tokens costs nothing


def test_with_options_copies_and_legacy_completions_are_recorded(harness: Harness) -> None:
    copy = harness.client.with_options(max_retries=0, timeout=5)
    with walleta.attribute(customer="acme"):
        copy.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        harness.client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test")
    chat, legacy = harness.rows()
    expect(chat, customer_id="acme", model="gpt-4o", input_tokens=19, output_tokens=10, cost_pico=147_500_000)
    # gpt-3.5-turbo-instruct: $1.50 in / $2.00 out per 1M tokens
    expect(legacy, customer_id="acme", model="gpt-3.5-turbo-instruct", input_tokens=5, output_tokens=7,
           cost_pico=5 * 1_500_000 + 7 * 2_000_000)


def test_non_billable_requests_pass_through_unrecorded(harness: Harness) -> None:
    with pytest.raises(openai.NotFoundError):
        harness.client.models.list()  # GET: not a model call
    assert harness.rows() == []


def test_stored_rows_on_both_databases(db_url: str) -> None:
    h = Harness(db_url)
    with walleta.attribute(customer="acme", feature="chat"):
        h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        list(h.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        h.client.images.generate(model="dall-e-3", prompt="x", quality="hd", n=2)
    rows = h.rows()
    for row in rows[:2]:
        expect(row, customer_id="acme", feature="chat", model="gpt-4o", input_tokens=19, output_tokens=10, cost_pico=147_500_000)
    expect(rows[2], customer_id="acme", feature="chat", model="dall-e-3", images=2, image_size="1024x1024", image_quality="hd",
           cost_pico=160_000_000_000)
    rollup = h.store.query("SELECT model, events, cost_pico FROM rollup_customer_month_model WHERE customer_id = 'acme' ORDER BY model")
    assert rollup.values.tolist() == [["dall-e-3", 1, 160_000_000_000], ["gpt-4o", 2, 295_000_000]]
    h.close()
