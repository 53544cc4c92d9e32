"""MQTT discovery and state documents without a broker: every family's entities checked
against Home Assistant's documented rules for MQTT sensors (written here as data), the Energy
dashboard pair for a tariff-only prosumer, tariff registers for G12/G13, the table as the one
source, the bounded queue, and the `mqtt:` configuration."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter.amiplus import fields
from exporter.amiplus.families import FAMILIES, FAMILIES_BY_NAME, MAKERS, model_of
from exporter.amiplus.fields import Field, HomeAssistant, Label, Shape
from exporter.amiplus.reading import MeterReading, read_meter
from exporter.amiplus.simulated import DEFAULT_KEY, SimulatedMeter
from exporter.config import ConfigError, Scheme, parse_config
from exporter.config.mqtt import MqttConfig
from exporter.net import Broker
from exporter.outputs.mqtt import (
    QUEUE_SIZE,
    Identity,
    MqttOutput,
    Topics,
    entities,
    entity_keys,
    settled_keys,
    state_payload,
)
from exporter.pipeline.handoff import MeterUpdate
from exporter.pipeline.state import State
from exporter.wmbus import MeterKey, decode
from exporter.wmbus.records import Function
from exporter.wmbus.vif import Quantity

# --- Home Assistant's rules, as data ----------------------------------------------------------
# Units per sensor device class: developers.home-assistant.io, "Sensor entity", "Available device
# classes". State classes per device class: Home Assistant core, sensor/const.py
# (DEVICE_CLASS_STATE_CLASSES); a timestamp takes no state class and no unit.
DEVICE_CLASS_UNITS: dict[str | None, set[str | None]] = {
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW"},
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "current": {"A", "mA"},
    "reactive_energy": {"varh", "kvarh"},
    "reactive_power": {"mvar", "var", "kvar"},
    "signal_strength": {"dB", "dBm"},
    "timestamp": {None},
    "monetary": {"PLN"},  # an ISO 4217 code
    None: {"PLN/kWh"},  # no device class: any unit (a price)
}
DEVICE_CLASS_STATE_CLASSES: dict[str | None, set[str | None]] = {
    "energy": {"total", "total_increasing"},
    "reactive_energy": {"total", "total_increasing"},
    "power": {"measurement"},
    "voltage": {"measurement"},
    "current": {"measurement"},
    "reactive_power": {"measurement"},
    "signal_strength": {"measurement"},
    "timestamp": {None},
    "monetary": {"total"},
    None: {"measurement"},
}
# home-assistant.io, "MQTT Sensor" and "MQTT Binary sensor": configuration variables. Discovery
# ignores unknown keys, so a misspelt key would pass silently: only these are allowed here.
SENSOR_KEYS = {
    "availability",
    "availability_mode",
    "device",
    "device_class",
    "entity_category",
    "name",
    "origin",
    "qos",
    "state_class",
    "state_topic",
    "suggested_display_precision",
    "unique_id",
    "unit_of_measurement",
    "value_template",
}
BINARY_SENSOR_KEYS = {
    "device",
    "device_class",
    "entity_category",
    "name",
    "origin",
    "payload_off",
    "payload_on",
    "qos",
    "state_topic",
    "unique_id",
}
REQUIRED = {"state_topic", "unique_id", "device", "name"}  # state_topic by HA; the rest by us
DEVICE_KEYS = {"identifiers", "name", "manufacturer", "model", "serial_number", "sw_version"}
BINARY_SENSOR_CLASSES = {"connectivity"}
ENTITY_CATEGORIES = {"diagnostic"}  # a sensor may not be a "config" entity
AVAILABILITY_MODES = {"all", "any", "latest"}
# <discovery_prefix>/<component>/[<node_id>/]<object_id>/config, ids of [a-zA-Z0-9_-].
DISCOVERY_TOPIC = r"{prefix}/(sensor|binary_sensor)/(?:[a-zA-Z0-9_-]+/)?[a-zA-Z0-9_-]+/config"
# What the Energy dashboard accepts as grid consumption and return to grid.
ENERGY_DASHBOARD = {"device_class": "energy", "state_class": {"total", "total_increasing"}}


def check_discovery(topic: str, payload: bytes, prefix: str = "homeassistant") -> dict[str, Any]:
    """One discovery message against the rules above; the document."""
    match = re.fullmatch(DISCOVERY_TOPIC.format(prefix=re.escape(prefix)), topic)
    assert match, f"not a discovery topic: {topic}"
    document: dict[str, Any] = json.loads(payload)
    component = match.group(1)
    allowed = SENSOR_KEYS if component == "sensor" else BINARY_SENSOR_KEYS
    assert set(document) <= allowed, f"{topic}: unknown keys {set(document) - allowed}"
    assert set(document) >= REQUIRED, f"{topic}: missing {REQUIRED - set(document)}"
    device = document["device"]
    assert set(device) <= DEVICE_KEYS | {"via_device"}
    assert device["identifiers"] and all(isinstance(i, str) for i in device["identifiers"])
    name = document["name"]
    assert name and not name.lower().startswith(device["name"].lower()), (
        f"{topic}: Home Assistant puts the device name in front itself: {name!r}"
    )
    assert document.get("entity_category", "diagnostic") in ENTITY_CATEGORIES
    assert document["qos"] in (0, 1, 2)
    assert document["origin"]["name"]
    if component == "binary_sensor":
        assert document["device_class"] in BINARY_SENSOR_CLASSES
        return document
    device_class = document.get("device_class")
    assert device_class in DEVICE_CLASS_UNITS, f"{topic}: device class {device_class}"
    assert document.get("unit_of_measurement") in DEVICE_CLASS_UNITS[device_class], topic
    assert document.get("state_class") in DEVICE_CLASS_STATE_CLASSES[device_class], topic
    precision = document.get("suggested_display_precision")
    assert precision is None or (isinstance(precision, int) and precision >= 0)
    assert document["availability_mode"] in AVAILABILITY_MODES
    assert all(set(a) == {"topic"} for a in document["availability"])
    assert re.fullmatch(
        r"\{\{ value_json\.[a-z_]+(\.L[123]|\['[1-4]'\])? \}\}", document["value_template"]
    ), document["value_template"]
    return document


# --- readings of every family -----------------------------------------------------------------


def merged(family: str, meter_id: str = "12345678") -> tuple[MeterReading, dict[str, Any]]:
    """The last reading and the merged values after one telegram of each record set."""
    meter = SimulatedMeter(FAMILIES_BY_NAME[family], meter_id=meter_id)
    state = State()
    start = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    accepted: MeterReading | None = None
    values: dict[str, Any] = {}
    for n in range(len(meter.family.record_sets)):
        frame, _ = meter.telegram(start + timedelta(seconds=30 * n))
        reading = read_meter(decode(frame, MeterKey.from_bytes(DEFAULT_KEY)), rssi_dbm=-71.0)
        accepted, values = state.record(meter_id, "home", reading, 1_782_900_000.0 + n, "sim")
    assert accepted is not None
    return accepted, values


def announced(topics: Topics, family: str, meter_id: str = "12345678") -> dict[str, bytes]:
    reading, values = merged(family, meter_id)
    identity = Identity(
        "home", reading.manufacturer, reading.version, reading.device_type, values["serial_number"]
    )
    return {
        topics.discovery(meter_id, key): topics.sensor(meter_id, identity, entities()[key])
        for key in entity_keys(values)
    }


TOPICS = Topics(MqttConfig(Broker("127.0.0.1")))


@pytest.mark.parametrize("family", [f.name for f in FAMILIES])
def test_every_family_announces_valid_sensors(family: str) -> None:
    documents = announced(TOPICS, family)
    checked = [check_discovery(topic, payload) for topic, payload in documents.items()]
    ids = [d["unique_id"] for d in checked]
    assert len(ids) == len(set(ids))
    exporter = check_discovery(TOPICS.exporter_discovery, TOPICS.exporter())
    for document in checked:
        assert document["device"]["via_device"] in exporter["device"]["identifiers"]
        assert document["device"]["manufacturer"] == MAKERS[FAMILIES_BY_NAME[family].manufacturer]
        assert document["device"]["model"] == FAMILIES_BY_NAME[family].model
        assert document["device"]["serial_number"] == "12345678"
        assert {"topic": "amiplus/status"} in document["availability"]
    by_class = {d["unique_id"].removeprefix("amiplus_12345678_"): d for d in checked}
    assert by_class["last_telegram"]["device_class"] == "timestamp"
    assert by_class["rssi_dbm"]["entity_category"] == "diagnostic"


def test_a_tariff_only_prosumer_gets_the_energy_dashboard_pair() -> None:
    """Apator APA v2 with tariffs and no totals: the totals are summed from the tariffs and
    announced as energy, total_increasing, kWh, like any meter's."""
    reading, values = merged("apa-v2-tariffs")
    assert "energy_imported_kwh" not in {r.key for r in reading.unknown}
    assert values["energy_imported_derived"] is True
    assert values["energy_exported_derived"] is True
    documents = announced(TOPICS, "apa-v2-tariffs")
    for key, name in (
        ("energy_imported_kwh", "Energy imported"),
        ("energy_exported_kwh", "Energy exported"),
    ):
        document = json.loads(documents[TOPICS.discovery("12345678", key)])
        assert document["name"] == name
        assert document["device_class"] == ENERGY_DASHBOARD["device_class"]
        assert document["state_class"] in ENERGY_DASHBOARD["state_class"]
        assert document["unit_of_measurement"] == "kWh"
    state = json.loads(state_payload(update(reading, values)))
    assert state["energy_imported_kwh"] == pytest.approx(
        sum(state["energy_imported_tariff_kwh"].values())
    )
    assert state["energy_exported_kwh"] > 0  # a prosumer


