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
   request failed) one `CallRecord` is handed to the recorder. A body already in memory (a
   mock or in-process transport) is handed over at once, as a plain `Received` tuple that the
   recorder's thread turns into a `CallRecord`.

Nothing is parsed on the caller's path: JSON/SSE parsing, usage extraction, token estimation,
pricing and the database write all happen on the recorder's thread.
"""

from __future__ import annotations

import json
import operator
import os
import re
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator

import httpx2

from . import context
from .context import HEADER_FIELDS, Attribution, _get_frame, decode_header_value

if TYPE_CHECKING:  # pragma: no cover
    from .limits import LimitTracker
    from .writer import Recorder

__all__ = ["TeeTransport", "AsyncTeeTransport", "CallRecord", "Received", "endpoint_kind", "add_include_usage", "strip_usage_events"]

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
_KIND_CACHE: dict[str, str] = {}  # URL path (without the query) -> kind ("" = not billable)


def endpoint_kind(raw_path: bytes) -> str | None:
    """The billable endpoint kind of a request path (query allowed), or None."""
    path = raw_path.split(b"?", 1)[0].rstrip(b"/")
    parts = path.rsplit(b"/", 2)
    last = parts[-1]
    parent = parts[-2] if len(parts) > 1 else b""
    return _KINDS.get((parent, last)) or _KINDS.get((None, last))


class CallRecord:
    """What the caller's path hands to the recorder for one HTTP attempt.

    Holds references only (request, response, body chunks); headers and bodies are read on the
    recorder's thread, so the caller pays for a few attribute stores. `chunks` is None when the
    body arrived in memory (`body()` then reads it from `response`), else the chunks the caller
    read.
    """

    __slots__ = (
        "kind",
        "ts_us",
        "start_ns",
        "end_ns",
        "attribution",
        "request",
        "request_stream",
        "response",
        "chunks",
        "error",
        "injected",
        "uid",
    )

    def __init__(
        self,
        kind: str,
        attribution: Attribution,
        request: httpx2.Request,
        ts_us: int,
        start_ns: int,
        request_stream: Any = None,
        response: httpx2.Response | None = None,
        end_ns: int = 0,
    ) -> None:
        self.kind = kind
        self.ts_us = ts_us
        self.attribution = attribution
        self.request = request
        # multipart forms: the fields are read later, from the stream that was sent
        self.request_stream = request.stream if request_stream is None else request_stream
        self.response = response
        self.chunks: list[bytes] | None = None
        self.error = ""
        self.injected = False
        self.uid = ""
        self.end_ns = end_ns
        self.start_ns = start_ns

    @classmethod
    def received(cls, item: "Received") -> "CallRecord":
        """The record of a `Received` tuple (what the caller's path enqueues for a response
        whose body arrived in memory)."""
        kind, attribution, request, request_stream, response, ts_us, start_ns, end_ns = item
        return cls(kind, attribution, request, ts_us, start_ns, request_stream, response, end_ns)

    @property
    def latency_ms(self) -> int:
        """Milliseconds from sending the request to the end of the response body."""
        return max(0, (self.end_ns - self.start_ns) // 1_000_000)

    @property
    def status_code(self) -> int:
        """HTTP status (0 when no response arrived)."""
        return self.response.status_code if self.response is not None else 0

    def response_header(self, name: str) -> str:
        """A response header ("" when absent or no response)."""
        return self.response.headers.get(name, "") if self.response is not None else ""

    @property
    def request_id(self) -> str:
        return self.response_header("x-request-id")

    @property
    def content_type(self) -> str:
        return self.response_header("content-type")

    @property
    def project(self) -> str:
        """The OpenAI project the client sent the call under (OpenAI-Project header), if any."""
        return self.request.headers.get("openai-project", "")

    @property
    def request_body(self) -> bytes:
        """The JSON request body (b"" for multipart forms)."""
        if isinstance(self.request_stream, httpx2.ByteStream):
            return self.request.content
        return b""

    def body(self) -> bytes:
        """The response body as received (before any filtering for the caller)."""
        if self.chunks is not None:
            return b"".join(self.chunks)
        return self.response.content if self.response is not None else b""


def _resolve(request: httpx2.Request, attribution: Attribution) -> Attribution:
    """`attribution` merged with per-call `x-walleta-*` headers (which are removed)."""
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
    """A copy of `request` carrying `body` (the SDK's own request is left as it is). Built from
    the parsed headers and a byte stream: ~9 us, against ~55 us for `Request(content=...)`,
    which parses every header again."""
    headers = request.headers.copy()
    headers["Content-Length"] = str(len(body))
    copy = httpx2.Request(request.method, request.url, headers=headers, stream=_ByteStream(body), extensions=request.extensions)
    copy.read()
    return copy


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


def strip_next(pending: bytes, chunk: bytes) -> tuple[bytes, bytes]:
    """`strip_usage_events(pending + chunk)`, with a fast path for the usual chunk of a stream:
    whole events only (it ends with a blank line), no usage object, nothing pending. Then no
    event is dropped and the only change is removing `"usage":null` (bench phase S: ~10x
    cheaper per chunk). The bytes yielded over a whole stream are the same either way."""
    if not pending and chunk[-2:] == b"\n\n" and b'"usage":{' not in chunk:
        return chunk.replace(b',"usage":null', b""), b""
    return strip_usage_events(pending + chunk)


class _TeeStream(httpx2.SyncByteStream):
    """Yields the inner stream's chunks to the caller, keeping a reference to each."""

    def __init__(self, inner: Any, record: CallRecord, transport: "TeeTransport", strip: bool) -> None:
        self._inner = inner
        record.chunks = []
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
            out, pending = strip_next(pending, chunk)
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
        record.chunks = []
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
            out, pending = strip_next(pending, chunk)
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


# What the caller's path enqueues for a response whose body is in memory (the common case): a
# plain tuple, built without a Python call; the recorder turns it into a CallRecord
# (`CallRecord.received`). Fields: kind, attribution, request, request.stream, response,
# ts_us (wall clock at send), start_ns, end_ns (perf_counter).
Received = tuple[str, Attribution, httpx2.Request, Any, httpx2.Response, int, int, int]

_ByteStream = httpx2.ByteStream
# This process's id, refreshed in a forked child: Recorder.enqueue (and the transport's inlined
# copy of it) compare it with the recorder's thread's process without a getpid() system call.
_process_id = os.getpid()


def _refresh_process_id() -> None:
    global _process_id
    _process_id = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_refresh_process_id)
