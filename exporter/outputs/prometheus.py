"""Prometheus metrics (design.md 3.4): the text exposition, built at scrape time from the state.

Meter registers are counters carrying the meter's own value, never incremented here. A meter
silent for longer than its `stale_after` loses its measurement series; `amiplus_meter_info`
and the last-telegram timestamp stay, so alerts can tell "silent" from "never configured".

The lines of a meter are formatted once per telegram and kept, so a scrape of thousands of
meters joins strings instead of formatting 20,000 samples (prometheus_client's collector and
`generate_latest` took 145 ms for 1,000 meters); scrapes within one second share one body.
"""

from __future__ import annotations

import gzip
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .. import __version__
from ..pipeline.state import MeterState, State
from ..receivers.receiver import ReceiverStats

JOULES_PER_KWH = 3_600_000.0
VARH_PER_KVARH = 1000.0
MAX_AGE = 1.0  # seconds a rendered body is served to further scrapes
FRAME_ERROR_REASONS = ("crc", "checksum", "framing", "too_short")

Labels = tuple[tuple[str, str], ...]
Sample = tuple[Labels, float]


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family: its sample name (with `_total` for counters), type and help."""

    name: str
    type: str
    help: str

    def header(self) -> str:
        return f"# HELP {self.name} {_escape_help(self.help)}\n# TYPE {self.name} {self.type}\n"


def counter(name: str, help_text: str) -> Family:
    return Family(f"{name}_total", "counter", help_text)


def gauge(name: str, help_text: str) -> Family:
    return Family(name, "gauge", help_text)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def line(family: Family, labels: Labels, value: float) -> str:
    """One sample line of the text format."""
    if labels:
        inner = ",".join(f'{key}="{_escape(text)}"' for key, text in labels)
        return f"{family.name}{{{inner}}} {float(value)!r}\n"
    return f"{family.name} {float(value)!r}\n"


def block(family: Family, samples: Iterable[Sample]) -> str:
    """A family's header and samples; nothing when there is no sample."""
    lines = "".join(line(family, labels, value) for labels, value in samples)
    return family.header() + lines if lines else ""


#: Single-value meter fields: (family, field, factor to base units).
SINGLE_METRICS: tuple[tuple[Family, str, float], ...] = (
    (
        counter("amiplus_energy_imported_joules", "Active energy imported (meter register 1.8.0)."),
        "energy_imported_kwh",
        JOULES_PER_KWH,
    ),
    (
        counter("amiplus_energy_exported_joules", "Active energy exported (meter register 2.8.0)."),
        "energy_exported_kwh",
        JOULES_PER_KWH,
    ),
    (
        gauge("amiplus_power_imported_watts", "Instantaneous active power imported (1.7.0)."),
        "power_imported_w",
        1.0,
    ),
    (
        gauge("amiplus_power_exported_watts", "Instantaneous active power exported (2.7.0)."),
        "power_exported_w",
        1.0,
    ),
    (
        gauge("amiplus_power_imported_max_watts", "Maximum demand of the month (1.6.0)."),
        "power_imported_max_w",
        1.0,
    ),
    (
        counter("amiplus_reactive_energy_imported_var_hours", "Reactive energy, forward (+R)."),
        "reactive_energy_imported_kvarh",
        VARH_PER_KVARH,
    ),
    (
        counter("amiplus_reactive_energy_exported_var_hours", "Reactive energy, backward (-R)."),
        "reactive_energy_exported_kvarh",
        VARH_PER_KVARH,
    ),
    (
        gauge("amiplus_reactive_power_imported_var", "Instantaneous reactive power, forward (+R)."),
        "reactive_power_imported_var",
        1.0,
    ),
    (
        gauge(
            "amiplus_reactive_power_exported_var", "Instantaneous reactive power, backward (-R)."
        ),
        "reactive_power_exported_var",
        1.0,
    ),
)
#: Per-tariff and per-phase fields: (family, field, label, factor).
MAP_METRICS: tuple[tuple[Family, str, str, float], ...] = (
    (
        counter(
            "amiplus_energy_imported_tariff_joules", "Active energy imported per tariff (1.8.x)."
        ),
        "energy_imported_tariff_kwh",
        "tariff",
        JOULES_PER_KWH,
    ),
    (
        counter(
            "amiplus_energy_exported_tariff_joules", "Active energy exported per tariff (2.8.x)."
        ),
        "energy_exported_tariff_kwh",
        "tariff",
        JOULES_PER_KWH,
    ),
    (gauge("amiplus_voltage_volts", "Instantaneous voltage per phase."), "voltage_v", "phase", 1.0),
    (
        gauge("amiplus_current_amperes", "Instantaneous current per phase."),
        "current_a",
        "phase",
        1.0,
    ),
)
CLOCK = gauge(
    "amiplus_meter_clock_timestamp_seconds",
    "The meter's own clock at its latest telegram (compare with the receive time).",
)
RSSI = gauge("amiplus_meter_rssi_dbm", "Signal strength of the latest telegram.")
MEASUREMENTS = (*(f for f, _, _ in SINGLE_METRICS), *(f for f, _, _, _ in MAP_METRICS), CLOCK, RSSI)

