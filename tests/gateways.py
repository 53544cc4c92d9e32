"""Test gateways: what each gateway firmware of docs/receivers.md ("ESP32 gateways") sends, byte
for byte and in the same framing, for the receivers' tests.

- ESPHome `wmbus`, branch `version_4` (SzczepanLeon/esphome-components, components/wmbus):
  `clients:` send each frame to a TCP or UDP listener, `format: hex` as the frame's raw bytes,
  `format: rtlwmbus` as an rtl_wmbus line with upper-case hex; a TCP client connects once per
  frame and closes. `mqtt_raw: true` publishes each frame to
  `[<mqtt_raw_prefix>/]<device name>/wmbus/raw[/<meter id>]` as JSON or an rtl_wmbus line, with
  its own MQTT client (`mqtt:`) connecting once per frame (an empty client ID) or through
  ESPHome's `mqtt:` component.
- ESPHome `wmbus_radio` (the current branch): `on_frame` actions; `frame->as_hex()` (lower-case
  hex) or `frame->as_rtlwmbus()` (an rtl_wmbus line ending in a newline) handed to
  `socket_transmitter.send` (one TCP connection or one UDP datagram per frame) or to
  `mqtt.publish` (the user's topic; docs/receivers.md asks for `wmbus/<device name>/telegram`).
- Kustonium's raw-only bridge: `wmbus/<topic_name>/telegram`, lower-case hex, nothing else.
- rtl_433 with `-F mqtt`: every key of an event on its own topic,
  `rtl_433/<host>/devices/<type>/<model>/<id>/<key>` (the frame on `.../data` as lower-case hex,
  canonical plus the last block's CRC), and the event as JSON on `rtl_433/<host>/events`.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from exporter.wmbus.frame import add_format_a_crcs

from .mosquitto import PASSWORD, USER, Mosquitto


@dataclass(frozen=True)
class Heard:
    """A frame as a gateway's radio hands it on: canonical (CRCs checked and removed), its RSSI
    in dBm as a whole number, its link mode's letter, and when."""

    frame: bytes
    rssi: int
    mode: str = "T"
    at: datetime = datetime(2026, 5, 14, 12, 36, 9, tzinfo=UTC)

    @property
    def meter_id(self) -> str:
        """The address as the frame's ID bytes print it (BCD, most significant first)."""
        return self.frame[4:8][::-1].hex().upper()

    @property
    def time(self) -> str:
        """The time field of ESPHome's rtl_wmbus lines (UTC, hundredths always 00)."""
        return self.at.strftime("%Y-%m-%d %H:%M:%S.00Z")


# --- what each firmware writes


def v4_rtlwmbus(heard: Heard) -> str:
    """`version_4`'s rtl_wmbus line (`clients:` and `mqtt_raw_format: rtlwmbus`), upper-case
    hex; the clients end it with a newline, MQTT does not."""
    return f"{heard.mode}1;1;1;{heard.time};{heard.rssi};;;0x{heard.frame.hex().upper()}"


def v4_raw_json(heard: Heard, parsed: bool = True) -> str:
    """`version_4`'s `mqtt_raw_format: json` (its spacing; `address` only when it parsed the
    header)."""
    address = f'"address": "{heard.meter_id}", ' if parsed else ""
    return (
        f'{{{address}"mode": "{heard.mode}", "rssi": {heard.rssi}, '
        f'"frame": "{heard.frame.hex().upper()}"}}'
    )


def v4_raw_topic(device: str, heard: Heard, prefix: str = "", parsed: bool = True) -> str:
    """`[<mqtt_raw_prefix>/]<device name>/wmbus/raw[/<meter id>]`."""
    topic = f"{device}/wmbus/raw" + (f"/{heard.meter_id}" if parsed else "")
    return f"{prefix}/{topic}" if prefix else topic


def as_hex(heard: Heard) -> str:
    """`wmbus_radio`'s `frame->as_hex()` (ESPHome's `format_hex`: lower case); Kustonium's
    bridge publishes the same."""
    return heard.frame.hex()


def as_rtlwmbus(heard: Heard) -> str:
    """`wmbus_radio`'s `frame->as_rtlwmbus()`: lower-case hex and a newline."""
    return f"{heard.mode}1;1;1;{heard.time};{heard.rssi};;;0x{heard.frame.hex()}\n"


def rtl_433_event(heard: Heard, level: float | None = None) -> dict[str, Any]:
    """rtl_433's Wireless-MBus event (`m_bus.c`): `data` is the canonical frame and the CRC of
    its last block; with `-M level`, `rssi` (dB below full scale), `snr`, `noise`."""
    frame = heard.frame
    event: dict[str, Any] = {
        "time": heard.at.strftime("%Y-%m-%d %H:%M:%S"),
        "model": "Wireless-MBus",
        "mode": heard.mode,
        "M": "EGM",
        "id": int(heard.meter_id),
        "version": frame[8],
        "type": f"0x{frame[9]:02X}",
        "type_string": "Electricity",
        "C": f"0x{frame[1]:02X}",
        "data": (frame + add_format_a_crcs(frame)[-2:]).hex(),
    }
    if level is not None:
        event |= {"rssi": level, "snr": 20.5, "noise": level - 20.5}
    return event


def rtl_433_messages(host: str, heard: Heard, level: float | None = None) -> list[tuple[str, str]]:
    """What rtl_433's MQTT output publishes for one event with its default topics: the event on
    `events`, then each key but `type`, `model` and `subtype` on its `devices` topic
    (`devices[/type][/model][/subtype][/channel][/id]`; `type` and `id` as whole numbers)."""
    event = rtl_433_event(heard, level)
    device = f"rtl_433/{host}/devices/{heard.frame[9]}/Wireless-MBus/{event['id']}"
    messages = [(f"rtl_433/{host}/events", json.dumps(event, separators=(",", ":")))]
    messages += [
        (f"{device}/{key}", str(value))
        for key, value in event.items()
        if key not in ("type", "model", "subtype")
    ]
    return messages


# --- how they send it


def send_tcp(port: int, *writes: bytes) -> None:
    """One TCP connection per frame: connect, write (each part as the firmware writes it), close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        for data in writes:
            connection.sendall(data)


def send_udp(port: int, data: bytes) -> None:
    """One UDP datagram per frame."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(data, ("127.0.0.1", port))


def _client(broker: Mosquitto, client_id: str = "") -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.username_pw_set(USER, PASSWORD)
    return client


def publish_once(broker: Mosquitto, topic: str, payload: str | bytes, retain: bool = False) -> None:
    """`version_4`'s own MQTT client (PubSubClient): for every frame it connects with an empty
    client ID, publishes with QoS 0 and disconnects."""
    client = _client(broker)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=0, retain=retain).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


class Gateway:
    """A gateway that stays connected and publishes with QoS 0, not retained: ESPHome's `mqtt:`
    component (the `wmbus_radio` boards, Kustonium's bridge) and rtl_433's MQTT output."""

    def __init__(self, broker: Mosquitto, name: str) -> None:
        self.client = _client(broker, f"test-gateway-{name}")
        connected = threading.Event()
        self.client.on_connect = lambda *args: connected.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert connected.wait(10), "the test gateway could not connect"

    def publish(self, topic: str, payload: str | bytes) -> None:
        self.client.publish(topic, payload, qos=0).wait_for_publish(10)

    def publish_all(self, messages: Iterator[tuple[str, str]] | list[tuple[str, str]]) -> None:
        for topic, payload in messages:
            self.publish(topic, payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
