"""A golden file of `/metrics`: the exposition of a fixed set of readings, byte for byte.

A change to a family name, help text, label or unit shows up here as a diff. To accept a
deliberate change: UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_exposition.py
"""

from __future__ import annotations

import datetime
import gzip
import math
import os
import re
from collections.abc import Iterator
from datetime import date

import pytest
from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from exporter.amiplus.reading import MeterReading
from exporter.config.prices import PriceEntry, Prices, TariffPrice
from exporter.outputs import ConfigReloads, ExporterCollector, Exposition, registry
from exporter.outputs.prometheus import sample_value
from exporter.pipeline.calendar import Calendar
from exporter.pipeline.handoff import MeterUpdate, Output
from exporter.pipeline.state import State
from exporter.receivers import ReceiverStats

from .conftest import DATA, configured_meter

GOLDEN = DATA / "metrics.golden.txt"


class CountingOutput(Output):
    """An output with one metric of its own, to show where outputs' families go."""

    name = "counting"

    def submit(self, update: MeterUpdate) -> None:
        raise AssertionError("not used here")

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("amiplus_counting_total", "An output's own count.", value=3)


def exposition(*, periods: bool = True) -> str:
    state = State(stale_after_seconds=600)
    home_config = configured_meter("12345678", 'home "main"', "block B, staircase 2", 14_000.0)
    state.reconfigure(600, [home_config, configured_meter("87654321", "garage")])
    home = MeterReading(
        "12345678",
        "APA",
        1,
        2,
        values={
            "rssi_dbm": -71.5,
            "meter_time": datetime.datetime(2026, 6, 21, 12, 0, tzinfo=datetime.UTC),
            "serial_number": "00012345",
            "energy_imported_kwh": 1234.567,
            "energy_imported_tariff_kwh": {1: 1000.0, 2: 234.567},
            "energy_exported_kwh": 89.5,
            "energy_exported_tariff_kwh": {1: 80.0, 2: 9.5},
            "power_imported_w": 1520.0,
            "power_exported_w": 0.0,
            "power_imported_max_w": 6120.0,
            "voltage_v": {"L1": 231.4, "L2": 229.0, "L3": 240.1},
            "current_a": {"L1": 6.58, "L2": 0.0, "L3": 1.01},
            "reactive_energy_imported_kvarh": 12.5,
            "reactive_power_exported_var": 40.0,
        },
    )
    _, merged = state.record("12345678", 'home "main"', home, 1_782_043_190.0, "stick")
    # the calendar knew the meter since the day before, a kWh and a zone less
    prices = Prices((PriceEntry(date(2026, 1, 1), ((1, TariffPrice(0.6, 0.3)),), 0.25),))
    calendar = Calendar(prices=prices)
    before = {
        "energy_imported_kwh": 1233.567,
        "energy_imported_tariff_kwh": {1: 999.0, 2: 234.567},
        "energy_exported_kwh": 89.0,
    }
    calendar.record("12345678", before, 1_782_043_190.0 - 86400)
    calendar.record("12345678", merged, 1_782_043_190.0)
    state.record(
        "12345678",
        'home "main"',
        MeterReading(
            "12345678", "APA", 1, 2, values={"energy_imported_kwh": 1000.0, "rssi_dbm": -70.0}
        ),
        1_782_043_195.0,
        "stick",
    )
    state.heard_again("12345678", 'home "main"', "radio", -80.0, 1_782_043_195.1)  # weaker
    garage = MeterReading("87654321", "NES", 3, 2, values={"power_imported_w": 5.0})
    state.record("87654321", "garage", garage, 1_782_040_000.0, "radio")  # silent since: stale
    state.record_failure("87654321", "garage", "decryption_failed", "wrong key", 1_782_043_100.0)
    for _ in range(17):
        state.count_unconfigured()
    for _ in range(4):
        state.count_duplicate()
    stick = ReceiverStats("stick", "/dev/ttyUSB0", 42, up=True, down_reason=None)
    stick.errors["crc"] = 2
    stick.last_frame_at, stick.reconnects = 1_782_043_195.0, 1
    radio = ReceiverStats("radio", "udp listen 0.0.0.0:9011", 7, up=False, down_reason="gone")
    collector: Collector = ExporterCollector(
        state,
        lambda: [stick, radio],
        lambda: [CountingOutput()],
        ConfigReloads(True, 1_782_000_000),
        calendar,
        clock=lambda: 1_782_043_200.0,
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    metrics = Exposition(
        state, registry, clock=lambda: 1_782_043_200.0, calendar=calendar, periods=periods
    )
    body = metrics.render()
    whole = gzip.decompress(metrics.body(compressed=True)).decode()
    assert metrics.body().decode() == whole  # the plain answer is the gzip body expanded
    assert whole.startswith(body)  # the registry's families follow the meters'
    body += generate_latest(registry).decode()
    build = r"amiplus_exporter_build_info\{[^}]*\}"  # versions differ between machines
    return re.sub(build, 'amiplus_exporter_build_info{python_version="X",version="X"}', body)


def test_the_exposition_matches_the_golden_file() -> None:
    body = exposition()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(body)
    assert body == GOLDEN.read_text(), "run with UPDATE_GOLDEN=1 to accept a deliberate change"


def test_without_periods_only_the_meters_period_families_go() -> None:
    """`prometheus: periods: false`: a fleet's recording rules sum registers instead."""
    full = {f.name: f for f in text_string_to_metric_families(exposition())}
    lean = {f.name: f for f in text_string_to_metric_families(exposition(periods=False))}
    gone = {
        "amiplus_energy_imported_period_joules",
        "amiplus_energy_exported_period_joules",
        "amiplus_energy_imported_tariff_period_joules",
        "amiplus_period_cost_pln",
        "amiplus_period_export_value_pln",
        "amiplus_period_partial",
        "amiplus_meter_active_tariff",
    }
    assert set(full) - set(lean) == gone
    for name, family in lean.items():
        if name not in ("amiplus_exporter_build_info", "python_gc_objects_collected"):
            assert family == full[name], name


def test_infinities_and_not_a_number_are_written_as_the_text_format_says() -> None:
    """A meter's float record may carry them; Python would write `inf` and `nan`."""
    state = State(stale_after_seconds=600)
    state.reconfigure(600, [configured_meter("12345678", "home")])
    values = {"power_imported_w": math.inf, "voltage_v": {"L1": -math.inf, "L2": math.nan}}
    reading = MeterReading("12345678", "APA", 1, 2, values=values)
    state.record("12345678", "home", reading, 1_000.0, "radio")
    collector = ExporterCollector(state, list, list, ConfigReloads(), clock=lambda: 1_010.0)
    body = Exposition(state, registry(collector), clock=lambda: 1_010.0).render()
    assert 'amiplus_power_imported_watts{meter_id="12345678"} +Inf\n' in body
    assert 'amiplus_voltage_volts{meter_id="12345678",phase="L1"} -Inf\n' in body
    assert 'amiplus_voltage_volts{meter_id="12345678",phase="L2"} NaN\n' in body
    parsed = {f.name: f for f in text_string_to_metric_families(body)}
    voltages = [s.value for s in parsed["amiplus_voltage_volts"].samples]
    assert voltages[0] == -math.inf and math.isnan(voltages[1])


@pytest.mark.parametrize(
    ("number", "text"),
    [(1.5, "1.5"), (0.0, "0.0"), (3.6e12, "3600000000000.0"), (1e22, "1e+22"), (-2, "-2.0")],
)
def test_finite_values_keep_their_shortest_exact_form(number: float, text: str) -> None:
    assert sample_value(number) == text
    assert float(text) == number
