"""Prometheus metrics (docs/contracts.md, section 4): what the `/metrics` body holds.

Per-meter families come from the field table and are formatted here as text, a meter at a time,
when the meter changed (exposition.py keeps them and builds the body), so a scrape of thousands
of meters does not format 20,000 samples (prometheus_client's collector and `generate_latest`
took 145 ms for 1,000 meters). Everything else (receivers, outputs, the configuration, the
process and the platform) goes through a prometheus_client registry. Meter registers are
counters carrying the meter's own value, never incremented here. A meter silent for longer than
its `stale_after` loses its measurement series; `amiplus_meter_info` and the last-telegram
timestamp stay, so alerts can tell "silent" from "never configured".
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Metric,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .. import __version__
from ..amiplus import Field, FieldTable, MetricType, Shape, table
from ..amiplus import Metric as FieldMetric
from ..pipeline import (
    PERIODS,
    Calendar,
    Figure,
    MeterState,
    Output,
    State,
    local_day,
    midnight,
)
from ..pipeline import period_start as calendar_period_start
from ..receivers import ErrorReason, ReceiverStats

PYTHON_VERSION = ".".join(map(str, sys.version_info[:3]))


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
    if "\\" in value or "\n" in value or '"' in value:  # rare: most values are plain
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def label(key: str, value: object) -> str:
    """One label as the text format writes it, `key="value"` with the value escaped; a
    meter's labels are written once and joined to each of its samples' own."""
    return f'{key}="{_escape(str(value))}"'


#: The text format's words for the values a Python float writes otherwise (`inf`, `nan`).
SPECIAL_VALUES = {math.inf: "+Inf", -math.inf: "-Inf"}


def sample_value(value: float) -> str:
    """A sample's value as the text format writes it: `+Inf`, `-Inf`, `NaN`, or the shortest
    decimal that reads back as the same float."""
    number = float(value)
    if math.isfinite(number):
        return repr(number)
    return "NaN" if math.isnan(number) else SPECIAL_VALUES[number]


def line(family: MetricFamily, labels: str, value: float) -> str:
    """One sample line of the text format; `labels` as `label` writes them, comma-joined."""
    if labels:
        return f"{family.name}{{{labels}}} {sample_value(value)}\n"
    return f"{family.name} {sample_value(value)}\n"


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
RECEIVER_RSSI = gauge(
    "amiplus_meter_receiver_rssi_dbm",
    "Signal of the meter's latest telegram at each receiver that heard it recently.",
)
BEST_RECEIVER = gauge(
    "amiplus_meter_best_receiver_info", "The receiver that hears the meter with the best signal."
)
RECEPTION = (RECEIVER_RSSI, BEST_RECEIVER)
CONTRACTED = gauge(
    "amiplus_meter_contracted_power_watts",
    "The contracted power (moc umowna) of the meter's connection, from the configuration.",
)
HEALTH = (INFO, LAST, TELEGRAMS, FAILURES, REJECTED, STALE, CONTRACTED)


def _in_a_period(metric: FieldMetric) -> MetricFamily:
    """A register's family for calendar periods: `..._joules` becomes `..._period_joules`."""
    stem, _, unit = metric.name.rpartition("_")
    return gauge(
        f"{stem}_period_{unit}",
        f"{metric.help.split(' (')[0]} in a calendar period of the configured zone (period: day, "
        "week or month; start: its first local day): the current and the previous period.",
    )


PERIOD_COST = gauge(
    "amiplus_period_cost_pln",
    "Cost of imported energy in a calendar period per tariff zone (energy and variable "
    "distribution prices of the configuration), PLN.",
)
PERIOD_EXPORT_VALUE = gauge(
    "amiplus_period_export_value_pln",
    "Value of exported energy in a calendar period at the configured export price, PLN.",
)
PERIOD_PARTIAL = gauge(
    "amiplus_period_partial",
    "1 when the period's figures are partial: the meter was not heard across a boundary "
    "(absent when complete).",
)
ACTIVE_TARIFF = gauge(
    "amiplus_meter_active_tariff", "The tariff zone counting now: the register that advanced last."
)
CALENDAR_REST = (PERIOD_COST, PERIOD_EXPORT_VALUE, PERIOD_PARTIAL, ACTIVE_TARIFF)

