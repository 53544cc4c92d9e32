"""What a neighbour on the LAN can do to the HTTP server, and what a web page can do through a
browser (issue 23, items 3-6, 8, 9, 11 and 15), with raw sockets against the server in-process
and the exporter as a subprocess."""

from __future__ import annotations

import base64
import contextlib
import http.server
import logging
import os
import re
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from exporter.web import Listener, WebConfigError, WebSecurity
from exporter.web.page import INLINE_SOURCES, PAGE
from exporter.web.security import RECHECK, SecurityFile
from exporter.web.server import MAX_HEADER_BYTES, WebServer

from .conftest import closed_by_peer, wait_until
from .servers import Start, simulated_config
from .test_daemon import _certificates
from .test_status_page import browser

Serve = Callable[..., WebServer]


def exchange(port: int, request: bytes, *, context: ssl.SSLContext | None = None) -> bytes:
    """Send raw bytes; read what comes back (the first byte may take 20 s: bcrypt on a busy
    machine) until the server closes or stays quiet for a second after it."""
    sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=20)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
    with sock:
        sock.sendall(request)
        received = b""
        with contextlib.suppress(TimeoutError):
            while chunk := sock.recv(65536):
                received += chunk
                sock.settimeout(1)
    return received


def answer(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """The first answer in `raw`: status line, headers (names in lower case), body."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest[: int(headers.get("content-length", len(rest)))]


def get(port: int, path: str = "/", **headers: str) -> tuple[str, dict[str, str], bytes]:
    lines = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    return answer(exchange(port, f"GET {path} HTTP/1.1\r\n{lines}\r\n".encode()))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def web_config(directory: Path, text: str) -> SecurityFile:
    path = directory / "web.yml"
    path.write_text(text)
    path.chmod(0o600)
    return SecurityFile(path)


def tls_server(serve: Serve, directory: Path) -> WebServer:
    """A server with TLS and nothing else configured, its certificates in `directory`."""
    _certificates(directory)
    text = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
    return serve(security=web_config(directory, text))


def hashed(password: str, cost: int = 10) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


# --- 3. header bytes ---------------------------------------------------------------------------


def test_a_request_with_too_many_header_bytes_gets_431(serve: Serve) -> None:
    port = serve().server_address[1]
    padding = "".join(f"X-Padding-{n}: {'a' * 1000}\r\n" for n in range(70))  # 70 KB in all
    status, headers, _ = answer(exchange(port, f"GET /metrics HTTP/1.1\r\n{padding}\r\n".encode()))
    assert status.startswith("HTTP/1.1 431 ") and headers["connection"] == "close"
    fits = "".join(f"X-Padding-{n}: {'a' * 1000}\r\n" for n in range(60))  # 60 KB: answered
    status, _, body = answer(exchange(port, f"GET /metrics HTTP/1.1\r\n{fits}\r\n".encode()))
    assert status == "HTTP/1.1 200 OK" and body == b"# metrics\n"
    assert MAX_HEADER_BYTES == 65_536


def test_huge_headers_from_many_connections_leave_the_memory_alone(start_exporter: Start) -> None:
    exporter = start_exporter(None)
    assert exporter.process is not None

    def rss_mb() -> float:
        status = Path(f"/proc/{exporter.process.pid}/status").read_text()  # type: ignore[union-attr]
        return int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1]) / 1024

    before = rss_mb()
    request = b"GET /metrics HTTP/1.1\r\n" + b"".join(
        b"X-Padding-%d: %s\r\n" % (n, b"a" * 65_000) for n in range(99)
    )
    socks = [socket.create_connection(("127.0.0.1", exporter.port)) for _ in range(40)]
    answers = []
    for sock in socks:
        with contextlib.suppress(OSError):  # closed under our feet: the answer is waiting
            sock.sendall(request)  # 6.4 MB: the server stops reading after 64 KB
    for sock in socks:
        sock.settimeout(10)
        try:
            answers.append(sock.recv(64).split(b"\r\n", 1)[0])
        except OSError:
            answers.append(b"reset")
        sock.close()
    assert set(answers) <= {b"HTTP/1.1 431 Too many headers", b"reset"}, set(answers)
    assert b"HTTP/1.1 431 Too many headers" in answers
    assert rss_mb() - before < 40, (before, rss_mb())
    assert exporter.get("/metrics")[0] == 200


# --- 4. user names and timing ------------------------------------------------------------------


def test_an_unknown_user_costs_what_the_dearest_known_one_costs(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    security = web_config(
        tmp_path,
        f"basic_auth_users:\n  light: '{hashed('a', 10)}'\n  heavy: '{hashed('b', 11)}'\n",
    )
    costs: list[tuple[str, int]] = []
    real = bcrypt.checkpw

    def recorded(password: bytes, hashed_password: bytes) -> bool:
        costs.append((password.decode(), int(hashed_password[4:6])))
        return real(password, hashed_password)

    monkeypatch.setattr(bcrypt, "checkpw", recorded)
    port = serve(security=security).server_address[1]
    assert get(port, "/metrics", Authorization=basic("nobody", "guess"))[0].endswith(
        "401 Unauthorized"
    )
    assert get(port, "/metrics", Authorization=basic("light", "a"))[0].endswith("200 OK")
    assert get(port, "/metrics", Authorization=basic("heavy", "x"))[0].endswith("401 Unauthorized")
    assert costs == [("guess", 11), ("a", 10), ("x", 11)]


# --- 5. browser protections --------------------------------------------------------------------


def test_every_answer_carries_the_browser_protections(serve: Serve) -> None:
    port = serve().server_address[1]
    for path, code in (("/", 200), ("/metrics", 200), ("/nothing", 404)):
        status, headers, _ = get(port, path, Host=f"127.0.0.1:{port}")
        assert status.split()[1] == str(code)
        assert headers["cache-control"] == "no-store"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        policy = headers["content-security-policy"]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
        assert f"script-src {INLINE_SOURCES['script-src']};" in policy
        assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
        assert headers["server"] == "amiplus-exporter"  # no version, no Python
        assert "strict-transport-security" not in headers  # not over plain HTTP
    status, headers, _ = answer(exchange(port, b"DELETE / HTTP/1.1\r\n\r\n"))  # http.server's
    assert status.startswith("HTTP/1.1 501") and headers["x-frame-options"] == "DENY"
    assert (
        INLINE_SOURCES["script-src"].count("sha256-"),
        INLINE_SOURCES["style-src"].count("sha256-"),
    ) == (1, 1)


def test_a_listener_without_frame_protection_may_be_framed(serve: Serve) -> None:
    port = serve(listener=Listener(frame_protection=False)).server_address[1]
    headers = get(port)[1]
    assert "x-frame-options" not in headers
    assert "frame-ancestors" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


def test_tls_adds_hsts_and_the_web_config_headers_win(serve: Serve, tmp_path: Path) -> None:
    _certificates(tmp_path)
    security = web_config(
        tmp_path,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "http_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: sameorigin\n"
        "    Content-Security-Policy: \"default-src 'self'\"\n    X-XSS-Protection: ''\n",
    )
    port = serve(security=security).server_address[1]
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    _, headers, _ = answer(exchange(port, b"GET / HTTP/1.1\r\n\r\n", context=context))
    assert headers["strict-transport-security"] == "max-age=31536000"
    assert headers["x-frame-options"] == "sameorigin"
    assert headers["content-security-policy"] == "default-src 'self'"
    assert "x-xss-protection" not in headers  # blank: not set, as exporter-toolkit does


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ("X-Powered-By: me", "cannot be set"),
        ("X-Frame-Options: allow-from x", "cannot take (deny, sameorigin)"),
        ('Content-Security-Policy: "a\\r\\nSet-Cookie: x"', "cannot take"),
    ],
)
def test_web_config_headers_are_checked(tmp_path: Path, headers: str, says: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"http_server_config:\n  headers:\n    {headers}\n")
    with pytest.raises(WebConfigError, match=re.escape(says)):
        WebSecurity.load(path)


def test_without_basic_auth_only_this_servers_names_are_answered(serve: Serve) -> None:
    port = serve(listener=Listener(allowed_hosts=("amiplus.lan",))).server_address[1]
    for host in (
        f"127.0.0.1:{port}",
        "localhost",
        f"[::1]:{port}",
        "192.0.2.10",
        socket.gethostname(),
        "Amiplus.LAN:9264",
    ):
        assert get(port, "/api/status", Host=host)[0] == "HTTP/1.1 200 OK", host
    status, headers, body = get(port, "/api/status", Host="rebind.example:9264")
    assert status.startswith("HTTP/1.1 421") and b"allowed_hosts" in body
    assert headers["x-frame-options"] == "DENY"
    assert get(port, "/healthz", Host="rebind.example")[0] == "HTTP/1.1 200 OK"
    anywhere = serve(listener=Listener(allowed_hosts=None)).server_address[1]
    assert get(anywhere, "/", Host="ingress.example")[0] == "HTTP/1.1 200 OK"


def test_with_basic_auth_any_name_may_ask(serve: Serve, tmp_path: Path) -> None:
    security = web_config(tmp_path, f"basic_auth_users:\n  family: '{hashed('pw')}'\n")
    port = serve(security=security).server_address[1]
    assert get(port, "/", Host="amiplus.example")[0].endswith("401 Unauthorized")
    right = basic("family", "pw")
    assert get(port, "/", Host="amiplus.example", Authorization=right)[0] == "HTTP/1.1 200 OK"


def test_required_client_certificates_prove_who_asks_too(serve: Serve, tmp_path: Path) -> None:
    _certificates(tmp_path)
    security = web_config(
        tmp_path,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    )
    port = serve(security=security).server_address[1]
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    context.load_cert_chain(tmp_path / "client.crt", tmp_path / "client.key")
    request = b"GET /api/status HTTP/1.1\r\nHost: amiplus.example\r\n\r\n"
    assert answer(exchange(port, request, context=context))[0] == "HTTP/1.1 200 OK"


# --- 6. what a neighbour learns ----------------------------------------------------------------


def test_paths_and_credentials_stay_behind_the_password(
    start_exporter: Start, tmp_path: Path
) -> None:
    influx = "influxdb:\n  url: http://amiplus:s3cret-pw@127.0.0.1:9\n  api: v1\n  database: x\n"
    influx += f"  spool: {tmp_path / 'spool'}\n"
    exporter = start_exporter(simulated_config(1, influx))
    status = exporter.status()
    assert status["exporter"]["config"] is None
    assert status["influxdb"]["target"] == "http://127.0.0.1:9 database x"
    assert status["receivers"][0]["description"] is None
    for path in ("/", "/api/status", "/readyz"):
        assert b"s3cret" not in exporter.get(path)[1]
        assert str(exporter.config_path).encode() not in exporter.get(path)[1]
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  family: '{hashed('pw')}'\n")
    web.chmod(0o600)
    private = start_exporter(
        simulated_config(1, f"web:\n  config_file: {web}\n"),
        headers={"Authorization": basic("family", "pw")},
    )
    status = private.status()
    assert status["exporter"]["config"] == str(private.config_path)
    assert status["receivers"][0]["description"].startswith("simulator")
    assert "s3cret" not in exporter.log()


# --- 9. request bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /metrics HTTP/1.1\r\nContent-Length: 27\r\n\r\nGET /api/status HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ],
    ids=["content-length", "chunked"],
)
def test_a_request_with_a_body_gets_400_and_the_connection_closes(
    serve: Serve, request_bytes: bytes
) -> None:
    port = serve().server_address[1]
    received = exchange(port, request_bytes)
    status, headers, body = answer(received)
    assert status == "HTTP/1.1 400 Bad Request" and headers["connection"] == "close"
    assert body == b"a GET or HEAD request has no body\n"
    assert received.count(b"HTTP/1.1") == 1  # the body was not answered as a request
    no_body = b"GET /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
    assert answer(exchange(port, no_body))[0] == "HTTP/1.1 200 OK"


# --- 11. the web config file -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hash_text", "says"),
    [
        ("$2b$10$short", "not a whole bcrypt hash"),
        ("secret", "not a whole bcrypt hash"),
        (hashed("pw", 4), "has cost 04; use a cost from 10 to 14"),
        ("$2b$15$" + "a" * 53, "has cost 15"),
    ],
    ids=["short", "plain", "cost-4", "cost-15"],  # a salted hash differs in every worker
)
def test_a_bad_hash_is_refused_at_load(tmp_path: Path, hash_text: str, says: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  family: '{hash_text}'\n")
    with pytest.raises(WebConfigError, match=re.escape(says)) as raised:
        WebSecurity.load(path)
    assert hash_text not in str(raised.value)


def test_a_web_config_readable_by_others_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  family: '{hashed('pw')}'\n")
    path.chmod(0o640)
    with caplog.at_level(logging.WARNING, logger="exporter"):
        WebSecurity.load(path)
    assert not caplog.records
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="exporter"):
        WebSecurity.load(path)
    assert "readable by every user" in caplog.records[0].getMessage()


def test_a_renewed_certificate_is_served_without_touching_the_web_config(
    serve: Serve, tmp_path: Path
) -> None:
    port = tls_server(serve, tmp_path).server_address[1]

    def served() -> bytes:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw) as sock,
        ):
            certificate = sock.getpeercert(binary_form=True)
            assert certificate is not None
            return certificate

    first = served()
    renewed = tmp_path / "renewed"
    renewed.mkdir()
    _certificates(renewed)  # as certbot does: new files in place of the old
    for name in ("server.crt", "server.key"):
        os.replace(renewed / name, tmp_path / name)
    assert wait_until(lambda: served() != first, 10)


def test_a_tls_connection_the_server_closes_ends_with_close_notify(
    serve: Serve, tmp_path: Path
) -> None:
    port = tls_server(serve, tmp_path).server_address[1]
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1", suppress_ragged_eofs=False) as sock,
    ):
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")  # HTTP/1.0: the server closes
        answer = b""
        while chunk := sock.recv(4096):  # SSLEOFError if the stream ended without close_notify
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")


def test_the_web_config_is_looked_at_once_a_second_not_at_every_request(
    tmp_path: Path,
) -> None:
    path = tmp_path / "web.yml"
    path.write_text("http_server_config:\n  headers:\n    Content-Security-Policy: first\n")
    path.chmod(0o600)
    ticks = [0.0]
    security = SecurityFile(path, timer=lambda: ticks[0])
    path.write_text("http_server_config:\n  headers:\n    Content-Security-Policy: second\n")
    ticks[0] = RECHECK / 2
    assert (
        dict(security.current().headers)["Content-Security-Policy"] == "first"
    )  # not looked at yet
    ticks[0] = RECHECK
    assert dict(security.current().headers)["Content-Security-Policy"] == "second"


# --- 8. a flood of failed TLS handshakes -------------------------------------------------------


def test_failed_tls_handshakes_cost_one_log_line(
    serve: Serve, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = tls_server(serve, tmp_path)
    with caplog.at_level(logging.INFO, logger="exporter"):
        for _ in range(100):
            with socket.create_connection(("127.0.0.1", server.server_address[1])) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\n\r\n")  # plain HTTP to the TLS port
                assert closed_by_peer(sock, 5)  # after the server logged (or not) the failure
    lines = [r.getMessage() for r in caplog.records if "TLS handshake" in r.getMessage()]
    assert len(lines) == 1, lines


# --- 15. the health check with basic auth ------------------------------------------------------


def test_healthz_stays_open_when_everything_else_needs_the_password(
    serve: Serve, tmp_path: Path
) -> None:
    security = web_config(tmp_path, f"basic_auth_users:\n  family: '{hashed('pw')}'\n")
    port = serve(security=security).server_address[1]
    status, _, body = get(port, "/healthz")
    assert (status, body) == ("HTTP/1.1 200 OK", b"ok\n")
    for path in ("/", "/metrics", "/readyz", "/api/status", "/healthz-not"):
        assert get(port, path)[0].endswith("401 Unauthorized"), path


# --- 5. in a real browser ----------------------------------------------------------------------

RECORD_VIOLATIONS = """
window.violations = [];
document.addEventListener("securitypolicyviolation",
    e => window.violations.push(e.effectiveDirective + " " + e.blockedURI));
"""


class _Framing(http.server.BaseHTTPRequestHandler):
    """Another site (another port: another origin) whose page frames `server.framed`."""

    server: Any

    def do_GET(self) -> None:
        body = f"<!doctype html><iframe id=f src='{self.server.framed}'></iframe>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def framed(driver: webdriver.Chrome, url: str) -> str | None:
    """The text of `url` shown in a frame of another site's page (None: the browser refused)."""
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Framing)
    site.framed = url  # type: ignore[attr-defined]
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        driver.get(f"http://127.0.0.1:{site.server_address[1]}/")
        WebDriverWait(driver, 10).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        driver.switch_to.frame("f")
        refused = driver.find_elements(By.CSS_SELECTOR, "html[subframe]")  # Chromium's error
        return None if refused else str(driver.find_element(By.TAG_NAME, "body").text)
    finally:
        driver.switch_to.default_content()
        site.shutdown()
        site.server_close()


