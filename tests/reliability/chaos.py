"""A fault-injecting HTTP proxy on 127.0.0.1, put between an official SDK and a fake API server.

    with ChaosProxy(upstream=fake.base_url, faults=["429", "timeout", None, "malformed"]) as proxy:
        client = make_client(admin_key=..., base_url=proxy.url)

The n-th request the proxy receives gets `faults[n]` (None or past the end of the list: passed
through untouched). Faults, as a real network or a broken gateway produces them:

- "timeout": wait `slow_seconds` before answering (the client times out first)
- "429": Too Many Requests with `Retry-After: 2`
- "429-date": Too Many Requests with an HTTP-date Retry-After
- "500", "502", "503": a server error with a JSON error body
- "malformed": 200 with a JSON body cut in the middle (complete HTTP, invalid JSON)
- "html": 200 with a gateway's HTML page instead of JSON
- "truncated": the real answer, but the connection closes halfway through the body
- "reset": the connection closes before any answer
`injected` counts the faults served; `requests` records (method, path, fault). A request whose
body does not fully arrive (the client was killed while sending it) is dropped, never forwarded,
as a real server would; `incomplete` counts them.
"""

from __future__ import annotations

import email.utils
import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

FAULTS = ("timeout", "429", "429-date", "500", "502", "503", "malformed", "html", "truncated", "reset")
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class ChaosProxy:
    """A forwarding proxy that injects one scheduled fault per request."""

    def __init__(self, upstream: str, faults: list[str | None], *, slow_seconds: float = 1.5) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.upstream_prefix = parts.path.rstrip("/")
        self.faults = list(faults)
        self.slow_seconds = slow_seconds
        self.injected = 0
        self.incomplete = 0  # requests whose body never fully arrived (dropped, as a real server would)
        self.requests: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.upstream_prefix}"

    def _next_fault(self, method: str, path: str) -> str | None:
        with self._lock:
            index = len(self.requests)
            fault = self.faults[index] if index < len(self.faults) else None
            self.requests.append((method, path, fault))
            if fault is not None:
                self.injected += 1
            return fault

    def __enter__(self) -> "ChaosProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def do_DELETE(self) -> None:  # noqa: N802
                self._handle("DELETE")

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if len(body) < length:  # the client died mid-request: a real server never sees it
                    proxy.incomplete += 1
                    self.close_connection = True
                    return
                fault = proxy._next_fault(method, self.path)
                if fault == "reset":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault == "timeout":
                    time.sleep(proxy.slow_seconds)
                if fault in ("429", "429-date"):
                    retry = "2" if fault == "429" else email.utils.formatdate(time.time() + 2, usegmt=True)
                    self._reply(429, b'{"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}', {"Retry-After": retry})
                    return
                if fault in ("500", "502", "503"):
                    self._reply(int(fault), b'{"error": {"message": "The server had an error", "type": "server_error"}}', {})
                    return
                if fault == "malformed":
                    self._reply(200, b'{"object": "page", "data": [{"object": "bucket", "start_time": 17', {})
                    return
                if fault == "html":
                    self._reply(200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", {}, content_type="text/html")
                    return
                status, headers, answer = self._forward(method, body)
                if fault == "truncated":
                    self.send_response(status)
                    for name, value in headers:
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer[: max(1, len(answer) // 2)])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def _forward(self, method: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS and k.lower() != "host"}
                headers["Host"] = f"{proxy.upstream_host}:{proxy.upstream_port}"
                if body:
                    headers["Content-Length"] = str(len(body))
                conn.request(method, self.path, body=body or None, headers=headers)
                response = conn.getresponse()
                answer = response.read()
                kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_HEADERS]
                conn.close()
                return response.status, kept, answer

            def _reply(self, status: int, body: bytes, headers: dict[str, str], content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