# The body of a request built from bytes (httpx2 reads it into `_content` at construction): the
# attribute itself when present, without the `content` property's call.
_body_of = operator.attrgetter("_content")
_time_ns = time.time_ns
_perf_ns = time.perf_counter_ns


class _TeeBase:
    """State and the caller-path steps shared by the sync and async transports.

    The caller's path (`handle_request`) is written out inline in both transports and kept to
    a few lookups: every Python call, object and attribute store it makes costs several
    microseconds when the caches are cold, i.e. on every real call (see bench/capture_overhead.py).
    Everything rarer (per-call tags, limits, include_usage injection, streams, failures) is in
    helpers.
    """

    def __init__(self, inner: Any, recorder: "Recorder", limits: "LimitTracker | None", owns_recorder: bool) -> None:
        self.inner = inner
        self.recorder = recorder
        self.limits = limits
        self.owns_recorder = owns_recorder

    def _adjust(self, request: httpx2.Request, kind: str, attribution: Attribution) -> tuple[httpx2.Request, Attribution, bool]:
        """Steps 2-4 beyond the context: per-call tags, the limit check, include_usage.
        Returns (request to send, attribution, whether include_usage was injected)."""
        if context.TAGS_USED:
            attribution = _resolve(request, attribution)
        if self.limits is not None:
            self.limits.check(attribution.customer)
        if kind == "chat" and isinstance(request.stream, _ByteStream):
            changed = add_include_usage(request.content)
            if changed is not None:
                return _rebuild(request, changed), attribution, True
        return request, attribution, False

    @staticmethod
    def _strip(record: CallRecord, response: httpx2.Response) -> bool:
        """True when we added include_usage and this is a successful SSE body to filter."""
        return (
            record.injected
            and response.status_code < 400
            and response.headers.get("content-type", "").startswith("text/event-stream")
        )

    def _failed(self, kind: str, attribution: Attribution, request: httpx2.Request, ts_us: int, start_ns: int, exc: BaseException) -> None:
        record = CallRecord(kind, attribution, request, ts_us, start_ns)
        record.end_ns = _perf_ns()
        record.error = type(exc).__name__
        self.recorder.enqueue(record)

    def _received(self, record: CallRecord, response: httpx2.Response, tee: type) -> httpx2.Response:
        """Step 5 off the common path: an in-memory body we must filter, or a streamed body
        (teed; recorded when closed). Returns what the caller gets."""
        record.response = response
        if isinstance(response.stream, _ByteStream):
            record.end_ns = _perf_ns()
            self.recorder.enqueue(record)
            if record.injected and self._strip(record, response):
                return _filtered(response)
            return response
        response.stream = tee(response.stream, record, self, record.injected and self._strip(record, response))
        return response


