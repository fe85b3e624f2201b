"""The HTTP scaffolding the fake GitHub (testsupport.github_server) and the fake GitLab (testsupport.gitlab_server)
share: a threaded server on a local port that answers real HTTP, records every request, injects failures per route
and can be stopped and started again on the same port, which is how the tests model an outage and its recovery.

What differs between the two lives in the subclasses: the routes and their JSON (``_handle``), how an answer is
paged, the rate-limit headers every answer carries (``_rate_headers``), which credentials are refused
(``_refuse``), and how a failure's body reads (their ``fail``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the API prefix and without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: Any


@dataclass
class Failure:
    """An injected failure for requests whose ``METHOD path`` (or ``METHOD path?query``) matches ``route``."""

    route: re.Pattern[str]
    status: int | None = None  # None: no error status, only the delay
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int | None = None  # None: forever
    raw: bytes | None = None  # sent as is (an HTML error page) instead of JSON


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def query_value(query: dict[str, list[str]], key: str, default: str) -> str:
    """The last value of ``key`` in a parsed query string, or ``default``."""
    values = query.get(key)
    return values[-1] if values else default


class FakeForge:
    """A fake forge's server. Use as a context manager or call ``start()``/``stop()``.

    Args:
        host: the address to listen on (loopback by default).
    """

    thread_name = "fake-forge"
    api_prefix = ""  # stripped from request paths before routing and recording
    methods: tuple[str, ...] = ("GET", "POST", "PUT", "DELETE")
    rate_limit_total = 5000  # what the rate-limit headers report, counted down by every answer
    rate_window_seconds = 3600

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._lock = threading.RLock()
        self._failures: list[Failure] = []
        self._ids = itertools.count(1000)
        self._stopping = threading.Event()
        self._connections: set[Any] = set()  # sockets of clients connected now (keep-alive included)
        self.requests: list[RecordedRequest] = []
        self.rate_remaining = self.rate_limit_total
        self.rate_reset = int(time.time()) + self.rate_window_seconds
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> Self:
        # Reuse the port of a previous run so "stop, then start again" models an outage and its recovery.
        server = ThreadingHTTPServer((self.host, self.port or 0), _make_handler(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self.port = server.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; clients then get "connection refused" until ``start()``."""
        self._stopping.set()  # wakes handlers sleeping in an injected delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def drop_connections(self) -> None:
        """Reset every open client connection, keep-alive ones included.

        ``stop()`` alone closes the listener, but a client's pooled keep-alive connection would still be served by its
        handler thread; a server that went away answers nobody, so an outage is ``stop()`` then this.
        """
        with self._lock:
            connections, self._connections = set(self._connections), set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- failures and the request log ------------------------------------------------------------------------

    def _add_failure(self, failure: Failure) -> Failure:
        with self._lock:
            self._failures.append(failure)
        return failure

    def slow(self, route: str, seconds: float, *, times: int | None = None) -> Failure:
        """Delay responses to ``route`` by ``seconds`` (then answer normally), to provoke client timeouts."""
        return self._add_failure(Failure(re.compile(route), delay=seconds, times=times))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def calls(self, method: str | None = None, path: str | None = None) -> int:
        """How many requests matched ``method`` and the ``path`` regex (fullmatch)."""
        return sum(
            1
            for r in list(self.requests)
            if (method is None or r.method == method) and (path is None or re.fullmatch(path, r.path))
        )

    def _take_failure(self, method: str, path: str, query: str) -> Failure | None:
        target = f"{method} {path}?{query}" if query else f"{method} {path}"
        with self._lock:
            for failure in self._failures:
                if failure.route.search(target):
                    if failure.times is not None:
                        failure.times -= 1
                        if failure.times <= 0:
                            self._failures.remove(failure)
                    return failure
        return None

    # --- what the subclasses say -----------------------------------------------------------------------------

    def _handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Response:
        """The answer to a request that no failure intercepted (``path`` without the API prefix)."""
        raise NotImplementedError

    def _recorded_path(self, path: str) -> str:
        """The path as recorded and matched against failures (GitLab decodes its URL-encoded project ids)."""
        return path

    def _refuse(self, headers: dict[str, str]) -> Response | None:
        """The answer to a request whose credentials are refused, or None (headers' names in lower case)."""
        return None

    def _rate_headers(self, remaining: int) -> dict[str, str]:
        """The headers every answer carries (content type, rate limit)."""
        return {"Content-Type": "application/json"}


def _make_handler(forge: FakeForge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with forge._lock:
                forge._connections.add(self.connection)

        def finish(self) -> None:
            with forge._lock:
                forge._connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            split = urlsplit(self.path)
            path = split.path.removeprefix(forge.api_prefix) or "/"
            query = parse_qs(split.query)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            recorded = forge._recorded_path(path)
            forge.requests.append(RecordedRequest(self.command, recorded, query, headers, body))
            failure = forge._take_failure(self.command, recorded, split.query)
            if failure is not None and failure.delay and forge._stopping.wait(failure.delay):
                return
            if failure is not None and failure.raw is not None:
                self._send(Response(failure.status or 502, None, {"Content-Type": "text/html"}), failure.raw)
                return
            if failure is not None and failure.status is not None:
                response = Response(failure.status, failure.body, dict(failure.headers))
            else:
                response = forge._refuse(headers) or self._answer(path, query, body)
            self._send(response)

        def _answer(self, path: str, query: dict[str, list[str]], body: Any) -> Response:
            try:
                return forge._handle(self.command, path, query, body)
            except Exception as e:  # a bug in the fake must show up as a 500, not a hung client
                return Response(500, {"message": f"fake server error: {type(e).__name__}: {e}"})

        def _send(self, response: Response, raw: bytes | None = None) -> None:
            payload = raw if raw is not None else b"" if response.body is None else json.dumps(response.body).encode()
            with forge._lock:
                forge.rate_remaining = max(0, forge.rate_remaining - 1)
                remaining = forge.rate_remaining
            headers = {**forge._rate_headers(remaining), **response.headers}
            try:
                self.send_response(response.status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout); nothing to answer

    for method in forge.methods:
        setattr(Handler, f"do_{method}", Handler._serve)
    return Handler