INFO = gauge("amiplus_meter_info", "A configured meter and what it says about itself.")
LAST = gauge(
    "amiplus_meter_last_telegram_timestamp_seconds",
    "When the latest telegram of the meter was received.",
)
TELEGRAMS = counter("amiplus_meter_telegrams", "Telegrams decoded, per meter.")
FAILURES = counter(
    "amiplus_meter_decrypt_failures",
    "Telegrams the configured key did not decrypt (wrong or outdated key).",
)
REJECTED = counter(
    "amiplus_meter_rejected_telegrams", "Telegrams or register values rejected, by reason."
)
STALE = gauge("amiplus_meter_stale", "1 when the meter has been silent longer than stale_after.")
HEALTH = (INFO, LAST, TELEGRAMS, FAILURES, REJECTED, STALE)

RECEIVER_UP = gauge("amiplus_receiver_up", "1 when the receiver is open and set up.")
RECEIVER_FRAMES = counter("amiplus_receiver_frames", "Frames received, duplicates included.")
RECEIVER_LAST = gauge(
    "amiplus_receiver_last_frame_timestamp_seconds", "When the latest frame arrived."
)
RECEIVER_RECONNECTS = counter("amiplus_receiver_reconnects", "Times the receiver was reopened.")
RECEIVER_ERRORS = counter(
    "amiplus_receiver_frame_errors", "Bytes or lines dropped by the framer, by reason."
)
UNCONFIGURED = counter(
    "amiplus_unconfigured_telegrams",
    "Telegrams from meters that are not configured (neighbours' meters).",
)
DUPLICATES = counter("amiplus_duplicate_frames", "Frames heard again within the duplicate window.")
BUILD = gauge("amiplus_exporter_build_info", "Exporter version.")
PYTHON_VERSION = ".".join(map(str, sys.version_info[:3]))


def measurement_lines(meter: MeterState) -> dict[Family, str]:
    """The measurement samples of one meter, by family."""
    values = meter.values
    ident = (("meter_id", meter.meter_id),)
    out: dict[Family, str] = {}
    for family, attribute, factor in SINGLE_METRICS:
        value = values.get(attribute)
        if value is not None:
            out[family] = line(family, ident, value * factor)
    for family, attribute, label, factor in MAP_METRICS:
        by_key = values.get(attribute)
        if by_key:
            out[family] = "".join(
                line(family, (*ident, (label, str(key))), value * factor)
                for key, value in sorted(by_key.items())
            )
    meter_time = values.get("meter_time")
    if meter_time is not None:
        out[CLOCK] = line(CLOCK, ident, meter_time.timestamp())
    if meter.rssi_dbm is not None:
        out[RSSI] = line(RSSI, ident, meter.rssi_dbm)
    return out


def health_lines(meter: MeterState, stale: bool) -> dict[Family, str]:
    """The samples that stay while a meter is silent, by family."""
    ident = (("meter_id", meter.meter_id),)
    info = (
        *ident,
        ("name", meter.name),
        ("manufacturer", meter.manufacturer),
        ("version", str(meter.version or "")),
        ("serial_number", str(meter.values.get("serial_number", ""))),
    )
    out = {
        INFO: line(INFO, info, 1),
        TELEGRAMS: line(TELEGRAMS, ident, meter.telegrams),
        FAILURES: line(FAILURES, ident, meter.decrypt_failures),
        STALE: line(STALE, ident, 1 if stale else 0),
    }
    if meter.last_telegram_at is not None:
        out[LAST] = line(LAST, ident, meter.last_telegram_at)
    if meter.rejected:
        out[REJECTED] = "".join(
            line(REJECTED, (*ident, ("reason", reason)), count)
            for reason, count in sorted(meter.rejected.items())
        )
    return out