@pytest.mark.parametrize(("family", "tariffs"), [("apa-v2-tariffs", 2), ("otus", 3), ("gama", 4)])
def test_tariff_registers_for_g12_and_g13(family: str, tariffs: int) -> None:
    documents = announced(TOPICS, family)
    for direction in ("imported", "exported"):
        found = sorted(
            json.loads(payload)["name"]
            for topic, payload in documents.items()
            if re.search(rf"/energy_{direction}_t\d_kwh/config$", topic)
        )
        assert found == [f"Energy {direction} tariff {t}" for t in range(1, tariffs + 1)]


def update(
    reading: MeterReading, values: dict[str, Any], at: float = 1_782_900_000.25
) -> MeterUpdate:
    return MeterUpdate("12345678", "home", reading, values, at, "sim")


def test_the_state_is_the_decode_json_of_the_merged_values() -> None:
    reading, values = merged("otus")
    state = json.loads(state_payload(update(reading, values)))
    decoded = MeterReading(
        reading.meter_id,
        reading.manufacturer,
        reading.version,
        reading.device_type,
        reading.access_number,
        values=values,
    ).as_json()
    del decoded["ok"]
    assert state == {**decoded, "received_at": "2026-07-01T10:00:00.250+00:00"}
    keys = list(state)
    assert keys[:5] == ["meter_id", "manufacturer", "version", "device_type", "access_number"]
    assert keys[-1] == "received_at"


