"""Prometheus metrics (design.md 3.4), built fresh from a state snapshot at every scrape.

Meter registers are counters carrying the meter's own value (not incremented here). A meter
silent for longer than its `stale_after` loses its measurement series; `amiplus_meter_info`
and the last-telegram timestamp stay, so alerts can tell "silent" from "never configured".
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..state import MeterState, State
from ..transports import ReceiverStats

JOULES_PER_KWH = 3_600_000.0
VARH_PER_KVARH = 1000.0

#: Single-value meter fields: (metric name, help, kind, field, factor to base units).
SINGLE_METRICS: tuple[tuple[str, str, str, str, float], ...] = (
    (
        "amiplus_energy_imported_joules",
        "Active energy imported (meter register 1.8.0).",
        "counter",
        "energy_imported_kwh",
        JOULES_PER_KWH,
    ),
    (
        "amiplus_energy_exported_joules",
        "Active energy exported (meter register 2.8.0).",
        "counter",
        "energy_exported_kwh",
        JOULES_PER_KWH,
    ),
    (
        "amiplus_power_imported_watts",
        "Instantaneous active power imported (1.7.0).",
        "gauge",
        "power_imported_w",
        1.0,
    ),
    (
        "amiplus_power_exported_watts",
        "Instantaneous active power exported (2.7.0).",
        "gauge",
        "power_exported_w",
        1.0,
    ),
    (
        "amiplus_power_imported_max_watts",
        "Maximum demand of the month (1.6.0).",
        "gauge",
        "power_imported_max_w",
        1.0,
    ),
    (
        "amiplus_reactive_energy_imported_var_hours",
        "Reactive energy, forward (+R).",
        "counter",
        "reactive_energy_imported_kvarh",
        VARH_PER_KVARH,
    ),
    (
        "amiplus_reactive_energy_exported_var_hours",
        "Reactive energy, backward (-R).",
        "counter",
        "reactive_energy_exported_kvarh",
        VARH_PER_KVARH,
    ),
    (
        "amiplus_reactive_power_imported_var",
        "Instantaneous reactive power, forward (+R).",
        "gauge",
        "reactive_power_imported_var",
        1.0,
    ),
    (
        "amiplus_reactive_power_exported_var",
        "Instantaneous reactive power, backward (-R).",
        "gauge",
        "reactive_power_exported_var",
        1.0,
    ),
)
#: Per-tariff and per-phase fields: (metric, help, kind, field, label, factor).
MAP_METRICS: tuple[tuple[str, str, str, str, str, float], ...] = (
    (
        "amiplus_energy_imported_tariff_joules",
        "Active energy imported per tariff (1.8.x).",
        "counter",
        "energy_imported_tariff_kwh",
        "tariff",
        JOULES_PER_KWH,
    ),
    (
        "amiplus_energy_exported_tariff_joules",
        "Active energy exported per tariff (2.8.x).",
        "counter",
        "energy_exported_tariff_kwh",
        "tariff",
        JOULES_PER_KWH,
    ),
    (
        "amiplus_voltage_volts",
        "Instantaneous voltage per phase.",
        "gauge",
        "voltage_v",
        "phase",
        1.0,
    ),
    (
        "amiplus_current_amperes",
        "Instantaneous current per phase.",
        "gauge",
        "current_a",
        "phase",
        1.0,
    ),
)


@dataclass
class ExporterView:
    """What the collector reads: the state, the receivers, and anything an output adds."""

    state: State
    receivers: Callable[[], list[ReceiverStats]]
    extra: list[Callable[[], Iterator[Metric]]] = field(default_factory=list)


def _family(
    kind: str, name: str, documentation: str, labels: list[str]
) -> CounterMetricFamily | GaugeMetricFamily:
    if kind == "counter":
        return CounterMetricFamily(name, documentation, labels=labels)
    return GaugeMetricFamily(name, documentation, labels=labels)


class AmiplusCollector(Collector):
    """A custom collector: no global registry state, nothing kept between scrapes."""

    def __init__(self, view: ExporterView, clock: Callable[[], float] = time.time) -> None:
        self.view = view
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        meters = sorted(self.view.state.snapshot(), key=lambda m: m.meter_id)
        fresh = [
            m
            for m in meters
            if m.last_telegram_at is not None
            and now - m.last_telegram_at <= self.view.state.stale_after_for(m)
        ]
        yield from self._measurements(fresh)
        yield from self._meter_health(meters, fresh)
        yield from self._receivers(self.view.receivers())
        for extra in self.view.extra:
            yield from extra()
        unconfigured = CounterMetricFamily(
            "amiplus_unconfigured_telegrams",
            "Telegrams from meters that are not configured (neighbours' meters).",
        )
        unconfigured.add_metric([], self.view.state.unconfigured_telegrams)
        yield unconfigured
        duplicates = CounterMetricFamily(
            "amiplus_duplicate_frames", "Frames heard again within the duplicate window."
        )
        duplicates.add_metric([], self.view.state.duplicates)
        yield duplicates
        build = GaugeMetricFamily(
            "amiplus_exporter_build_info",
            "Exporter version.",
            labels=["version", "python_version"],
        )
        build.add_metric([__version__, platform.python_version()], 1)
        yield build

    @staticmethod
    def _measurements(meters: list[MeterState]) -> Iterator[Metric]:
        for name, documentation, kind, attribute, factor in SINGLE_METRICS:
            family = _family(kind, name, documentation, ["meter_id"])
            for meter in meters:
                value = meter.values.get(attribute)
                if value is not None:
                    family.add_metric([meter.meter_id], value * factor)
            if family.samples:
                yield family
        for name, documentation, kind, attribute, label, factor in MAP_METRICS:
            family = _family(kind, name, documentation, ["meter_id", label])
            for meter in meters:
                for key, value in sorted(meter.values.get(attribute, {}).items()):
                    family.add_metric([meter.meter_id, str(key)], value * factor)
            if family.samples:
                yield family
        clock = GaugeMetricFamily(
            "amiplus_meter_clock_timestamp_seconds",
            "The meter's own clock at its latest telegram (compare with the receive time).",
            labels=["meter_id"],
        )
        rssi = GaugeMetricFamily(
            "amiplus_meter_rssi_dbm", "Signal strength of the latest telegram.", labels=["meter_id"]
        )
        for meter in meters:
            meter_time = meter.values.get("meter_time")
            if meter_time is not None:
                clock.add_metric([meter.meter_id], meter_time.timestamp())
            if meter.rssi_dbm is not None:
                rssi.add_metric([meter.meter_id], meter.rssi_dbm)
        yield from (family for family in (clock, rssi) if family.samples)

    @staticmethod
    def _meter_health(meters: list[MeterState], fresh: list[MeterState]) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "amiplus_meter_info",
            "A configured meter and what it says about itself.",
            labels=["meter_id", "name", "manufacturer", "version", "serial_number"],
        )
        last = GaugeMetricFamily(
            "amiplus_meter_last_telegram_timestamp_seconds",
            "When the latest telegram of the meter was received.",
            labels=["meter_id"],
        )
        telegrams = CounterMetricFamily(
            "amiplus_meter_telegrams", "Telegrams decoded, per meter.", labels=["meter_id"]
        )
        failures = CounterMetricFamily(
            "amiplus_meter_decrypt_failures",
            "Telegrams the configured key did not decrypt (wrong or outdated key).",
            labels=["meter_id"],
        )
        rejected = CounterMetricFamily(
            "amiplus_meter_rejected_telegrams",
            "Telegrams or register values rejected, by reason.",
            labels=["meter_id", "reason"],
        )
        stale = GaugeMetricFamily(
            "amiplus_meter_stale",
            "1 when the meter has been silent longer than stale_after.",
            labels=["meter_id"],
        )
        fresh_ids = {m.meter_id for m in fresh}
        for meter in meters:
            serial = str(meter.values.get("serial_number", ""))
            info.add_metric(
                [meter.meter_id, meter.name, meter.manufacturer, str(meter.version or ""), serial],
                1,
            )
            if meter.last_telegram_at is not None:
                last.add_metric([meter.meter_id], meter.last_telegram_at)
            telegrams.add_metric([meter.meter_id], meter.telegrams)
            failures.add_metric([meter.meter_id], meter.decrypt_failures)
            for reason, count in sorted(meter.rejected.items()):
                rejected.add_metric([meter.meter_id, reason], count)
            stale.add_metric([meter.meter_id], 0 if meter.meter_id in fresh_ids else 1)
        yield from (info, last, telegrams, failures, rejected, stale)

    @staticmethod
    def _receivers(receivers: list[ReceiverStats]) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "amiplus_receiver_up", "1 when the receiver is open and set up.", labels=["receiver"]
        )
        frames = CounterMetricFamily(
            "amiplus_receiver_frames",
            "Frames received, duplicates included.",
            labels=["receiver"],
        )
        last = GaugeMetricFamily(
            "amiplus_receiver_last_frame_timestamp_seconds",
            "When the latest frame arrived.",
            labels=["receiver"],
        )
        reconnects = CounterMetricFamily(
            "amiplus_receiver_reconnects", "Times the receiver was reopened.", labels=["receiver"]
        )
        errors = CounterMetricFamily(
            "amiplus_receiver_frame_errors",
            "Bytes or lines dropped by the framer, by reason.",
            labels=["receiver", "reason"],
        )
        for stats in receivers:
            up.add_metric([stats.name], 1 if stats.up else 0)
            frames.add_metric([stats.name], stats.frames)
            if stats.last_frame_at is not None:
                last.add_metric([stats.name], stats.last_frame_at)
            reconnects.add_metric([stats.name], stats.reconnects)
            for reason in ("crc", "checksum", "framing", "too_short"):
                errors.add_metric([stats.name, reason], stats.errors.get(reason, 0))
        yield from (up, frames, last, reconnects, errors)
