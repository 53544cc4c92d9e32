"""The HTTP server under idle, slow and hostile clients (issue 14, items 7 and 8), with real
sockets: a thousand idle connections against the exporter process, and the timeouts, the
connection bound and the bcrypt gate of `WebServer` in-process with short limits."""

from __future__ import annotations

import contextlib
import http.client
import os
import resource
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest

from exporter.web import security as web_security
from exporter.web import server as web
from exporter.web.security import SecurityFile
from exporter.web.server import WebServer

from .conftest import basic_auth, closed_by_peer, routes, wait_until
from .servers import Start
from .test_daemon import _certificates

IDLE_CONNECTIONS = 1000


@contextlib.contextmanager
def open_files_limit(soft: int) -> Iterator[None]:
    """This process's soft limit of open files set to `soft` (within the hard limit), and set
    back afterwards; a process started meanwhile keeps it."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= soft, f"the hard limit is {hard}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (before, hard))


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {key}: line")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def accept_queue(port: int) -> int:
    """Connections the kernel holds for the listener on `port` that it has not accepted yet."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"nothing listens on port {port}")


def timed_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, float]:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    finally:
        connection.close()


def test_a_scrape_is_answered_while_a_thousand_idle_connections_are_open(
    start_exporter: Start,
) -> None:
    with open_files_limit(1024):  # the usual default (systemd, shells) for the exporter
        exporter = start_exporter(None)
    assert exporter.process is not None
    pid = exporter.process.pid
    idle: list[socket.socket] = []
    with open_files_limit(IDLE_CONNECTIONS + 500):
        try:
            for _ in range(IDLE_CONNECTIONS):
                idle.append(socket.create_connection(("127.0.0.1", exporter.port), timeout=5))
            # All 1,000 are open and taken from the listen queue (an exporter that cannot
            # accept any more, as when it ran out of file descriptors, never gets here).
            assert wait_until(lambda: accept_queue(exporter.port) == 0, 30)
            for _ in range(5):
                status, took = timed_get(exporter.port, "/metrics")
                assert status == 200 and took < 1.0, took
            # Connections are bounded, so threads are too (there was a thread per connection),
            # and the process does not spin on a listening socket it cannot accept from.
            assert proc_status(pid, "Threads") <= web.MAX_CONNECTIONS + 20
            assert len(os.listdir(f"/proc/{pid}/fd")) <= web.MAX_CONNECTIONS + 50
            before, started = cpu_seconds(pid), time.monotonic()
            time.sleep(2)
            assert cpu_seconds(pid) - before < 0.5 * (time.monotonic() - started)
        finally:
            for sock in idle:
                sock.close()
    assert exporter.get("/healthz")[0] == 200


def test_idle_and_slow_connections_time_out(serve: Callable[..., WebServer]) -> None:
    server = serve()
    port = server.server_address[1]
    silent = socket.create_connection(("127.0.0.1", port))
    assert closed_by_peer(silent, 5)  # never sent a request
    slowloris = socket.create_connection(("127.0.0.1", port))
    started = time.monotonic()
    closed = False
    while time.monotonic() - started < 6 and not closed:
        try:
            slowloris.sendall(b"G")  # a byte now and then, never a whole request
        except OSError:
            closed = True
        closed = closed or closed_by_peer(slowloris, 0.2)
    assert closed and time.monotonic() - started < 5
    kept = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    kept.request("GET", "/healthz")
    assert kept.getresponse().read() == b"ok\n"
    assert kept.sock is not None and closed_by_peer(kept.sock, 5)  # idle after its answer
    assert server.open_connections == 0
    for sock in (silent, slowloris):
        sock.close()


