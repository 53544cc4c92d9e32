"""Line receivers through real subprocesses, TCP and UDP on 127.0.0.1, pipes and replay files."""

from __future__ import annotations

import logging
import os
import socket
import sys
import textwrap
import threading
import time
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.plumbing import Backoff
from exporter.receivers.base import ErrorReason, Frame
from exporter.receivers.lines import LineFramer, Lines
from exporter.receivers.receiver import Receiver
from exporter.receivers.sources import (
    ProcessSource,
    ReplaySource,
    Source,
    StreamSource,
    TcpClientSource,
    TcpServerSource,
    UdpSource,
)

from .conftest import wait_until

SENSUS = "1844AE4C4455223368077A55000000041389E20100023B0000"
FRAME = bytes.fromhex(SENSUS)
FAST = Backoff(first=0.05, cap=0.2)


class Collector:
    """A frame sink that remembers what arrived."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, Frame]] = []
        self.lock = threading.Lock()

    def __call__(self, receiver: str, frame: Frame) -> None:
        with self.lock:
            self.frames.append((receiver, frame))

    @property
    def data(self) -> list[bytes]:
        with self.lock:
            return [frame.data for _, frame in self.frames]


@pytest.fixture
def collector() -> Collector:
    return Collector()


def run(receivers: list[Receiver], source: Source, sink: Collector, **options: object) -> Receiver:
    receiver = Receiver("test", source, Lines(), sink, backoff=FAST, **options)  # type: ignore[arg-type]
    receivers.append(receiver)
    receiver.start()
    return receiver


def test_a_subprocess_is_read_and_restarted_when_it_exits(
    tmp_path: Path, collector: Collector, receivers: list[Receiver]
) -> None:
    script = tmp_path / "rtl_wmbus.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            print("rtl_sdr: Found 1 device(s)", file=sys.stderr, flush=True)
            print("T1;1;1;2024-05-14 12:36:09.123456;97;148;33225544;0x{SENSUS.lower()}")
            print("T1;0;0;2024-05-14 12:36:10.000;97;148;33225544;0x1844ae4c44")
            print("T1;1;1;2024-05-14 12:36:11.000;97;148;33225544;0x{SENSUS};0x{SENSUS}")
            print("rtl_wmbus: exiting since incoming data stopped flowing!", flush=True)
            """
        )
    )
    source = ProcessSource(f"{sys.executable} {script}")
    receiver = run(receivers, source, collector)
    assert wait_until(lambda: len(collector.data) >= 6)  # two runs of three frames
    assert set(collector.data) == {FRAME}
    stats = receiver.stats
    assert stats.reconnects >= 1
    assert stats.errors[ErrorReason.CRC.value] >= 2  # the T1;0;0 line, once per run
    assert stats.errors[ErrorReason.FRAMING.value] >= 2  # the exit message
    assert all(frame.link_mode == "T1" for _, frame in collector.frames)


def test_tcp_listen_takes_one_connection_per_telegram_and_long_lived_ones(
    collector: Collector, receivers: list[Receiver]
) -> None:
    source = TcpServerSource("127.0.0.1", 0)
    receiver = run(receivers, source, collector)
    assert wait_until(lambda: receiver.stats.up)
    address = ("127.0.0.1", source.port)
    for _ in range(3):  # ESPHome's socket_transmitter: connect, write, close; no newline
        with socket.create_connection(address, timeout=5) as client:
            client.sendall(SENSUS.encode())
    with socket.create_connection(address, timeout=5) as bridge:  # a bridge that stays
        line = f"T1;1;1;2026-01-01 10:00:00.00Z;-71;;;0x{SENSUS}\n".encode()
        for piece in (line[:7], line[7:40], line[40:] + line):
            bridge.sendall(piece)
            time.sleep(0.02)
        assert wait_until(lambda: len(collector.data) >= 5)
    assert collector.data == [FRAME] * 5
    assert [f.rssi_dbm for _, f in collector.frames][3:] == [-71.0, -71.0]


def test_udp_datagrams(collector: Collector, receivers: list[Receiver]) -> None:
    source = UdpSource("127.0.0.1", 0)
    receiver = run(receivers, source, collector)
    assert wait_until(lambda: receiver.stats.up)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for payload in (SENSUS, SENSUS.lower() + "\n", "not a telegram"):
            sender.sendto(payload.encode(), ("127.0.0.1", source.port))
    assert wait_until(lambda: len(collector.data) >= 2 and receiver.stats.errors)
    assert collector.data == [FRAME, FRAME]
    assert receiver.stats.errors == {"framing": 1}


def _serve(server: socket.socket, payloads: list[bytes]) -> None:
    """Accept one connection per payload, send it, close."""
    for payload in payloads:
        connection, _ = server.accept()
        with connection:
            connection.sendall(payload)


