"""Push usage to a Stripe Billing meter, exactly once per customer and window.

For a meter (its `event_name`, the payload keys it reads, and what to send: tokens, requests,
cost in cents, credits, or any callable over the window's measures), each customer's usage in
each closed UTC day (from `rollup_customer_day`) or hour (summed from that customer's events)
becomes one meter event:

    event_name=<meter>  payload[<customer key>]=<cus_...>  payload[<value key>]=<integer as text>
    identifier=walleta:<meter>:<customer>:<window start, e.g. 2026-11-18T00:00Z>
    timestamp=<window start, unix seconds>

Exactly once: every accepted event is recorded in `meter_pushes` right after Stripe accepts it,
so a crash after N events resumes at N+1 and a second run sends nothing new. If the process dies
between Stripe's answer and the record, the re-sent event carries the same identifier (and the
same idempotency key), which Stripe de-duplicates. If a window's usage grows after it was sent
(late log rows), only the difference is sent, as `<identifier>:<new total>`; if it shrinks, the
window is reported, not corrected (cancel it in Stripe within 24 hours, or adjust the invoice).

Skipped, with the reason listed: windows not closed yet (end after now - settle time), windows
starting more than 35 days ago (Stripe's limit, with ten minutes of margin; listed for the window
just past the limit and for every unsent window since the meter's first push) or more than 5
minutes ahead, customers without exactly one Stripe customer, cost-based windows with unpriced usage
(sent once the catalog prices them), and zero values (nothing to bill).

v1 (`client.v1.billing.meter_events.create`, form-encoded, one event per call) is the default;
`api="v2"` uses a meter event session and the v2 stream, 100 events per request, recording a
batch after its 2xx and renewing the session token when it expires.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable, Literal

import pandas as pd
import stripe

from .errors import ConfigError, SourceError, protect_logger
from .matching import MAPPING_SOURCE
from .money import PICO_PER_USD, pico_to_cents
from .revenue import round_half_even
from .sources.stripe_import import client_key, stripe_error_text
from .store import Store, now_us

__all__ = [
    "Meter",
    "PlannedEvent",
    "PushPlan",
    "PushResult",
    "plan_push",
    "push_meter",
    "meter_identifier",
    "MEASURES",
    "MAX_AGE_SECONDS",
    "MAX_FUTURE_SECONDS",
]

MAX_AGE_SECONDS = 35 * 86_400
AGE_MARGIN_SECONDS = 600
MAX_FUTURE_SECONDS = 300
IDENTIFIER_MAX = 100
V2_BATCH = 100
RATE_LIMIT_RETRIES = 5
WINDOW_SECONDS = {"day": 86_400, "hour": 3_600}
COST_MEASURES = frozenset({"cost_cents", "credits"})
Measure = Callable[[dict[str, Any]], int]
Clock = Callable[[], float]


def _tokens(row: dict[str, Any]) -> int:
    return int(row["input_tokens"]) + int(row["output_tokens"])


MEASURES: dict[str, Measure] = {
    "tokens": _tokens,
    "requests": lambda row: int(row["requests"]),
    "cost_cents": lambda row: pico_to_cents(int(row["cost_pico"])),
}


@dataclass(frozen=True)
class Meter:
    """What to push: the meter's event name and payload keys, and the value to send.

    `measure` is 'tokens' (input + output), 'requests', 'cost_cents' (AI cost, half-even per
    window), 'credits' (cost x `credits_per_usd`, half-even) or a callable taking the window's
    measures (customer_id, window_start, requests, input_tokens, output_tokens, cost_pico,
    unpriced_requests, ...) and returning a non-negative integer.
    """

    event_name: str
    measure: str | Measure = "tokens"
    customer_key: str = "stripe_customer_id"
    value_key: str = "value"
    window: Literal["day", "hour"] = "day"
    credits_per_usd: Decimal | None = None

    def value_of(self, row: dict[str, Any]) -> int:
        """The integer to send for one window's measures."""
        if callable(self.measure):
            return int(self.measure(row))
        if self.measure == "credits":
            if self.credits_per_usd is None:
                raise ConfigError("the credits measure needs credits_per_usd")
            return round_half_even(Fraction(int(row["cost_pico"])) * Fraction(str(self.credits_per_usd)) / PICO_PER_USD)
        if self.measure not in MEASURES:
            raise ConfigError(f"unknown measure {self.measure!r}: use {', '.join([*MEASURES, 'credits'])} or a callable")
        return MEASURES[self.measure](row)

    @property
    def cost_based(self) -> bool:
        return isinstance(self.measure, str) and self.measure in COST_MEASURES


