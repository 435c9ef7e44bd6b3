"""`strip_next` (the per-chunk filter of a stream we asked usage for) yields, over a whole stream,
exactly what `strip_usage_events` yields for the stream in one piece, however it is chunked."""

from __future__ import annotations

import json
import random

from walleta.capture.transport import strip_next, strip_usage_events


def sse(newline: bytes) -> bytes:
    """A chat stream with include_usage: `"usage":null` on every chunk, then the usage chunk."""
    events = [{"id": "c", "choices": [{"index": 0, "delta": {"content": f"word {i} \\n\\n"}}], "usage": None} for i in range(6)]
    events.append({"id": "c", "choices": [], "usage": {"prompt_tokens": 19, "completion_tokens": 10}})
    lines = [b"data: " + json.dumps(e, separators=(",", ":")).encode() for e in events] + [b"data: [DONE]"]
    return b"".join(line + newline + newline for line in lines)


def through_strip_next(chunks: list[bytes]) -> bytes:
    out, pending = [], b""
    for chunk in chunks:
        kept, pending = strip_next(pending, chunk)
        out.append(kept)
    return b"".join(out) + pending


def test_any_chunking_gives_the_same_bytes_as_one_piece() -> None:
    rnd = random.Random(11)
    for newline in (b"\n", b"\r\n"):
        body = sse(newline)
        expected = b"".join(strip_usage_events(body))
        assert b'"usage"' not in expected and expected.count(b"data: ") == 7  # the usage chunk is gone
        by_event = [event + newline + newline for event in body.split(newline + newline)[:-1]]
        assert through_strip_next(by_event) == expected  # one event per chunk (the fast path, then the usage chunk)
        assert through_strip_next([body]) == expected
        extra = [by_event[0] + newline, *by_event[1:]]  # an extra blank line after an event
        assert through_strip_next(extra) == b"".join(strip_usage_events(b"".join(extra))) != expected
        for _ in range(200):
            cuts = sorted(rnd.sample(range(1, len(body)), rnd.randint(1, 12)))
            chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]
            assert through_strip_next(chunks) == expected


def test_fast_path_only_removes_the_added_usage_null() -> None:
    chunk = b'data: {"id":"c","choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n'
    assert strip_next(b"", chunk) == (b'data: {"id":"c","choices":[{"delta":{"content":"hi"}}]}\n\n', b"")
    assert strip_next(b"", b'data: {"choices":[]') == (b"", b'data: {"choices":[]')  # incomplete: kept pending
