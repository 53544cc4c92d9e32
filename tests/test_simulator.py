"""The simulator: realistic meters whose frames decode to exactly what they meant to send."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from exporter.amiplus.clock import WARSAW
from exporter.amiplus.families import FAMILIES, Family
from exporter.amiplus.reading import read_meter, slot_for
from exporter.amiplus.simulated import (
    DEFAULT_KEY,
    SimulatedMeter,
    g12_tariff,
    simulated_meters,
)
from exporter.pipeline.dedupe import Deduplicator
from exporter.receivers.sources import SimulatorSource, SourceFinished
from exporter.wmbus import MeterKey, decode
from exporter.wmbus.records import parse_header

KEY = MeterKey.from_bytes(DEFAULT_KEY)
NOON = datetime(2026, 6, 21, 10, 30, tzinfo=UTC)  # 12:30 in Warsaw, midsummer


def resolution(key: str) -> float:
    slot = slot_for(parse_header(bytes.fromhex(key)))
    assert slot is not None
    return 10.0**slot.exponent


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_family_decodes_to_what_the_meter_meant(family: Family) -> None:
    meter = SimulatedMeter(family, meter_id="20240001", seed=7)
    for n in range(2 * len(family.record_sets)):
        now = NOON + timedelta(seconds=30 * n)
        record_set = family.record_sets[meter.sent % len(family.record_sets)]
        access_number = meter.access_number
        frame, intended = meter.telegram(now)
        got = read_meter(decode(frame, KEY))
        assert (got.meter_id, got.manufacturer, got.version) == (
            "20240001",
            family.manufacturer,
            family.version,
        )
        assert got.access_number == access_number
        for key in record_set:
            header = parse_header(bytes.fromhex(key))
            slot = slot_for(header)
            if slot is None:
                continue
            row = slot.field
            if row.key in ("meter_time", "serial_number"):
                assert got.get(row.key) == intended.get(row.key)
                continue
            wanted, actual = intended.get(row.key), got.get(row.key)
            if slot.phase:
                wanted, actual = wanted[slot.phase], actual[slot.phase]
            elif slot.tariff:
                wanted = intended.get(row.tariff_key)[slot.tariff]
                actual = got.get(row.tariff_key)[slot.tariff]
            assert abs(actual - wanted) <= resolution(key) / 2 + 1e-9, key


def test_a_prosumer_day() -> None:
    meter = simulated_meters(1)[0]
    start = datetime(2026, 6, 20, 22, 0, tzinfo=UTC)
    readings = [meter.reading(start + timedelta(minutes=5 * n)) for n in range(24 * 12)]
    exported_at = [
        r.meter_time.hour for r in readings if r.get("power_exported_w") and r.meter_time
    ]
    assert exported_at and min(exported_at) >= 7 and max(exported_at) <= 19
    assert max(r.get("power_exported_w") or 0 for r in readings) > 1000
    night = [r for r in readings if r.meter_time and r.meter_time.hour in (2, 3)]
    assert all(r.get("power_imported_w") and not r.get("power_exported_w") for r in night)
    volts = [v for r in readings for v in r.get("voltage_v", {}).values()]
    assert min(volts) >= 224 and max(volts) <= 252 and max(volts) - min(volts) > 4
    for earlier, later in itertools.pairwise(readings):
        assert later.get("energy_imported_kwh") >= earlier.get("energy_imported_kwh")  # type: ignore[operator]
        assert later.get("energy_exported_kwh") >= earlier.get("energy_exported_kwh")  # type: ignore[operator]
    assert readings[-1].get("energy_exported_kwh") > readings[0].get("energy_exported_kwh")  # type: ignore[operator]
    midday = [r for r in readings if r.meter_time and 11 <= r.meter_time.hour <= 13]
    exporting = [r for r in midday if r.get("power_exported_w")]
    assert sum(r.get("voltage_v", {})["L1"] for r in exporting) / len(exporting) > sum(
        r.get("voltage_v", {})["L1"] for r in night
    ) / len(night)


def test_g12_tariff_hours() -> None:
    def local(hour: int) -> datetime:
        return datetime(2026, 1, 15, hour, 30, tzinfo=WARSAW)

    assert [g12_tariff(local(h)) for h in (5, 6, 12, 13, 14, 15, 21, 22, 23)] == [
        2,
        1,
        1,
        2,
        2,
        1,
        1,
        2,
        2,
    ]


def test_constant_and_counting_access_numbers() -> None:
    nes = SimulatedMeter(next(f for f in FAMILIES if f.name == "nes"))
    otus = SimulatedMeter(next(f for f in FAMILIES if f.name == "otus"))
    numbers = []
    for n in range(3):
        numbers.append((nes.access_number, otus.access_number))
        nes.telegram(NOON + timedelta(seconds=n))
        otus.telegram(NOON + timedelta(seconds=n))
    assert [a for a, _ in numbers] == [9, 9, 9]
    assert [(b - numbers[0][1]) % 256 for _, b in numbers] == [0, 1, 2]


def test_source_paces_or_runs_fast_and_ends_after_count() -> None:
    source = SimulatorSource(simulated_meters(2), interval=10, realtime=False, count=4)
    source.open()
    lines = [chunk.data for _ in range(4) for chunk in source.read(1.0)]
    assert len(lines) == 4 and all(line.endswith(b"\n") for line in lines)
    ids = [read_meter(decode(bytes.fromhex(line.decode()), KEY)).meter_id for line in lines]
    assert ids == ["12345678", "12345679", "12345678", "12345679"]
    with pytest.raises(SourceFinished):
        source.read(1.0)
    paced = SimulatorSource(simulated_meters(1), interval=0.2, realtime=True)
    paced.open()
    assert paced.read(1.0)
    assert paced.read(0.05) == []  # the next one is not due yet


def test_deduplicator_passes_a_frame_once_per_window() -> None:
    dedupe = Deduplicator(window=5.0, limit=3)
    assert dedupe.first(b"a", 0.0)
    assert not dedupe.first(b"a", 1.0)  # the same frame from a second receiver
    assert not dedupe.first(b"a", 4.9)  # a repeat does not extend the window
    assert dedupe.first(b"a", 5.1)
    assert dedupe.first(b"b", 5.2) and dedupe.first(b"c", 5.3) and dedupe.first(b"d", 5.4)
    assert len(dedupe) <= 3  # bounded
    assert dedupe.first(b"a", 5.5)  # pushed out by the bound: passes again rather than grow
