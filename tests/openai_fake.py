"""A fake OpenAI API for capture tests and benches: real payload shapes, two ways to serve them.

- `FakeOpenAI.handler` for `httpx2.MockTransport` (body in memory);
- `FakeOpenAI.serve()` a real HTTP server on 127.0.0.1 (bodies streamed in chunks, SSE events
  written one by one), for `base_url=...`.

Payloads come from `tests/data/openai/` (verbatim copies of the chat and responses create
examples in `../shared/reference/openai-spec-examples/`; a test may vary model or usage) or
follow the SDK's types for the other endpoints. Every response carries a unique `x-request-id`
(`req_<n>`). A request whose `model` is `error-<status>` gets that HTTP error;
`send_usage=False` makes streams carry no usage (like a proxy that drops it); `chunked=True`
makes the mock handler produce the body lazily, chunk by chunk.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx2

SPEC_DIR = Path(__file__).resolve().parent / "data" / "openai"  # verbatim copies of the spec examples


def spec(name: str) -> dict[str, Any]:
    """A JSON example from the spec folder."""
    return json.loads((SPEC_DIR / name).read_text())


CHAT = spec("chat_completions_create_default.json")
RESPONSE = spec("responses_create_text_input.json")
CHAT_STREAM_TEXT = ["Hello", "! How can", " I assist", " you today?"]
RESPONSE_STREAM_TEXT = ["In a peaceful", " grove beneath", " a silver moon."]
SPEECH_AUDIO = b"ID3\x04\x00fake-mp3-frames" * 8

# Usage with every token class, in the CompletionUsage shape.
RICH_CHAT_USAGE = {
    "prompt_tokens": 2000,
    "completion_tokens": 500,
    "total_tokens": 2500,
    "prompt_tokens_details": {"cached_tokens": 1200, "audio_tokens": 100, "image_tokens": 50, "cache_write_tokens": 300, "text_tokens": 350},
    "completion_tokens_details": {"reasoning_tokens": 200, "audio_tokens": 40, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
}


@dataclass
class Reply:
    """What the fake answers: status, headers, body chunks (each SSE event its own chunk)."""

    status: int
    headers: dict[str, str]
    chunks: list[bytes]


@dataclass
class FakeOpenAI:
    """Routes requests by path; remembers what it received (`requests`) for assertions."""

    chat_usage: dict[str, Any] | None = None
    response_model: str | None = None  # the resolved snapshot name the API returns
    requests: list[dict[str, Any]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    record_requests: bool = True
    send_usage: bool = True  # False: streams never carry usage (a proxy that drops it)
    chunked: bool = False  # True: the mock handler streams the body chunk by chunk (lazy)
    id_prefix: str = "req_"  # request ids are <id_prefix><n>

    # -- adapters ---------------------------------------------------------------------------------

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        """For httpx2.MockTransport (sync or async client)."""
        reply = self.reply(request.method, request.url.path, dict(request.headers), request.content)
        if self.chunked:
            return httpx2.Response(reply.status, headers=reply.headers, stream=_Chunks(reply.chunks))
        return httpx2.Response(reply.status, headers=reply.headers, content=b"".join(reply.chunks))

    def serve(self) -> "LocalServer":
        """Start a real HTTP server on 127.0.0.1 answering with this fake."""
        return LocalServer(self)

    # -- routing ----------------------------------------------------------------------------------

    def reply(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        with self._lock:
            request_id = f"{self.id_prefix}{next(self._ids)}"
        payload: dict[str, Any] = {}
        content_type = headers.get("content-type", "")
        if body and content_type.startswith("application/json"):
            payload = json.loads(body)
        elif body and content_type.startswith("multipart/form-data"):
            payload = _form_fields(body, content_type)
        if self.record_requests:
            with self._lock:
                self.requests.append({"path": path, "headers": headers, "json": payload})
        base = {"x-request-id": request_id}
        model = str(payload.get("model", ""))
        if model.startswith("error-"):
            status = int(model.split("-")[1])
            error = {"error": {"message": f"fake {status}", "type": "invalid_request_error", "param": None, "code": None}}
            return Reply(status, {**base, "content-type": "application/json"}, [json.dumps(error).encode()])
        kind = path.rstrip("/").rsplit("/", 2)
        name = "/".join(kind[-2:])
        if name == "chat/completions":
            return self._chat(payload, base)
        if kind[-1] == "completions":  # legacy completions
            usage = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
            return _json(base, {"id": "cmpl-1", "object": "text_completion", "created": 1741569952, "model": payload.get("model"),
                                "choices": [{"text": "This is a test.", "index": 0, "logprobs": None, "finish_reason": "stop"}], "usage": usage})
        if kind[-1] == "responses":
            return self._responses(payload, base)
        if kind[-1] == "embeddings":
            return _json(base, {"object": "list", "data": [{"object": "embedding", "embedding": [0.01, -0.02, 0.03], "index": 0}], "model": "text-embedding-3-small", "usage": {"prompt_tokens": 8, "total_tokens": 8}})
        if name in ("images/generations", "images/edits"):
            return self._images(payload, base)
        if name == "audio/speech":
            if payload.get("stream_format") == "sse":
                return _sse(base, [{"type": "speech.audio.delta", "audio": "SUQz"},
                                   {"type": "speech.audio.done", "usage": {"input_tokens": 9, "output_tokens": 120, "total_tokens": 129}}], done=False)
            return Reply(200, {**base, "content-type": "audio/mpeg"}, [SPEECH_AUDIO[:64], SPEECH_AUDIO[64:]])
        if name in ("audio/transcriptions", "audio/translations"):
            return self._transcription(payload, base)
        if kind[-1] == "moderations":
            return _json(base, {"id": "modr-1", "model": "omni-moderation-2024-09-26", "results": [{"flagged": False, "categories": {}, "category_scores": {}, "category_applied_input_types": {}}]})
        return Reply(404, {**base, "content-type": "application/json"}, [b'{"error":{"message":"not found"}}'])

    def _chat(self, payload: dict[str, Any], base: dict[str, str]) -> Reply:
        model = self.response_model or payload.get("model", "gpt-5.4")
        usage = copy.deepcopy(self.chat_usage or CHAT["usage"])
        if not payload.get("stream"):
            body = copy.deepcopy(CHAT)
            body["model"] = model
            body["usage"] = usage
            if payload.get("response_format", {}).get("type") == "json_schema":
                body["choices"][0]["message"]["content"] = '{"answer": "42"}'
            return _json(base, body)
        include = (payload.get("stream_options") or {}).get("include_usage") and self.send_usage
        chunks = []
        pieces = [{"role": "assistant", "content": ""}] + [{"content": text} for text in CHAT_STREAM_TEXT]
        for index, delta in enumerate(pieces):
            chunk = {
                "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
                "object": "chat.completion.chunk",
                "created": 1741569952,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_44709d6fcb",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
            }
            if include:
                chunk["usage"] = None
            chunks.append(chunk)
        last = dict(chunks[-1])
        last["choices"] = [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
        chunks.append(last)
        if include:
            final = {k: v for k, v in chunks[0].items() if k != "choices"}
            final["choices"] = []
            final["usage"] = usage
            chunks.append(final)
        return _sse(base, chunks)

    def _response_body(self, payload: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(RESPONSE)
        body["model"] = self.response_model or payload.get("model", "gpt-5.4")
        body["service_tier"] = payload.get("service_tier") or "default"
        if payload.get("text", {}).get("format", {}).get("type") == "json_schema":
            body["output"][0]["content"][0]["text"] = '{"answer": "42"}'
        return body

    def _responses(self, payload: dict[str, Any], base: dict[str, str]) -> Reply:
        body = self._response_body(payload)
        if not payload.get("stream"):
            return _json(base, body)
        text = "".join(RESPONSE_STREAM_TEXT)
        message = copy.deepcopy(body["output"][0])
        message["content"][0]["text"] = text
        body["output"] = [message]
        started = {**body, "status": "in_progress", "output": [], "usage": None}
        item_id = message["id"]
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": started},
            {"type": "response.in_progress", "response": started},
            {"type": "response.output_item.added", "output_index": 0, "item": {**message, "status": "in_progress", "content": []}},
            {"type": "response.content_part.added", "item_id": item_id, "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}},
        ]
        for piece in RESPONSE_STREAM_TEXT:
            events.append({"type": "response.output_text.delta", "item_id": item_id, "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []})
        events += [
            {"type": "response.output_text.done", "item_id": item_id, "output_index": 0, "content_index": 0, "text": text, "logprobs": []},
            {"type": "response.content_part.done", "item_id": item_id, "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": []}},
            {"type": "response.output_item.done", "output_index": 0, "item": message},
        ]
        if self.send_usage:
            events.append({"type": "response.completed", "response": body})
        for number, event in enumerate(events):
            event["sequence_number"] = number
        return _sse(base, events, done=False)

    def _images(self, payload: dict[str, Any], base: dict[str, str]) -> Reply:
        model = payload.get("model", "dall-e-2")
        n = int(payload.get("n") or 1)
        if str(payload.get("stream")).lower() == "true":  # GPT Image streaming: partial images, then completed
            common = {"b64_json": "aGVsbG8=", "created_at": 1713833628, "size": payload.get("size", "1024x1024"),
                      "quality": payload.get("quality", "high"), "background": "opaque", "output_format": "png"}
            usage = {"input_tokens": 50, "input_tokens_details": {"text_tokens": 40, "image_tokens": 10}, "output_tokens": 4160, "total_tokens": 4210}
            return _sse(base, [{"type": "image_generation.partial_image", "partial_image_index": 0, **common},
                               {"type": "image_generation.completed", **common, "usage": usage}], done=False)
        data = [{"b64_json": "aGVsbG8="} for _ in range(n)]
        if str(model).startswith("dall-e"):
            return _json(base, {"created": 1713833628, "data": [{"url": "https://example.invalid/i.png", "revised_prompt": "x"} for _ in range(n)]})
        usage = {"input_tokens": 50, "input_tokens_details": {"text_tokens": 40, "image_tokens": 10}, "output_tokens": 4160, "total_tokens": 4210}
        return _json(base, {"created": 1713833628, "data": data, "background": "opaque", "output_format": "png", "quality": payload.get("quality", "high"), "size": payload.get("size", "1024x1024"), "usage": usage})

    def _transcription(self, payload: dict[str, Any], base: dict[str, str]) -> Reply:
        model = payload.get("model", "whisper-1")
        text = "The quick brown fox jumped over the lazy dog."
        if str(payload.get("stream")).lower() == "true":
            usage = {"type": "tokens", "input_tokens": 14, "input_token_details": {"text_tokens": 0, "audio_tokens": 14}, "output_tokens": 45, "total_tokens": 59}
            words = text.split(" ")
            deltas = [{"type": "transcript.text.delta", "delta": w + " ", "logprobs": None} for w in words]
            return _sse(base, [*deltas, {"type": "transcript.text.done", "text": text, "logprobs": None, "usage": usage}], done=False)
        if payload.get("response_format") == "text":
            return Reply(200, {**base, "content-type": "text/plain; charset=utf-8"}, [text.encode() + b"\n"])
        if model == "whisper-1":
            return _json(base, {"text": text, "usage": {"type": "duration", "seconds": 9.5}})
        usage = {"type": "tokens", "input_tokens": 14, "input_token_details": {"text_tokens": 0, "audio_tokens": 14}, "output_tokens": 45, "total_tokens": 59}
        return _json(base, {"text": text, "usage": usage})


class _Chunks(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """A response body produced lazily, one chunk per iteration step (sync or async)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.consumed = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.consumed += 1
            yield chunk

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for chunk in self.chunks:
            self.consumed += 1
            yield chunk


