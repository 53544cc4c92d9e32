"""The mqtt receiver's faults on Debian's mosquitto: a broker down at the start and restarted
(down with the reason in metrics and on the page, the backoff starting again after a good session,
subscriptions restored), messages that are no telegram (counted, never fatal), a flood (the inbox
bounded, drops counted; gateway views bounded, refusals counted), a refused subscription, and
`listen --receiver mqtt:...`."""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter import daemon
from exporter.amiplus.simulated import simulated_meters
from exporter.config import parse_config
from exporter.net import Broker
from exporter.outputs.prometheus import receiver_families
from exporter.plumbing import Backoff
from exporter.receivers import Frame, parse_spec
from exporter.receivers.build import build_receiver
from exporter.receivers.lines import Lines
from exporter.receivers.mqtt import MqttSource
from exporter.receivers.receiver import Receiver

from . import gateways
from .conftest import wait_until
from .gateways import Gateway, Heard, as_rtlwmbus
from .mosquitto import PASSWORD, USER, Mosquitto
from .servers import CONSOLE_SCRIPT, SIMULATED_KEY

PIP = Path(sys.prefix) / "bin" / "pip"  # what the advice on a missing extra names
SENSUS = bytes.fromhex("1844AE4C4455223368077A55000000041389E20100023B0000")
FAST = Backoff(first=0.2, cap=3.2)


class Sink:
    """A frame sink that remembers what arrived, by receiver view; `hold` blocks it."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, Frame]] = []
        self.lock = threading.Lock()
        self.hold = threading.Event()
        self.hold.set()

    def __call__(self, receiver: str, frame: Frame) -> None:
        self.hold.wait(30)
        with self.lock:
            self.frames.append((receiver, frame))

    def names(self) -> list[str]:
        with self.lock:
            return [name for name, _ in self.frames]


def source(
    broker: Mosquitto, topics: tuple[str, ...] = ("wmbus/+/telegram",), **options: int
) -> MqttSource:
    login = Broker("127.0.0.1", broker.port, username=USER, password=PASSWORD, client_id="rx")
    return MqttSource(login, topics, **options)


def start(made: list[Receiver], mqtt: MqttSource, sink: Sink) -> Receiver:
    receiver = Receiver("gw", mqtt, Lines(), sink, backoff=FAST)
    made.append(receiver)
    receiver.start()
    assert wait_until(lambda: receiver.stats.up, 20), receiver.stats
    return receiver


@pytest.mark.integration
def test_a_broker_down_at_the_start_is_said_then_taken_when_it_comes(tmp_path: Path) -> None:
    """The exporter starts while the broker is down: the receiver is down with the broker's
    reason in `amiplus_receiver_up` and on the page, with advice; once the broker runs, it is up
    and decodes."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.stop()
    text = (
        f'meters:\n  - id: "12345678"\n    key: "{SIMULATED_KEY}"\n'
        f"receivers:\n  - type: mqtt\n    name: gw\n    host: 127.0.0.1\n    port: {broker.port}\n"
        f"    username: {USER}\n    password: {PASSWORD}\n"
        f"state:\n  directory: {tmp_path}\n"
    )
    exporter = daemon.Exporter(parse_config(text, base=tmp_path))
    exporter.start()
    try:
        assert wait_until(lambda: exporter.receiver_stats()[0].down_code == "broker", 10)
        (page,) = exporter.status(private=True)["receivers"]
        assert page["up"] is False
        assert "refused the connection (is the broker running?)" in page["down_reason"]
        assert "broker" in page["advice"]["en"] and "broker" in page["advice"]["pl"]
        assert PASSWORD not in json.dumps(exporter.status(private=True))
        assert exporter.status()["receivers"][0]["down_reason"] is None  # not to strangers
        body = exporter.exposition.body(compressed=False).decode()
        assert 'amiplus_receiver_up{receiver="gw"} 0.0' in body
        broker.start()
        assert wait_until(lambda: exporter.receiver_stats()[0].up, 20)
        board = Gateway(broker, "kitchen")
        try:
            (meter,) = simulated_meters(1)
            frame, _ = meter.telegram(datetime.now(UTC))
            board.publish("wmbus/kitchen/telegram", as_rtlwmbus(Heard(frame, -70)))
            assert wait_until(lambda: exporter.state.snapshot()[0].telegrams == 1, 20)
        finally:
            board.close()
        assert exporter.state.snapshot()[0].receiver == "gw/kitchen"
        up = 'amiplus_receiver_up{receiver="gw/kitchen"} 1.0'
        # the body is rendered again once it is a second old (MAX_AGE)
        assert wait_until(lambda: up in exporter.exposition.body(compressed=False).decode(), 5)
    finally:
        exporter.stop()
        broker.stop()


