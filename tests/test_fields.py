"""The one field table: a new row reaches the JSON of `decode`, the state and its register guard,
Prometheus, InfluxDB and the status page, with no other change."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from exporter.amiplus import fields
from exporter.amiplus.fields import Field, MetricType, Shape
from exporter.amiplus.reading import read_meter
from exporter.config import Config, InfluxConfig
from exporter.outputs import ConfigReloads, ExporterCollector, Exposition, registry
from exporter.outputs.influx import InfluxOutput, point
from exporter.pipeline.handoff import MeterUpdate
from exporter.pipeline.state import State
from exporter.web.status import status
from exporter.wmbus import Address, MeterKey, decode
from exporter.wmbus.encoder import encode_frame, encode_record
from exporter.wmbus.link import manufacturer_code

KEY = bytes(range(16))
METER = Address(manufacturer_code("APA"), bytes.fromhex("78563412"), 1, 0x02)


def telegram(litres: int, watts: int, access_number: int) -> bytes:
    records = encode_record(bytes.fromhex("0C13"), litres) + encode_record(
        bytes.fromhex("0B2B"), watts
    )
    return encode_frame(METER, records, access_number=access_number, key=KEY)


def test_a_new_row_appears_in_every_output(water_row: Field, tmp_path: Path) -> None:
    key = MeterKey.from_bytes(KEY)
    first = read_meter(decode(telegram(12_345, 500, 1), key))
    assert first.as_json()["water_m3"] == 12.345  # decode's JSON, scaled from litres

    state = State()
    accepted, merged = state.record("12345678", "home", first, 100.0, "r")
    assert merged["water_m3"] == 12.345
    lower = read_meter(decode(telegram(12_000, 400, 2), key))
    accepted, merged = state.record("12345678", "home", lower, 110.0, "r")
    assert accepted.get("water_m3") is None and merged["water_m3"] == 12.345  # guarded
    assert state.snapshot()[0].rejected == {"register_decreased": 1}

    collector = ExporterCollector(state, list, list, ConfigReloads())
    text = Exposition(state, registry(collector), clock=lambda: 120.0).render()
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    water = parsed["amiplus_water_cubic_meters"]
    assert water.type == "counter"
    assert [(s.labels, s.value) for s in water.samples] == [({"meter_id": "12345678"}, 12.345)]

    line = point(first, "home", 100.0)
    assert line is not None and "water_m3=12.345" in line
    spool = InfluxConfig("http://127.0.0.1:9", api="v1", database="x", spool=tmp_path)
    output = InfluxOutput(spool)
    output.submit(MeterUpdate("12345678", "home", first, merged, 100.0, "r"))
    assert b"water_m3=12.345" in b"".join(p.read_bytes() for p in tmp_path.glob("*.lp"))

    page = status(Config((), ()), state, receivers=[], heard=[], started_at=0.0)
    (row,) = [f for f in page["fields"] if f["key"] == "water_m3"]
    assert row["label"] == {"en": "Water", "pl": "Woda"} and row["unit"] == "m³"
    assert page["meters"][0]["values"]["water_m3"] == 12.345


def test_without_the_row_the_record_stays_unknown() -> None:
    reading = read_meter(decode(telegram(12_345, 500, 1), MeterKey.from_bytes(KEY)))
    assert "water_m3" not in reading.as_json()
    assert [u.key for u in reading.unknown] == ["0C13"]


def test_every_row_is_consistent() -> None:
    """Keys are unique; tariffs come with their keys and metrics; units say what they are."""
    keys = [row.key for row in fields.FIELDS]
    assert len(keys) == len(set(keys))
    for row in fields.FIELDS:
        assert row.label.en and row.label.pl
        tariffs = row.shape is Shape.TARIFFS
        assert bool(row.tariff_key) == tariffs == bool(row.derived_key), row.key
        assert (row.tariff_metric is not None) == tariffs == bool(row.influx_tariff), row.key
        if row.shape is Shape.PHASES:
            assert row.influx is not None and "{}" in row.influx
        if row.register:
            assert row.metric is not None and row.metric.type is MetricType.COUNTER, row.key
        if row.home_assistant is not None and row.home_assistant.state_class:
            assert row.home_assistant.unit == (row.unit or None), row.key
