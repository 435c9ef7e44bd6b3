"""Turn one `CallRecord` (raw request + response bytes) into one usage-event row.

Runs on the recorder's thread. Handles every response shape of the billable endpoints:

| kind | usage read from | token mapping |
| --- | --- | --- |
| chat, completions | `usage` (JSON) or the final SSE chunk's `usage` | prompt_tokens -> input_tokens, completion_tokens -> output_tokens; prompt_tokens_details: cached_tokens -> cached_input_tokens, cache_write_tokens, audio_tokens -> input_audio_tokens, image_tokens -> input_image_tokens; completion_tokens_details: reasoning_tokens, audio_tokens -> output_audio_tokens, image_tokens -> output_image_tokens |
| responses | `usage` (JSON) or `response.completed` / `.incomplete` / `.failed` event's `response.usage` | input/output_tokens; input_tokens_details: cached_tokens, cache_write_tokens, audio_tokens, image_tokens; output_tokens_details: reasoning_tokens, audio_tokens, image_tokens |
| embeddings | `usage.prompt_tokens` | input_tokens |
| images | `usage` (GPT Image), SSE `image_generation.completed` | input_tokens, input_tokens_details.image_tokens -> input_image_tokens, output_tokens, output_tokens_details.image_tokens (all output tokens when no details) -> output_image_tokens; images = number of images, image_size / image_quality from the response or request |
| speech | SSE `speech.audio.done` usage if streamed | characters = len(input); tokens estimated for token-priced TTS models |
| transcription | `usage` type tokens / type duration, `duration` (verbose_json) | input_tokens, input_token_details.audio_tokens -> input_audio_tokens, output_tokens; seconds -> audio_seconds |
| moderations | none | input tokens estimated (free model; volume only) |

When the response has no usage, tokens are estimated (`estimated = 1`) from the request and
whatever output text arrived. Failed requests (HTTP status >= 400 or a transport error) are
`status = 'error'` with the tokens the API reported (usually none); they are not estimated.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Callable

from ..catalog import Catalog
from ..schema import NO_FEATURE, TOKEN_COLUMNS, UNATTRIBUTED
from .tokens import SafeCounter, TokenCounter, chat_input_tokens, responses_input_tokens, texts_of
from .transport import CallRecord

__all__ = ["extract_event", "parse_sse", "usage_columns", "UNPRICED_NOTE"]

# Column carrying a reason to store the event as unpriced (quantity the API did not report).
UNPRICED_NOTE = "_unpriced_note"
_DEFAULT_MODEL = {"images": "dall-e-2", "speech": "tts-1", "transcription": "whisper-1", "moderations": "omni-moderation-latest"}


def parse_sse(body: bytes) -> list[dict[str, Any]]:
    """The JSON objects of an SSE body's `data:` events (malformed ones and [DONE] skipped)."""
    events: list[dict[str, Any]] = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = [line[5:].lstrip() for line in block.split(b"\n") if line.startswith(b"data:")]
        if not data:
            continue
        text = b"\n".join(data)
        if text.startswith(b"[DONE]"):
            continue
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            events.append(value)
    return events


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _details(usage: dict[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        value = usage.get(name)
        if isinstance(value, dict):
            return value
    return {}


def usage_columns(kind: str, usage: dict[str, Any]) -> dict[str, Any]:
    """Token (and seconds) columns from a usage object of the given endpoint kind."""
    out: dict[str, Any] = {}
    if "prompt_tokens" in usage or "completion_tokens" in usage:  # chat, completions, embeddings
        prompt = _details(usage, "prompt_tokens_details")
        completion = _details(usage, "completion_tokens_details")
        out["input_tokens"] = _int(usage.get("prompt_tokens"))
        out["output_tokens"] = _int(usage.get("completion_tokens"))
        out["cached_input_tokens"] = _int(prompt.get("cached_tokens"))
        out["cache_write_tokens"] = _int(prompt.get("cache_write_tokens"))
        out["input_audio_tokens"] = _int(prompt.get("audio_tokens"))
        out["input_image_tokens"] = _int(prompt.get("image_tokens"))
        out["reasoning_tokens"] = _int(completion.get("reasoning_tokens"))
        out["output_audio_tokens"] = _int(completion.get("audio_tokens"))
        out["output_image_tokens"] = _int(completion.get("image_tokens"))
        return out
    if usage.get("type") == "duration":  # whisper-style transcription
        out["audio_seconds"] = float(usage.get("seconds") or 0.0)
        return out
    inputs = _details(usage, "input_tokens_details", "input_token_details")
    outputs = _details(usage, "output_tokens_details", "output_token_details")
    out["input_tokens"] = _int(usage.get("input_tokens"))
    out["output_tokens"] = _int(usage.get("output_tokens"))
    out["cached_input_tokens"] = _int(inputs.get("cached_tokens"))
    out["cache_write_tokens"] = _int(inputs.get("cache_write_tokens"))
    out["input_audio_tokens"] = _int(inputs.get("audio_tokens"))
    out["input_image_tokens"] = _int(inputs.get("image_tokens"))
    out["reasoning_tokens"] = _int(outputs.get("reasoning_tokens"))
    out["output_audio_tokens"] = _int(outputs.get("audio_tokens"))
    out["output_image_tokens"] = _int(outputs.get("image_tokens"))
    if kind == "images" and not outputs:
        out["output_image_tokens"] = out["output_tokens"]  # GPT Image output tokens are image tokens
    if kind == "speech" and not outputs:
        out["output_audio_tokens"] = out["output_tokens"]  # TTS output tokens are audio tokens
    if kind == "transcription" and "input_token_details" not in usage and "input_tokens_details" not in usage:
        out["input_audio_tokens"] = out["input_tokens"]  # transcription input is audio
    return out


def _request_fields(record: CallRecord) -> dict[str, Any]:
    """The request parameters: JSON body, or the text fields of a multipart form."""
    if record.request_body:
        try:
            value = json.loads(record.request_body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    fields: dict[str, Any] = {}
    for field in getattr(record.request_stream, "fields", None) or ():
        if hasattr(field, "value") and hasattr(field, "name"):
            value = field.value
            fields[field.name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return fields


class _Response:
    """The parsed response: final object, SSE events, usage found, output text seen."""

    def __init__(self, record: CallRecord) -> None:
        self.obj: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.usage: dict[str, Any] | None = None
        self.model = ""
        self.service_tier = ""
        body = record.body()
        if record.content_type.startswith("text/event-stream"):
            self.events = parse_sse(body)
            for event in self.events:
                self._absorb(event)
                inner = event.get("response")
                if isinstance(inner, dict):
                    self._absorb(inner)
        elif body[:1] in (b"{", b"[") or record.content_type.startswith("application/json"):
            try:
                value = json.loads(body)
            except ValueError:
                value = None
            if isinstance(value, dict):
                self.obj = value
                self._absorb(value)
        self.text = body if record.content_type.startswith("text/plain") else b""

    def _absorb(self, value: dict[str, Any]) -> None:
        usage = value.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        model = value.get("model")
        if isinstance(model, str) and model:
            self.model = model
        tier = value.get("service_tier")
        if isinstance(tier, str) and tier:
            self.service_tier = tier


def _output_text(kind: str, response: _Response) -> str:
    """Text the model produced (for estimating output tokens when usage is missing)."""
    parts: list[str] = []
    if response.obj:
        if kind in ("chat", "completions"):
            for choice in response.obj.get("choices") or []:
                if isinstance(choice, dict):
                    parts.extend(texts_of(choice.get("message")))
                    if isinstance(choice.get("text"), str):
                        parts.append(choice["text"])
        elif kind == "responses":
            parts.extend(texts_of(response.obj.get("output")))
        elif kind == "transcription":
            parts.extend(texts_of(response.obj.get("text")))
    for event in response.events:
        if kind in ("chat", "completions"):
            for choice in event.get("choices") or []:
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    parts.extend(texts_of(delta.get("content")))
                    parts.extend(texts_of(delta.get("refusal")))
                    for call in delta.get("tool_calls") or []:
                        function = call.get("function") if isinstance(call, dict) else None
                        if isinstance(function, dict):
                            parts.extend(texts_of(function.get("arguments")))
                if isinstance(choice.get("text"), str):
                    parts.append(choice["text"])
        elif str(event.get("type", "")).endswith(".delta") and isinstance(event.get("delta"), str):
            parts.append(event["delta"])
    if response.text:
        parts.append(response.text.decode("utf-8", "replace"))
    return "".join(parts)


def _input_tokens(kind: str, request: dict[str, Any], model: str, counter: TokenCounter) -> int:
    if kind == "chat":
        return chat_input_tokens(request.get("messages"), model, counter)
    if kind == "responses":
        return responses_input_tokens(request, model, counter)
    if kind in ("completions", "embeddings", "moderations", "speech"):
        key = "prompt" if kind == "completions" else "input"
        return sum(counter.count(text, model) for text in texts_of(request.get(key)))
    if kind == "images":
        return counter.count(str(request.get("prompt") or ""), model)
    return 0


def extract_event(
    record: CallRecord,
    counter: TokenCounter,
    catalog: Catalog,
    new_uid: Callable[[], str] = lambda: f"evt:{uuid.uuid4().hex}",
) -> dict[str, Any]:
    """One event row (prepare_events input columns + `uid`, and UNPRICED_NOTE when set)."""
    request = _request_fields(record)
    response = _Response(record)
    kind = record.kind
    failed = bool(record.error) or record.status_code >= 400 or record.status_code == 0
    model = response.model or str(request.get("model") or "") or _DEFAULT_MODEL.get(kind, "")
    attribution = record.attribution
    user = attribution.user or str(request.get("safety_identifier") or request.get("user") or "")
    event: dict[str, Any] = {
        "uid": f"req:{record.request_id}" if record.request_id else (record.uid or new_uid()),
        "ts_us": record.ts_us,
        "customer_id": attribution.customer or UNATTRIBUTED,
        "feature": attribution.feature or NO_FEATURE,
        "user_id": user,
        "project_id": record.project,
        "model": model,
        "service_tier": response.service_tier or _requested_tier(request),
        "batch": 0,
        "request_id": record.request_id,
        "latency_ms": record.latency_ms,
        "status": "error" if failed else "ok",
        "estimated": 0,
        **{name: 0 for name in TOKEN_COLUMNS},
    }
    if response.usage is not None:
        event.update(usage_columns(kind, response.usage))
    if kind == "images" and not failed:
        _image_columns(event, request, response)
    if kind == "speech":
        event["characters"] = len(str(request.get("input") or ""))
    if kind == "transcription" and not failed and response.usage is None:
        duration = response.obj.get("duration")
        if isinstance(duration, (int, float)) and duration > 0:
            event["audio_seconds"] = float(duration)
    if failed or response.usage is not None:
        return event
    if kind == "images" or (kind == "transcription" and event.get("audio_seconds")):
        return event  # DALL-E images are billed per image, which is exact
    _estimate(event, kind, request, response, counter, catalog)
    return event


def _requested_tier(request: dict[str, Any]) -> str:
    tier = request.get("service_tier")
    return tier if isinstance(tier, str) and tier in ("flex", "priority", "scale") else "default"


def _image_columns(event: dict[str, Any], request: dict[str, Any], response: _Response) -> None:
    if response.events:
        done = [e for e in response.events if str(e.get("type", "")).endswith(".completed")]
        event["images"] = len(done) or _int(request.get("n")) or 1
        last = done[-1] if done else {}
    else:
        data = response.obj.get("data")
        event["images"] = len(data) if isinstance(data, list) else (_int(request.get("n")) or 1)
        last = response.obj
    size = last.get("size") or request.get("size") or "1024x1024"
    quality = last.get("quality") or request.get("quality") or ""
    event["image_size"] = "" if size == "auto" else str(size)
    event["image_quality"] = "" if quality == "auto" else str(quality)


def _estimate(
    event: dict[str, Any], kind: str, request: dict[str, Any], response: _Response, counter: TokenCounter, catalog: Catalog
) -> None:
    """Fill token columns from tiktoken (or the heuristic) when the API reported no usage."""
    model = event["model"]
    counter = SafeCounter(counter)
    event["estimated"] = 1
    if kind == "speech":
        resolved = catalog.resolve(model)
        if resolved and "1m_characters" in catalog.units(resolved):
            event["estimated"] = 0
            return  # billed by characters, which are exact
        event["input_tokens"] = _input_tokens(kind, request, model, counter)
        event[UNPRICED_NOTE] = "speech: audio output tokens not reported by the API"
        return
    if kind == "transcription":
        event["output_tokens"] = counter.count(_output_text(kind, response), model)
        event[UNPRICED_NOTE] = f"transcription returned no usage (response_format={request.get('response_format', 'json')}); audio length unknown"
        return
    event["input_tokens"] = _input_tokens(kind, request, model, counter)
    if kind in ("chat", "completions", "responses"):
        event["output_tokens"] = counter.count(_output_text(kind, response), model)