def _iso_minute(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def meter_identifier(event_name: str, customer_id: str, window_start: int, total: int | None = None) -> str:
    """`walleta:<meter>:<customer>:<window start>` (plus `:<total>` for a top-up); hashed to
    'walleta:<sha256 prefix>' when longer than Stripe's 100 characters."""
    text = f"walleta:{event_name}:{customer_id}:{_iso_minute(window_start)}"
    if total is not None:
        text += f":{total}"
    if len(text) <= IDENTIFIER_MAX:
        return text
    return "walleta:" + hashlib.sha256(text.encode()).hexdigest()[:64]


@dataclass(frozen=True)
class PlannedEvent:
    """One event to send: exactly the fields the v1 API receives, plus bookkeeping."""

    identifier: str
    customer_id: str
    stripe_customer_id: str
    window_start: int
    value: int
    event_name: str
    customer_key: str
    value_key: str

    def v1_params(self) -> dict[str, Any]:
        """Parameters for `client.v1.billing.meter_events.create` (payload values are text)."""
        return {
            "event_name": self.event_name,
            "payload": {self.customer_key: self.stripe_customer_id, self.value_key: str(self.value)},
            "identifier": self.identifier,
            "timestamp": self.window_start,
        }

    def v2_event(self) -> dict[str, Any]:
        """One element of a v2 meter_event_stream `events` list (RFC 3339 timestamp)."""
        stamp = datetime.fromtimestamp(self.window_start, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return {**self.v1_params(), "timestamp": stamp}


@dataclass
class PushPlan:
    """What a push would send now, and what it leaves out and why."""

    events: list[PlannedEvent] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    already_sent: int = 0
    zero_windows: int = 0

    def frame(self) -> pd.DataFrame:
        """The events to send, one row each, with the exact v1 fields."""
        rows = [
            {"identifier": e.identifier, "customer_id": e.customer_id, "stripe_customer_id": e.stripe_customer_id,
             "window_start": _iso_minute(e.window_start), "timestamp": e.window_start, "value": e.value}
            for e in self.events
        ]
        return pd.DataFrame(rows, columns=["identifier", "customer_id", "stripe_customer_id", "window_start", "timestamp", "value"])

    def skipped_frame(self) -> pd.DataFrame:
        """Windows not sent: customer_id, window_start, value, reason."""
        return pd.DataFrame(self.skipped, columns=["customer_id", "window_start", "value", "reason"])

    def skip_summary(self) -> dict[str, int]:
        """Number of skipped windows per reason (reasons without their per-window detail)."""
        counts: dict[str, int] = {}
        for s in self.skipped:
            key = str(s["reason"]).split(" (")[0]
            counts[key] = counts.get(key, 0) + 1
        return counts


@dataclass
class PushResult:
    """What a push did."""

    plan: PushPlan
    sent: int = 0
    duplicates: int = 0
    api: str = "v1"
    requests: int = 0
    sessions: int = 0


def _stripe_ids(store: Store) -> dict[str, set[str]]:
    """Usage customer -> the Stripe customer ids it maps to (mappings and customers table)."""
    found: dict[str, set[str]] = {}
    mapped = store.query(
        "SELECT customer_id, key FROM customer_mappings WHERE source = ? AND confirmed = 1", [MAPPING_SOURCE]
    )
    for customer_id, key in zip(mapped["customer_id"], mapped["key"]):
        found.setdefault(str(customer_id), set()).add(str(key))
    direct = store.query("SELECT customer_id, stripe_customer_id FROM customers WHERE stripe_customer_id <> ''")
    for customer_id, key in zip(direct["customer_id"], direct["stripe_customer_id"]):
        found.setdefault(str(customer_id), set()).add(str(key))
    return found


_MEASURE_SQL = (
    "CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, "
    "CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, CAST(SUM(cached_input_tokens) AS BIGINT) AS cached_input_tokens, "
    "CAST(SUM(reasoning_tokens) AS BIGINT) AS reasoning_tokens, CAST(SUM(COALESCE(cost_pico, 0)) AS BIGINT) AS cost_pico"
)


def _day_windows(store: Store, first: int, last_end: int) -> pd.DataFrame:
    lo = datetime.fromtimestamp(first, tz=timezone.utc).date().isoformat()
    hi = datetime.fromtimestamp(last_end, tz=timezone.utc).date().isoformat()
    frame = store.query(
        "SELECT customer_id, day, " + _MEASURE_SQL.replace("COALESCE(cost_pico, 0)", "cost_pico")
        + ", CAST(SUM(unpriced_requests) AS BIGINT) AS unpriced_requests, CAST(SUM(events) AS BIGINT) AS events "
        "FROM rollup_customer_day WHERE day >= ? AND day < ? GROUP BY customer_id, day ORDER BY day, customer_id",
        [lo, hi],
    )
    frame["window_start"] = [
        int(datetime.fromisoformat(d).replace(tzinfo=timezone.utc).timestamp()) for d in frame["day"]
    ]
    return frame.drop(columns=["day"])


def _hour_windows(store: Store, customers: list[str], first: int, last_end: int) -> pd.DataFrame:
    """Hourly measures of `customers` from the raw events of [first, last_end) (unix seconds):
    one range read on the events' time index, grouped by customer and hour."""
    frame = store.query(
        "SELECT customer_id, CAST(ts_us / 3600000000 AS BIGINT) * 3600 AS window_start, " + _MEASURE_SQL
        + ", CAST(SUM(CASE WHEN cost_pico IS NULL THEN requests ELSE 0 END) AS BIGINT) AS unpriced_requests, "
        "CAST(COUNT(*) AS BIGINT) AS events FROM usage_events WHERE ts_us >= ? AND ts_us < ? "
        "GROUP BY customer_id, CAST(ts_us / 3600000000 AS BIGINT)",
        [first * 1_000_000, last_end * 1_000_000],
    )
    frame = frame[frame["customer_id"].isin(set(customers))]
    return frame.sort_values(["window_start", "customer_id"], kind="stable").reset_index(drop=True)


def _sent_totals(store: Store, meter: Meter) -> tuple[set[str], dict[tuple[str, int], int]]:
    sent = store.query(
        "SELECT identifier, customer_id, window_start, value FROM meter_pushes WHERE event_name = ? AND window_kind = ?",
        [meter.event_name, meter.window],
    )
    totals: dict[tuple[str, int], int] = {}
    for customer_id, start, value in zip(sent["customer_id"], sent["window_start"], sent["value"]):
        key = (str(customer_id), int(start))
        totals[key] = totals.get(key, 0) + int(value)
    return set(sent["identifier"]), totals


def plan_push(store: Store, meter: Meter, *, now: Clock = time.time, settle_seconds: int = 600) -> PushPlan:
    """Exactly what `push_meter` would send now (the dry run), and every window it skips."""
    if meter.window not in WINDOW_SECONDS:
        raise ConfigError(f"window must be day or hour, not {meter.window!r}")
    size = WINDOW_SECONDS[meter.window]
    at = int(now())
    oldest = at - MAX_AGE_SECONDS + AGE_MARGIN_SECONDS
    closed_before = at - settle_seconds  # a window is pushed once it ended before this
    # Windows just past the limit are explained; so is every window since this meter's first
    # push that was never sent (e.g. cron stopped for weeks). Older history is not listed.
    scan_from = (oldest // size) * size - size
    first_push = store.scalar(
        "SELECT MIN(window_start) FROM meter_pushes WHERE event_name = ? AND window_kind = ?", [meter.event_name, meter.window]
    )
    if first_push is not None:
        scan_from = min(scan_from, int(first_push))
    scan_to = (at // size) * size + size
    stripe_ids = _stripe_ids(store)
    if meter.window == "day":
        windows = _day_windows(store, scan_from, scan_to)
    else:
        windows = _hour_windows(store, sorted(stripe_ids), scan_from, scan_to)
    identifiers, totals = _sent_totals(store, meter)
    plan = PushPlan()
    for row in windows.to_dict("records"):
        _plan_window(plan, meter, row, stripe_ids, identifiers, totals, oldest, closed_before, at, size)
    return plan


def _plan_window(plan: PushPlan, meter: Meter, row: dict[str, Any], stripe_ids: dict[str, set[str]], identifiers: set[str],
                 totals: dict[tuple[str, int], int], oldest: int, closed_before: int, at: int, size: int) -> None:
    customer, start = str(row["customer_id"]), int(row["window_start"])

    def skip(value: Any, reason: str) -> None:
        plan.skipped.append({"customer_id": customer, "window_start": _iso_minute(start), "value": value, "reason": reason})

    if start + size > closed_before:
        skip(None, f"window not closed yet (ends {_iso_minute(start + size)}, pushed after it ends plus the settle time)")
        return
    if meter.cost_based and int(row.get("unpriced_requests") or 0) > 0:
        skip(None, f"unpriced usage ({row['unpriced_requests']} requests): fix the price catalog, then push again")
        return
    value = meter.value_of(row)
    if value <= 0:
        plan.zero_windows += 1
        return
    if start < oldest:
        skip(value, "older than Stripe's 35-day limit (Stripe rejects it; bill it another way)")
        return
    if start > at + MAX_FUTURE_SECONDS:
        skip(value, "more than 5 minutes in the future (check the clock)")
        return
    ids = sorted(stripe_ids.get(customer, set()))
    if len(ids) != 1:
        reason = "no Stripe customer (map one: walleta match stripe)" if not ids else f"several Stripe customers ({', '.join(ids)}): map one"
        skip(value, reason)
        return
    sent = totals.get((customer, start), 0)
    if sent == value:
        plan.already_sent += 1
        return
    if sent > value:
        skip(value, f"usage decreased after it was sent (sent {sent}, now {value}): adjust in Stripe")
        return
    identifier = meter_identifier(meter.event_name, customer, start, value if sent else None)
    if identifier in identifiers:
        plan.already_sent += 1
        return
    plan.events.append(PlannedEvent(identifier, customer, ids[0], start, value - sent, meter.event_name,
                                    meter.customer_key, meter.value_key))


def _record(store: Store, meter: Meter, events: list[PlannedEvent], api: str, note: str = "") -> None:
    rows = [
        {"identifier": e.identifier, "event_name": e.event_name, "customer_id": e.customer_id,
         "stripe_customer_id": e.stripe_customer_id, "window_kind": meter.window, "window_start": e.window_start,
         "value": e.value, "sent_us": now_us(), "api": api, "note": note}
        for e in events
    ]
    store.upsert("meter_pushes", rows, ["identifier"])


def _is_duplicate(exc: stripe.StripeError) -> bool:
    """Stripe refused the identifier because it already has an event with it."""
    text = f"{exc.code or ''} {exc.user_message or ''}".lower()
    return exc.code == "resource_already_exists" or ("identifier" in text and ("already" in text or "duplicate" in text))


def push_meter(
    store: Store,
    client: stripe.StripeClient,
    meter: Meter,
    *,
    api: Literal["v1", "v2"] = "v1",
    dry_run: bool = False,
    now: Clock = time.time,
    settle_seconds: int = 600,
    progress: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushResult:
    """Send the planned events (see the module docstring); `dry_run` sends nothing.

    A 429 (rate limited) is waited out and retried (back-off 1, 2, 4 ... s, `sleep` injectable).

    Raises SourceError when Stripe refuses an event for another reason than a duplicate
    identifier; everything sent before it is recorded, so the next run resumes after it.
    """
    plan = plan_push(store, meter, now=now, settle_seconds=settle_seconds)
    result = PushResult(plan=plan, api=api)
    if dry_run or not plan.events:
        return result
    say = progress or (lambda _m: None)
    if api == "v2":
        _push_v2(store, client, meter, plan.events, result, now, say, sleep)
    else:
        _push_v1(store, client, meter, plan.events, result, say, sleep)
    return result


def _patient(call: Callable[[], Any], result: PushResult, sleep: Callable[[float], None]) -> Any:
    """Run one request, waiting and retrying while Stripe answers 429 (rate limited)."""
    for attempt in range(RATE_LIMIT_RETRIES + 1):
        try:
            result.requests += 1
            return call()
        except stripe.RateLimitError:
            if attempt == RATE_LIMIT_RETRIES:
                raise
            sleep(min(2.0**attempt, 30.0))
    raise AssertionError("unreachable")


def _push_v1(store: Store, client: stripe.StripeClient, meter: Meter, events: list[PlannedEvent], result: PushResult,
             say: Callable[[str], None], sleep: Callable[[float], None]) -> None:
    for index, event in enumerate(events, start=1):
        try:
            _patient(lambda: client.v1.billing.meter_events.create(event.v1_params(), {"idempotency_key": event.identifier}),
                     result, sleep)
        except stripe.StripeError as exc:
            if not _is_duplicate(exc):
                raise SourceError(
                    f"Stripe refused meter event {event.identifier} after {result.sent} sent this run: "
                    f"{stripe_error_text(exc, client_key(client))}; run again to resume"
                ) from None
            _record(store, meter, [event], "v1", "duplicate: already in Stripe")
            result.duplicates += 1
            continue
        _record(store, meter, [event], "v1")
        result.sent += 1
        if index % 100 == 0 or index == len(events):
            say(f"meter {meter.event_name}: {index:,}/{len(events):,} events sent")


def _expires(session: Any) -> float:
    text = str(getattr(session, "expires_at", "") or "")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _session_expired(exc: stripe.StripeError) -> bool:
    return exc.http_status == 401 and (
        exc.code == "billing_meter_event_session_expired" or isinstance(exc, stripe.TemporarySessionExpiredError)
    )


def _push_v2(store: Store, client: stripe.StripeClient, meter: Meter, events: list[PlannedEvent], result: PushResult,
             now: Clock, say: Callable[[str], None], sleep: Callable[[float], None]) -> None:
    session: Any = None

    def new_session() -> Any:
        result.sessions += 1
        try:
            created = client.v2.billing.meter_event_session.create()
            protect_logger("stripe", [getattr(created, "authentication_token", None)])  # a bearer token too
            return created
        except stripe.StripeError as exc:
            raise SourceError(f"Stripe meter event session: {stripe_error_text(exc, client_key(client))}") from None

    for start in range(0, len(events), V2_BATCH):
        batch = events[start : start + V2_BATCH]
        for attempt in (1, 2):
            if session is None or now() >= _expires(session) - 60:
                session = new_session()
            token = session.authentication_token
            try:
                _patient(lambda: client.v2.billing.meter_event_stream.create(
                    {"events": [e.v2_event() for e in batch]}, {"api_key": token}), result, sleep)
                break
            except stripe.StripeError as exc:
                if _session_expired(exc) and attempt == 1:
                    session = None
                    continue
                raise SourceError(
                    f"Stripe meter event stream refused a batch after {result.sent} events sent this run: "
                    f"{stripe_error_text(exc, client_key(client), token)}; run again to resume"
                ) from None
        _record(store, meter, batch, "v2")
        result.sent += len(batch)
        say(f"meter {meter.event_name}: {result.sent:,}/{len(events):,} events sent")