def test_a_new_row_of_the_table_becomes_an_entity(monkeypatch: pytest.MonkeyPatch) -> None:
    water = Field(
        "water_m3",
        Shape.SINGLE,
        Label("Water", "Woda"),
        (Quantity.VOLUME, Function.INSTANTANEOUS, False),
        unit="m³",
        home_assistant=HomeAssistant("water", "total_increasing", "m³", 3),
    )
    monkeypatch.setattr(fields, "FIELDS", (*fields.FIELDS, water))
    assert entity_keys({"water_m3": 1.5})[0] == "water_m3"
    document = json.loads(
        TOPICS.sensor("12345678", Identity("home", "APA", 1, 2, None), entities()["water_m3"])
    )
    assert (document["name"], document["value_template"]) == ("Water", "{{ value_json.water_m3 }}")
    assert "serial_number" not in document["device"]


def test_a_settled_meters_entities_follow_home_assistants_rules() -> None:
    identity = Identity("home", "APA", 1, 2, "12345678")
    totals = []
    for scheme in (Scheme.NET_BILLING, Scheme.NET_METERING):
        for key in settled_keys(scheme):
            payload = TOPICS.sensor("12345678", identity, entities()[key])
            document = check_discovery(TOPICS.discovery("12345678", key), payload)
            assert document["state_topic"] == "amiplus/12345678/settlement"
            assert document["value_template"] == f"{{{{ value_json.{key} }}}}"
            assert document["device"]["identifiers"] == ["amiplus_12345678"]  # the meter's
            if document.get("state_class") == "total_increasing":
                assert document["device_class"] == ENERGY_DASHBOARD["device_class"]
                totals.append(key)
    assert sorted(set(totals)) == ["balanced_exported_total_kwh", "balanced_imported_total_kwh"]


