"""The same billable paths through `openai.AsyncOpenAI`: recorded exactly like the sync client.

Each scenario runs once in an event loop; rows are checked field by field with the same
expectations as tests/test_capture_paths.py.
"""

from __future__ import annotations

import asyncio
from typing import Iterator

import httpx2
import openai
import pytest

import walleta

from .capture_harness import Harness, chat_estimate, words
from .openai_fake import CHAT_STREAM_TEXT, SPEECH_AUDIO
from .test_capture_paths import MESSAGES, Answer, expect


@pytest.fixture(params=["mock", "server"])
def harness(sqlite_url: str, request: pytest.FixtureRequest) -> Iterator[Harness]:
    h = Harness(sqlite_url, is_async=True, mode=request.param)
    yield h
    h.close()


def test_async_chat_paths(harness: Harness) -> None:
    client: openai.AsyncOpenAI = harness.client
    fake = harness.fake

    async def scenario() -> dict[str, object]:
        seen: dict[str, object] = {}
        async with walleta.attribute(customer="acme", feature="async-chat"):
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
            seen["chunks"] = [c async for c in stream]
            seen["sent"] = fake.requests[-1]["json"].get("stream_options")
            fake.send_usage = False
            stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
            [c async for c in stream]
            fake.send_usage, fake.chunked = True, True
            stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
            seen["partial"] = [await stream.__anext__(), await stream.__anext__()]
            await stream.close()
            fake.chunked = False
            parsed = await client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Answer)
            seen["parsed"] = parsed.choices[0].message.parsed
            async with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as helper:
                seen["final"] = (await helper.get_final_completion()).choices[0].message.content
            raw = await client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
            seen["raw_id"] = raw.headers["x-request-id"]
            async with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES) as response:
                seen["streamed_usage"] = (await response.parse()).usage.completion_tokens
            with pytest.raises(openai.BadRequestError):
                await client.chat.completions.create(model="error-400", messages=MESSAGES)
        await client.close()  # closing the client flushes and closes its recorder
        return seen

    seen = asyncio.run(scenario())
    chunks = seen["chunks"]
    assert seen["sent"] == {"include_usage": True}
    assert all(c.choices and "usage" not in c.model_fields_set for c in chunks)  # type: ignore[attr-defined]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(CHAT_STREAM_TEXT)  # type: ignore[attr-defined]
    assert seen["parsed"] == Answer(answer="42") and seen["final"] == "".join(CHAT_STREAM_TEXT) and seen["streamed_usage"] == 10
    assert harness.recorder.stats()["written"] == 9
    rows = harness.rows()
    who = {"customer_id": "acme", "feature": "async-chat", "model": "gpt-4o"}
    exact = {**who, "input_tokens": 19, "output_tokens": 10, "cost_pico": 147_500_000}
    estimate_in = chat_estimate(MESSAGES)
    expect(rows[0], **exact)
    expect(rows[1], **exact)
    out = words("".join(CHAT_STREAM_TEXT))
    expect(rows[2], **who, input_tokens=estimate_in, output_tokens=out, estimated=1, cost_pico=estimate_in * 2_500_000 + out * 10_000_000)
    expect(rows[3], **who, input_tokens=estimate_in, output_tokens=1, estimated=1, cost_pico=estimate_in * 2_500_000 + 10_000_000)
    for row in rows[4:8]:
        expect(row, **exact)
    assert rows[6]["request_id"] == seen["raw_id"]
    assert rows[8]["status"] == "error" and rows[8]["model"] == "error-400" and rows[8]["customer_id"] == "acme"


