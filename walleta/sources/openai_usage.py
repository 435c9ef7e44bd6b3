"""Import the OpenAI organization Usage and Costs APIs with the official client.

`import_openai(store, catalog)` reads every usage endpoint (`client.admin.organization.usage.*`:
completions, embeddings, moderations, images, audio speeches and transcriptions, vector
stores, code interpreter sessions, file search and web search calls) and the Costs API, in
daily buckets grouped so that project, API key, user and model are kept, following
`next_page` cursors to the end. Rate limits (429) and server errors (5xx, timeouts, dropped
connections) are retried with exponential backoff, honouring `Retry-After`; so is a garbled
answer (a 200 whose body is not JSON, or an HTML gateway page instead of a page of results),
which ends as a SourceError naming the endpoint and page if it persists.

Everything is fetched first; then one transaction stores it all: usage buckets in
`openai_usage_buckets` (uid `openai:<endpoint>:<bucket start>:<hash of the group key>`, a
re-fetched bucket replaces the stored one), billed costs in `billed_costs` (per day, project
and line item), the provider usage rule for the days covered (`walleta.sources.usage_rule`)
and the import run with its cursor (the end of the range). A failure part-way leaves the
database untouched; running again is safe and never double-counts.

Field semantics (openai 3.5x): `input_tokens` includes cached and cache-write tokens;
`input_audio_tokens` / `input_image_tokens` are the uncached parts; optional fields may be
null (read as 0); enums are open: unknown values (a new service tier, a new `api_source`)
are stored as received. The admin key comes from `OPENAI_ADMIN_KEY` and is never logged,
stored or shown; `OPENAI_BASE_URL` (read by the SDK) points the client elsewhere for tests.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterator

import pandas as pd

from ..catalog import Catalog
from ..errors import ConfigError, InputError, SourceError, protect_logger, redact
from ..events import prepare_events
from ..money import usd_to_pico
from ..schema import BUCKET_COLUMNS
from ..store import Store
from .mapping import UNMAPPED, load_mappings
from .report import ImportReport, ProgressCallback, begin_run, end_run, no_progress, upsert_changed
from .usage_rule import apply_usage_rule, buckets_to_events, NON_EVENT_ENDPOINTS

__all__ = [
    "ADMIN_KEY_ENV",
    "SOURCE",
    "COST_SOURCE",
    "Endpoint",
    "USAGE_ENDPOINTS",
    "COSTS_GROUP_BY",
    "RetryPolicy",
    "make_client",
    "resolve_range",
    "import_openai",
    "bucket_row",
    "cost_row",
    "list_projects_and_keys",
]

ADMIN_KEY_ENV = "OPENAI_ADMIN_KEY"
SOURCE = "openai_api"
COST_SOURCE = "openai_costs"
DEFAULT_DAYS = 30
LAG_DAYS = 1  # "since last import" re-reads the last day and the one before: usage data lags
_DAY = 86_400


@dataclass(frozen=True)
class Endpoint:
    """One usage endpoint: its SDK method, how it is grouped, how results become usage."""

    name: str
    group_by: tuple[str, ...]
    limit: int = 31


USAGE_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("completions", ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier")),
    Endpoint("embeddings", ("project_id", "user_id", "api_key_id", "model")),
    Endpoint("moderations", ("project_id", "user_id", "api_key_id", "model")),
    Endpoint("images", ("project_id", "user_id", "api_key_id", "model", "size", "source")),
    Endpoint("audio_speeches", ("project_id", "user_id", "api_key_id", "model")),
    Endpoint("audio_transcriptions", ("project_id", "user_id", "api_key_id", "model")),
    Endpoint("vector_stores", ("project_id",)),
    Endpoint("code_interpreter_sessions", ("project_id",)),
    Endpoint("file_search_calls", ("project_id", "user_id", "api_key_id", "vector_store_id")),
    Endpoint("web_search_calls", ("project_id", "user_id", "api_key_id", "model", "context_level")),
)
COSTS_GROUP_BY = ("project_id", "line_item")
COSTS_LIMIT = 180
# Tool endpoints are priced as tool calls of these catalog pseudo-models.
_TOOL_MODELS = {"code_interpreter_sessions": "code_interpreter", "file_search_calls": "file_search", "web_search_calls": "web_search"}
_KNOWN_FIELDS = {
    "object", "input_tokens", "output_tokens", "num_model_requests", "input_cached_tokens", "input_uncached_tokens",
    "input_cache_write_tokens", "input_cache_write_30m_tokens", "input_cache_write_12h_tokens", "input_text_tokens",
    "input_cached_text_tokens", "output_text_tokens", "input_audio_tokens", "input_cached_audio_tokens",
    "output_audio_tokens", "input_image_tokens", "input_cached_image_tokens", "output_image_tokens", "project_id",
    "user_id", "api_key_id", "model", "batch", "service_tier", "images", "characters", "seconds", "usage_bytes",
    "num_sessions", "num_requests",
}


# ---------------------------------------------------------------------------------------------
# Client and retries
# ---------------------------------------------------------------------------------------------


def make_client(*, admin_key: str | None = None, base_url: str | None = None, timeout: float = 60.0) -> Any:
    """An `openai.OpenAI` client for the admin endpoints (SDK retries off: we retry ourselves).

    The key comes from `admin_key` or $OPENAI_ADMIN_KEY; `base_url` or $OPENAI_BASE_URL.
    """
    from openai import OpenAI

    key = admin_key or os.environ.get(ADMIN_KEY_ENV, "")
    if not key.strip():
        raise ConfigError(
            f"{ADMIN_KEY_ENV} is not set: create an admin key (platform.openai.com > Settings > Organization > "
            f"Admin keys) and export {ADMIN_KEY_ENV}=..."
        )
    protect_logger("openai", [key.strip()])
    return OpenAI(api_key="unused", admin_api_key=key.strip(), base_url=base_url, max_retries=0, timeout=timeout)


class _Garbled(Exception):
    """An answer that arrived whole but is not what the endpoint returns (not JSON, HTML)."""


def _sdk_secrets(fn: Callable[..., Any]) -> tuple[str | None, ...]:
    """The keys of the `openai` client a bound SDK method belongs to (to redact from messages)."""
    client = getattr(getattr(fn, "__self__", None), "_client", None)
    return (getattr(client, "admin_api_key", None), getattr(client, "api_key", None))


@dataclass
class RetryPolicy:
    """Retry 429, 5xx, timeouts, dropped connections and garbled answers with exponential backoff.

    The delay before retry n (from 0) is `Retry-After` (or `retry-after-ms`) when the server
    sends one, capped at `max_retry_after`; otherwise `base_delay * 2**n` capped at `max_delay`.
    A garbled answer is a 200 whose body is not JSON, or (when `call` gets `valid`) a result
    that `valid` rejects, such as a gateway's HTML page. `sleep` is injectable so tests record
    delays instead of waiting. Error messages never hold the client's keys (`errors.redact`).
    """

    attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 300.0
    sleep: Callable[[float], None] = time.sleep
    delays: list[float] = field(default_factory=list)

    def call(self, what: str, fn: Callable[..., Any], *, valid: Callable[[Any], bool] | None = None, **kwargs: Any) -> Any:
        """`fn(**kwargs)`, retried; raises SourceError (without secrets) when it keeps failing.

        `valid(result)` False means the answer is garbled (retried like a 5xx).
        """
        import openai

        for attempt in range(self.attempts):
            try:
                result = fn(**kwargs)
                if valid is not None and not valid(result):
                    raise _Garbled(f"not a page of results ({_kind_of(result)})")
                return result
            except (json.JSONDecodeError, _Garbled) as exc:
                reason = "the answer is not valid JSON" if isinstance(exc, json.JSONDecodeError) else f"the answer is {exc}"
                if attempt == self.attempts - 1:
                    raise SourceError(f"OpenAI {what}: gave up after {self.attempts} attempts ({reason})") from None
                delay = self._delay(attempt, None)
                self.delays.append(delay)
                self.sleep(delay)
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as exc:
                status = getattr(exc, "status_code", None)
                if attempt == self.attempts - 1:
                    raise SourceError(f"OpenAI {what}: gave up after {self.attempts} attempts ({_describe(exc, status)})") from None
                delay = self._delay(attempt, getattr(exc, "response", None))
                self.delays.append(delay)
                self.sleep(delay)
            except openai.AuthenticationError:
                raise SourceError(f"OpenAI {what}: the admin key was rejected (401); check {ADMIN_KEY_ENV}") from None
            except openai.PermissionDeniedError:
                raise SourceError(f"OpenAI {what}: permission denied (403); the key must be an organization admin key") from None
            except openai.APIStatusError as exc:
                if exc.status_code in (408, 409) and attempt < self.attempts - 1:
                    delay = self._delay(attempt, exc.response)
                    self.delays.append(delay)
                    self.sleep(delay)
                    continue
                raise SourceError(f"OpenAI {what}: HTTP {exc.status_code}: {_short(redact(exc.message, _sdk_secrets(fn)))}") from None
        raise SourceError(f"OpenAI {what}: no response")  # pragma: no cover - loop always returns or raises

    def _delay(self, attempt: int, response: Any) -> float:
        told = _retry_after(response.headers) if response is not None else None
        if told is not None:
            return min(max(told, 0.0), self.max_retry_after)
        return min(self.base_delay * (2**attempt), self.max_delay)


def _retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date), else None."""
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return float(milliseconds) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max((parsed - datetime.now(timezone.utc)).total_seconds(), 0.0)