def test_tcp_connect_reconnects_after_the_server_closes(
    collector: Collector, receivers: list[Receiver]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        lines = [(SENSUS + "\n").encode(), (SENSUS + "\r\n").encode()]
        thread = threading.Thread(target=_serve, args=(server, lines), daemon=True)
        thread.start()
        receiver = run(receivers, TcpClientSource("127.0.0.1", port), collector)
        assert wait_until(lambda: len(collector.data) >= 2)
        thread.join(timeout=5)
    assert collector.data == [FRAME, FRAME]
    assert receiver.stats.reconnects >= 1
    assert wait_until(lambda: "cannot connect" in (receiver.stats.down_reason or ""))


def test_watchdog_reopens_a_silent_receiver(
    collector: Collector, receivers: list[Receiver]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        accepted: list[socket.socket] = []
        server.settimeout(10)

        def accept_forever() -> None:
            while len(accepted) < 3:
                try:
                    accepted.append(server.accept()[0])  # connected, but never sends
                except OSError:
                    return

        threading.Thread(target=accept_forever, daemon=True).start()
        receiver = run(
            receivers, TcpClientSource("127.0.0.1", port), collector, silence_timeout=0.3
        )
        assert wait_until(lambda: len(accepted) >= 2)
        assert receiver.stats.reconnects >= 1
        for connection in accepted:
            connection.close()
    assert collector.data == []


def test_unreachable_source_backs_off_and_stop_is_prompt(
    collector: Collector, receivers: list[Receiver]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    receiver = Receiver(
        "gone", TcpClientSource("127.0.0.1", port), Lines(), collector, backoff=Backoff(0.01, 0.05)
    )
    receiver.start()
    assert wait_until(lambda: receiver.stats.reconnects >= 3)
    stats = receiver.stats
    assert not stats.up and "cannot connect" in (stats.down_reason or "")
    started = time.monotonic()
    receiver.stop()
    assert time.monotonic() - started < 2
    assert receiver.finished.is_set()


def test_a_pipe_like_stdin_ends_the_receiver(
    collector: Collector, receivers: list[Receiver]
) -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as stream:
        receiver = run(receivers, StreamSource(stream), collector)
        os.write(write_end, (SENSUS + "\n" + SENSUS[:20]).encode())
        time.sleep(0.05)
        os.write(write_end, (SENSUS[20:] + "\n").encode())
        os.close(write_end)
        assert receiver.finished.wait(10)
    assert collector.data == [FRAME, FRAME]
    assert "ended" in (receiver.stats.down_reason or "")


def test_replay_in_real_time_follows_the_offsets(
    tmp_path: Path,
    collector: Collector,
    receivers: list[Receiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    capture = tmp_path / "capture.txt"
    capture.write_text(f"telegram=|{SENSUS}|+0\ntelegram=|{SENSUS}|+0.4\n# comment\n{SENSUS}\n")
    started = time.monotonic()
    receiver = run(receivers, ReplaySource(capture, realtime=True), collector)
    assert receiver.finished.wait(10)
    assert time.monotonic() - started >= 0.4
    times = [frame.received_at for _, frame in collector.frames]
    assert len(times) == 3 and times[1] - times[0] >= 0.35
    fast = Collector()
    replay = run(receivers, ReplaySource(capture), fast)
    assert replay.finished.wait(10)
    assert fast.data == [FRAME] * 3
    finished = [r.getMessage() for r in caplog.records if "finished" in r.getMessage()]
    assert finished == [f"receiver test finished: replay {capture} ended (3 frames)"] * 2


def test_missing_replay_file_is_reported(collector: Collector, receivers: list[Receiver]) -> None:
    receiver = run(receivers, ReplaySource(Path("/nonexistent/capture.txt")), collector)
    assert receiver.finished.wait(10)
    assert "cannot read /nonexistent/capture.txt" in (receiver.stats.down_reason or "")


LINES = [
    f"{SENSUS}\n",
    f"T1;1;1;2024-05-14 12:36:09;97;148;33225544;0x{SENSUS.lower()}\n",
    "garbage\n",
    f"telegram=|{SENSUS}|\r\n",
    '{"model":"Wireless-MBus","mode":"T","data":"' + SENSUS.lower() + '"}\n',
    SENSUS * 50 + "\n",  # longer than any telegram line: one framing error, however it arrives
]
NO_FRAME = ("garbage\n", SENSUS * 50 + "\n")


@given(st.lists(st.sampled_from(LINES), max_size=12), st.data())
def test_line_framer_gives_the_same_events_for_any_split(
    lines: list[str], data: st.DataObject
) -> None:
    stream = "".join(lines).encode()
    whole = LineFramer().feed(stream, 1.0)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    framer = LineFramer()
    pieces = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        pieces += framer.feed(stream[start:end], 1.0)
    assert pieces == whole
    assert sum(isinstance(event, Frame) for event in whole) == sum(
        line not in NO_FRAME for line in lines
    )


@given(st.binary(max_size=2000))
def test_line_framer_never_raises(data: bytes) -> None:
    framer = LineFramer()
    framer.feed(data, 0.0)
    framer.end(0.0)


@pytest.mark.parametrize("host", ["::1", "localhost"])
def test_listeners_take_the_address_family_the_host_resolves_to(
    host: str, collector: Collector, receivers: list[Receiver]
) -> None:
    """An IPv6 or named listen address works for TCP and UDP (a `:` in it no longer decides)."""
    udp, tcp = UdpSource(host, 0), TcpServerSource(host, 0)

    def up(receiver: Receiver) -> bool:
        return receiver.stats.up

    for source in (udp, tcp):
        assert wait_until(partial(up, run(receivers, source, collector)))
    family, _, _, _, address = socket.getaddrinfo(host, udp.port, type=socket.SOCK_DGRAM)[0]
    ip = address[0]
    assert isinstance(ip, str)  # the text of an IPv4 or IPv6 address
    with socket.socket(family, socket.SOCK_DGRAM) as sender:
        sender.sendto(SENSUS.encode(), address[:2])
    with socket.create_connection((ip, tcp.port), timeout=5) as client:
        client.sendall(SENSUS.encode())
    assert wait_until(lambda: len(collector.data) >= 2)
    assert collector.data == [FRAME, FRAME]
