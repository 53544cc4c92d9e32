"""Receivers that recover quickly and cannot be locked out (issue 14, items 9 and 10): the backoff
starts again after a good session (a stick on a pseudo-terminal, pulled twice), and the `lines`
TCP listener closes idle connections, makes room for new senders and counts what it closed
(real sockets, in-process and through the exporter's /metrics)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from exporter.plumbing import Backoff
from exporter.receivers.imst import Im871a
from exporter.receivers.lines import Lines
from exporter.receivers.receiver import Receiver
from exporter.receivers.sources import SerialSource, TcpServerSource

from .conftest import closed_by_peer, free_port, wait_until
from .emulators.imst import Im871aEmulator
from .emulators.pty_device import PtyDevice
from .servers import SIMULATED_KEY, Start
from .test_sources import Collector

FRAME = bytes.fromhex("1844AE4C4455223368077A55000000041389E20100023B0000")
LINE = b"1844AE4C4455223368077A55000000041389E20100023B0000\n"


def test_the_backoff_starts_again_after_a_session_that_delivered_frames(
    tmp_path: Path, emulators: list[PtyDevice], receivers: list[Receiver]
) -> None:
    # Backoff 0.125 s doubling to 4 s: after a few failed opens every retry waits 2-4 s.
    link = tmp_path / "usb-imst-if00"
    sink = Collector()
    receiver = Receiver(
        "stick",
        SerialSource(str(link), Im871a.baudrate),
        Im871a(),
        sink,
        backoff=Backoff(first=0.125, cap=4.0),
        reply_timeout=1.0,
    )
    receivers.append(receiver)
    receiver.start()  # no stick yet: the backoff grows to its cap
    assert wait_until(lambda: receiver.stats.reconnects >= 6, 20)
    first = Im871aEmulator()
    emulators.append(first)
    link.symlink_to(first.path)
    assert wait_until(lambda: receiver.stats.up, 10)
    first.telegram(FRAME)
    assert wait_until(lambda: len(sink.data) == 1)
    second = Im871aEmulator()  # plugged into the same link as soon as the first is pulled
    emulators.append(second)
    link.unlink()
    link.symlink_to(second.path)
    pulled = time.monotonic()
    first.unplug()
    assert wait_until(lambda: receiver.stats.up and second.mode is not None, 10)
    again = time.monotonic() - pulled
    assert again < 2.0, f"reopened {again:.1f} s after the stick was pulled"


def hold(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]


def listener(
    receivers: list[Receiver], sink: Collector, **options: float
) -> tuple[TcpServerSource, Receiver]:
    source = TcpServerSource("127.0.0.1", 0, **options)  # type: ignore[arg-type]
    receiver = Receiver("tcp", source, Lines(), sink, backoff=Backoff(0.05, 0.2))
    receivers.append(receiver)
    receiver.start()
    assert wait_until(lambda: receiver.stats.up)
    return source, receiver


def test_idle_connections_are_closed_and_counted(receivers: list[Receiver]) -> None:
    source, receiver = listener(receivers, Collector(), idle_timeout=1.0)
    (silent,) = hold(source.port, 1)
    assert closed_by_peer(silent, 5)
    assert receiver.stats.closed_connections == {"idle": 1, "replaced": 0, "refused": 0}
    silent.close()


def test_a_new_sender_replaces_the_longest_silent_or_is_refused_when_all_are_busy(
    receivers: list[Receiver],
) -> None:
    sink = Collector()
    source, receiver = listener(receivers, sink, max_clients=4)
    busy = hold(source.port, 4)
    refused = socket.create_connection(("127.0.0.1", source.port), timeout=5)
    assert closed_by_peer(refused, 5)  # the four are younger than REPLACE_AFTER
    stats = receiver.stats.closed_connections
    assert stats is not None and stats["refused"] == 1
    time.sleep(TcpServerSource.REPLACE_AFTER + 0.2)  # the four are silent long enough now
    busy[1].sendall(LINE)  # ...but the second one speaks: it is not the longest silent
    assert wait_until(lambda: len(sink.data) == 1)
    sender = socket.create_connection(("127.0.0.1", source.port), timeout=5)
    assert closed_by_peer(busy[0], 5)  # the longest silent gave way
    sender.sendall(LINE)
    sender.close()
    assert wait_until(lambda: len(sink.data) == 2)
    assert receiver.stats.closed_connections == {"idle": 0, "replaced": 1, "refused": 1}
    for sock in (*busy, refused):
        sock.close()


def test_sixty_four_idle_connections_no_longer_lock_senders_out(start_exporter: Start) -> None:
    port = free_port()
    exporter = start_exporter(
        f"""meters:
  - id: "12345678"
    key: "{SIMULATED_KEY}"
receivers:
  - type: lines
    listen: tcp://127.0.0.1:{port}
"""
    )
    assert wait_until(lambda: exporter.status()["receivers"][0]["up"], 10)
    idle = hold(port, TcpServerSource.MAX_CLIENTS)
    try:
        time.sleep(TcpServerSource.REPLACE_AFTER + 0.5)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sender:
            sender.sendall(LINE)
        assert wait_until(lambda: exporter.status()["receivers"][0]["frames"] == 1, 10)
        metrics = exporter.get("/metrics")[1].decode()
        assert (
            'amiplus_receiver_connections_closed_total{reason="replaced",receiver="lines"} 1.0'
            in metrics
        ), [line for line in metrics.splitlines() if "connections_closed" in line]
    finally:
        for sock in idle:
            sock.close()