def test_new_connections_close_the_longest_waiting_and_refuse_only_when_all_are_busy(
    serve: Callable[..., WebServer],
) -> None:
    release = threading.Event()
    server = serve(max_connections=4, routes=routes(release))
    port = server.server_address[1]
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
    assert wait_until(lambda: server.closed_for_room >= 6, 5)
    assert server.open_connections <= 4
    assert timed_get(port, "/healthz")[0] == 200  # room is made for a scrape
    busy: list[threading.Thread] = []
    try:
        for _ in range(4):
            thread = threading.Thread(target=timed_get, args=(port, "/api/status"))
            thread.start()
            busy.append(thread)
        assert wait_until(
            lambda: server.open_connections == 4 and server.connections_in(web.Phase.BUSY) == 4,
            5,
        )
        refused = socket.create_connection(("127.0.0.1", port))
        assert closed_by_peer(refused, 5)  # every connection is being answered
        assert server.refused == 1
        refused.close()
    finally:
        release.set()
        for thread in busy:
            thread.join(10)
        for sock in idle:
            sock.close()


def test_checked_credentials_are_remembered_right_and_wrong(
    serve: Callable[..., WebServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=10)).decode()
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    checks: list[bytes] = []
    real = bcrypt.checkpw

    def counted(password: bytes, hashed_password: bytes) -> bool:
        checks.append(password)
        return real(password, hashed_password)

    monkeypatch.setattr(bcrypt, "checkpw", counted)
    server = serve(security=SecurityFile(config))
    port = server.server_address[1]
    for _ in range(20):
        assert timed_get(port, "/metrics", basic_auth("prometheus", "wrong"))[0] == 401
        assert timed_get(port, "/metrics", basic_auth("prometheus", "right"))[0] == 200
        assert timed_get(port, "/metrics", basic_auth("nobody", "wrong"))[0] == 401
    assert sorted(checks) == [b"right", b"wrong", b"wrong"]  # one bcrypt check each
    assert timed_get(port, "/metrics", basic_auth("prometheus", ""))[0] == 401
    assert timed_get(port, "/metrics")[0] == 401


def test_only_one_bcrypt_check_runs_at_a_time(
    serve: Callable[..., WebServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=10)).decode()
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    monkeypatch.setattr(web_security, "BCRYPT_WAIT", 60.0)  # twelve checks in turn, however slow
    running = 0
    most = 0
    lock = threading.Lock()
    real = bcrypt.checkpw

    def slow(password: bytes, hashed_password: bytes) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return real(password, hashed_password)

    monkeypatch.setattr(bcrypt, "checkpw", slow)
    server = serve(security=SecurityFile(config))
    port = server.server_address[1]
    answers: list[int] = []

    def guess(n: int) -> None:
        answers.append(timed_get(port, "/metrics", basic_auth("prometheus", f"guess {n}"))[0])

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert most == 1 and sorted(set(answers)) == [401]


def test_a_request_waiting_too_long_for_bcrypt_is_told_to_retry(
    serve: Callable[..., WebServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=10)).decode()
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    real = bcrypt.checkpw
    checking = threading.Event()

    def slow(password: bytes, hashed_password: bytes) -> bool:
        checking.set()
        time.sleep(1.0)
        return real(password, hashed_password)

    monkeypatch.setattr(bcrypt, "checkpw", slow)
    monkeypatch.setattr(web_security, "BCRYPT_WAIT", 0.2)
    server = serve(security=SecurityFile(config))
    port = server.server_address[1]
    first = threading.Thread(
        target=timed_get, args=(port, "/metrics", basic_auth("prometheus", "a"))
    )
    first.start()
    assert checking.wait(5)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/metrics", headers=basic_auth("prometheus", "b"))
    response = connection.getresponse()
    assert (response.status, response.getheader("Retry-After")) == (503, "1")
    response.read()
    connection.close()
    first.join(10)


@pytest.mark.integration
def test_writes_leave_at_once_from_the_tls_handshake_on(tmp_path: Path) -> None:
    """TCP_NODELAY from the accept on: Nagle's algorithm would hold the second write of a TLS
    handshake's flight for the client's ACK (a tail of tens of milliseconds per connection)."""
    _certificates(tmp_path)
    (tmp_path / "web.yml").write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
    )
    server = WebServer(("127.0.0.1", 0), routes(), SecurityFile(tmp_path / "web.yml"))
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1])):
            accepted, _ = server.get_request()
            try:
                assert isinstance(accepted, ssl.SSLSocket)  # not yet shaken hands
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            finally:
                accepted.close()
    finally:
        server.server_close()
