"""The simulator: realistic meters whose frames decode to exactly what they meant to send."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.amiplus.clock import WARSAW
from exporter.amiplus.families import FAMILIES, FAMILIES_BY_NAME, Family
from exporter.amiplus.fields import Field, Label, Shape, table
from exporter.amiplus.reading import read_meter, slot_for
from exporter.amiplus.simulated import (
    DEFAULT_KEY,
    GAUGE_MIDDLE,
    GAUGE_SPREAD,
    SimulatedMeter,
    extras,
    g12_tariff,
    simulated_meters,
)
from exporter.daemon import Exporter, default_config
from exporter.pipeline.dedupe import Deduplicator
from exporter.receivers import Frame
from exporter.receivers.sources import SimulatorSource, SourceFinished
from exporter.wmbus import Function, MeterKey, Quantity, decode
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
        assert later.get("energy_imported_kwh") >= earlier.get("energy_imported_kwh")
        assert later.get("energy_exported_kwh") >= earlier.get("energy_exported_kwh")
    assert readings[-1].get("energy_exported_kwh") > readings[0].get("energy_exported_kwh")
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


# --- the simulator follows the field table -------------------------------------------------------


def test_the_shipped_table_adds_no_records_to_any_family() -> None:
    """Every row of fields.py is carried by some family: the telegrams keep the real layouts."""
    assert table().derived(extras).appended == ()
    for family in FAMILIES:
        meter = SimulatedMeter(family, seed=1)
        for record_set in family.record_sets:
            frame, _ = meter.telegram(NOON + timedelta(seconds=meter.sent))
            assert tuple(r.key for r in decode(frame, KEY).records) == record_set


def test_a_new_row_rides_in_the_simulated_telegram_and_grows(water_row: Field) -> None:
    meter = simulated_meters(1)[0]  # the built-in meter of `make run`: an Otus, two record sets
    litres = []
    for n in range(12):
        record_set = meter.family.record_sets[meter.sent % 2]
        frame, intended = meter.telegram(NOON + timedelta(minutes=10 * n))
        telegram = decode(frame, KEY)
        assert [r.key for r in telegram.records] == [*record_set, "0E13"]  # BCD12, litres
        got = read_meter(telegram)
        assert got.get("water_m3") == intended.get("water_m3")
        assert got.get("energy_imported_kwh", 0) <= intended.get("energy_imported_kwh")
        litres.append(got.get("water_m3"))
    assert all(later > earlier for earlier, later in itertools.pairwise(litres))
    assert 100 <= litres[0] < 1000  # a register that has been counting for a while


FREQUENCY = Field(
    "frequency_hz",
    Shape.SINGLE,
    Label("Frequency", "Częstotliwość"),
    (Quantity.FREQUENCY, Function.INSTANTANEOUS, False),
    unit="Hz",
)
APPARENT_POWER = Field(
    "apparent_power_va",
    Shape.PHASES,
    Label("Apparent power", "Moc pozorna"),
    (Quantity.APPARENT_POWER, Function.INSTANTANEOUS, False),
    unit="VA",
)
APPARENT_ENERGY = Field(
    "apparent_energy_kvah",
    Shape.TARIFFS,
    Label("Apparent energy", "Energia pozorna"),
    (Quantity.APPARENT_ENERGY, Function.INSTANTANEOUS, False),
    unit="kVAh",
    unit_exponent=3,
    register=True,
    tariff_key="apparent_energy_tariff_kvah",
    derived_key="apparent_energy_derived",
)


def test_rows_the_physics_does_not_know_follow_their_shape(add_rows: Callable[..., None]) -> None:
    """A gauge wanders within its range, per phase gives L1-L3, a register with tariffs grows
    only in the G12 zone of the moment; each decodes to what the meter meant."""
    add_rows(FREQUENCY, APPARENT_POWER, APPARENT_ENERGY)
    gama = FAMILIES_BY_NAME["gama"]  # one record set
    meter = SimulatedMeter(gama, seed=5)
    start = datetime(2026, 1, 14, 23, 0, tzinfo=UTC)  # midnight in Warsaw: tariff 2
    readings = []
    for n in range(96):
        frame, intended = meter.telegram(start + timedelta(minutes=15 * n))
        telegram = decode(frame, KEY)
        assert (
            tuple(r.key for r in telegram.records)[: len(gama.record_sets[0])]
            == (gama.record_sets[0])
        )
        got = read_meter(telegram)
        for key in ("frequency_hz", "apparent_power_va", "apparent_energy_kvah"):
            assert got.get(key) == intended.get(key), key
        tariffs = intended.get("apparent_energy_tariff_kvah")
        assert got.get("apparent_energy_tariff_kvah") == {1: tariffs[1], 2: tariffs[2]}
        readings.append(got)
    hertz = [r.get("frequency_hz") for r in readings]
    assert all(abs(f - GAUGE_MIDDLE) <= GAUGE_SPREAD for f in hertz) and len(set(hertz)) > 10
    assert all(set(r.get("apparent_power_va")) == {"L1", "L2", "L3"} for r in readings)
    for earlier, later in itertools.pairwise(readings):
        assert later.meter_time is not None
        zone = g12_tariff(later.meter_time)
        before = earlier.get("apparent_energy_tariff_kvah")
        after = later.get("apparent_energy_tariff_kvah")
        assert after[3 - zone] == before[3 - zone] and after[zone] >= before[zone]
        assert sum(after.values()) <= later.get("apparent_energy_kvah") < sum(after.values()) + 2
    first = readings[0].get("apparent_energy_tariff_kvah")
    last = readings[-1].get("apparent_energy_tariff_kvah")
    assert last[1] > first[1] and last[2] > first[2]  # a day has both zones


def test_a_new_row_reaches_the_exporters_state_and_metrics(water_row: Field) -> None:
    """The built-in configuration of `make run`, fed the simulated meter's frames in-process."""
    exporter = Exporter(default_config())
    meter = simulated_meters(1)[0]
    received = time.time()
    decoded = []
    for n in range(4):
        frame, _ = meter.telegram(NOON + timedelta(minutes=10 * n))
        decoded.append(read_meter(decode(frame, KEY)).get("water_m3"))
        exporter.intake.on_frame("simulator", Frame(frame, received + n))
    assert decoded == sorted(set(decoded))
    (state,) = exporter.state.snapshot()
    assert state.values["water_m3"] == decoded[-1] and state.telegrams == 4
    assert exporter.status()["meters"][0]["values"]["water_m3"] == decoded[-1]
    text = exporter.exposition.render()
    (water,) = [
        f for f in text_string_to_metric_families(text) if f.name == "amiplus_water_cubic_meters"
    ]
    assert water.type == "counter"
    assert [(s.labels, s.value) for s in water.samples] == [({"meter_id": "12345678"}, decoded[-1])]