def _learn_kind(path: str) -> str:
    """The endpoint kind of a URL path not seen before ("" = not billable), cached."""
    kind = endpoint_kind(path.encode("ascii", "replace")) or ""
    if len(_KIND_CACHE) < 256:
        _KIND_CACHE[path] = kind
    return kind


def _filtered(response: httpx2.Response) -> httpx2.Response:
    """An in-memory SSE response without the usage chunk we asked for."""
    kept, rest = strip_usage_events(response.content)
    headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"content-length"]
    return httpx2.Response(response.status_code, headers=headers, content=kept + rest, extensions=response.extensions)


class TeeTransport(_TeeBase, httpx2.BaseTransport):
    """Wraps a sync httpx2 transport; see the module docstring."""

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method != "POST":
            return self.inner.handle_request(request)
        try:  # the parsed URL's path (a tuple field): no property call, no new bytes
            path = request.url._uri_reference.path
        except AttributeError:  # pragma: no cover - another httpx2 layout: the public property
            path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        kind = _KIND_CACHE.get(path)
        if kind is None:
            kind = _learn_kind(path)
        if not kind:
            return self.inner.handle_request(request)
        attribution = _get_frame()[0]  # context.current() inlined: (attribution, parent, owner)
        injected = False
        stream = request.stream
        if (
            context.TAGS_USED
            or self.limits is not None
            # a streamed chat request may need include_usage (compact JSON, as the SDK sends it)
            or (kind == "chat" and isinstance(stream, _ByteStream) and b'"stream":true' in _body_of(request))
        ):
            request, attribution, injected = self._adjust(request, kind, attribution)
            stream = request.stream
        ts_us = _time_ns() // 1000
        start_ns = _perf_ns()
        try:
            response = self.inner.handle_request(request)
        except BaseException as exc:
            self._failed(kind, attribution, request, ts_us, start_ns, exc)
            raise
        if not injected and isinstance(response.stream, _ByteStream):
            item = (kind, attribution, request, stream, response, ts_us, start_ns, _perf_ns())
            recorder = self.recorder
            if recorder._pid == _process_id:  # Recorder.enqueue inlined (its thread is running here)
                queue = recorder._queue
                queue.append(item)
                if len(queue) >= recorder.batch_size:
                    recorder._wake.set()
            else:
                recorder.enqueue(item)
            return response
        record = CallRecord(kind, attribution, request, ts_us, start_ns, stream)
        record.injected = injected
        return self._received(record, response, _TeeStream)

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
        if request.method != "POST":
            return await self.inner.handle_async_request(request)
        try:  # the parsed URL's path (a tuple field): no property call, no new bytes
            path = request.url._uri_reference.path
        except AttributeError:  # pragma: no cover - another httpx2 layout: the public property
            path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        kind = _KIND_CACHE.get(path)
        if kind is None:
            kind = _learn_kind(path)
        if not kind:
            return await self.inner.handle_async_request(request)
        attribution = _get_frame()[0]  # context.current() inlined: (attribution, parent, owner)
        injected = False
        stream = request.stream
        if (
            context.TAGS_USED
            or self.limits is not None
            or (kind == "chat" and isinstance(stream, _ByteStream) and b'"stream":true' in _body_of(request))
        ):
            request, attribution, injected = self._adjust(request, kind, attribution)
            stream = request.stream
        ts_us = _time_ns() // 1000
        start_ns = _perf_ns()
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException as exc:
            self._failed(kind, attribution, request, ts_us, start_ns, exc)
            raise
        if not injected and isinstance(response.stream, _ByteStream):
            self.recorder.enqueue((kind, attribution, request, stream, response, ts_us, start_ns, _perf_ns()))
            return response
        record = CallRecord(kind, attribution, request, ts_us, start_ns, stream)
        record.injected = injected
        return self._received(record, response, _AsyncTeeStream)

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
