"""The instrumenting transport: a tee between the OpenAI client and its real HTTP transport.

Every request the client sends passes through `TeeTransport.handle_request` (or the async
twin), which

1. finds the endpoint kind from the URL path; non-billable requests pass straight through;
2. resolves the attribution (context + `x-walleta-*` per-call headers, which it strips);
3. checks the consumption limit of the customer (raises `UsageLimitExceeded` before sending);
4. for a streamed chat completion without `stream_options.include_usage`, adds it to the
   request and removes the extra usage chunk from what the caller receives;
5. forwards the request, and wraps the response body in a tee that keeps a reference to each
   chunk while the caller reads it. When the body is closed (fully read, closed early, or the
   request failed) one `CallRecord` is handed to the recorder.

Nothing is parsed on the caller's path: JSON/SSE parsing, usage extraction, token estimation,
pricing and the database write all happen on the recorder's thread.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator

import httpx2

from .context import HEADER_FIELDS, Attribution, _CURRENT, decode_header_value

if TYPE_CHECKING:  # pragma: no cover
    from .limits import LimitTracker
    from .writer import Recorder

__all__ = ["TeeTransport", "AsyncTeeTransport", "CallRecord", "endpoint_kind", "add_include_usage", "strip_usage_events"]

# (second-to-last, last) path segment -> kind; a None first element matches any parent.
_KINDS: dict[tuple[bytes | None, bytes], str] = {
    (b"chat", b"completions"): "chat",
    (None, b"completions"): "completions",
    (None, b"responses"): "responses",
    (None, b"embeddings"): "embeddings",
    (None, b"moderations"): "moderations",
    (b"images", b"generations"): "images",
    (b"images", b"edits"): "images",
    (b"images", b"variations"): "images",
    (b"audio", b"speech"): "speech",
    (b"audio", b"transcriptions"): "transcription",
    (b"audio", b"translations"): "transcription",
}
_HEADER_TO_FIELD = {name.encode(): field for field, name in HEADER_FIELDS.items()}
_PREFIX = b"x-walleta-"


def endpoint_kind(raw_path: bytes) -> str | None:
    """The billable endpoint kind of a request path (query allowed), or None."""
    path = raw_path.split(b"?", 1)[0].rstrip(b"/")
    parts = path.rsplit(b"/", 2)
    last = parts[-1]
    parent = parts[-2] if len(parts) > 1 else b""
    return _KINDS.get((parent, last)) or _KINDS.get((None, last))


class CallRecord:
    """What the caller's path hands to the recorder for one HTTP attempt (no parsing done)."""

    __slots__ = (
        "kind",
        "ts_us",
        "start_ns",
        "end_ns",
        "attribution",
        "request_body",
        "request_stream",
        "project",
        "status_code",
        "request_id",
        "content_type",
        "chunks",
        "error",
        "injected",
        "uid",
        "counted",
    )

    def __init__(self, kind: str, attribution: Attribution, request: httpx2.Request) -> None:
        self.kind = kind
        self.ts_us = time.time_ns() // 1000
        self.start_ns = time.perf_counter_ns()
        self.end_ns = 0
        self.attribution = attribution
        stream = request.stream
        self.request_stream: Any = None
        if isinstance(stream, httpx2.ByteStream):
            self.request_body: bytes = request.content
        else:  # multipart (audio, image edits): fields are read later from the stream object
            self.request_body = b""
            self.request_stream = stream
        self.project = ""
        self.status_code = 0
        self.request_id = ""
        self.content_type = ""
        self.chunks: list[bytes] = []
        self.error = ""
        self.injected = False
        self.uid = ""
        self.counted = False

    @property
    def latency_ms(self) -> int:
        """Milliseconds from sending the request to the end of the response body."""
        return max(0, (self.end_ns - self.start_ns) // 1_000_000)

    def body(self) -> bytes:
        """The response body as received (before any filtering for the caller)."""
        return b"".join(self.chunks)


def _resolve(request: httpx2.Request) -> Attribution:
    """Current attribution merged with per-call `x-walleta-*` headers (which are removed)."""
    attribution = _CURRENT.get()
    raw = request.headers.raw
    overrides: dict[str, str] = {}
    for key, value in raw:
        if key[:10].lower() == _PREFIX:
            field = _HEADER_TO_FIELD.get(key.lower())
            if field:
                overrides[field] = decode_header_value(value)
    if not overrides:
        return attribution
    request.headers = httpx2.Headers([(k, v) for k, v in raw if k[:10].lower() != _PREFIX])
    return attribution.merged(overrides.get("customer"), overrides.get("feature"), overrides.get("user"))


def add_include_usage(body: bytes) -> bytes | None:
    """For a streamed chat request without include_usage, the body with it added; else None."""
    if b'"stream":true' not in body or b'"include_usage":true' in body:
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("stream") is not True:
        return None
    options = payload.get("stream_options")
    options = dict(options) if isinstance(options, dict) else {}
    if options.get("include_usage") is not None:  # the caller chose (e.g. False): respect it
        return None
    options["include_usage"] = True
    payload["stream_options"] = options
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _rebuild(request: httpx2.Request, body: bytes) -> httpx2.Request:
    headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
    return httpx2.Request(request.method, request.url, headers=headers, content=body, extensions=request.extensions)


_EVENT_END = re.compile(rb"\r?\n\r?\n")


def strip_usage_events(buffer: bytes) -> tuple[bytes, bytes]:
    """Split `buffer` into (complete SSE events for the caller, incomplete remainder).

    Drops the usage-only chat chunk (`"choices":[]` with a usage object) that exists only
    because include_usage was added, and the `"usage":null` member it adds to every chunk.
    """
    ends = list(_EVENT_END.finditer(buffer))
    if not ends:
        return b"", buffer
    cut = ends[-1].end()
    kept: list[bytes] = []
    start = 0
    for match in ends:
        event = buffer[start : match.end()]
        start = match.end()
        if b'"usage":{' in event and (b'"choices":[]' in event or b'"choices": []' in event):
            continue
        kept.append(event.replace(b',"usage":null', b""))
    return b"".join(kept), buffer[cut:]


class _TeeStream(httpx2.SyncByteStream):
    """Yields the inner stream's chunks to the caller, keeping a reference to each."""

    def __init__(self, inner: Any, record: CallRecord, transport: "TeeTransport", strip: bool) -> None:
        self._inner = inner
        self._record = record
        self._transport = transport
        self._strip = strip
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        keep = self._record.chunks.append
        if not self._strip:
            for chunk in self._inner:
                keep(chunk)
                yield chunk
            return
        pending = b""
        for chunk in self._inner:
            keep(chunk)
            out, pending = strip_usage_events(pending + chunk)
            if out:
                yield out
        if pending:
            yield pending

    def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._record.end_ns = time.perf_counter_ns()
            self._transport.recorder.enqueue(self._record)

    def __del__(self) -> None:  # a stream dropped without close() is still recorded
        try:
            self._finish()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass


class _AsyncTeeStream(httpx2.AsyncByteStream):
    """Async twin of `_TeeStream`."""

    def __init__(self, inner: Any, record: CallRecord, transport: "AsyncTeeTransport", strip: bool) -> None:
        self._inner = inner
        self._record = record
        self._transport = transport
        self._strip = strip
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        keep = self._record.chunks.append
        if not self._strip:
            async for chunk in self._inner:
                keep(chunk)
                yield chunk
            return
        pending = b""
        async for chunk in self._inner:
            keep(chunk)
            out, pending = strip_usage_events(pending + chunk)
            if out:
                yield out
        if pending:
            yield pending

    async def aclose(self) -> None:
        try:
            close = getattr(self._inner, "aclose", None)
            if close is not None:
                await close()
        finally:
            self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._record.end_ns = time.perf_counter_ns()
            self._transport.recorder.enqueue(self._record)

    def __del__(self) -> None:
        try:
            self._finish()
        except Exception:  # noqa: BLE001
            pass


class _TeeBase:
    """State and the caller-path steps shared by the sync and async transports."""

    def __init__(self, inner: Any, recorder: "Recorder", limits: "LimitTracker | None", owns_recorder: bool) -> None:
        self.inner = inner
        self.recorder = recorder
        self.limits = limits
        self.owns_recorder = owns_recorder

    def _begin(self, request: httpx2.Request) -> tuple[httpx2.Request, CallRecord | None]:
        """Steps 1-4 of the module docstring; returns the request to send and its record."""
        if request.method != "POST":
            return request, None
        kind = endpoint_kind(request.url.raw_path)
        if kind is None:
            return request, None
        attribution = _resolve(request)
        if self.limits is not None:
            self.limits.check(attribution.customer)
        record = CallRecord(kind, attribution, request)
        project = request.headers.get("openai-project")
        if project:
            record.project = project
        if kind == "chat" and record.request_body:
            changed = add_include_usage(record.request_body)
            if changed is not None:
                record.injected = True
                request = _rebuild(request, changed)
        return request, record

    @staticmethod
    def _note_response(record: CallRecord, response: httpx2.Response) -> bool:
        """Copy status and headers into the record; True when the body needs usage stripping."""
        record.status_code = response.status_code
        headers = response.headers
        record.request_id = headers.get("x-request-id", "")
        record.content_type = headers.get("content-type", "")
        return record.injected and response.status_code < 400 and record.content_type.startswith("text/event-stream")

    def _failed(self, record: CallRecord, exc: BaseException) -> None:
        record.end_ns = time.perf_counter_ns()
        record.error = type(exc).__name__
        self.recorder.enqueue(record)

    def _finish_in_memory(self, record: CallRecord, response: httpx2.Response, strip: bool) -> httpx2.Response:
        """The body is already in memory (ByteStream): record it now; filter it if needed."""
        content = response.content
        record.chunks.append(content)
        record.end_ns = time.perf_counter_ns()
        self.recorder.enqueue(record)
        if not strip:
            return response
        kept, rest = strip_usage_events(content)
        headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"content-length"]
        return httpx2.Response(
            response.status_code, headers=headers, content=kept + rest, extensions=response.extensions
        )


