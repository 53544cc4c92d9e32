"""The shared mechanisms: one backoff, one connection limit, one way to choose an address family."""

from __future__ import annotations

import socket

import pytest

from exporter.plumbing import Admission, Backoff, ConnectionLimit, listening_family


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
