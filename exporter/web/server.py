"""The HTTP server (docs/contracts.md, section 6): `/`, `/metrics`, `/healthz`, `/readyz`,
`/api/status`.

TLS (with client certificates) and basic auth come from an exporter-toolkit style web config
file, read again whenever it changes. Passwords are bcrypt hashes; a verified password is
remembered as its SHA-256 so that scrapes do not pay bcrypt's cost each time, and every
comparison is constant-time.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

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

    def authorised(self, header: str | None, verified: dict[str, bytes]) -> bool:
        """Whether an Authorization header holds valid basic-auth credentials."""
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        digest = hashlib.sha256(f"{user}:{password}".encode()).digest()
        remembered = verified.get(user)
        if remembered is not None and hmac.compare_digest(remembered, digest):
            return True
        import bcrypt  # noqa: PLC0415 (only with basic auth: keeps the daemon small)

        hashed = self.users.get(user)
        # An unknown user is checked against a dummy hash too, so timing does not tell.
        if not bcrypt.checkpw(password.encode(), hashed or _DUMMY_HASH) or hashed is None:
            return False
        verified[user] = digest
        return True


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
        self.verified: dict[str, bytes] = {}

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
                    self.verified = {}
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


class _Handler(BaseHTTPRequestHandler):
    server: WebServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        accepted = self.headers.get("Accept-Encoding", "")
        security = self.server.security.current()
        if not security.authorised(
            self.headers.get("Authorization"), self.server.security.verified
        ):
            page = Page(
                401,
                "text/plain; charset=utf-8",
                b"unauthorised\n",
                {"WWW-Authenticate": 'Basic realm="amiplus-exporter"'},
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
        log.debug("%s %s", self.address_string(), format % args)


class WebServer(ThreadingHTTPServer):
    """One threaded HTTP(S) server for every path; TLS is applied per connection, so a changed
    certificate takes effect for the next connection without a restart."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], routes: Routes, security: SecurityFile) -> None:
        self.routes = routes
        self.security = security
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, client = self.socket.accept()
        context = self.security.current().context
        if context is not None:
            connection = context.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, client

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(10)
                request.do_handshake()
            except (ssl.SSLError, OSError) as error:
                log.info("TLS handshake with %s failed: %s", client_address[0], error)
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)

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
