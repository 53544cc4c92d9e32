"""ESP32 gateways and rtl_433, each as its firmware sends (tests/gateways.py), into one exporter:
an MQTT receiver on Debian's mosquitto, a UDP and a TCP listener. Every telegram is checked down
to the decoded reading in the state and the signal each gateway reported; each gateway is a
receiver view of its own, with the best of them named."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter import daemon
from exporter.amiplus.simulated import SimulatedMeter, simulated_meters
from exporter.config import parse_config
from exporter.pipeline import MeterState

from . import gateways
from .conftest import free_port, wait_until
from .gateways import Gateway, Heard
from .mosquitto import PASSWORD, USER, Mosquitto
from .servers import SIMULATED_KEY

METER = f'meters:\n  - id: "12345678"\n    key: "{SIMULATED_KEY}"\n    name: home\n'
#: What the simulated meter (family otus) puts in every telegram exactly as its physics has it.
CARRIED = (
    "energy_imported_kwh",
    "energy_exported_kwh",
    "power_imported_w",
    "power_exported_w",
    "serial_number",
)


class House:
    """An exporter (in this process) with an MQTT receiver `gateways` on the test broker and the
    listeners `udp` and `tcp`, and a simulated meter whose telegrams the gateways forward."""

    def __init__(self, broker: Mosquitto, directory: Path, extra_receivers: str = "") -> None:
        self.udp, self.tcp = free_port(), free_port()
        text = (
            f"{METER}receivers:\n"
            f"  - type: mqtt\n    name: gateways\n    host: 127.0.0.1\n    port: {broker.port}\n"
            f"    username: {USER}\n    password: {PASSWORD}\n"
            f"  - type: lines\n    name: udp\n    listen: udp://127.0.0.1:{self.udp}\n"
            f"  - type: lines\n    name: tcp\n    listen: tcp://127.0.0.1:{self.tcp}\n"
            f"{extra_receivers}"
            f"state:\n  directory: {directory}\n"
        )
        self.exporter = daemon.Exporter(parse_config(text, base=directory))
        self.meter: SimulatedMeter = simulated_meters(1)[0]
        self.sent = 0
        self.exporter.start()
        assert wait_until(lambda: all(v.up for v in self.exporter.receiver_stats()), 20), (
            self.exporter.receiver_stats()
        )

    def heard(self, rssi: int) -> tuple[Heard, dict[str, Any]]:
        """A new telegram of the meter as a gateway's radio hears it, and what it says."""
        frame, reading = self.meter.telegram(datetime.now(UTC))
        self.sent += 1
        return Heard(frame, rssi), {key: reading.values[key] for key in CARRIED}

    def decoded(self) -> MeterState:
        """The meter once every telegram sent so far is in the state."""
        assert wait_until(lambda: self.meter_state().telegrams == self.sent, 20), (
            self.meter_state(),
            self.exporter.receiver_stats(),
        )
        return self.meter_state()

    def meter_state(self) -> MeterState:
        (meter,) = self.exporter.state.snapshot()
        return meter

    def check(self, values: dict[str, Any], receiver: str, rssi: float | None) -> None:
        """The latest telegram was decoded to `values`, came through `receiver`, which heard it
        at `rssi`."""
        meter = self.decoded()
        assert {key: meter.values[key] for key in values} == values
        assert meter.receiver == receiver
        assert meter.receptions[receiver].rssi_dbm == rssi

    def metrics(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        body = self.exporter.exposition.body(compressed=False).decode()
        out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
        return out

    def stop(self) -> None:
        self.exporter.stop()


@pytest.fixture
def house(broker: Mosquitto, tmp_path: Path) -> Iterator[House]:
    made = House(broker, tmp_path)
    yield made
    made.stop()


@pytest.fixture
def gateway(broker: Mosquitto) -> Iterator[Callable[[str], Gateway]]:
    """Connected test gateways, closed after the test."""
    made: list[Gateway] = []

    def connect(name: str) -> Gateway:
        made.append(Gateway(broker, name))
        return made[-1]

    yield connect
    for each in made:
        each.close()


def test_esphome_version_4_clients_over_tcp_and_udp(house: House) -> None:
    """`clients:` with `format: hex` send the frame's raw bytes, `format: rtlwmbus` a line;
    TCP connects once per frame, and writes the line in as many parts as its printf calls: the
    head, each byte's two digits, the newline."""
    heard, values = house.heard(-71)
    gateways.send_tcp(house.tcp, heard.frame)
    house.check(values, "tcp", None)
    heard, values = house.heard(-72)
    gateways.send_udp(house.udp, heard.frame)
    house.check(values, "udp", None)
    heard, values = house.heard(-73)
    head = gateways.v4_rtlwmbus(heard).split("0x")[0] + "0x"
    digits = [f"{byte:02X}".encode() for byte in heard.frame]
    gateways.send_tcp(house.tcp, head.encode(), *digits, b"\n")
    house.check(values, "tcp", -73.0)
    heard, values = house.heard(-74)
    gateways.send_udp(house.udp, (gateways.v4_rtlwmbus(heard) + "\n").encode())
    house.check(values, "udp", -74.0)


def test_esphome_version_4_mqtt_raw(house: House, broker: Mosquitto) -> None:
    """`mqtt_raw: true` with its own MQTT client (a connection per frame): JSON to
    `<device>/wmbus/raw/<meter id>`, or without the ID when the header was not parsed; the
    rtl_wmbus format; each device is a receiver view of its own."""
    heard, values = house.heard(-65)
    gateways.publish_once(
        broker, gateways.v4_raw_topic("wmbusgw", heard), gateways.v4_raw_json(heard)
    )
    house.check(values, "gateways/wmbusgw", -65.0)
    heard, values = house.heard(-66)
    topic = gateways.v4_raw_topic("attic", heard, parsed=False)
    gateways.publish_once(broker, topic, gateways.v4_raw_json(heard, parsed=False))
    house.check(values, "gateways/attic", -66.0)
    heard, values = house.heard(-67)
    gateways.publish_once(
        broker, gateways.v4_raw_topic("wmbusgw", heard), gateways.v4_rtlwmbus(heard)
    )
    house.check(values, "gateways/wmbusgw", -67.0)
    views = {view.name: view for view in house.exporter.receiver_stats()}
    assert views["gateways/wmbusgw"].frames == 2
    assert views["gateways/attic"].frames == 1
    assert views["gateways"].frames == 0


def test_esphome_wmbus_radio_with_socket_transmitter(house: House) -> None:
    """`socket_transmitter.send` of `frame->as_hex()` (no newline) or `frame->as_rtlwmbus()`:
    one TCP connection or one UDP datagram per frame."""
    for send, port, name in (
        (gateways.send_tcp, house.tcp, "tcp"),
        (gateways.send_udp, house.udp, "udp"),
    ):
        heard, values = house.heard(-80)
        send(port, gateways.as_hex(heard).encode())
        house.check(values, name, None)
        heard, values = house.heard(-81)
        send(port, gateways.as_rtlwmbus(heard).encode())
        house.check(values, name, -81.0)


def test_esphome_wmbus_radio_with_mqtt_publish(
    house: House, gateway: Callable[[str], Gateway]
) -> None:
    """`mqtt.publish` of `frame->as_rtlwmbus()` or `as_hex()` to `wmbus/<device>/telegram`."""
    board = gateway("kitchen")
    heard, values = house.heard(-58)
    board.publish("wmbus/kitchen/telegram", gateways.as_rtlwmbus(heard))
    house.check(values, "gateways/kitchen", -58.0)
    heard, values = house.heard(-59)
    board.publish("wmbus/kitchen/telegram", gateways.as_hex(heard))
    house.check(values, "gateways/kitchen", None)


def test_kustonium_raw_only_bridge(house: House, gateway: Callable[[str], Gateway]) -> None:
    """`wmbus/<topic_name>/telegram`, lower-case hex; its diagnostics under the same device
    (`wmbus/<name>/diag/...`) are not subscribed to."""
    board = gateway("xiao_s3")
    board.publish("wmbus/xiao_s3/diag/summary", '{"event":"summary","rx":12}')
    heard, values = house.heard(-90)
    board.publish("wmbus/xiao_s3/telegram", gateways.as_hex(heard))
    house.check(values, "gateways/xiao_s3", None)
    views = {view.name: view for view in house.exporter.receiver_stats()}
    assert sum(views["gateways/xiao_s3"].errors.values()) == 0


def test_rtl_433_mqtt_output(
    broker: Mosquitto, tmp_path: Path, gateway: Callable[[str], Gateway]
) -> None:
    """rtl_433 publishes every key of an event on its own `devices` topic and the event on
    `events`: the default filter takes the `data` key (no signal there); a receiver of the
    `events` topic gets the signal too (with `-M level`, dB below full scale)."""
    events = "  - type: mqtt\n    name: events\n    topics: rtl_433/+/events\n"
    shared = f"mqtt:\n  host: 127.0.0.1\n  port: {broker.port}\n  username: {USER}\n"
    shared += f"  password: {PASSWORD}\n  discovery_prefix: false\n"
    made = House(broker, tmp_path, events + shared)
    try:
        sdr = gateway("raspberrypi")
        heard, values = made.heard(-60)
        sdr.publish_all(gateways.rtl_433_messages("raspberrypi", heard, level=-12.5))
        meter = made.decoded()
        assert {key: meter.values[key] for key in values} == values
        assert wait_until(lambda: len(made.meter_state().receptions) == 2, 10)
        receptions = made.meter_state().receptions
        assert {name: r.rssi_dbm for name, r in receptions.items()} == {
            "gateways/raspberrypi": None,  # the `data` topic carries the frame alone
            "events/raspberrypi": -12.5,
        }
        assert made.meter_state().best_receiver == "events/raspberrypi"
        assert made.exporter.state.counts().duplicates == 1  # one telegram, two topics
    finally:
        made.stop()


def test_three_gateways_one_reading_and_the_best_of_them(
    house: House, gateway: Callable[[str], Gateway]
) -> None:
    """The same telegram from three boards is one reading; each board's signal is kept, the
    best is named, and each board is a receiver in every receiver family."""
    boards = {"roof": -62, "cellar": -91, "garage": -77}
    heard, values = house.heard(0)
    for name, rssi in boards.items():
        gateway(name).publish(
            f"wmbus/{name}/telegram", gateways.as_rtlwmbus(Heard(heard.frame, rssi))
        )
    meter = house.decoded()
    assert {key: meter.values[key] for key in values} == values
    assert wait_until(lambda: len(house.meter_state().receptions) == 3, 10)
    meter = house.meter_state()
    assert {name: r.rssi_dbm for name, r in meter.receptions.items()} == {
        f"gateways/{name}": float(rssi) for name, rssi in boards.items()
    }
    assert meter.best_receiver == "gateways/roof"
    assert house.exporter.state.counts().duplicates == 2
    metrics = house.metrics()
    ident = ("meter_id", "12345678")
    assert metrics["amiplus_meter_best_receiver_info"] == {
        (ident, ("receiver", "gateways/roof")): 1.0
    }
    for name, rssi in boards.items():
        labels = (("receiver", f"gateways/{name}"),)
        assert metrics["amiplus_receiver_frames_total"][labels] == 1.0
        assert metrics["amiplus_receiver_up"][labels] == 1.0
        assert metrics["amiplus_meter_receiver_rssi_dbm"][(ident, labels[0])] == rssi
    assert metrics["amiplus_receiver_gateways_refused_total"] == {(("receiver", "gateways"),): 0.0}
    page = house.exporter.status()
    names = [r["name"] for r in page["receivers"]]
    assert names[:1] == ["gateways"] and set(names) >= {f"gateways/{n}" for n in boards}
    assert page["meters"][0]["best_receiver"] == "gateways/roof"
