"""Meter state and the Prometheus exposition built from it."""

from __future__ import annotations

import gzip
import threading
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.reading import read_meter
from exporter.amiplus.simulated import DEFAULT_KEY, SimulatedMeter
from exporter.outputs import ConfigReloads, ExporterCollector, Exposition, registry
from exporter.outputs.exposition import MAX_AGE, served_while_rendering
from exporter.pipeline.state import State, stale_after
from exporter.receivers import ReceiverStats
from exporter.wmbus import MeterKey, decode

from .conftest import reading

KEY = MeterKey.from_bytes(DEFAULT_KEY)
T0 = datetime(2026, 6, 21, 10, 0, tzinfo=UTC)


def test_alternating_record_sets_are_merged() -> None:
    meter = SimulatedMeter(FAMILIES_BY_NAME["otus"], meter_id="12345678")
    state = State()
    for n in range(2):  # set 1 (time, serial, tariffs), then set 2 (totals, no time)
        frame, _ = meter.telegram(T0 + timedelta(seconds=30 * n))
        state.record("12345678", "home", read_meter(decode(frame, KEY)), 1000.0 + 30 * n, "r")
    (merged,) = state.snapshot()
    values = merged.values
    assert {"meter_time", "serial_number", "energy_imported_kwh", "power_imported_w"} <= set(values)
    assert set(values["energy_imported_tariff_kwh"]) == {1, 2, 3}
    assert set(values["voltage_v"]) == {"L1", "L2", "L3"}
    assert merged.telegrams == 2 and list(merged.intervals) == [30.0]


def test_a_register_that_steps_back_is_rejected_until_it_persists() -> None:
    state = State()
    state.record("m", "home", reading(energy_imported_kwh=100.0), 1.0, "r")
    accepted, merged = state.record(
        "m",
        "home",
        reading(
            energy_imported_kwh=99.0, energy_imported_tariff_kwh={1: 5.0}, power_imported_w=7.0
        ),
        2.0,
        "r",
    )
    assert accepted.get("energy_imported_kwh") is None and accepted.get("power_imported_w") == 7.0
    assert merged["energy_imported_kwh"] == 100.0 and merged["power_imported_w"] == 7.0
    (meter,) = state.snapshot()
    assert meter.values["energy_imported_kwh"] == 100.0
    assert meter.rejected == {"register_decreased": 1}
    state.record("m", "home", reading(energy_imported_kwh=99.5), 3.0, "r")
    assert state.snapshot()[0].values["energy_imported_kwh"] == 100.0
    state.record("m", "home", reading(energy_imported_kwh=99.6), 4.0, "r")  # third time: replaced
    meter = state.snapshot()[0]
    assert meter.values["energy_imported_kwh"] == 99.6
    assert meter.rejected == {"register_decreased": 2}
    state.record("m", "home", reading(energy_imported_tariff_kwh={1: 4.0}), 5.0, "r")
    assert state.snapshot()[0].values["energy_imported_tariff_kwh"] == {1: 5.0}


def test_stale_after_follows_the_meters_interval_within_bounds() -> None:
    assert stale_after(deque(), None) == 600.0
    assert stale_after(deque([30.0, 31.0, 30.0]), None) == 150.0  # five times the median
    assert stale_after(deque([2.0]), None) == 60.0
    assert stale_after(deque([3600.0]), None) == 3600.0
    assert stale_after(deque([30.0]), 12.0) == 12.0


@pytest.fixture
def exposition() -> tuple[State, Exposition, list[float]]:
    now = [2000.0]
    state = State(stale_after_seconds=60)
    receiver = ReceiverStats("stick", "/dev/ttyUSB0", frames=5, up=True, down_reason=None)
    receiver.errors["crc"] = 2
    collector = ExporterCollector(state, lambda: [receiver], list, ConfigReloads(True, 1000.0))
    return state, Exposition(state, registry(collector), clock=lambda: now[0]), now


def families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(text)
    }


