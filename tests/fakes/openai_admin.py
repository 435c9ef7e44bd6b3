"""A fake OpenAI admin API on 127.0.0.1 (stdlib http.server in a thread) for the import tests.

It serves the Usage endpoints, the Costs endpoint and project / API key listings in the shapes of
`../shared/reference/openai-spec-examples/` (the spec's own example bodies by default), follows
`page` cursors through multi-page responses, and can inject failures (a 429 with Retry-After,
a 500 on a given page). Every request is recorded (path, query, Authorization header) so tests
can check what the official client sent.
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

EXAMPLES = Path("/work/shared/reference/openai-spec-examples")
_ALT_EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "reference" / "openai-spec-examples"
USAGE_NAMES = (
    "completions", "embeddings", "moderations", "images", "audio_speeches", "audio_transcriptions",
    "vector_stores", "code_interpreter_sessions", "file_search_calls", "web_search_calls",
)


def example_body(name: str) -> dict[str, Any]:
    """The spec's example response for an endpoint ('completions', ..., 'costs')."""
    folder = EXAMPLES if EXAMPLES.exists() else _ALT_EXAMPLES
    file = folder / ("costs.json" if name == "costs" else f"usage_{name}.json")
    return json.loads(file.read_text())


def page(buckets: list[dict[str, Any]], *, next_page: str | None = None) -> dict[str, Any]:
    """A page envelope around buckets."""
    return {"object": "page", "data": buckets, "has_more": next_page is not None, "next_page": next_page}


def bucket(start: int, results: list[dict[str, Any]], width: int = 86_400) -> dict[str, Any]:
    """A bucket envelope."""
    return {"object": "bucket", "start_time": start, "end_time": start + width, "results": results}


@dataclass
class Failure:
    """Answer `status` (with headers) to requests of `endpoint` on page number `page` (1-based), `times` times."""

    endpoint: str
    page: int
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    body: dict[str, Any] = field(default_factory=lambda: {"error": {"message": "injected failure", "type": "server_error"}})


@dataclass
class FakeState:
    """What the fake serves. `pages[endpoint]` is the list of page bodies served in order."""

    pages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    projects: list[dict[str, Any]] = field(default_factory=list)
    api_keys: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set_pages(self, endpoint: str, bodies: list[dict[str, Any]]) -> None:
        """Serve these bodies as consecutive pages, linking them with cursors 'cur-<n>'."""
        linked = []
        for index, body in enumerate(bodies):
            body = copy.deepcopy(body)
            last = index == len(bodies) - 1
            body["has_more"] = not last
            body["next_page"] = None if last else f"cur-{endpoint}-{index + 1}"
            linked.append(body)
        self.pages[endpoint] = linked

    def use_examples(self) -> None:
        """Serve each endpoint's spec example (a 'has_more' example is followed by an empty page)."""
        for name in (*USAGE_NAMES, "costs"):
            body = example_body(name)  # served verbatim, its own next_page cursor included
            self.pages[name] = [body, page([])] if body.get("has_more") else [body]

    def empty(self) -> None:
        """Serve one empty page for every endpoint."""
        for name in (*USAGE_NAMES, "costs"):
            self.set_pages(name, [page([])])

    def calls(self, endpoint: str) -> list[dict[str, Any]]:
        """Recorded requests to one usage endpoint (or 'costs')."""
        return [r for r in self.requests if r["endpoint"] == endpoint]


class _Handler(BaseHTTPRequestHandler):
    state: FakeState

    def log_message(self, *_args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        parsed = urlparse(self.path)
        query = parse_qs(parsed.query)
        path = parsed.path.removeprefix("/v1")
        state = self.state
        endpoint = ""
        if path.startswith("/organization/usage/"):
            endpoint = path.rsplit("/", 1)[-1]
        elif path == "/organization/costs":
            endpoint = "costs"
        with state.lock:
            state.requests.append({"path": path, "endpoint": endpoint, "query": query, "authorization": self.headers.get("Authorization", "")})
        if endpoint:
            self._usage(endpoint, query)
        elif path == "/organization/projects":
            self._send(200, _list(state.projects))
        elif path.startswith("/organization/projects/") and path.endswith("/api_keys"):
            project = path.split("/")[3]
            self._send(200, _list(state.api_keys.get(project, [])))
        else:
            self._send(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})

    def _usage(self, endpoint: str, query: dict[str, list[str]]) -> None:
        state = self.state
        bodies = state.pages.get(endpoint)
        if bodies is None:
            self._send(404, {"error": {"message": f"endpoint {endpoint} not configured"}})
            return
        cursor = (query.get("page") or [None])[0]
        if cursor is None:
            number = 1
        elif cursor.startswith(f"cur-{endpoint}-"):
            number = int(cursor.rsplit("-", 1)[-1]) + 1
        else:  # the spec example's own opaque cursor leads to the second stored page
            number = 2
        with state.lock:
            for failure in state.failures:
                if failure.endpoint == endpoint and failure.page == number and failure.times > 0:
                    failure.times -= 1
                    self._send(failure.status, failure.body, failure.headers)
                    return
        if number > len(bodies):
            self._send(400, {"error": {"message": f"bad page cursor {cursor}"}})
            return
        self._send(200, bodies[number - 1])


def _list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": items, "first_id": items[0]["id"] if items else None, "last_id": items[-1]["id"] if items else None, "has_more": False}


class FakeOpenAIAdmin:
    """Start with `with FakeOpenAIAdmin() as fake:`; `fake.base_url` is the /v1 address."""

    def __init__(self) -> None:
        self.state = FakeState()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        """The address to give the OpenAI client (ends in /v1)."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "FakeOpenAIAdmin":
        self.thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