class TeeTransport(_TeeBase, httpx2.BaseTransport):
    """Wraps a sync httpx2 transport; see the module docstring."""

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request, record = self._begin(request)
        if record is None:
            return self.inner.handle_request(request)
        try:
            response = self.inner.handle_request(request)
        except BaseException as exc:
            self._failed(record, exc)
            raise
        strip = self._note_response(record, response)
        if isinstance(response.stream, httpx2.ByteStream):
            return self._finish_in_memory(record, response, strip)
        response.stream = _TeeStream(response.stream, record, self, strip)
        return response

    def close(self) -> None:
        """Close the wrapped transport, then flush (or close, if we created it) the recorder."""
        try:
            self.inner.close()
        finally:
            if self.owns_recorder:
                self.recorder.close()
            else:
                self.recorder.flush()


class AsyncTeeTransport(_TeeBase, httpx2.AsyncBaseTransport):
    """Wraps an async httpx2 transport; see the module docstring."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request, record = self._begin(request)
        if record is None:
            return await self.inner.handle_async_request(request)
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException as exc:
            self._failed(record, exc)
            raise
        strip = self._note_response(record, response)
        if isinstance(response.stream, httpx2.ByteStream):
            return self._finish_in_memory(record, response, strip)
        response.stream = _AsyncTeeStream(response.stream, record, self, strip)
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport, then flush (or close) the recorder without blocking the loop."""
        import asyncio

        try:
            await self.inner.aclose()
        finally:
            if self.owns_recorder:
                await asyncio.to_thread(self.recorder.close)
            else:
                await asyncio.to_thread(self.recorder.flush)