def receiver_blocks(receivers: list[ReceiverStats]) -> str:
    def each(value: Callable[[ReceiverStats], float | None]) -> Iterable[Sample]:
        for stats in receivers:
            number = value(stats)
            if number is not None:
                yield (("receiver", stats.name),), number

    errors = (
        ((("receiver", s.name), ("reason", reason)), float(s.errors.get(reason, 0)))
        for s in receivers
        for reason in FRAME_ERROR_REASONS
    )
    return "".join(
        (
            block(RECEIVER_UP, each(lambda s: 1 if s.up else 0)),
            block(RECEIVER_FRAMES, each(lambda s: s.frames)),
            block(RECEIVER_LAST, each(lambda s: s.last_frame_at)),
            block(RECEIVER_RECONNECTS, each(lambda s: s.reconnects)),
            block(RECEIVER_ERRORS, errors),
        )
    )


ExtraMetrics = Callable[[], str]


class Exposition:
    """The `/metrics` body: fresh at most `MAX_AGE` old, rendered by one scrape at a time."""

    def __init__(
        self,
        state: State,
        receivers: Callable[[], list[ReceiverStats]],
        extra: Iterable[ExtraMetrics] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.receivers = receivers
        self.extra = list(extra)
        self.clock = clock
        self._measurements: dict[str, tuple[int, dict[Family, str]]] = {}
        self._health: dict[str, tuple[tuple[int, bool], dict[Family, str]]] = {}
        self._lock = threading.Lock()
        self._rendered_at = -MAX_AGE
        self._body = b""
        self._gzipped: bytes | None = None

    def body(self, *, compressed: bool = False) -> bytes:
        """The exposition (gzip-compressed if asked), rendered again when older than a second."""
        with self._lock:
            now = time.monotonic()
            if now - self._rendered_at >= MAX_AGE:
                self._body = self.render().encode()
                self._gzipped = None
                self._rendered_at = now
            if not compressed:
                return self._body
            if self._gzipped is None:
                self._gzipped = gzip.compress(self._body, compresslevel=5)
            return self._gzipped

    def render(self) -> str:
        now = self.clock()
        measurements: dict[Family, list[str]] = {family: [] for family in MEASUREMENTS}
        health: dict[Family, list[str]] = {family: [] for family in HEALTH}
        with self.state.lock:
            meters = sorted(self.state.meters.values(), key=lambda m: m.meter_id)
            for meter in meters:
                stale = meter.last_telegram_at is None or (
                    now - meter.last_telegram_at > self.state.stale_after_for(meter)
                )
                if not stale:
                    for family, text in self._meter_measurements(meter).items():
                        measurements[family].append(text)
                for family, text in self._meter_health(meter, stale).items():
                    health[family].append(text)
            unconfigured, duplicates = self.state.unconfigured_telegrams, self.state.duplicates
        if len(self._health) > len(meters):  # meters removed by a reload
            current = {meter.key for meter in meters}
            self._measurements = {k: v for k, v in self._measurements.items() if k in current}
            self._health = {k: v for k, v in self._health.items() if k in current}
        parts = [
            family.header() + "".join(lines)
            for family, lines in (*measurements.items(), *health.items())
            if lines
        ]
        parts.append(receiver_blocks(self.receivers()))
        parts.extend(extra() for extra in self.extra)
        parts.append(block(UNCONFIGURED, [((), unconfigured)]))
        parts.append(block(DUPLICATES, [((), duplicates)]))
        parts.append(
            block(BUILD, [((("version", __version__), ("python_version", PYTHON_VERSION)), 1)])
        )
        return "".join(parts)

    def _meter_measurements(self, meter: MeterState) -> dict[Family, str]:
        cached = self._measurements.get(meter.key)
        if cached is None or cached[0] != meter.revision:
            cached = self._measurements[meter.key] = (meter.revision, measurement_lines(meter))
        return cached[1]

    def _meter_health(self, meter: MeterState, stale: bool) -> dict[Family, str]:
        stamp = (meter.revision, stale)
        cached = self._health.get(meter.key)
        if cached is None or cached[0] != stamp:
            cached = self._health[meter.key] = (stamp, health_lines(meter, stale))
        return cached[1]
