"""The HTTP server (docs/contracts.md, section 6): `/`, `/metrics`, `/healthz`, `/readyz`,
`/api/status`.

TLS (with client certificates) and basic auth come from an exporter-toolkit style web config
file, read again whenever it changes. Passwords are bcrypt hashes; credentials once checked are
remembered (keyed digests, both the right and the wrong ones) so that neither scrapes nor a
client repeating a wrong password pay bcrypt's cost again, and only one bcrypt check runs at a
time, so a flood of new wrong passwords leaves the other CPU to the scrapes.

A thousand idle or slow clients never stop a scrape: connections are bounded (the one waiting
longest for a request gives way to a new one), a request must arrive within `HEADER_TIMEOUT`,
a kept-alive connection is closed after `IDLE_TIMEOUT` without one, and the listen backlog is
deep enough for bursts.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import errno
import gzip
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import ssl
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from ..plumbing import ConnectionLimit, listening_family

log = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
IDLE_TIMEOUT = 60.0  # seconds a kept-alive connection may wait for its next request
HEADER_TIMEOUT = 10.0  # seconds for a TLS handshake, or a request from its first byte, or a write
MAX_CONNECTIONS = 128  # open connections (each has a thread); beyond, the longest waiting goes
LISTEN_BACKLOG = 1024  # connections the kernel queues before they are accepted
REMEMBERED = 1024  # credentials remembered as checked, right and wrong each
BCRYPT_WAIT = 2.0  # seconds a request waits for its turn at bcrypt before it is told to retry

#: exporter-toolkit client_auth_type values this server can honour.
_DUMMY_HASH = b"$2b$04$8mLOlRcvjAh1vX2YEpSXs.QyXRdwbHyEZ3PlTZF4I/CoIwqZXz2ii"  # of "dummy"
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_WEB_KEYS = {"tls_server_config", "basic_auth_users", "http_server_config"}
_TLS_KEYS = {
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
}


class WebConfigError(ValueError):
    """The web config file cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class WebSecurity:
    """TLS context and basic-auth users of one version of the web config file."""

    context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path) -> WebSecurity:
        import yaml  # noqa: PLC0415 (only with a web config file)

        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise WebConfigError(f"cannot read the web config {path}: {error}") from None
        if not isinstance(document, dict) or set(document) - _WEB_KEYS:
            unknown = set(document) - _WEB_KEYS if isinstance(document, dict) else {"?"}
            raise WebConfigError(
                f"{path}: unknown keys {sorted(unknown)}; known: {sorted(_WEB_KEYS)}"
            )
        users = document.get("basic_auth_users") or {}
        if not isinstance(users, dict):
            raise WebConfigError(f"{path}: basic_auth_users must map user names to bcrypt hashes")
        for user, hashed in users.items():
            if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise WebConfigError(f"{path}: the password of {user!r} is not a bcrypt hash")
        tls = document.get("tls_server_config")
        context = _tls_context(tls, path.parent) if tls else None
        return cls(context, {str(u): h.encode() for u, h in users.items()})

    def authorised(self, header: str | None, checked: CheckedCredentials) -> Verdict:
        """Whether an Authorization header holds valid basic-auth credentials."""
        if not self.users:
            return Verdict.YES
        if not header or not header.startswith("Basic "):
            return Verdict.NO
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return Verdict.NO
        digest = checked.digest(user, password)
        known = checked.known(digest)
        if known is not None:
            return Verdict.YES if known else Verdict.NO
        import bcrypt  # noqa: PLC0415 (only with basic auth: keeps the daemon small)

        if not checked.turn.acquire(timeout=BCRYPT_WAIT):
            return Verdict.BUSY
        try:
            known = checked.known(digest)  # checked by another request while this one waited
            if known is not None:
                return Verdict.YES if known else Verdict.NO
            hashed = self.users.get(user)
            # An unknown user is checked against a dummy hash too, so timing does not tell.
            right = bcrypt.checkpw(password.encode(), hashed or _DUMMY_HASH) and hashed is not None
        finally:
            checked.turn.release()
        checked.remember(digest, right)
        return Verdict.YES if right else Verdict.NO


class Verdict(enum.Enum):
    """What a request earns: an answer; 401 for its credentials, 503 while bcrypt is busy, or
    403 for a source its listener does not serve."""

    YES = "yes"
    NO = "no"
    BUSY = "busy"
    FORBIDDEN = "forbidden"