def _json(base: dict[str, str], body: dict[str, Any]) -> Reply:
    return Reply(200, {**base, "content-type": "application/json"}, [json.dumps(body).encode()])


def _sse(base: dict[str, str], events: list[dict[str, Any]], done: bool = True) -> Reply:
    chunks = []
    for event in events:
        prefix = f"event: {event['type']}\n".encode() if "type" in event and "object" not in event else b""
        chunks.append(prefix + b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n")
    if done:
        chunks.append(b"data: [DONE]\n\n")
    return Reply(200, {**base, "content-type": "text/event-stream; charset=utf-8"}, chunks)


def _form_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """Text fields of a multipart/form-data body (files skipped)."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    fields: dict[str, Any] = {}
    for part in body.split(b"--" + boundary):
        head, _, value = part.partition(b"\r\n\r\n")
        if b"filename=" in head or b'name="' not in head:
            continue
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        fields[name] = value.rstrip(b"\r\n").decode()
    return fields


class LocalServer:
    """ThreadingHTTPServer on 127.0.0.1 serving a FakeOpenAI; `base_url` ends in /v1."""

    def __init__(self, fake: FakeOpenAI) -> None:
        outer = fake

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                reply = outer.reply("POST", self.path.split("?")[0], {k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for chunk in reply.chunks:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "LocalServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
