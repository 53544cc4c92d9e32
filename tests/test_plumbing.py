"""The shared mechanisms: one backoff, one connection limit, one way to read a listen address
and choose its family, private files written atomically, rate-limited log lines."""

from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.plumbing import (
    Admission,
    Backoff,
    ConnectionLimit,
    Due,
    RateLimit,
    RateLimitedLog,
    listening_family,
    open_private,
    parse_listen,
    private_directory,
    write_atomically,
)


def test_the_backoff_doubles_up_to_its_cap_within_twenty_percent() -> None:
    backoff = Backoff(first=1.0, cap=60.0)
    for attempt, base in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 32.0), (6, 60.0), (40, 60.0)]:
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert base * 0.8 <= min(delays) and max(delays) <= base * 1.2
        assert max(delays) - min(delays) > base * 0.1  # spread, so clients retry apart


def test_a_new_connection_replaces_the_longest_waiting_one_that_may_give_way() -> None:
    limit: ConnectionLimit[str, str] = ConnectionLimit(
        2, may_give_way=lambda state: state != "busy"
    )
    assert limit.admit("a", "idle", 1.0) == Admission(True)
    assert limit.admit("b", "idle", 2.0) == Admission(True)
    limit.mark("a", "idle", 3.0)  # a spoke again: b has now waited longest
    assert limit.admit("c", "idle", 4.0) == Admission(True, "b")
    assert limit.current() == ["a", "c"]
    limit.mark("a", "busy", 5.0)
    limit.mark("c", "busy", 5.0)
    assert limit.admit("d", "idle", 6.0) == Admission(False)  # all are being answered
    assert len(limit) == 2 and "d" not in limit
    assert limit.count("busy") == 2


def test_a_connection_quiet_for_less_than_replace_after_keeps_its_place() -> None:
    limit: ConnectionLimit[str, None] = ConnectionLimit(1, replace_after=2.0)
    limit.admit("a", None, 10.0)
    assert limit.admit("b", None, 11.0) == Admission(False)
    assert limit.admit("b", None, 12.5) == Admission(True, "a")


def test_connections_waiting_too_long_are_found_by_state() -> None:
    limit: ConnectionLimit[str, str] = ConnectionLimit(10)
    limit.admit("reading", "reading", 0.0)
    limit.admit("idle", "idle", 0.0)
    limit.admit("fresh", "reading", 9.0)
    assert limit.waiting_longer(5.0, 10.0, "reading") == ["reading"]
    assert sorted(limit.waiting_longer(5.0, 10.0)) == ["idle", "reading"]
    assert limit.remove("reading") and not limit.remove("reading")


@pytest.mark.parametrize(
    ("host", "family"),
    [
        ("", socket.AF_INET),
        ("0.0.0.0", socket.AF_INET),
        ("127.0.0.1", socket.AF_INET),
        ("::1", socket.AF_INET6),
        ("::", socket.AF_INET6),
    ],
)
def test_the_family_comes_from_the_resolver(host: str, family: socket.AddressFamily) -> None:
    assert listening_family(host, 9264, socket.SOCK_STREAM) == family


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":9264", ("", 9264)),
        ("0.0.0.0:9264", ("0.0.0.0", 9264)),
        ("[::1]:80", ("::1", 80)),
        (" localhost:0 ", ("localhost", 0)),
    ],
)
def test_a_listen_address_is_read(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("8080", "ends in :PORT"),
        ("host:http", "ends in :PORT"),
        (":70000", "out of range"),
        ("::1:80", "in brackets"),
        ("[::1:80", "in brackets"),
    ],
)
def test_a_wrong_listen_address_says_why_without_repeating_it(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as raised:
        parse_listen(text)
    assert text.strip() not in str(raised.value)


@pytest.fixture(params=[0o000, 0o022, 0o077, 0o277], ids=lambda mask: f"umask {mask:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The process's umask set for the test (files' modes must not depend on it)."""
    before = os.umask(request.param)
    yield int(request.param)
    os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_files_and_directories_whatever_the_umask(umask: int, tmp_path: Path) -> None:
    state = tmp_path / "var" / "lib" / "amiplus"
    write_atomically(state / "calendar.json", b'{"format": 2}')
    assert (state / "calendar.json").read_bytes() == b'{"format": 2}'
    assert mode(state / "calendar.json") == 0o600 and mode(state) == 0o700
    write_atomically(state / "calendar.json", b"{}")  # replaced, not appended to
    assert (state / "calendar.json").read_bytes() == b"{}"
    assert sorted(p.name for p in state.iterdir()) == ["calendar.json"]  # no temporary left
    spool = tmp_path / "spool"
    private_directory(spool)
    descriptor = open_private(spool / "000000000001.lp", os.O_WRONLY | os.O_APPEND)
    os.close(descriptor)
    assert mode(spool) == 0o700 and mode(spool / "000000000001.lp") == 0o600


def test_a_directory_already_there_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "state"
    shared.mkdir(mode=0o750)
    os.chmod(shared, 0o750)
    private_directory(shared)
    assert mode(shared) == 0o750
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):
        private_directory(tmp_path / "file")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "calendar.json"
    write_atomically(target, b"old")
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    ignored = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, limit[1]))  # files of 1 KB at most
    try:
        with pytest.raises(OSError, match="too large"):
            write_atomically(target, b"x" * 4096)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, ignored)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["calendar.json"]


def test_a_rate_limited_line_comes_first_then_once_per_interval_with_a_count() -> None:
    now = [0.0]
    limit = RateLimit(60.0, clock=lambda: now[0])
    assert limit.due("a") == Due(0, 0.0)
    assert limit.due("b") == Due(0, 0.0)  # keys are apart
    now[0] = 30.0
    assert [limit.due("a") for _ in range(5)] == [None] * 5
    now[0] = 61.0
    assert limit.due("a") == Due(5, 61.0)
    assert Due(5, 61.0).suffix() == " (and 5 more like it in the last 61 s)"
    assert Due(7, 900.0).suffix() == " (and 7 more like it in the last 15 minutes)"
    assert Due(0, 0.0).suffix() == ""
    now[0] = 200.0
    assert limit.due("a") == Due(0, 139.0)  # nothing held back since


def test_a_flood_from_many_threads_costs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("exporter.test")
    flood = RateLimitedLog(logger, logging.INFO)

    def fail() -> None:
        for n in range(1000):
            flood("TLS handshake with %s failed: %s", "192.0.2.7", f"error {n}%s")

    with caplog.at_level(logging.INFO, logger="exporter.test"):
        threads = [threading.Thread(target=fail) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [r.getMessage() for r in caplog.records] == [
        "TLS handshake with 192.0.2.7 failed: error 0%s"
    ]