def test_async_responses_and_media_paths(harness: Harness) -> None:
    client: openai.AsyncOpenAI = harness.client

    async def scenario() -> bytes:
        async with walleta.attribute(customer="globex", feature="async-media"):
            await client.responses.create(model="gpt-5.4", input="Tell me a story")
            stream = await client.responses.create(model="gpt-5.4", input="Tell me a story", stream=True)
            [e async for e in stream]
            async with client.responses.stream(model="gpt-5.4", input="Tell me a story") as helper:
                await helper.get_final_response()
            await client.responses.parse(model="gpt-5.4", input="Tell me a story", text_format=Answer)
            await client.embeddings.create(model="text-embedding-3-small", input="hello world")
            await client.images.generate(model="dall-e-3", prompt="a cat", quality="hd", n=2)
            await client.images.edit(model="gpt-image-1", image=("cat.png", b"\x89PNG fake", "image/png"), prompt="hat")
            speech = await client.audio.speech.create(model="tts-1", voice="alloy", input="Hello async world")
            await client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF fake", "audio/wav"))
            await client.moderations.create(input="is this fine")
            [e async for e in await client.images.generate(model="gpt-image-1", prompt="a cat", stream=True, partial_images=1)]
            [e async for e in await client.audio.transcriptions.create(
                model="gpt-4o-transcribe", file=("a.wav", b"RIFF fake", "audio/wav"), stream=True)]
        await client.close()
        return speech.content

    assert asyncio.run(scenario()) == SPEECH_AUDIO
    rows = harness.rows()
    who = {"customer_id": "globex", "feature": "async-media"}
    for row in rows[:4]:
        expect(row, **who, model="gpt-5.4", input_tokens=36, output_tokens=87, cost_pico=36 * 2_500_000 + 87 * 15_000_000)
    expect(rows[4], **who, model="text-embedding-3-small", input_tokens=8, cost_pico=160_000)
    expect(rows[5], **who, model="dall-e-3", images=2, image_size="1024x1024", image_quality="hd", cost_pico=160_000_000_000)
    expect(rows[6], **who, model="gpt-image-1", input_tokens=50, input_image_tokens=10, output_tokens=4160, output_image_tokens=4160,
           images=1, image_size="1024x1024", image_quality="high", cost_pico=40 * 5_000_000 + 10 * 10_000_000 + 4160 * 40_000_000)
    expect(rows[7], **who, model="tts-1", characters=len("Hello async world"), cost_pico=len("Hello async world") * 15_000_000)
    expect(rows[8], **who, model="whisper-1", audio_seconds=9.5, cost_pico=950_000_000)
    expect(rows[9], **who, model="omni-moderation-2024-09-26", input_tokens=3, estimated=1, cost_pico=0)
    expect(rows[10], **who, model="gpt-image-1", input_tokens=50, input_image_tokens=10, output_tokens=4160, output_image_tokens=4160,
           images=1, image_size="1024x1024", image_quality="high", cost_pico=40 * 5_000_000 + 10 * 10_000_000 + 4160 * 40_000_000)
    expect(rows[11], **who, model="gpt-4o-transcribe", input_tokens=14, input_audio_tokens=14, output_tokens=45,
           cost_pico=14 * 2_500_000 + 45 * 10_000_000)


def test_async_tasks_keep_their_own_attribution(sqlite_url: str) -> None:
    h = Harness(sqlite_url, is_async=True)

    async def work(customer: str, n: int) -> None:
        async with walleta.attribute(customer=customer, feature=f"f-{customer}"):
            for _ in range(n):
                await h.client.embeddings.create(model="text-embedding-3-small", input="x")
                await asyncio.sleep(0)  # interleave with the other tasks

    async def scenario() -> None:
        await asyncio.gather(work("a", 5), work("b", 7), work("c", 3))
        await h.client.embeddings.create(model="text-embedding-3-small", input="x")  # outside: unattributed
        await h.client.close()

    asyncio.run(scenario())
    counts = h.store.query("SELECT customer_id, feature, COUNT(*) AS n FROM usage_events GROUP BY customer_id, feature ORDER BY customer_id")
    assert counts.values.tolist() == [["(unattributed)", "(none)", 1], ["a", "f-a", 5], ["b", "f-b", 7], ["c", "f-c", 3]]
    h.close()