def test_every_family_identity_has_one_model() -> None:
    for family in FAMILIES:
        assert model_of(family.manufacturer, family.version, family.device_type) == family.model
        assert family.manufacturer in MAKERS
    assert model_of("XYZ", 1, 2) is None
    device = TOPICS.device("1", Identity("m", "XYZ", 7, 2, None))
    assert (device["manufacturer"], device["model"]) == ("XYZ", "XYZ version 7")


# --- the output without a broker --------------------------------------------------------------


def test_a_full_queue_drops_and_counts_never_blocks() -> None:
    """Nothing drains the queue (the output is not started): updates beyond its bound are
    dropped at once and counted; memory stays bounded."""
    output = MqttOutput(MqttConfig(Broker("127.0.0.1", port=9)), State())
    reading, values = merged("otus")
    for _ in range(QUEUE_SIZE + 25):
        output.submit(update(reading, values))
    assert output.errors["queue_full"] == 25
    assert output.status()["updates_dropped"] == 25
    assert output.status()["queued_updates"] == QUEUE_SIZE
    samples = {s.name + str(s.labels): s.value for m in output.collect() for s in m.samples}
    assert samples["amiplus_mqtt_errors_total{'reason': 'queue_full'}"] == 25
    assert samples["amiplus_mqtt_connected{}"] == 0


PROBE = """
import json, sys
import exporter.daemon as daemon
exporter = daemon.Exporter(daemon.default_config())
exporter.start()
exporter.stop()
print(json.dumps(sorted(m for m in sys.modules if m.startswith("paho"))))
"""


@pytest.mark.integration
def test_the_daemon_without_mqtt_does_not_import_paho() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == []


# --- the mqtt: section ------------------------------------------------------------------------

METER = """
meters:
  - id: "12345678"
    key: "000102030405060708090A0B0C0D0E0F"
receivers:
  - type: simulator
"""