def _kind_of(result: Any) -> str:
    """A short, secret-free description of an unexpected answer: 'an HTML page', 'text', a type."""
    if isinstance(result, (str, bytes)):
        head = (result.decode("utf-8", "replace") if isinstance(result, bytes) else result).lstrip()[:15].lower()
        return "an HTML page" if head.startswith(("<!doctype", "<html", "<")) else "text"
    return type(result).__name__


def _describe(exc: Exception, status: int | None) -> str:
    return f"HTTP {status}" if status else type(exc).__name__


def _short(message: str) -> str:
    return message if len(message) <= 300 else message[:297] + "..."


# ---------------------------------------------------------------------------------------------
# Range
# ---------------------------------------------------------------------------------------------


def _parse_moment(text: str, *, end: bool) -> int:
    """'2025-10-01' -> that midnight (or the next one when `end`); ISO datetime -> as given."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
            return int(moment.timestamp()) + (_DAY if end else 0)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"not a date or time: {text!r} (use YYYY-MM-DD or an ISO 8601 time)") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def resolve_range(since: str | None, until: str | None, last_cursor: str | None, now: int) -> tuple[int, int]:
    """(start, end) Unix seconds; start is floored to a UTC midnight so daily buckets align.

    `until` defaults to now (a date means through the end of that day); `since` defaults to
    the day before the last import's end ("since last import", data lags), else 30 days ago.
    """
    end = min(_parse_moment(until, end=True), now) if until else now
    if since:
        start = _parse_moment(since, end=False)
    elif last_cursor and last_cursor.isdigit():
        start = int(last_cursor) - LAG_DAYS * _DAY
    else:
        start = end - DEFAULT_DAYS * _DAY
    start -= start % _DAY
    if start >= end:
        raise InputError("the start of the range is not before its end")
    return start, end


# ---------------------------------------------------------------------------------------------
# Results -> rows
# ---------------------------------------------------------------------------------------------


def _as_dict(result: Any) -> dict[str, Any]:
    if isinstance(result, dict):
        return dict(result)
    if hasattr(result, "to_dict"):
        return result.to_dict(mode="json", exclude_unset=False)
    return dict(result)


def _int(value: Any) -> int:
    """API counts -> int (null -> 0; floats such as 10.0 accepted)."""
    if value is None or value == "":
        return 0
    return int(round(float(value)))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _digest(parts: list[str]) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).hexdigest()


def bucket_row(endpoint: str, start: int, end: int, result: dict[str, Any], *, source: str = SOURCE, group_by: tuple[str, ...] | None = None) -> dict[str, Any]:
    """One Usage API result -> an `openai_usage_buckets` row (event-shaped columns + raw JSON)."""
    spec = next((e for e in USAGE_ENDPOINTS if e.name == endpoint), None)
    keys = group_by if group_by is not None else (spec.group_by if spec else tuple(k for k in ("project_id", "user_id", "api_key_id", "model") if k in result))
    group = [_text(result.get(k)) for k in keys]
    prefix = "openai" if source == SOURCE else source
    row: dict[str, Any] = {
        "uid": f"{prefix}:{endpoint}:{start}:{_digest([*keys, *group])}",
        "source": source,
        "endpoint": endpoint,
        "start_us": start * 1_000_000,
        "end_us": end * 1_000_000,
        "day": datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%d"),
        "project_id": _text(result.get("project_id")),
        "api_key_id": _text(result.get("api_key_id")),
        "user_id": _text(result.get("user_id")),
        "model": _text(result.get("model")),
        "service_tier": _text(result.get("service_tier")),
        "batch": 1 if result.get("batch") in (True, "true", "TRUE", "True", 1) else 0,
        "input_tokens": _int(result.get("input_tokens")),
        "cached_input_tokens": _int(result.get("input_cached_tokens")),
        "cache_write_tokens": _int(result.get("input_cache_write_tokens")),
        "output_tokens": _int(result.get("output_tokens")),
        "input_audio_tokens": _int(result.get("input_audio_tokens")),
        "output_audio_tokens": _int(result.get("output_audio_tokens")),
        "input_image_tokens": _int(result.get("input_image_tokens")),
        "output_image_tokens": _int(result.get("output_image_tokens")),
        "requests": _int(result.get("num_model_requests")),
        "images": _int(result.get("images")),
        "image_size": _text(result.get("size")),
        "characters": _int(result.get("characters")),
        "audio_seconds": float(result.get("seconds") or 0),
        "tool_calls": 0,
        "usage_bytes": _int(result.get("usage_bytes")),
        "attributes": json.dumps({k: v for k, v in result.items() if k not in _KNOWN_FIELDS and v is not None}, sort_keys=True, default=str),
        "raw": json.dumps(result, sort_keys=True, default=str),
        "import_id": None,
    }
    if endpoint in _TOOL_MODELS:
        attributes = json.loads(row["attributes"])
        if row["model"]:
            attributes["calling_model"] = row["model"]
        row["attributes"] = json.dumps(attributes, sort_keys=True)
        row["model"] = _TOOL_MODELS[endpoint]
        row["tool_calls"] = _int(result.get("num_sessions")) + _int(result.get("num_requests"))
        row["requests"] = 0  # tool calls, not model requests (those are counted by completions)
    return row


def cost_row(start: int, result: dict[str, Any], *, source: str = COST_SOURCE) -> dict[str, Any]:
    """One Costs API result -> a `billed_costs` row (amount exact: float -> repr -> pico)."""
    amount = result.get("amount") or {}
    value = amount.get("value") if isinstance(amount, dict) else getattr(amount, "value", None)
    currency = (amount.get("currency") if isinstance(amount, dict) else getattr(amount, "currency", None)) or "usd"
    day = datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%d")
    project, api_key, line_item = _text(result.get("project_id")), _text(result.get("api_key_id")), _text(result.get("line_item"))
    uid = f"cost:{day}:{project}:{api_key}:{line_item}"
    if len(uid) > 255:
        uid = f"cost:{day}:{_digest([project, api_key, line_item])}"
    quantity = result.get("quantity")
    return {
        "uid": uid,
        "day": day,
        "project_id": project,
        "api_key_id": api_key,
        "line_item": line_item,
        "amount_pico": usd_to_pico(value if value is not None else 0),
        "currency": str(currency).upper(),
        "quantity": None if quantity is None else float(quantity),
        "quantity_unit": _text(result.get("quantity_unit")),
        "source": source,
        "import_id": None,
    }


# ---------------------------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------------------------


def _pages(method: Callable[..., Any], what: str, params: dict[str, Any], retry: RetryPolicy, on_page: Callable[[int], None]) -> Iterator[Any]:
    """Every page of one endpoint, following next_page until has_more is false."""
    cursor: str | None = None
    seen: set[str] = set()
    count = 0
    while True:
        page = retry.call(f"{what} (page {count + 1})", method, valid=_is_page, **params, **({"page": cursor} if cursor else {}))
        count += 1
        on_page(count)
        yield page
        cursor = getattr(page, "next_page", None)
        if not getattr(page, "has_more", False) or not cursor:
            return
        if cursor in seen:
            raise SourceError(f"OpenAI {what}: the server repeated page cursor {cursor!r}")
        seen.add(cursor)


def _is_page(page: Any) -> bool:
    """A usage or costs page object (not a string the SDK returned for a non-JSON answer)."""
    return not isinstance(page, (str, bytes)) and hasattr(page, "data")


def _results(page: Any) -> Iterator[tuple[int, int, dict[str, Any]]]:
    for bucket in page.data or []:
        start = int(bucket.start_time)
        end = int(bucket.end_time)
        for result in bucket.results or []:
            yield start, end, _as_dict(result)


@dataclass
class Fetched:
    """Everything one import read from the API."""

    buckets: list[dict[str, Any]] = field(default_factory=list)
    costs: list[dict[str, Any]] = field(default_factory=list)
    results: int = 0
    pages: int = 0


def fetch_all(client: Any, start: int, end: int, retry: RetryPolicy, progress: ProgressCallback, endpoints: tuple[Endpoint, ...] = USAGE_ENDPOINTS) -> Fetched:
    """Read every usage endpoint and the Costs API for [start, end)."""
    usage = client.admin.organization.usage
    fetched = Fetched()
    days = max(math.ceil((end - start) / _DAY), 1)
    expected = sum(math.ceil(days / e.limit) for e in endpoints) + math.ceil(days / COSTS_LIMIT)

    def tick(_count: int) -> None:
        fetched.pages += 1
        progress("fetching from OpenAI", fetched.pages, max(expected, fetched.pages))

    for endpoint in endpoints:
        params = {"start_time": start, "end_time": end, "bucket_width": "1d", "group_by": list(endpoint.group_by), "limit": endpoint.limit}
        for page in _pages(getattr(usage, endpoint.name), endpoint.name, params, retry, tick):
            for bucket_start, bucket_end, result in _results(page):
                fetched.results += 1
                fetched.buckets.append(bucket_row(endpoint.name, bucket_start, bucket_end, result))
    params = {"start_time": start, "end_time": end, "bucket_width": "1d", "group_by": list(COSTS_GROUP_BY), "limit": COSTS_LIMIT}
    for page in _pages(usage.costs, "costs", params, retry, tick):
        for bucket_start, _bucket_end, result in _results(page):
            fetched.results += 1
            fetched.costs.append(cost_row(bucket_start, result))
    return fetched


# ---------------------------------------------------------------------------------------------
# Storing
# ---------------------------------------------------------------------------------------------


def _delete_stale(store: Store, cur: Any, table: str, where: str, params: list[Any], keep: set[str]) -> int:
    """Delete rows of `table` matching `where` whose uid is not in `keep` (data the API no longer reports)."""
    cur.execute(store.sql(f"SELECT uid FROM {table} WHERE {where}"), params)
    stale = [r[0] for r in cur.fetchall() if r[0] not in keep]
    for offset in range(0, len(stale), 500):
        chunk = stale[offset : offset + 500]
        cur.execute(store.sql(f"DELETE FROM {table} WHERE uid IN ({', '.join('?' for _ in chunk)})"), chunk)
    return len(stale)


def _priced_cost(fetched: Fetched, catalog: Catalog, mappings: dict[str, dict[str, str]], report: ImportReport) -> None:
    """Price every fetched usage bucket (whether or not the rule puts it in usage_events)."""
    rows = [b for b in fetched.buckets if b["endpoint"] not in NON_EVENT_ENDPOINTS]
    if not rows:
        return
    frame = buckets_to_events(pd.DataFrame(rows), mappings)
    priced = prepare_events(frame.drop(columns=["source"]), catalog, source=SOURCE)
    cost = priced["cost_pico"]
    report.cost_pico = int(sum(int(v) for v in cost.dropna()))
    unpriced = priced["price_status"] == "unpriced"
    report.unpriced = int(unpriced.sum())
    report.unpriced_reasons.update(priced.loc[unpriced, "price_note"].tolist())
    unmapped = priced["customer_id"] == UNMAPPED
    if unmapped.any():
        report.notes.append(f"{int(unmapped.sum()):,} usage buckets have no customer mapping (shown as '{UNMAPPED}'; see `walleta mapping`)")


def import_openai(
    store: Store,
    catalog: Catalog,
    *,
    client: Any = None,
    since: str | None = None,
    until: str | None = None,
    retry: RetryPolicy | None = None,
    progress: ProgressCallback = no_progress,
    now: int | None = None,
    endpoints: tuple[Endpoint, ...] = USAGE_ENDPOINTS,
) -> ImportReport:
    """Import usage buckets and billed costs for a range (default: since the last import)."""
    client = client or make_client()
    retry = retry or RetryPolicy()
    now = int(time.time()) if now is None else now
    start, end = resolve_range(since, until, store.last_cursor(SOURCE), now)
    report = ImportReport(kind="openai", source="OpenAI API", cursor=str(end))
    first_day = datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%d")
    last_day = datetime.fromtimestamp(end - 1, timezone.utc).strftime("%Y-%m-%d")
    report.notes.append(f"range {first_day} to {last_day} (UTC, daily buckets)")
    fetched = fetch_all(client, start, end, retry, progress, endpoints)
    report.rows_read = fetched.results
    progress("storing", 0, 1)
    with store.transaction() as cur:
        import_id = begin_run(store, cur, SOURCE, "openai")
        for row in fetched.buckets:
            row["import_id"] = import_id
        for row in fetched.costs:
            row["import_id"] = import_id
        _check_buckets(fetched.buckets)
        b_new, b_upd, b_same = upsert_changed(store, cur, "openai_usage_buckets", [{c: r[c] for c in BUCKET_COLUMNS} for r in fetched.buckets])
        names = [e.name for e in endpoints]
        stale_buckets = _delete_stale(
            store, cur, "openai_usage_buckets",
            f"source = ? AND start_us >= ? AND start_us < ? AND endpoint IN ({', '.join('?' for _ in names)})",
            [SOURCE, start * 1_000_000, end * 1_000_000, *names], {r["uid"] for r in fetched.buckets},
        )
        c_new, c_upd, c_same = upsert_changed(store, cur, "billed_costs", fetched.costs)
        stale_costs = _delete_stale(store, cur, "billed_costs", "source = ? AND day >= ? AND day <= ?", [COST_SOURCE, first_day, last_day], {r["uid"] for r in fetched.costs})
        rule = apply_usage_rule(store, catalog, cur=cur, first_day=first_day, last_day=last_day, import_id=import_id)
        mappings = load_mappings(store, cur)
        report.imported, report.updated, report.skipped = b_new + c_new, b_upd + c_upd, b_same + c_same
        changed = bool(b_new or b_upd or c_new or c_upd or stale_buckets or stale_costs or rule.changed)
        billed = sum(r["amount_pico"] for r in fetched.costs if r["currency"] == "USD")
        from ..money import format_usd

        report.notes.append(f"billed by OpenAI (Costs API) in range: {format_usd(billed)}")
        report.notes.append(
            f"usage events: {rule.added:,} added, {rule.replaced:,} replaced, {rule.removed:,} removed; "
            f"{rule.provider_days} day(s) from the API, {rule.attributed_days} day(s) left to the usage log"
        )
        _priced_cost(fetched, catalog, mappings, report)
        report.import_id = end_run(store, cur, import_id, report, source=SOURCE, changed=changed)
    progress("storing", 1, 1)
    return report


def _check_buckets(rows: list[dict[str, Any]]) -> None:
    """Two results with the same uid in one fetch would be counted once; refuse instead."""
    seen: set[str] = set()
    for row in rows:
        if row["uid"] in seen:
            raise SourceError(f"OpenAI usage: two results for the same bucket and group ({row['endpoint']}, day {row['day']})")
        seen.add(row["uid"])


# ---------------------------------------------------------------------------------------------
# Projects and keys (for mapping)
# ---------------------------------------------------------------------------------------------


def list_projects_and_keys(client: Any = None, *, retry: RetryPolicy | None = None) -> pd.DataFrame:
    """Projects and their API keys from the admin API, to fill in a mapping.

    Columns: source (openai_project / openai_api_key), key, name, project_id, owner.
    """
    client = client or make_client()
    retry = retry or RetryPolicy()
    organization = client.admin.organization
    records: list[dict[str, str]] = []
    projects = retry.call("projects.list", organization.projects.list, valid=_is_page, limit=100, include_archived=False)
    for project in projects:  # the SDK page auto-paginates on iteration
        records.append({"source": "openai_project", "key": project.id, "name": project.name or "", "project_id": project.id, "owner": ""})
        keys = retry.call("projects.api_keys.list", organization.projects.api_keys.list, valid=_is_page, project_id=project.id, limit=100)
        for key in keys:
            owner = getattr(key, "owner", None)
            owner_name = ""
            if owner is not None:
                inner = getattr(owner, "user", None) or getattr(owner, "service_account", None)
                owner_name = f"{getattr(owner, 'type', '')}:{getattr(inner, 'name', '') or getattr(inner, 'id', '')}" if inner else str(getattr(owner, "type", ""))
            records.append({"source": "openai_api_key", "key": key.id, "name": key.name or "", "project_id": project.id, "owner": owner_name})
    return pd.DataFrame.from_records(records, columns=["source", "key", "name", "project_id", "owner"])
