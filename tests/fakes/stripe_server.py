"""A small fake of the Stripe API on 127.0.0.1 for tests (stdlib http.server in a thread).

It serves the shapes of API version 2026-10-28 (stripe-python 16.1) for the endpoints Walleta
uses: v1 lists with `limit`/`starting_after`/`created[...]` and `has_more` (newest first), a few
retrieves, nested line-item lists, `expand` of the fields Walleta expands (others are returned
as ids), form-encoded v1 POSTs and JSON v2 POSTs. It records every request, can inject failures
(e.g. a 429, a 500 in the middle of a pagination, a refusal after N meter events) and enforces
meter-event identifier uniqueness and v2 session tokens.

Use:
    with FakeStripe() as fake:
        fake.add("customers", {...})
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": fake.url, "meter_events": fake.url},
                                     max_network_retries=2)
"""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

LIST_RESOURCES = ("customers", "invoices", "credit_notes", "refunds", "subscriptions", "balance_transactions", "invoice_payments")
RETRIEVABLE = {
    "invoices", "credit_notes", "refunds", "products", "coupons", "charges", "customers",
    "billing/credit_balance_transactions", "billing/credit_grants",
}


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    json: Any
    headers: dict[str, str]


@dataclass
class Failure:
    """Answer `status` instead of the real response to matching requests, `times` times."""

    method: str
    path_prefix: str
    status: int
    times: int = 1
    when: Callable[[Recorded], bool] = lambda _r: True
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeStripe:
    """The fake server's state and controls; `url` is its base address."""

    def __init__(self, *, page_size: int = 2, embedded_lines: int = 2) -> None:
        self.page_size = page_size
        self.embedded_lines = embedded_lines
        self.lists: dict[str, list[dict[str, Any]]] = {r: [] for r in LIST_RESOURCES}
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.meter_events: list[dict[str, str]] = []
        self.stream_batches: list[tuple[str, list[dict[str, Any]]]] = []
        self.identifiers: set[str] = set()
        self.duplicates = 0
        self.refuse_meter_events_after: int | None = None
        self.tokens: dict[str, int] = {}  # session token -> batches accepted with it
        self.token_batch_limit: int | None = None  # a token expires after this many batches
        self.sessions = 0
        self.clock: Callable[[], float] = time.time
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- data --------------------------------------------------------------------------------

    def add(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object (lists and/or retrieves by id). Returns it for chaining."""
        if resource in self.lists:
            self.lists[resource].append(obj)
        if "id" in obj:
            self.objects.setdefault(resource, {})[obj["id"]] = obj
        return obj

    def fail(self, method: str, path_prefix: str, status: int, **kwargs: Any) -> Failure:
        rule = Failure(method, path_prefix, status, **kwargs)
        self.failures.append(rule)
        return rule

    def calls(self, method: str, path: str) -> list[Recorded]:
        """Recorded requests with this method and exact path."""
        return [r for r in self.requests if r.method == method and r.path == path]

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FakeStripe":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                return

            def setup(self) -> None:
                super().setup()
                # answer in one segment: no 40 ms Nagle/delayed-ACK stall per request
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    # -- request handling ----------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode() if length else ""
        is_json = "json" in (handler.headers.get("Content-Type") or "")
        recorded = Recorded(
            method=method,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            form={} if is_json else dict(parse_qsl(raw, keep_blank_values=True)),
            json=json.loads(raw) if is_json and raw else None,
            headers={k.lower(): v for k, v in handler.headers.items()},
        )
        with self.lock:
            self.requests.append(recorded)
            status, body, headers = self._injected(recorded) or self._route(recorded)
        payload = b"" if body is None else json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Request-Id", f"req_fake_{len(self.requests)}")
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _injected(self, r: Recorded) -> tuple[int, Any, dict[str, str]] | None:
        for rule in self.failures:
            if rule.times > 0 and rule.method == r.method and r.path.startswith(rule.path_prefix) and rule.when(r):
                rule.times -= 1
                body = rule.body or {"error": {"type": "api_error", "message": f"injected {rule.status}"}}
                return rule.status, body, rule.headers
        return None

    def _route(self, r: Recorded) -> tuple[int, Any, dict[str, str]]:
        path = r.path
        if r.method == "POST" and path == "/v1/billing/meter_events":
            return self._meter_event(r)
        if r.method == "POST" and path == "/v2/billing/meter_event_session":
            return self._session()
        if r.method == "POST" and path == "/v2/billing/meter_event_stream":
            return self._stream(r)
        if r.method != "GET" or not path.startswith("/v1/"):
            return 404, {"error": {"type": "invalid_request_error", "message": f"no route {r.method} {path}"}}, {}
        rest = path[len("/v1/"):]
        expand = [v for k, v in r.query.items() if k.startswith("expand[")]
        if rest.endswith("/lines"):
            parent, _, _ = rest.rpartition("/")
            resource, _, object_id = parent.partition("/")
            lines = self.objects[resource][object_id]["_lines"]
            return 200, self._page(lines, r, f"/v1/{rest}", lambda o: self._render(o, [])), {}
        if rest == "subscription_items":
            sub = self.objects["subscriptions"][r.query["subscription"]]
            return 200, self._page(sub["_items"], r, "/v1/subscription_items",
                                   lambda o: self._render(o, ["discounts"] if "data.discounts" in expand else [])), {}
        if rest in self.lists:
            return 200, self._page(self._filtered(rest, r), r, f"/v1/{rest}", lambda o: self._render(o, expand, listed=True)), {}
        resource, _, object_id = rest.rpartition("/")
        found = self.objects.get(resource, {}).get(object_id)
        if found is None:
            return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing", "message": f"No such object: {object_id}"}}, {}
        return 200, self._render(found, expand), {}

    # -- lists -------------------------------------------------------------------------------

    def _filtered(self, resource: str, r: Recorded) -> list[dict[str, Any]]:
        items = list(self.lists[resource])
        q = r.query
        for op, test in (("gte", lambda a, b: a >= b), ("gt", lambda a, b: a > b), ("lt", lambda a, b: a < b), ("lte", lambda a, b: a <= b)):
            if f"created[{op}]" in q:
                bound = int(q[f"created[{op}]"])
                items = [i for i in items if test(int(i.get("created", 0)), bound)]
        if resource == "subscriptions":
            wanted = q.get("status")
            items = [i for i in items if (wanted == "all") or (i["status"] == wanted if wanted else i["status"] != "canceled")]
        elif "status" in q:
            items = [i for i in items if i.get("status") == q["status"]]
        if "customer" in q:
            items = [i for i in items if i.get("customer") == q["customer"]]
        if resource == "invoice_payments" and "payment[payment_intent]" in q:
            items = [i for i in items if (i.get("payment") or {}).get("payment_intent") == q["payment[payment_intent]"]]
        return sorted(items, key=lambda i: (-int(i.get("created", 0)), i["id"]))

    def _page(self, items: list[dict[str, Any]], r: Recorded, url: str, render: Callable[[dict], dict]) -> dict[str, Any]:
        start = 0
        after = r.query.get("starting_after")
        if after:
            ids = [i["id"] for i in items]
            start = ids.index(after) + 1
        limit = min(int(r.query.get("limit", 10)), self.page_size)
        chunk = items[start : start + limit]
        return {"object": "list", "url": url, "has_more": start + limit < len(items), "data": [render(i) for i in chunk]}

    # -- rendering (embedding and expansion) ------------------------------------------------

    def _render(self, obj: dict[str, Any], expand: list[str], *, listed: bool = False) -> dict[str, Any]:
        prefix = "data." if listed else ""
        wants = {e[len(prefix):] for e in expand if e.startswith(prefix)}
        out = {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}
        kind = obj.get("object")
        if kind == "invoice":
            lines = obj.get("_lines", [])
            out["lines"] = {"object": "list", "url": f"/v1/invoices/{obj['id']}/lines",
                            "has_more": len(lines) > self.embedded_lines, "data": copy.deepcopy(lines[: self.embedded_lines])}
            if "payments" in wants:
                payments = obj.get("_payments", [])
                out["payments"] = {"object": "list", "url": "/v1/invoice_payments", "has_more": False, "data": copy.deepcopy(payments)}
        elif kind == "credit_note":
            lines = obj.get("_lines", [])
            out["lines"] = {"object": "list", "url": f"/v1/credit_notes/{obj['id']}/lines",
                            "has_more": len(lines) > self.embedded_lines, "data": copy.deepcopy(lines[: self.embedded_lines])}
        elif kind == "subscription":
            items = [copy.deepcopy(i) for i in obj.get("_items", [])]
            for item in items:
                if "items.data.discounts" not in wants:
                    item["discounts"] = [d["id"] for d in item.get("discounts", [])]
            out["items"] = {"object": "list", "url": f"/v1/subscription_items?subscription={obj['id']}", "has_more": False,
                            "data": items[: self.embedded_lines]}
            out["items"]["has_more"] = len(items) > self.embedded_lines
            if "discounts" not in wants:
                out["discounts"] = [d["id"] for d in obj.get("discounts", [])]
        elif kind == "subscription_item" and "discounts" not in wants:
            out["discounts"] = [d["id"] if isinstance(d, dict) else d for d in obj.get("discounts", [])]
        elif kind == "balance_transaction" and "source" not in wants and isinstance(out.get("source"), dict):
            out["source"] = out["source"]["id"]
        elif kind == "billing.credit_balance_transaction" and "credit_grant" not in wants and isinstance(out.get("credit_grant"), dict):
            out["credit_grant"] = out["credit_grant"]["id"]
        return out

    # -- meter events --------------------------------------------------------------------------

    def _meter_event(self, r: Recorded) -> tuple[int, Any, dict[str, str]]:
        if self.refuse_meter_events_after is not None and len(self.meter_events) >= self.refuse_meter_events_after:
            self.refuse_meter_events_after = None
            return 400, {"error": {"type": "invalid_request_error", "message": "injected refusal"}}, {"Stripe-Should-Retry": "false"}
        identifier = r.form.get("identifier", "")
        if identifier in self.identifiers:
            self.duplicates += 1
            return 400, {"error": {"type": "invalid_request_error", "code": "resource_already_exists",
                                   "message": f"An event with identifier {identifier} already exists."}}, {}
        self.identifiers.add(identifier)
        self.meter_events.append(dict(r.form))
        payload = {k[len("payload["):-1]: v for k, v in r.form.items() if k.startswith("payload[")}
        return 200, {"object": "billing.meter_event", "event_name": r.form.get("event_name"), "identifier": identifier,
                     "payload": payload, "timestamp": int(r.form.get("timestamp", 0)), "created": int(self.clock()),
                     "livemode": False}, {}

    def _session(self) -> tuple[int, Any, dict[str, str]]:
        self.sessions += 1
        token = f"mes_token_{self.sessions}"
        self.tokens[token] = 0
        now = self.clock()
        return 200, {"object": "v2.billing.meter_event_session", "id": f"mes_{self.sessions}", "authentication_token": token,
                     "created": iso(now), "expires_at": iso(now + 900), "livemode": False}, {}

    def _stream(self, r: Recorded) -> tuple[int, Any, dict[str, str]]:
        token = r.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if token not in self.tokens or (self.token_batch_limit is not None and self.tokens[token] >= self.token_batch_limit):
            return 401, {"error": {"type": "temporary_session_expired", "code": "billing_meter_event_session_expired",
                                   "message": "The meter event session has expired."}}, {}
        events = (r.json or {}).get("events", [])
        if len(events) > 100:
            return 400, {"error": {"type": "invalid_request_error", "message": "at most 100 events"}}, {}
        self.tokens[token] += 1
        self.stream_batches.append((token, events))
        for event in events:
            if event.get("identifier") in self.identifiers:
                self.duplicates += 1
            self.identifiers.add(event.get("identifier"))
        return 202, {}, {}