@pytest.mark.integration
def test_a_broker_restart_is_retried_at_once_and_the_subscriptions_come_back(
    tmp_path: Path, receivers: list[Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    """After outages that grew the backoff, a session the broker accepted starts it again from
    its first delay; after the restart the receiver subscribes again (mosquitto keeps nothing)."""
    broker = Mosquitto(tmp_path / "mosquitto")
    try:
        broker.stop()
        sink = Sink()
        receiver = Receiver("gw", source(broker), Lines(), sink, backoff=FAST)
        receivers.append(receiver)
        with caplog.at_level(logging.WARNING, logger="exporter.receivers"):
            receiver.start()
            assert wait_until(lambda: receiver.stats.reconnects >= 4, 20)  # 0.2+0.4+0.8+1.6 s
            broker.start()
            assert wait_until(lambda: receiver.stats.up, 20)
            caplog.clear()
            broker.stop()
            assert wait_until(lambda: not receiver.stats.up, 20)
            assert wait_until(lambda: "retrying" in caplog.text, 10)
        delays = [float(d) for d in re.findall(r"retrying in ([0-9.]+) s", caplog.text)]
        assert delays[0] <= FAST.first * 1.2 + 0.05, caplog.text  # started again, not 3.2 s
        reason = receiver.stats.down_reason or ""
        assert "was lost" in reason or "refused" in reason, reason
        broker.start()
        assert wait_until(lambda: receiver.stats.up, 20)
        board = Gateway(broker, "kitchen")
        try:
            board.publish("wmbus/kitchen/telegram", SENSUS.hex())
            assert wait_until(lambda: sink.names() == ["gw/kitchen"], 10)
        finally:
            board.close()
    finally:
        broker.stop()


BAD = {
    "hello": "framing",
    SENSUS.hex()[:-1]: "framing",  # an odd number of digits
    '{"frame": 5}': "framing",
    '{"rssi": -70}': "framing",
    '{"model": "Acurite-Tower", "id": 1}': "framing",
    "T1;0;0;2026-01-01 10:00:00.00Z;-70;;;0x" + SENSUS.hex(): "crc",
    "[1, 2]": "framing",
}


def test_bad_payloads_are_frame_errors_with_their_reason_and_the_receiver_goes_on(
    broker: Mosquitto, receivers: list[Receiver]
) -> None:
    sink = Sink()
    receiver = start(receivers, source(broker), sink)
    board = Gateway(broker, "garage")
    try:
        for payload in BAD:
            board.publish("wmbus/garage/telegram", payload)
        binary_junk = bytes([0x30, 0x00, 0xFF, 0x7F])  # L = 48, four bytes
        board.publish("wmbus/garage/telegram", binary_junk)
        board.publish("wmbus/garage/telegram", b"A" * 100_000)  # text without an end
        board.publish("wmbus/garage/telegram", bytes(range(256)) * 40)  # binary, too long
        board.publish("wmbus/garage/telegram", "")  # clears a retained message: nothing
        board.publish("wmbus/garage/telegram", SENSUS)  # raw binary, fine
        assert wait_until(lambda: sink.names() == ["gw/garage"], 10)
    finally:
        board.close()
    expected = Counter(BAD.values()) + Counter(framing=3)  # and the three above
    assert wait_until(lambda: receiver.views()[1].errors == expected, 10), receiver.views()
    own, garage = receiver.views()
    assert garage.frames == 1 and own.frames == 0 and sum(own.errors.values()) == 0
    assert receiver.stats.up and receiver.stats.reconnects == 0


def test_a_retained_telegram_is_old_and_skipped(
    broker: Mosquitto, receivers: list[Receiver]
) -> None:
    """`version_4` may publish retained: the broker hands the last one over on subscribing
    (old, skipped); the live ones arrive unretained."""
    old = SENSUS[:11] + b"\x56" + SENSUS[12:]  # the telegram before (another access number)
    gateways.publish_once(broker, "wmbusgw/wmbus/raw", old.hex().upper(), retain=True)
    sink = Sink()
    receiver = start(receivers, source(broker, ("+/wmbus/raw/#",)), sink)
    gateways.publish_once(broker, "wmbusgw/wmbus/raw", SENSUS.hex().upper(), retain=True)
    assert wait_until(sink.names, 10)
    assert [frame.data for _, frame in sink.frames] == [SENSUS]  # the old one never came
    assert sum(sum(v.errors.values()) for v in receiver.views()) == 0
    gateways.publish_once(broker, "wmbusgw/wmbus/raw", "", retain=True)  # clear it


def test_a_flood_is_bounded_and_what_was_dropped_is_counted(
    broker: Mosquitto, receivers: list[Receiver]
) -> None:
    """While the receiver is busy (its sink blocked), a gateway sends 300 telegrams: the inbox
    keeps at most its limit, the rest is dropped and counted, and every one is accounted for."""
    sink = Sink()
    receiver = start(receivers, source(broker, inbox_limit=20), sink)
    board = Gateway(broker, "flood")
    try:
        sink.hold.clear()
        board.publish("wmbus/flood/telegram", SENSUS.hex())
        assert wait_until(lambda: sum(v.frames for v in receiver.views()) == 1, 10)  # held
        for _ in range(300):
            board.publish("wmbus/flood/telegram", SENSUS.hex())
        sink.hold.set()

        def accounted() -> bool:
            return len(sink.names()) + (receiver.stats.dropped or 0) == 301

        assert wait_until(accounted, 20), (len(sink.names()), receiver.stats)
        assert receiver.stats.dropped, receiver.stats
        body = "".join(str(f) for f in receiver_families(receiver.views()))
        assert "amiplus_receiver_messages_dropped" in body
        board.publish("wmbus/flood/telegram", SENSUS.hex())  # and it goes on
        assert wait_until(lambda: len(sink.names()) + (receiver.stats.dropped or 0) == 302, 10)
        assert receiver.stats.up
    finally:
        board.close()


def test_made_up_gateway_names_cannot_grow_the_views(
    broker: Mosquitto, receivers: list[Receiver]
) -> None:
    """100 gateway names: 64 get a view, the rest count under the receiver and as refused."""
    sink = Sink()
    receiver = start(receivers, source(broker), sink)
    board = Gateway(broker, "forger")
    try:
        for number in range(100):
            board.publish(f"wmbus/forged{number}/telegram", SENSUS.hex())
        board.publish("wmbus/" + "x" * 65 + "/telegram", SENSUS.hex())  # too long a name
        assert wait_until(lambda: len(sink.names()) == 101, 20)
    finally:
        board.close()
    views = receiver.views()
    assert len(views) == 1 + 64
    own = views[0]
    assert own.gateways_refused == 37 and own.frames == 37
    assert sink.names().count("gw") == 37


@pytest.mark.integration
def test_a_refused_subscription_is_said(receivers: list[Receiver]) -> None:
    """A broker that denies a filter (SUBACK return code 0x80, MQTT 3.1.1 section 3.9; mosquitto
    2.0 grants and then delivers nothing, so a stand-in answers as the standard says): the
    receiver is down and names the filter."""
    server = socket.create_server(("127.0.0.1", 0))

    def broker() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(4096)  # CONNECT
            connection.sendall(bytes([0x20, 0x02, 0x00, 0x00]))  # CONNACK: accepted
            subscribe = connection.recv(4096)  # SUBSCRIBE: 0x82, length, packet id, filters
            packet_id = subscribe[2:4]
            connection.sendall(bytes([0x90, 0x04]) + packet_id + bytes([0x00, 0x80]))
            connection.recv(4096)

    threading.Thread(target=broker, daemon=True).start()
    login = Broker("127.0.0.1", server.getsockname()[1], client_id="rx")
    mqtt = MqttSource(login, ("wmbus/+/telegram", "secret/#"))
    receiver = Receiver("gw", mqtt, Lines(), Sink(), backoff=Backoff(first=30, cap=30))
    receivers.append(receiver)
    receiver.start()
    try:
        assert wait_until(lambda: receiver.stats.down_code == "broker", 10)
        assert "refused the subscription to secret/#" in (receiver.stats.down_reason or "")
        assert not mqtt.accepted()
    finally:
        server.close()


def test_listen_finds_meters_through_a_broker(broker: Mosquitto, tmp_path: Path) -> None:
    """`listen --receiver mqtt:HOST:PORT/FILTER,username=...,password_file=...` prints each
    meter heard, with the gateway that heard it."""
    (tmp_path / "pw").write_text(PASSWORD)
    spec = f"mqtt:127.0.0.1:{broker.port}/wmbus/+/telegram,username={USER},"
    spec += f"password_file={tmp_path / 'pw'}"
    assert parse_spec(spec).broker is not None
    process = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "listen", "--receiver", spec, "--json", "--duration", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    board = Gateway(broker, "listen")
    try:
        assert process.stdout is not None
        first = threading.Event()
        lines: list[str] = []

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                first.set()

        threading.Thread(target=read, daemon=True).start()
        while not first.is_set() and process.poll() is None:
            board.publish("wmbus/hall/telegram", as_rtlwmbus(Heard(SENSUS, -66)))
            first.wait(0.5)
        heard = json.loads(lines[0])
        assert (heard["meter_id"], heard["receiver"], heard["rssi_dbm"]) == (
            "33225544",
            "mqtt/hall",
            -66.0,
        )
    finally:
        board.close()
        process.terminate()
        process.wait(10)


def test_check_config_names_the_extra_a_missing_library_would_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from exporter.cli import main

    path = tmp_path / "amiplus.yml"
    path.write_text(
        f'meters:\n  - id: "12345678"\n    key: "{SIMULATED_KEY}"\n'
        "receivers:\n  - type: mqtt\n    name: esp\n    host: 192.0.2.1\n"
    )
    assert main(["check-config", str(path)]) == 0
    assert (
        "receiver esp: mqtt on mqtt://192.0.2.1:1883 wmbus/+/telegram +/wmbus/raw/#"
        in capsys.readouterr().out
    )
    monkeypatch.setitem(sys.modules, "paho", None)  # as if not installed
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "the mqtt receiver 'esp' needs the 'mqtt' extra: in your clone" in err
    assert f"{PIP} install '.[mqtt]'" in err


def test_a_missing_library_leaves_the_receiver_out_in_one_plain_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    text = (
        f'meters:\n  - id: "12345678"\n    key: "{SIMULATED_KEY}"\n'
        "receivers:\n  - type: mqtt\n    name: esp\n    host: 192.0.2.1\n"
        f"state:\n  directory: {tmp_path}\n"
    )
    exporter = daemon.Exporter(parse_config(text, base=tmp_path))
    with caplog.at_level(logging.ERROR, logger="exporter"):
        exporter.start()
    try:
        assert [r.getMessage() for r in caplog.records] == [
            "receiver esp not started: the mqtt receiver needs the 'mqtt' extra: in your clone "
            f"of amiplus-exporter, run {PIP} install '.[mqtt]'"
        ]
        assert caplog.records[0].exc_info is None
    finally:
        exporter.stop()


def test_a_receiver_built_from_the_grammar_gets_a_client_id_of_its_own(
    broker: Mosquitto, receivers: list[Receiver]
) -> None:
    spec = parse_spec(f"mqtt:127.0.0.1:{broker.port},username={USER},name=attic")
    receiver = build_receiver(spec, Sink())
    assert isinstance(receiver.source, MqttSource)
    assert re.fullmatch(r"amiplus-exporter-attic-[0-9a-f]{8}", receiver.source.broker.client_id)
    other = build_receiver(spec, Sink()).source
    assert isinstance(other, MqttSource)
    assert other.broker.client_id != receiver.source.broker.client_id