@dataclass(frozen=True)
class Listener:
    """What one listening address allows: the sources it answers (None: any; others get 403,
    as the add-on's ingress listener answers only the Supervisor: web/ingress.py)."""

    allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None = None

    def allows(self, address: str) -> bool:
        if self.allowed is None:
            return True
        try:
            source = ipaddress.ip_address(address.partition("%")[0])
        except ValueError:
            return False
        if isinstance(source, ipaddress.IPv6Address) and source.ipv4_mapped is not None:
            source = source.ipv4_mapped  # an IPv4 client of a dual-stack socket
        return any(source in network for network in self.allowed)


class CheckedCredentials:
    """Credentials already checked against the current web config, right or wrong, as digests
    keyed with a secret of this process; at most `REMEMBERED` of each, the oldest forgotten.
    `turn` lets one bcrypt check run at a time."""

    def __init__(self) -> None:
        self._secret = os.urandom(32)
        self._lock = threading.Lock()
        self._right: OrderedDict[bytes, None] = OrderedDict()
        self._wrong: OrderedDict[bytes, None] = OrderedDict()
        self.turn = threading.Semaphore(1)

    def digest(self, user: str, password: str) -> bytes:
        message = user.encode() + b"\0" + password.encode()
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def known(self, digest: bytes) -> bool | None:
        """True or False for credentials checked before, None for new ones."""
        with self._lock:
            for answer, remembered in ((True, self._right), (False, self._wrong)):
                if digest in remembered:
                    remembered.move_to_end(digest)
                    return answer
        return None

    def remember(self, digest: bytes, right: bool) -> None:
        with self._lock:
            remembered = self._right if right else self._wrong
            remembered[digest] = None
            remembered.move_to_end(digest)
            while len(remembered) > REMEMBERED:
                remembered.popitem(last=False)


