"""Prometheus metrics (docs/contracts.md, section 4): the `/metrics` body, built at scrape time.

Per-meter families come from the field table and are pre-rendered: the lines of a meter are
formatted once per telegram and kept, so a scrape of thousands of meters joins strings instead
of formatting 20,000 samples (prometheus_client's collector and `generate_latest` took 145 ms
for 1,000 meters). Everything else (receivers, outputs, the configuration, the process and the
platform) goes through a prometheus_client registry. Meter registers are counters carrying the
meter's own value, never incremented here. A meter silent for longer than its `stale_after`
loses its measurement series; `amiplus_meter_info` and the last-telegram timestamp stay, so
alerts can tell "silent" from "never configured". Scrapes within one second share one body.
"""

from __future__ import annotations

import gzip
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Metric,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .. import __version__
from ..amiplus import fields
from ..amiplus.fields import Metric as FieldMetric
from ..amiplus.fields import MetricType, Shape
from ..pipeline.state import MeterState, State
from ..receivers.base import ErrorReason
from ..receivers.receiver import ReceiverStats
from .base import Output

MAX_AGE = 1.0  # seconds a rendered body is served to further scrapes
PYTHON_VERSION = ".".join(map(str, sys.version_info[:3]))

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """A pre-rendered family: its sample name (with `_total` for counters), type and help."""

    name: str
    type: str
    help: str

    @classmethod
    def of(cls, metric: FieldMetric) -> MetricFamily:
        return cls(metric.sample_name, metric.type.value, metric.help)

    def header(self) -> str:
        return f"# HELP {self.name} {_escape_help(self.help)}\n# TYPE {self.name} {self.type}\n"


def counter(name: str, help_text: str) -> MetricFamily:
    return MetricFamily.of(FieldMetric(name, MetricType.COUNTER, help_text))


def gauge(name: str, help_text: str) -> MetricFamily:
    return MetricFamily.of(FieldMetric(name, MetricType.GAUGE, help_text))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def line(family: MetricFamily, labels: Labels, value: float) -> str:
    """One sample line of the text format."""
    if labels:
        inner = ",".join(f'{key}="{_escape(text)}"' for key, text in labels)
        return f"{family.name}{{{inner}}} {float(value)!r}\n"
    return f"{family.name} {float(value)!r}\n"


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
RECEIVER_RSSI = gauge(
    "amiplus_meter_receiver_rssi_dbm",
    "Signal of the meter's latest telegram at each receiver that heard it recently.",
)
BEST_RECEIVER = gauge(
    "amiplus_meter_best_receiver_info", "The receiver that hears the meter with the best signal."
)
RECEPTION = (RECEIVER_RSSI, BEST_RECEIVER)


def measurement_families() -> list[MetricFamily]:
    """The per-meter measurement families: the field table's, in its order, then reception."""
    out = []
    for row in fields.FIELDS:
        for metric in (row.metric, row.tariff_metric):
            if metric is not None:
                out.append(MetricFamily.of(metric))
    return [*out, *RECEPTION]


def measurement_lines(meter: MeterState) -> dict[str, str]:
    """The measurement samples of one meter, by family name."""
    values = meter.values
    ident = (("meter_id", meter.meter_id),)
    out: dict[str, str] = {}
    for row in fields.FIELDS:
        metric = row.metric
        if metric is None:
            continue
        family = MetricFamily.of(metric)
        value = values.get(row.key)
        if row.shape is Shape.PHASES:
            if value:
                out[family.name] = "".join(
                    line(family, (*ident, ("phase", phase)), number * metric.scale)
                    for phase, number in sorted(value.items())
                )
            continue
        if value is not None:
            number = value.timestamp() if row.shape is Shape.TIME else value * metric.scale
            out[family.name] = line(family, ident, number)
        tariff_metric = row.tariff_metric
        per_tariff = values.get(row.tariff_key) if tariff_metric is not None else None
        if per_tariff and tariff_metric is not None:
            tariff_family = MetricFamily.of(tariff_metric)
            out[tariff_family.name] = "".join(
                line(tariff_family, (*ident, ("tariff", str(tariff))), number * tariff_metric.scale)
                for tariff, number in sorted(per_tariff.items())
            )
    signals = "".join(
        line(RECEIVER_RSSI, (*ident, ("receiver", name)), reception.rssi_dbm)
        for name, reception in sorted(meter.receptions.items())
        if reception.rssi_dbm is not None
    )
    if signals:
        out[RECEIVER_RSSI.name] = signals
    best = meter.best_receiver
    if best is not None:
        out[BEST_RECEIVER.name] = line(BEST_RECEIVER, (*ident, ("receiver", best)), 1)
    return out