#: An energy register's families for periods: its total's, its tariffs' (imported energy only,
#: the one priced per zone; the page and the API have both ways) and the factor from kWh.
PeriodEnergy = tuple[Field, MetricFamily, MetricFamily | None, float]


@dataclass(frozen=True, slots=True)
class Families:
    """The per-meter families of one field table: measurements (in table order, then
    reception), each row's own families, and the calendar's."""

    measurements: tuple[MetricFamily, ...]
    rows: dict[str, tuple[MetricFamily | None, MetricFamily | None]]  # key: (total, tariffs)
    period_energy: tuple[PeriodEnergy, ...]
    calendar: tuple[MetricFamily, ...]


def _family(metric: FieldMetric | None) -> MetricFamily | None:
    return None if metric is None else MetricFamily.of(metric)


def families_of(fields: FieldTable) -> Families:
    rows = {row.key: (_family(row.metric), _family(row.tariff_metric)) for row in fields.rows}
    measurements = tuple(family for pair in rows.values() for family in pair if family)
    period_energy = tuple(
        (
            row,
            _in_a_period(row.metric),
            _in_a_period(row.tariff_metric) if row is fields.imported else None,
            row.metric.scale,
        )
        for row in fields.energy
        if row.metric is not None and row.tariff_metric is not None
    )
    calendar = tuple(f for _, total, zones, _ in period_energy for f in (total, zones) if f)
    return Families(
        (*measurements, *RECEPTION),
        rows,
        period_energy,
        (*calendar, *CALENDAR_REST),
    )


def families() -> Families:
    """The families of the current field table (worked out once per table)."""
    return table().derived(families_of)


def period_lines(
    meter_id: str, figures: list[Figure], active: int | None, priced: bool
) -> dict[str, str]:
    """The calendar samples of one meter, by family name."""
    known = families()
    out: dict[str, list[str]] = {family.name: [] for family in known.calendar}
    meter = label("meter_id", meter_id)
    for figure in figures:
        period = label("period", figure.period.kind)
        ident = f"{meter},{period},{label('start', figure.start.isoformat())}"
        for row, total, zones, scale in known.period_energy:
            if row.key in figure.energy:
                out[total.name].append(line(total, ident, figure.energy[row.key] * scale))
            if zones is not None:
                for zone, kwh in sorted(figure.tariffs(row).items()):
                    labels = f"{ident},{label('tariff', zone)}"
                    out[zones.name].append(line(zones, labels, kwh * scale))
        if priced:
            cost = figure.cost
            for zone, (energy, distribution) in cost.zones.items():
                labels = f"{ident},{label('tariff', zone)}"
                pln = round(energy + distribution, 6)
                out[PERIOD_COST.name].append(line(PERIOD_COST, labels, pln))
            out[PERIOD_EXPORT_VALUE.name].append(line(PERIOD_EXPORT_VALUE, ident, cost.export))
        if figure.partial:
            out[PERIOD_PARTIAL.name].append(line(PERIOD_PARTIAL, ident, 1))
    if active is not None:
        out[ACTIVE_TARIFF.name].append(line(ACTIVE_TARIFF, meter, active))
    return {name: "".join(lines) for name, lines in out.items() if lines}


def measurement_lines(meter: MeterState) -> dict[str, str]:
    """The measurement samples of one meter, by family name."""
    values = meter.values
    ident = label("meter_id", meter.meter_id)
    out: dict[str, str] = {}
    own = families().rows
    for row in table().rows:
        metric = row.metric
        family, tariff_family = own[row.key]
        if metric is None or family is None:
            continue
        value = values.get(row.key)
        if row.shape is Shape.PHASES:
            if value:
                out[family.name] = "".join(
                    line(family, f"{ident},{label('phase', phase)}", number * metric.scale)
                    for phase, number in sorted(value.items())
                )
            continue
        if value is not None:
            number = value.timestamp() if row.shape is Shape.TIME else value * metric.scale
            out[family.name] = line(family, ident, number)
        tariff_metric = row.tariff_metric
        per_tariff = values.get(row.tariff_key) if tariff_metric is not None else None
        if per_tariff and tariff_metric is not None and tariff_family is not None:
            out[tariff_family.name] = "".join(
                line(
                    tariff_family,
                    f"{ident},{label('tariff', tariff)}",
                    number * tariff_metric.scale,
                )
                for tariff, number in sorted(per_tariff.items())
            )
    signals = "".join(
        line(RECEIVER_RSSI, f"{ident},{label('receiver', name)}", reception.rssi_dbm)
        for name, reception in sorted(meter.receptions.items())
        if reception.rssi_dbm is not None
    )
    if signals:
        out[RECEIVER_RSSI.name] = signals
    best = meter.best_receiver
    if best is not None:
        out[BEST_RECEIVER.name] = line(BEST_RECEIVER, f"{ident},{label('receiver', best)}", 1)
    return out