def _tls_context(tls: Any, base: Path) -> ssl.SSLContext:
    if not isinstance(tls, dict) or set(tls) - _TLS_KEYS:
        raise WebConfigError(f"tls_server_config takes {sorted(_TLS_KEYS)}")
    if "cert_file" not in tls or "key_file" not in tls:
        raise WebConfigError("tls_server_config needs cert_file and key_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(base / tls["cert_file"], base / tls["key_file"])
        auth = tls.get("client_auth_type", "NoClientCert")
        if auth not in CLIENT_AUTH:
            raise WebConfigError(
                f"client_auth_type {auth!r} is not supported; use one of {sorted(CLIENT_AUTH)}"
            )
        context.verify_mode = CLIENT_AUTH[auth]
        if auth != "NoClientCert":
            if "client_ca_file" not in tls:
                raise WebConfigError(f"client_auth_type {auth} needs client_ca_file")
            context.load_verify_locations(base / tls["client_ca_file"])
        for key, attribute in (
            ("min_version", "minimum_version"),
            ("max_version", "maximum_version"),
        ):
            if key in tls:
                if tls[key] not in TLS_VERSIONS:
                    raise WebConfigError(f"{key} must be one of {sorted(TLS_VERSIONS)}")
                setattr(context, attribute, TLS_VERSIONS[tls[key]])
    except (OSError, ssl.SSLError) as error:
        raise WebConfigError(f"TLS: {error}") from None
    return context


class SecurityFile:
    """The web config file, read again when its modification time changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._security = WebSecurity.load(path) if path else WebSecurity()
        self._stamp = self._current_stamp()
        self._lock = threading.Lock()
        self.checked = CheckedCredentials()

    def _current_stamp(self) -> tuple[float, int] | None:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)

    def current(self) -> WebSecurity:
        stamp = self._current_stamp()
        with self._lock:
            if stamp != self._stamp and self.path is not None:
                try:
                    self._security = WebSecurity.load(self.path)
                    self.checked = CheckedCredentials()
                    log.info("web config %s reloaded", self.path)
                except WebConfigError as error:
                    log.error("web config not reloaded, keeping the previous one: %s", error)
                self._stamp = stamp
            return self._security


@dataclass
class Page:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Routes:
    """What the server serves; each callable builds its answer at request time."""

    metrics: Callable[[bool], bytes]  # the exposition, gzip-compressed when asked
    status: Callable[[frozenset[str]], dict[str, Any]]  # with the histories asked for
    page: Callable[[dict[str, Any]], str]
    ready: Callable[[], tuple[bool, str]]

    def get(self, path: str, gzip_accepted: bool = False) -> Page:
        route, _, query = path.partition("?")
        if route == "/metrics":
            headers = {"Content-Encoding": "gzip"} if gzip_accepted else {}
            return Page(200, METRICS_CONTENT_TYPE, self.metrics(gzip_accepted), headers)
        if route == "/healthz":
            return Page(200, "text/plain; charset=utf-8", b"ok\n")
        if route == "/readyz":
            ready, reason = self.ready()
            return Page(200 if ready else 503, "text/plain; charset=utf-8", f"{reason}\n".encode())
        if route == "/api/status":
            asked = [p.removeprefix("history=") for p in query.split("&") if "history=" in p]
            histories = frozenset(kind for value in asked for kind in value.split(","))
            body = json.dumps(self.status(histories), ensure_ascii=False, default=str)
            return Page(200, "application/json", body.encode())
        if route in ("/", "/index.html"):
            page = self.page(self.status(frozenset({"1"})))  # the hour's charts at once
            return Page(200, "text/html; charset=utf-8", page.encode())
        return Page(404, "text/plain; charset=utf-8", b"not found\n")


class Phase(enum.Enum):
    """Where a connection is: waiting for a request, receiving one, or being answered."""

    IDLE = "idle"
    READING = "reading"
    BUSY = "busy"


class _Handler(BaseHTTPRequestHandler):
    server: WebServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # an answer leaves at once, not after a delayed ACK
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

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        self.server.mark(self.connection, Phase.BUSY)
        accepted = self.headers.get("Accept-Encoding", "")
        security_file = self.server.security
        if not self.server.listener.allows(self.client_address[0]):
            verdict = Verdict.FORBIDDEN
        else:
            verdict = security_file.current().authorised(
                self.headers.get("Authorization"), security_file.checked
            )
        if verdict is Verdict.FORBIDDEN:
            page = Page(403, "text/plain; charset=utf-8", b"forbidden\n")
        elif verdict is Verdict.NO:
            page = Page(
                401,
                "text/plain; charset=utf-8",
                b"unauthorised\n",
                {"WWW-Authenticate": 'Basic realm="amiplus-exporter"'},
            )
        elif verdict is Verdict.BUSY:
            page = Page(
                503,
                "text/plain; charset=utf-8",
                b"too many password checks at once; try again\n",
                {"Retry-After": "1"},
            )
        else:
            try:
                page = self.server.routes.get(self.path, "gzip" in accepted)
            except Exception:  # a bug in a page must not kill the server; say so and log it
                log.exception("error serving %s", self.path)
                page = Page(500, "text/plain; charset=utf-8", b"internal error\n")
        body = page.body
        if "gzip" in accepted and len(body) > 1024 and "Content-Encoding" not in page.headers:
            body = gzip.compress(body, compresslevel=5)
            page.headers["Content-Encoding"] = "gzip"
        self.send_response(page.status)
        self.send_header("Content-Type", page.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
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
        listener: Listener = Listener(),
    ) -> None:
        self.routes = routes
        self.security = security
        self.listener = listener
        self.max_connections = max_connections
        self.closed_for_room = 0  # connections closed to make room for a new one
        self.refused = 0  # connections refused: every open one was being answered
        self.timed_out = 0  # connections closed for taking too long with a request
        self._connections: ConnectionLimit[socket.socket, Phase] = ConnectionLimit(
            max_connections, may_give_way=lambda phase: phase is not Phase.BUSY
        )
        self._connections_lock = threading.Lock()
        self._refusal_logged = 0.0
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
                    log.info("TLS handshake with %s failed: %s", client_address[0], error)
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
        now = time.monotonic()
        if now - self._refusal_logged >= 60:
            self._refusal_logged = now
            log.warning(
                "HTTP: all %d connections are busy answering; refused %s (%d refused so far)",
                self.max_connections,
                client_address[0],
                self.refused,
            )

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
        with self._connections_lock:
            self._connections.remove(request)
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


def parse_listen(text: str) -> tuple[str, int]:
    """`:9264`, `0.0.0.0:9264`, `127.0.0.1:9264` or `[::1]:9264` to (host, port)."""
    host, _, port = text.strip().rpartition(":")
    host = host.strip("[]")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"listen address {text!r} must end in :PORT, e.g. :9264") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} is out of range")
    return host, number