def health_lines(meter: MeterState, stale: bool) -> dict[str, str]:
    """The samples that stay while a meter is silent, by family name."""
    ident = (("meter_id", meter.meter_id),)
    info = (
        *ident,
        ("name", meter.name),
        ("meter_site", meter.site),
        ("manufacturer", meter.manufacturer),
        ("version", str(meter.version or "")),
        ("serial_number", str(meter.values.get("serial_number", ""))),
    )
    out = {
        INFO.name: line(INFO, info, 1),
        TELEGRAMS.name: line(TELEGRAMS, ident, meter.telegrams),
        FAILURES.name: line(FAILURES, ident, meter.decrypt_failures),
        STALE.name: line(STALE, ident, 1 if stale else 0),
    }
    if meter.last_telegram_at is not None:
        out[LAST.name] = line(LAST, ident, meter.last_telegram_at)
    if meter.rejected:
        out[REJECTED.name] = "".join(
            line(REJECTED, (*ident, ("reason", reason)), count)
            for reason, count in sorted(meter.rejected.items())
        )
    return out


@dataclass
class ConfigReloads:
    """How the latest reload of the configuration went (the start counts as one)."""

    successful: bool = True
    success_at: float = 0.0


class ExporterCollector(Collector):
    """The exporter's own metrics at scrape time: receivers, counts of the state, outputs,
    configuration reloads and the build."""

    def __init__(
        self,
        state: State,
        receivers: Callable[[], list[ReceiverStats]],
        outputs: Callable[[], Iterable[Output]],
        reloads: ConfigReloads,
    ) -> None:
        self.state = state
        self.receivers = receivers
        self.outputs = outputs
        self.reloads = reloads

    def collect(self) -> Iterator[Metric]:
        yield from receiver_families(self.receivers())
        with self.state.lock:
            unconfigured, duplicates = self.state.unconfigured_telegrams, self.state.duplicates
        yield CounterMetricFamily(
            "amiplus_unconfigured_telegrams",
            "Telegrams from meters that are not configured (neighbours' meters).",
            value=unconfigured,
        )
        yield CounterMetricFamily(
            "amiplus_duplicate_frames",
            "Frames heard again within the duplicate window.",
            value=duplicates,
        )
        yield GaugeMetricFamily(
            "amiplus_config_last_reload_successful",
            "1 when the latest reload of the configuration succeeded.",
            value=1 if self.reloads.successful else 0,
        )
        yield GaugeMetricFamily(
            "amiplus_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully.",
            value=self.reloads.success_at,
        )
        build = GaugeMetricFamily(
            "amiplus_exporter_build_info", "Exporter version.", labels=["version", "python_version"]
        )
        build.add_metric([__version__, PYTHON_VERSION], 1)
        yield build
        for output in self.outputs():
            yield from output.collect()