def health_lines(meter: MeterState, stale: bool) -> dict[str, str]:
    """The samples that stay while a meter is silent, by family name."""
    ident = label("meter_id", meter.meter_id)
    info = ",".join(
        (
            ident,
            label("name", meter.name),
            label("meter_site", meter.site),
            label("manufacturer", meter.manufacturer),
            label("version", meter.version or ""),
            label("serial_number", meter.values.get("serial_number", "")),
        )
    )
    out = {
        INFO.name: line(INFO, info, 1),
        TELEGRAMS.name: line(TELEGRAMS, ident, meter.telegrams),
        FAILURES.name: line(FAILURES, ident, meter.decrypt_failures),
        STALE.name: line(STALE, ident, 1 if stale else 0),
    }
    if meter.last_telegram_at is not None:
        out[LAST.name] = line(LAST, ident, meter.last_telegram_at)
    if meter.contracted_power is not None:
        out[CONTRACTED.name] = line(CONTRACTED, ident, meter.contracted_power)
    if meter.rejected:
        out[REJECTED.name] = "".join(
            line(REJECTED, f"{ident},{label('reason', reason)}", count)
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
    configuration reloads, the build and the calendar periods' starts."""

    def __init__(
        self,
        state: State,
        receivers: Callable[[], list[ReceiverStats]],
        outputs: Callable[[], Iterable[Output]],
        reloads: ConfigReloads,
        calendar: Calendar | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.receivers = receivers
        self.outputs = outputs
        self.reloads = reloads
        self.calendar = calendar
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        yield from receiver_families(self.receivers())
        counts = self.state.counts()
        yield CounterMetricFamily(
            "amiplus_unconfigured_telegrams",
            "Telegrams from meters that are not configured (neighbours' meters).",
            value=counts.unconfigured_telegrams,
        )
        yield CounterMetricFamily(
            "amiplus_duplicate_frames",
            "Frames heard again within the duplicate window.",
            value=counts.duplicates,
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
        if self.calendar is not None:
            yield period_starts(self.calendar, self.clock())
        for output in self.outputs():
            yield from output.collect()


def receiver_families(receivers: list[ReceiverStats]) -> Iterator[Metric]:
    """The receivers' families (one sample per receiver view; errors for every reason)."""
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
    dropped = CounterMetricFamily(
        "amiplus_receiver_messages_dropped",
        "Messages a receiver took from its broker and dropped for want of room (a flood).",
        labels=["receiver"],
    )
    refused = CounterMetricFamily(
        "amiplus_receiver_gateways_refused",
        "Messages from gateways that got no receiver view of their own (beyond the limit of "
        "gateways, or a name that is not 1-64 characters); they count under the receiver.",
        labels=["receiver"],
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
        if stats.dropped is not None:
            dropped.add_metric([stats.name], stats.dropped)
        if stats.gateways_refused is not None:
            refused.add_metric([stats.name], stats.gateways_refused)
    yield from (up, frames, last, reconnects, errors)
    yield from (family for family in (closed, dropped, refused) if family.samples)


def period_starts(calendar: Calendar, now: float) -> Metric:
    """When the current and the previous day, week and month began (local midnight as Unix
    time), labelled like the periods' samples: what dashboards match a query's step with."""
    family = GaugeMetricFamily(
        "amiplus_period_start_timestamp_seconds",
        "When a calendar period of the configured zone began (the current and the previous "
        "day, week and month).",
        labels=["period", "start"],
    )
    today = local_day(now, calendar.zone)
    for period in PERIODS:
        start = calendar_period_start(period.kind, today, period.back)
        family.add_metric([period.kind, start.isoformat()], midnight(start, calendar.zone))
    return family


def registry(collector: Collector) -> CollectorRegistry:
    """A private registry: the exporter's collector and the process, platform and GC ones."""
    out = CollectorRegistry(auto_describe=False)
    for each in (collector, PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        out.register(each)
    return out
