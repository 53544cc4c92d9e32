"""The HTTP server (docs/contracts.md, section 6): `/`, `/metrics`, `/healthz`, `/readyz`,
`/api/status`.

TLS (with client certificates), basic auth and extra headers come from an exporter-toolkit
style web config file (`security.py`); every answer carries the browser protections of
`browser.py`, and without basic auth only requests for the server's own names are answered.
`/healthz` (it says only `ok`) is open to health checks even with basic auth.

A thousand idle, slow or hostile clients never stop a scrape: connections are bounded (the one
waiting longest for a request gives way to a new one), a request must arrive within
`HEADER_TIMEOUT` and its header lines may hold `MAX_HEADER_BYTES` in all, a request with a body
is refused, a kept-alive connection is closed after `IDLE_TIMEOUT` without one, the listen
backlog is deep enough for bursts, and the lines such clients cause in the log are rate-limited.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import gzip
import http.client
import io
import json
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from ..plumbing import ConnectionLimit, RateLimitedLog, listening_family
from .browser import MAIN_LISTENER, HostCheck, Listener, response_headers
from .security import SecurityFile, Verdict

log = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
IDLE_TIMEOUT = 60.0  # seconds a kept-alive connection may wait for its next request
HEADER_TIMEOUT = 10.0  # seconds for a TLS handshake, or a request from its first byte, or a write
MAX_CONNECTIONS = 128  # open connections (each has a thread); beyond, the longest waiting goes
LISTEN_BACKLOG = 1024  # connections the kernel queues before they are accepted
MAX_HEADER_BYTES = 65_536  # a request's header lines in all (a browser sends a few KB)
SERVER_NAME = "amiplus-exporter"  # the Server header: no version of the exporter or Python
TEXT = "text/plain; charset=utf-8"
OPEN_PATHS = frozenset({"/healthz"})  # answered without basic auth and whatever the Host


@dataclass
class Page:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


UNAUTHORISED = Page(
    401, TEXT, b"unauthorised\n", {"WWW-Authenticate": 'Basic realm="amiplus-exporter"'}
)
BUSY = Page(503, TEXT, b"too many password checks at once; try again\n", {"Retry-After": "1"})
FORBIDDEN = Page(403, TEXT, b"forbidden\n")
WITH_BODY = Page(400, TEXT, b"a GET or HEAD request has no body\n", {"Connection": "close"})


def misdirected(host: str) -> Page:
    """The answer to a request for a name this server does not answer to without basic auth."""
    return Page(
        421,
        TEXT,
        f"This exporter does not answer to the name {host[:100]!r}. Add it to web: "
        "allowed_hosts: in the configuration, or turn on basic auth (web: config_file:). "
        "Without either, only this machine's own names and addresses are answered, so that "
        "no other web site can read the status (DNS rebinding).\n".encode(),
    )


@dataclass
class Routes:
    """What the server serves; each callable builds its answer at request time. `private` is
    whether the client proved who it is (basic auth, a client certificate): only then do answers
    name files and devices."""

    metrics: Callable[[bool], bytes]  # the exposition, gzip-compressed when asked
    status: Callable[[frozenset[str], bool], dict[str, Any]]  # the histories asked, private
    page: Callable[[dict[str, Any]], str]
    ready: Callable[[bool], tuple[bool, str]]  # private

    def get(self, path: str, gzip_accepted: bool = False, private: bool = False) -> Page:
        route, _, query = path.partition("?")
        if route == "/metrics":
            headers = {"Content-Encoding": "gzip"} if gzip_accepted else {}
            return Page(200, METRICS_CONTENT_TYPE, self.metrics(gzip_accepted), headers)
        if route == "/healthz":
            return Page(200, TEXT, b"ok\n")
        if route == "/readyz":
            ready, reason = self.ready(private)
            return Page(200 if ready else 503, TEXT, f"{reason}\n".encode())
        if route == "/api/status":
            asked = [p.removeprefix("history=") for p in query.split("&") if "history=" in p]
            histories = frozenset(kind for value in asked for kind in value.split(","))
            body = json.dumps(self.status(histories, private), ensure_ascii=False, default=str)
            return Page(200, "application/json", body.encode())
        if route in ("/", "/index.html"):
            page = self.page(self.status(frozenset({"1"}), private))  # the hour's charts at once
            return Page(200, "text/html; charset=utf-8", page.encode())
        return Page(404, TEXT, b"not found\n")


class Phase(enum.Enum):
    """Where a connection is: waiting for a request, receiving one, or being answered."""

    IDLE = "idle"
    READING = "reading"
    BUSY = "busy"


class _HeaderBudget:
    """The connection's reader while a request's header lines are read: past `budget` bytes in
    all it raises what http.server answers with 431 (each line alone may be 64 KB, and there
    may be 100: 6.4 MB a request without this)."""

    def __init__(self, stream: io.BufferedIOBase, budget: int) -> None:
        self._stream = stream
        self._left = budget

    def readline(self, limit: int = -1) -> bytes:
        line = self._stream.readline(limit)
        self._left -= len(line)
        if self._left < 0:
            raise http.client.HTTPException(f"request headers over {MAX_HEADER_BYTES} bytes")
        return line


class _Handler(BaseHTTPRequestHandler):
    server: WebServer
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # headers and body in one write; flushed after every answer
    _first = True

    def handle_one_request(self) -> None:
        """Wait for a request (at most `IDLE_TIMEOUT`, or `HEADER_TIMEOUT` for a connection's
        first), then read it within `HEADER_TIMEOUT` and answer it."""
        first, self._first = self._first, False
        self.server.mark(self.connection, Phase.IDLE)
        self.connection.settimeout(HEADER_TIMEOUT if first else IDLE_TIMEOUT)
        try:
            waiting = self.rfile.peek(1)  # type: ignore[attr-defined]
        except OSError:  # a timeout, a reset, or closed to make room
            waiting = b""
        if not waiting:
            self.close_connection = True
            return
        self.server.mark(self.connection, Phase.READING)
        self.connection.settimeout(HEADER_TIMEOUT)
        super().handle_one_request()

    def parse_request(self) -> bool:
        """The request line and headers, the headers within `MAX_HEADER_BYTES`."""
        stream = self.rfile
        self.rfile = _HeaderBudget(stream, MAX_HEADER_BYTES)  # type: ignore[assignment]
        try:
            return super().parse_request()
        finally:
            self.rfile = stream

    def version_string(self) -> str:
        return SERVER_NAME

    def end_headers(self) -> None:
        """Every answer, errors included, carries the browser protections."""
        for name, value in self.server.headers(isinstance(self.connection, ssl.SSLSocket)):
            self.send_header(name, value)
        super().end_headers()

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _page(self) -> Page:
        """The answer: refused (a source the listener does not serve, a body, an unknown name,
        no password), or the route's."""
        if not self.server.listener.answers(self.client_address[0]):
            return FORBIDDEN
        headers = self.headers
        if headers.get("Transfer-Encoding") or headers.get("Content-Length", "0") != "0":
            return WITH_BODY  # its body would be read as the next request otherwise
        route = self.path.partition("?")[0]
        security_file = self.server.security
        security = security_file.current()
        private = security.identifies_clients
        if route not in OPEN_PATHS and not private:
            host = headers.get("Host")
            if not self.server.host_allowed(host):
                self.server.misdirected_log(
                    "HTTP: refused a request for the name %r (not one of this server's); add "
                    "it to web: allowed_hosts: if it is yours",
                    (host or "")[:100],
                )
                return misdirected(host or "")
        if route not in OPEN_PATHS:
            verdict = security.authorised(headers.get("Authorization"), security_file.checked)
            if verdict is not Verdict.YES:
                return UNAUTHORISED if verdict is Verdict.NO else BUSY
        try:
            return self.server.routes.get(self.path, "gzip" in self._encodings, private)
        except Exception:  # a bug in a page must not kill the server; say so and log it
            log.exception("error serving %s", self.path)
            return Page(500, TEXT, b"internal error\n")

    @property
    def _encodings(self) -> str:
        return self.headers.get("Accept-Encoding", "")

    def _answer(self, *, head: bool) -> None:
        self.server.mark(self.connection, Phase.BUSY)
        page = self._page()
        body = page.body
        if (
            "gzip" in self._encodings
            and len(body) > 1024
            and "Content-Encoding" not in page.headers
        ):
            body = gzip.compress(body, compresslevel=5)
            page = Page(page.status, page.content_type, body, {**page.headers})
            page.headers["Content-Encoding"] = "gzip"
        if page.headers.get("Connection") == "close":
            self.close_connection = True
        self.send_response(page.status)
        self.send_header("Content-Type", page.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in page.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", self.address_string(), format % args)


class WebServer(HTTPServer):
    """One HTTP(S) server for every path; TLS is applied per connection, so a changed
    certificate takes effect for the next connection without a restart. Each connection is
    served by a thread of a pool (kept between connections: no thread start per connection).
    At most `max_connections` are open: a new one closes the one that has waited longest for a
    request (never one being answered), and one that is too slow with its request is closed."""

    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        routes: Routes,
        security: SecurityFile,
        max_connections: int = MAX_CONNECTIONS,
        listener: Listener = MAIN_LISTENER,
    ) -> None:
        self.routes = routes
        self.security = security
        self.max_connections = max_connections
        self.listener = listener
        hosts = listener.allowed_hosts
        self._host_check = None if hosts is None else HostCheck(address[0], hosts)
        self.closed_for_room = 0  # connections closed to make room for a new one
        self.refused = 0  # connections refused: every open one was being answered
        self.timed_out = 0  # connections closed for taking too long with a request
        self._connections: ConnectionLimit[socket.socket, Phase] = ConnectionLimit(
            max_connections, may_give_way=lambda phase: phase is not Phase.BUSY
        )
        self._connections_lock = threading.Lock()
        self._refused_log = RateLimitedLog(log, logging.WARNING)
        self._handshake_log = RateLimitedLog(log, logging.INFO)
        self.misdirected_log = RateLimitedLog(log, logging.WARNING)
        self._workers = ThreadPoolExecutor(max_connections, thread_name_prefix="http")
        self.address_family = listening_family(*address, socket.SOCK_STREAM)
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            connection, client = self.socket.accept()
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE):
                time.sleep(0.1)  # out of file descriptors: do not spin on the listening socket
            raise
        # Every write leaves at once, the TLS handshake's too (Nagle's algorithm would hold a
        # flight's second write for the client's ACK: at 50 new TLS connections, p99 125 ms
        # before, 89 ms after).
        with contextlib.suppress(OSError):
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        context = self.security.current().context
        if context is not None:
            connection = context.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, client

    def process_request(self, request: Any, client_address: Any) -> None:
        """Make room when full, then hand the connection to a thread of the pool."""
        with self._connections_lock:
            admission = self._connections.admit(request, Phase.READING, time.monotonic())
            if admission.replaced is not None:
                self._drop(admission.replaced)
                self.closed_for_room += 1
            if not admission.admitted:
                self.refused += 1
        if not admission.admitted:
            self._log_refusal(client_address)
            self.shutdown_request(request)
            return
        self._workers.submit(self._serve, request, client_address)

    def _serve(self, request: Any, client_address: Any) -> None:
        """One connection, in a pool thread: the TLS handshake, then its requests."""
        try:
            if isinstance(request, ssl.SSLSocket):
                try:
                    request.settimeout(HEADER_TIMEOUT)
                    request.do_handshake()
                except (ssl.SSLError, OSError) as error:
                    self._handshake_log(
                        "TLS handshake with %s failed: %s", client_address[0], error
                    )
                    return
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def _drop(self, sock: socket.socket) -> None:
        """Close a connection from outside its thread: its blocked read returns at once."""
        self._connections.remove(sock)
        with contextlib.suppress(OSError):  # not SSLSocket's shutdown: just the socket's
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def _log_refusal(self, client_address: Any) -> None:
        self._refused_log(
            "HTTP: all %d connections are busy answering; refused %s",
            self.max_connections,
            client_address[0],
        )

    def host_allowed(self, host: str | None) -> bool:
        """Whether a request (without basic auth) names this server in its `Host`."""
        return self._host_check is None or self._host_check.allows(host)

    def headers(self, tls: bool) -> list[tuple[str, str]]:
        """The headers every answer carries (those of the web config file win)."""
        return response_headers(self.listener, tls=tls, configured=self.security.current().headers)

    def mark(self, sock: socket.socket, phase: Phase) -> None:
        """A connection's thread says where it is."""
        with self._connections_lock:
            self._connections.mark(sock, phase, time.monotonic())

    def service_actions(self) -> None:
        """Between accepts (twice a second): close connections too slow with their request."""
        now = time.monotonic()
        with self._connections_lock:
            late = self._connections.waiting_longer(HEADER_TIMEOUT, now, Phase.READING)
            for sock in late:
                self._drop(sock)
            self.timed_out += len(late)

    def shutdown_request(self, request: Any) -> None:
        """Close a connection; a TLS one says so first (close_notify), without waiting for the
        client's answer: a client reading to the end otherwise sees a truncated stream."""
        with self._connections_lock:
            self._connections.remove(request)
        if isinstance(request, ssl.SSLSocket):
            with contextlib.suppress(OSError, ValueError):  # not connected, or gone already
                request.setblocking(False)
                request.unwrap()
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed (closed under its feet, reset): no traceback on stderr."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("HTTP connection from %s: %s", client_address[0], error)
        else:
            log.error("HTTP connection from %s failed", client_address[0], exc_info=error)

    @property
    def open_connections(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def connections_in(self, phase: Phase) -> int:
        """How many open connections are in `phase` (waiting, reading, being answered)."""
        with self._connections_lock:
            return self._connections.count(phase)

    def server_close(self) -> None:
        """Close the listening socket and every connection; the pool's threads end."""
        super().server_close()
        with self._connections_lock:
            for sock in self._connections.current():
                self._drop(sock)
        self._workers.shutdown(wait=False, cancel_futures=True)

    @property
    def scheme(self) -> str:
        return "https" if self.security.current().context else "http"
