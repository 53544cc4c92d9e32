"""The web config file (exporter-toolkit's format): TLS with client certificates, basic-auth
users with bcrypt hashes, and extra response headers; read again when it, a certificate or a
key changes (looked at once a second).

Passwords are checked so that nothing is learnt from timing: an unknown user is checked against
a hash of the highest configured cost, made at load. Credentials once checked are remembered
(keyed digests, both the right and the wrong ones) so that neither scrapes nor a client
repeating a wrong password pay bcrypt's cost again, and only one bcrypt check runs at a time,
so a flood of new wrong passwords leaves the other CPU to the scrapes.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import logging
import os
import re
import ssl
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REMEMBERED = 1024  # credentials remembered as checked, right and wrong each
BCRYPT_WAIT = 2.0  # seconds a request waits for its turn at bcrypt before it is told to retry
RECHECK = 1.0  # seconds between looks at the web config's files for a change
#: bcrypt costs accepted: below 10 a stolen hash is guessed quickly, above 14 every new
#: password costs the server more than a second.
COSTS = range(10, 15)
#: A bcrypt hash: $2a$, $2b$ or $2y$, two digits of cost, 53 characters of salt and digest.
BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")

#: exporter-toolkit client_auth_type values this server can honour.
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
#: The headers exporter-toolkit's `http_server_config.headers` may set, and the values it
#: allows (None: any single-line text).
HEADERS: dict[str, frozenset[str] | None] = {
    "Content-Security-Policy": None,
    "X-Frame-Options": frozenset({"deny", "sameorigin"}),
    "X-Content-Type-Options": frozenset({"nosniff"}),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}
_WEB_KEYS = {"tls_server_config", "basic_auth_users", "http_server_config"}
_HTTP_KEYS = {"headers", "http2"}
_TLS_FILES = ("cert_file", "key_file", "client_ca_file")
_TLS_KEYS = {*_TLS_FILES, "client_auth_type", "min_version", "max_version"}


class WebConfigError(ValueError):
    """The web config file cannot be used; the message says what to fix."""


class Verdict(enum.Enum):
    """What a request's credentials earn it: an answer, 401, or 503 while bcrypt is busy."""

    YES = "yes"
    NO = "no"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class WebSecurity:
    """One version of the web config file: TLS context, basic-auth users, extra headers, and
    the files it was read from (the file, certificates, keys)."""

    context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict, repr=False)
    headers: dict[str, str] = field(default_factory=dict)
    files: tuple[Path, ...] = ()
    unknown_user_hash: bytes = field(default=b"", repr=False)  # of the highest cost configured

    @classmethod
    def load(cls, path: Path) -> WebSecurity:
        import yaml  # noqa: PLC0415 (only with a web config file)

        try:
            document = yaml.safe_load(path.read_text()) or {}
            mode = path.stat().st_mode
        except (OSError, yaml.YAMLError) as error:
            raise WebConfigError(f"cannot read the web config {path}: {error}") from None
        if not isinstance(document, dict) or set(document) - _WEB_KEYS:
            unknown = set(document) - _WEB_KEYS if isinstance(document, dict) else {"?"}
            raise WebConfigError(
                f"{path}: unknown keys {sorted(unknown)}; known: {sorted(_WEB_KEYS)}"
            )
        users = _users(document.get("basic_auth_users") or {}, path)
        if users and mode & stat.S_IROTH:
            log.warning(
                "web config %s is readable by every user of this machine, and it holds password "
                "hashes: chmod o-r %s",
                path,
                path,
            )
        tls = document.get("tls_server_config")
        context, files = _tls_context(tls, path.parent) if tls else (None, ())
        headers = _headers(document.get("http_server_config") or {}, path)
        return cls(context, users, headers, (path, *files), _unknown_user_hash(users))

    @property
    def identifies_clients(self) -> bool:
        """Whether every client proves who it is: a password, or a client certificate."""
        required = self.context is not None and self.context.verify_mode == ssl.CERT_REQUIRED
        return bool(self.users) or required

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
            # An unknown user costs as much as the dearest real one, so timing does not tell.
            right = bcrypt.checkpw(password.encode(), hashed or self.unknown_user_hash)
            right = right and hashed is not None
        finally:
            checked.turn.release()
        checked.remember(digest, right)
        return Verdict.YES if right else Verdict.NO