def test_a_listener_without_frame_protection_is_shown_in_a_frame(serve: Serve) -> None:
    port = serve(listener=Listener(frame_protection=False)).server_address[1]
    driver = browser()
    try:
        assert framed(driver, f"http://127.0.0.1:{port}/") == "page"
    finally:
        driver.quit()


def test_the_page_runs_under_its_policy_and_nothing_else_does(start_exporter: Start) -> None:
    exporter = start_exporter(simulated_config(1))
    driver = browser("en-GB", "--host-resolver-rules=MAP rebind.example 127.0.0.1")
    try:
        driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_VIOLATIONS}
        )
        driver.get(exporter.url + "/")
        wait = WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException,))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-chart] svg .series"))
        # its script ran, its style sheet applies, and its bars are placed through the CSSOM
        assert (
            driver.execute_script(
                "return getComputedStyle(document.querySelector('.card')).borderRadius"
            )
            == "10px"
        )
        assert driver.execute_script(
            "return document.querySelector('.bar .dot').style.left"
        ).startswith("calc(")
        assert driver.execute_script("return window.violations") == []
        # a script the page did not bring is refused, and the refusal is seen
        driver.execute_script(
            "const s = document.createElement('script');"
            "s.textContent = 'window.injected = true'; document.body.append(s);"
        )
        assert driver.execute_script("return window.injected === undefined")
        assert driver.execute_script("return window.violations")[0].startswith("script-src")
        # another site may not show the page in a frame
        assert framed(driver, exporter.url + "/") is None
        # nor read it through a name of its own that resolves to this exporter
        driver.get(f"http://rebind.example:{exporter.port}/api/status")
        assert "does not answer to the name" in driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.quit()


def test_the_page_has_no_inline_style_attributes() -> None:
    """The Content-Security-Policy allows the page's one style sheet by its hash, nothing else:
    a `style=` attribute in the page's markup or in what its script writes is refused."""
    assert re.findall(r"""\bstyle=["'$]""", PAGE) == []