def problems(text: str, env: dict[str, str] | None = None, base: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(METER + text, "amiplus.yml", env or {}, base)
    return [p.format("amiplus.yml") for p in caught.value.problems]


def test_a_small_mqtt_section_and_its_defaults() -> None:
    config = parse_config(METER + "mqtt:\n  host: mosquitto\n", env={}).mqtt
    assert config == MqttConfig(Broker("mosquitto"))
    assert (config.broker.port, config.base_topic, config.discovery_prefix) == (
        1883,
        "amiplus",
        "homeassistant",
    )
    assert (config.qos, config.retain, config.client_name) == (1, True, "amiplus-exporter-amiplus")
    assert config.broker.where == "mqtt://mosquitto:1883"


def test_every_mqtt_setting(tmp_path: Path) -> None:
    for name in ("ca.crt", "client.crt", "client.key"):
        (tmp_path / name).write_text("-----BEGIN-----\n")
    (tmp_path / "password").write_text("pass-from-file\n")
    text = """mqtt:
  host: broker.lan
  tls:
    ca_file: ca.crt
    cert_file: client.crt
    key_file: client.key
  username: ha
  password_file: password
  client_id: exporter-attic
  base_topic: home/energy
  discovery_prefix: false
  qos: 0
  retain: false
"""
    config = parse_config(METER + text, env={}, base=tmp_path).mqtt
    assert config is not None and config.broker.tls is not None
    assert (config.broker.port, config.broker.tls.ca_file, config.broker.tls.key_file) == (
        8883,
        tmp_path / "ca.crt",
        tmp_path / "client.key",
    )
    assert (config.broker.password, config.client_name, config.discovery_prefix) == (
        "pass-from-file",
        "exporter-attic",
        None,
    )
    assert (config.qos, config.retain, config.base_topic) == (0, False, "home/energy")
    assert "pass-from-file" not in repr(config)
    assert config.broker.where == "mqtts://broker.lan:8883"
    env = parse_config(
        METER + "mqtt:\n  host: h\n  username: u\n  password: ${MQTT_PASSWORD}\n  tls: true\n",
        env={"MQTT_PASSWORD": "from-env"},
    ).mqtt
    assert env is not None and env.broker.password == "from-env" and env.broker.tls is not None


def test_every_mqtt_problem_at_once_without_the_password(tmp_path: Path) -> None:
    text = """mqtt:
  host: mqtt://broker
  port: 70000
  tls:
    ca_file: missing-ca.crt
    cert_file: missing.crt
  password: "s3cret-value"
  client_id: "two words"
  base_topic: "amiplus/#"
  discovery_prefix: "/homeassistant"
  qos: 3
  retain: maybe
  keepalive: 5
"""
    found = problems(text, base=tmp_path)
    topic_rule = (
        "must be letters, digits, '_', '-' and '.' in levels separated by single '/' (no "
        "wildcards, no '/' at either end, at most 200 characters)"
    )
    assert found == [
        "amiplus.yml:8: mqtt host must be a host name or address only, not 'mqtt://broker'",
        "amiplus.yml:9: mqtt port must be between 1 and 65535, not 70000",
        f"amiplus.yml:11: mqtt tls ca_file: cannot read {tmp_path / 'missing-ca.crt'}: No such "
        "file or directory",
        "amiplus.yml:11: mqtt tls: a client certificate needs both cert_file and key_file",
        f"amiplus.yml:12: mqtt tls cert_file: cannot read {tmp_path / 'missing.crt'}: No such "
        "file or directory",
        "amiplus.yml:13: mqtt: a password needs a username",
        "amiplus.yml:14: mqtt client_id must be 1-128 printable characters without spaces, not "
        "'two words'",
        f"amiplus.yml:15: mqtt base_topic {topic_rule}, not 'amiplus/#'",
        f"amiplus.yml:16: mqtt discovery_prefix {topic_rule}, not '/homeassistant'",
        "amiplus.yml:17: mqtt qos must be one of 0, 1, 2, not '3'",
        "amiplus.yml:18: mqtt retain must be true or false, not 'maybe'",
        "amiplus.yml:19: mqtt: unknown key 'keepalive'; known: host, port, tls, username, "
        "password, password_file, client_id, base_topic, discovery_prefix, qos, retain",
    ]
    assert not any("s3cret-value" in p for p in found)
    assert problems("mqtt:\n  port: 1883\n") == [
        "amiplus.yml:8: mqtt: give the broker's host, e.g. 127.0.0.1 or mosquitto"
    ]
    assert problems("mqtt:\n  host: h\n  base_topic: homeassistant\n") == [
        "amiplus.yml:8: mqtt: base_topic and discovery_prefix must differ"
    ]