def test_exposition_values_units_and_labels(
    exposition: tuple[State, Exposition, list[float]],
) -> None:
    state, metrics, _ = exposition
    state.record(
        "12345678",
        'attic "west"\\ wing',
        reading(
            energy_imported_kwh=1.5,
            energy_imported_tariff_kwh={1: 1.0, 2: 0.5},
            power_exported_w=300.0,
            voltage_v={"L1": 231.0},
            rssi_dbm=-70.0,
            meter_time=datetime(2026, 6, 21, 12, 0, tzinfo=UTC),
            reactive_energy_imported_kvarh=2.0,
        ),
        1990.0,
        "stick",
    )
    text = metrics.body().decode()
    parsed = families(text)
    ident = {"meter_id": "12345678"}
    assert parsed["amiplus_energy_imported_joules"] == [(ident, 5_400_000.0)]
    assert parsed["amiplus_energy_imported_tariff_joules"] == [
        ({**ident, "tariff": "1"}, 3_600_000.0),
        ({**ident, "tariff": "2"}, 1_800_000.0),
    ]
    assert parsed["amiplus_reactive_energy_imported_var_hours"] == [(ident, 2000.0)]
    assert parsed["amiplus_power_exported_watts"] == [(ident, 300.0)]
    assert parsed["amiplus_voltage_volts"] == [({**ident, "phase": "L1"}, 231.0)]
    assert parsed["amiplus_meter_clock_timestamp_seconds"] == [(ident, 1_782_043_200.0)]
    ((info, _),) = parsed["amiplus_meter_info"]
    assert info["name"] == 'attic "west"\\ wing'  # escaped in the text, intact when parsed
    assert parsed["amiplus_receiver_frame_errors"][0] == (
        {"receiver": "stick", "reason": "crc"},
        2.0,
    )
    assert parsed["amiplus_receiver_up"] == [({"receiver": "stick"}, 1.0)]
    assert "# TYPE amiplus_energy_imported_joules_total counter" in text
    assert "power_imported_w" not in text and "amiplus_power_imported_watts" not in text


def test_a_silent_meter_keeps_only_info_and_last_telegram(
    exposition: tuple[State, Exposition, list[float]],
) -> None:
    state, metrics, now = exposition
    state.record("12345678", "home", reading(power_imported_w=5.0), 1990.0, "stick")
    assert "amiplus_power_imported_watts" in families(metrics.render())
    now[0] = 1990.0 + 61
    parsed = families(metrics.render())
    assert "amiplus_power_imported_watts" not in parsed
    assert parsed["amiplus_meter_last_telegram_timestamp_seconds"] == [
        ({"meter_id": "12345678"}, 1990.0)
    ]
    assert parsed["amiplus_meter_stale"] == [({"meter_id": "12345678"}, 1.0)]
    assert parsed["amiplus_meter_info"]


def test_new_telegrams_change_the_cached_lines_and_bodies_are_shared(
    exposition: tuple[State, Exposition, list[float]],
) -> None:
    state, metrics, _ = exposition
    state.record("12345678", "home", reading(power_imported_w=5.0), 1990.0, "stick")
    assert families(metrics.render())["amiplus_power_imported_watts"][0][1] == 5.0
    state.record("12345678", "home", reading(power_imported_w=6.0), 1995.0, "stick")
    assert families(metrics.render())["amiplus_power_imported_watts"][0][1] == 6.0
    first = metrics.body(compressed=True)
    assert first[:2] == b"\x1f\x8b"
    state.record("12345678", "home", reading(power_imported_w=7.0), 1996.0, "stick")
    assert metrics.body(compressed=True) is first  # within MAX_AGE: the same body
    assert MAX_AGE <= 1.0
    plain = metrics.body()
    assert plain == gzip.decompress(first)  # a plain answer is the same body expanded
    assert families(plain.decode())["amiplus_power_imported_watts"][0][1] == 6.0


class HeldRender(Collector):
    """A collector that, once `hold` is set, keeps a render waiting until `release` is set."""

    def __init__(self) -> None:
        self.hold = False
        self.renders = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def collect(self) -> Iterator[Metric]:
        self.renders += 1
        if self.hold:
            self.entered.set()
            assert self.release.wait(10), "the test never released the render"
        yield GaugeMetricFamily("amiplus_held", "A render's marker.", value=1)