def _users(users: Any, path: Path) -> dict[str, bytes]:
    """User names to bcrypt hashes, each hash's format and cost checked."""
    if not isinstance(users, dict):
        raise WebConfigError(f"{path}: basic_auth_users must map user names to bcrypt hashes")
    for user, hashed in users.items():
        match = BCRYPT_HASH.fullmatch(hashed) if isinstance(hashed, str) else None
        if match is None:
            raise WebConfigError(
                f"{path}: the password of user {user} is not a whole bcrypt hash ($2b$, two "
                "digits of cost, $, 53 characters); make one with: htpasswd -nBC 10 USER"
            )
        if int(match.group(1)) not in COSTS:
            raise WebConfigError(
                f"{path}: the bcrypt hash of user {user} has cost {match.group(1)}; use a cost "
                f"from {COSTS.start} to {COSTS.stop - 1} (htpasswd -nBC 10 USER)"
            )
    return {str(user): hashed.encode() for user, hashed in users.items()}


def _unknown_user_hash(users: Mapping[str, bytes]) -> bytes:
    """A hash of a random password with the highest cost of the configured hashes."""
    if not users:
        return b""
    import bcrypt  # noqa: PLC0415

    cost = max(int(hashed[4:6]) for hashed in users.values())
    return bytes(bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(rounds=cost)))


def _headers(http: Any, path: Path) -> dict[str, str]:
    """`http_server_config`: `headers` (checked), and `http2` (accepted: this server speaks
    HTTP/1.1 only)."""
    if not isinstance(http, dict) or set(http) - _HTTP_KEYS:
        raise WebConfigError(f"{path}: http_server_config takes {sorted(_HTTP_KEYS)}")
    headers = http.get("headers") or {}
    if not isinstance(headers, dict):
        raise WebConfigError(f"{path}: http_server_config headers must map names to values")
    out = {}
    for name, value in headers.items():
        if name not in HEADERS:
            raise WebConfigError(f"{path}: header {name!s} cannot be set; known: {list(HEADERS)}")
        allowed = HEADERS[name]
        text = "" if value is None else str(value)
        if not text.isprintable() or (allowed is not None and text and text.lower() not in allowed):
            wanted = f" ({', '.join(sorted(allowed))})" if allowed else ""
            raise WebConfigError(f"{path}: header {name} has a value it cannot take{wanted}")
        if text:  # blank: the server's own value stays
            out[name] = text
    return out


def _tls_context(tls: Any, base: Path) -> tuple[ssl.SSLContext, tuple[Path, ...]]:
    """The server context and the files it was made from."""
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
                f"client_auth_type {auth!s} is not supported; use one of {sorted(CLIENT_AUTH)}"
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
    return context, tuple(base / tls[key] for key in _TLS_FILES if key in tls)


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


Stamp = tuple[tuple[int, int] | None, ...]


class SecurityFile:
    """The web config file, read again when it or a file it names (certificate, key, client
    CA) changes: a renewed certificate is served within a second. The files are looked at
    once a second by one thread, not at every request (three `stat`s under a lock that every
    connection's thread queued for)."""

    def __init__(self, path: Path | None, timer: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.timer = timer
        self._security = WebSecurity.load(path) if path else WebSecurity()
        self._stamp = self._current_stamp(self._security.files)
        self._checked_at = timer()
        self._lock = threading.Lock()
        self.checked = CheckedCredentials()

    @staticmethod
    def _current_stamp(files: tuple[Path, ...]) -> Stamp:
        stamps: list[tuple[int, int] | None] = []
        for path in files:
            try:
                found = path.stat()
            except OSError:
                stamps.append(None)
            else:
                stamps.append((found.st_mtime_ns, found.st_size))
        return tuple(stamps)

    def current(self) -> WebSecurity:
        """The web security in force; its files looked at if a second has passed."""
        if self.timer() - self._checked_at < RECHECK or not self._lock.acquire(blocking=False):
            return self._security  # looked at lately, or being looked at by another thread
        try:
            self._checked_at = self.timer()
            stamp = self._current_stamp(self._security.files)
            if stamp != self._stamp and self.path is not None:
                try:
                    loaded = WebSecurity.load(self.path)
                    self.checked = CheckedCredentials()  # first: a request that sees the new
                    self._security = loaded  # config never meets the old config's verdicts
                    log.info("web config %s reloaded", self.path)
                except WebConfigError as error:
                    log.error("web config not reloaded, keeping the previous one: %s", error)
                self._stamp = self._current_stamp(self._security.files)
            return self._security
        finally:
            self._lock.release()