def receiver_families(receivers: list[ReceiverStats]) -> Iterator[Metric]:
    """The receivers' families (one sample per receiver; errors for every reason)."""
    frames = CounterMetricFamily(
        "amiplus_receiver_frames", "Frames received, duplicates included.", labels=["receiver"]
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
    up = GaugeMetricFamily(
        "amiplus_receiver_up", "1 when the receiver is open and set up.", labels=["receiver"]
    )
    closed = CounterMetricFamily(
        "amiplus_receiver_connections_closed",
        "Connections of senders a listening receiver closed: idle, replaced (for a new "
        "sender), refused (all busy).",
        labels=["receiver", "reason"],
    )
    for stats in receivers:
        up.add_metric([stats.name], 1 if stats.up else 0)
        frames.add_metric([stats.name], stats.frames)
        if stats.last_frame_at is not None:
            last.add_metric([stats.name], stats.last_frame_at)
        reconnects.add_metric([stats.name], stats.reconnects)
        for reason in ErrorReason:
            errors.add_metric([stats.name, reason.value], stats.errors.get(reason.value, 0))
        for why, count in sorted((stats.closed_connections or {}).items()):
            closed.add_metric([stats.name, why], count)
    yield from (up, frames, last, reconnects, errors)
    if closed.samples:
        yield closed


def registry(collector: Collector) -> CollectorRegistry:
    """A private registry: the exporter's collector and the process, platform and GC ones."""
    out = CollectorRegistry(auto_describe=False)
    for each in (collector, PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        out.register(each)
    return out


class Exposition:
    """The `/metrics` body: fresh at most `MAX_AGE` old, rendered by one scrape at a time."""

    def __init__(
        self,
        state: State,
        collectors: CollectorRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.collectors = collectors
        self.clock = clock
        self._measurements: dict[str, tuple[int, dict[str, str]]] = {}
        self._health: dict[str, tuple[tuple[int, bool], dict[str, str]]] = {}
        self._lock = threading.Lock()
        self._rendered_at = -MAX_AGE
        self._body = b""
        self._gzipped: bytes | None = None

    def body(self, *, compressed: bool = False) -> bytes:
        """The exposition (gzip-compressed if asked), rendered again when older than a second."""
        with self._lock:
            now = time.monotonic()
            if now - self._rendered_at >= MAX_AGE:
                self._body = self.render().encode() + generate_latest(self.collectors)
                self._gzipped = None
                self._rendered_at = now
            if not compressed:
                return self._body
            if self._gzipped is None:
                self._gzipped = gzip.compress(self._body, compresslevel=5)
            return self._gzipped

    def render(self) -> str:
        """The per-meter families (the registry's follow them in `body`)."""
        now = self.clock()
        measurements: dict[str, list[str]] = {f.name: [] for f in measurement_families()}
        health: dict[str, list[str]] = {family.name: [] for family in HEALTH}
        with self.state.lock:
            meters = sorted(self.state.meters.values(), key=lambda m: m.meter_id)
            for meter in meters:
                stale = meter.last_telegram_at is None or (
                    now - meter.last_telegram_at > self.state.stale_after_for(meter)
                )
                if not stale:
                    for name, text in self._meter_measurements(meter).items():
                        measurements[name].append(text)
                for name, text in self._meter_health(meter, stale).items():
                    health[name].append(text)
        if len(self._health) > len(meters):  # meters removed by a reload
            current = {meter.key for meter in meters}
            self._measurements = {k: v for k, v in self._measurements.items() if k in current}
            self._health = {k: v for k, v in self._health.items() if k in current}
        headers = {f.name: f.header() for f in (*measurement_families(), *HEALTH)}
        return "".join(
            headers[name] + "".join(lines)
            for name, lines in (*measurements.items(), *health.items())
            if lines
        )

    def _meter_measurements(self, meter: MeterState) -> dict[str, str]:
        cached = self._measurements.get(meter.key)
        if cached is None or cached[0] != meter.revision:
            cached = self._measurements[meter.key] = (meter.revision, measurement_lines(meter))
        return cached[1]

    def _meter_health(self, meter: MeterState, stale: bool) -> dict[str, str]:
        stamp = (meter.revision, stale)
        cached = self._health.get(meter.key)
        if cached is None or cached[0] != stamp:
            cached = self._health[meter.key] = (stamp, health_lines(meter, stale))
        return cached[1]