def test_a_due_body_is_served_while_a_new_one_renders_unless_it_is_too_old() -> None:
    state = State(stale_after_seconds=60)
    state.record("12345678", "home", reading(power_imported_w=5.0), 1990.0, "stick")
    held, ticks = HeldRender(), [0.0]
    metrics = Exposition(state, registry(held), clock=lambda: 2000.0, timer=lambda: ticks[0])
    first = metrics.body(compressed=True)  # no body yet: rendered by this scrape
    held.hold = True
    ticks[0] = MAX_AGE + 0.5  # due, and young enough to serve while the next renders
    assert metrics.body(compressed=True) is first  # at once; a render starts in the background
    assert held.entered.wait(10)
    assert metrics.body(compressed=True) is first  # one render at a time
    ticks[0] = served_while_rendering(0.0) + 0.5  # too old to serve: this scrape waits
    bodies: list[bytes] = []
    waiter = threading.Thread(target=lambda: bodies.append(metrics.body(compressed=True)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not bodies
    held.release.set()
    waiter.join(10)
    assert bodies and bodies[0] is not first
    assert held.renders == 2  # the waiter got the background render's body, not one of its own
    assert "amiplus_held 1.0" in gzip.decompress(bodies[0]).decode()


def test_history_keeps_one_point_per_step_and_wraps() -> None:
    from exporter.web.history import History

    history = History(fields=2, capacity=3, step=10.0)
    assert len(history) == 0 and history.columns() == [[], []]
    history.add((100.0, 1.0))
    history.add((105.0, 2.0))  # the same step: replaces
    history.add((111.0, None))
    assert history.columns() == [[105.0, 111.0], [2.0, None]]
    for n in range(3):
        history.add((120.0 + 10 * n, float(n)))
    assert history.columns() == [[120.0, 130.0, 140.0], [0.0, 1.0, 2.0]]  # the oldest gone


def test_the_page_history_follows_merged_values_and_forgets_removed_meters() -> None:
    from exporter.pipeline.handoff import MeterUpdate
    from exporter.web.history import PageHistory

    history = PageHistory()
    merged: tuple[dict[str, Any], ...] = ({"power_imported_w": 5.0}, {"voltage_v": {"L2": 231.0}})
    for n, values in enumerate(merged):
        history.submit(MeterUpdate("m", "home", reading(), values, 100.0 + 20 * n, "r"))
    columns = history.columns("m")
    assert columns is not None
    assert columns["t"] == [100.0, 120.0] and columns["import_w"] == [5.0, None]
    assert columns["L2"] == [None, 231.0]
    history.meters_changed({"other": "garage"})
    assert history.columns("m") is None


def test_the_charts_average_five_minutes_for_the_first_sixteen_meters_only() -> None:
    from exporter.pipeline.handoff import MeterUpdate
    from exporter.web.history import CHART_METERS, DAY_POINTS, DAY_STEP, PageHistory

    history = PageHistory()
    start = 1_800_000_000.0  # a multiple of five minutes
    for n, watts in enumerate((100.0, 300.0, 1000.0)):  # two in the first step, one in the next
        values = {"power_imported_w": watts, "power_exported_w": 0.0}
        at = start + (0, 60, DAY_STEP)[n]
        history.submit(MeterUpdate("m", "home", reading(), values, at, "r"))
    day = history.day_columns("m")
    assert day == {
        "t": [start, start + DAY_STEP],
        "import_w": [200.0, 1000.0],
        "export_w": [0.0, 0.0],
    }
    for n in range(DAY_POINTS + 3):  # a day and a quarter of an hour: the oldest are gone
        values = {"power_imported_w": float(n)}
        history.submit(MeterUpdate("m", "home", reading(), values, start + DAY_STEP * n, "r"))
    day = history.day_columns("m")
    assert day is not None and len(day["t"]) == DAY_POINTS and day["import_w"][-1] == DAY_POINTS + 2
    for n in range(CHART_METERS + 4):
        history.submit(MeterUpdate(f"x{n}", "x", reading(), {"power_imported_w": 1.0}, start, "r"))
    kept = [n for n in range(CHART_METERS + 4) if history.day_columns(f"x{n}") is not None]
    assert kept == list(range(CHART_METERS - 1))  # "m" holds the first place
    hours = [n for n in range(CHART_METERS + 4) if history.columns(f"x{n}") is not None]
    assert hours == kept  # the hour's charts too: a fleet's meters cost no chart memory
    assert history.columns("x0") == {"t": [start], "import_w": [1.0]} | {
        name: [None] for name in ("export_w", "L1", "L2", "L3")
    }
    history.meters_changed({"x19": "x"})
    history.submit(MeterUpdate("x19", "x", reading(), {"power_imported_w": 2.0}, start, "r"))
    assert history.day_columns("x19") is not None  # a place came free
