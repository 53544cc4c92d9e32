"""What the MQTT output says, as plain data (docs/contracts.md, section 7): the entities of
a meter derived from the field table (and, for a settled meter, from the settlement figure
table), every topic of one configuration, the state and settlement messages and the Home
Assistant discovery documents. No I/O; the publisher decides when each is sent."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ... import __version__
from ...amiplus import (
    MAKERS,
    PHASES,
    TARIFFS,
    Field,
    FieldTable,
    HomeAssistant,
    Shape,
    model_of,
    table,
    values_as_json,
)
from ...config import DEFAULT_BASE_TOPIC, MqttConfig, Scheme
from ...pipeline import MeterUpdate
from ...settlement import FigureTable, figure_table

ONLINE, OFFLINE = "online", "offline"
ORIGIN = {"name": "amiplus-exporter", "sw_version": __version__}
RECEIVED_AT = "received_at"  # the state's receive time, besides the reading's keys


@dataclass(frozen=True, slots=True)
class Entity:
    """One Home Assistant sensor of a meter: a field's total, tariff or phase, or a settlement
    figure (`settled`: read from the settlement message instead of the state message)."""

    key: str  # the last part of its unique_id and discovery topic
    name: str  # English, without the device name (Home Assistant puts that in front)
    template: str  # value_template over the state (or settlement) message
    classes: HomeAssistant
    settled: bool = False


def _part_key(row: Field, part: str) -> str:
    """`energy_imported_kwh` + `t1` -> `energy_imported_t1_kwh` (the InfluxDB field names)."""
    suffix = f"_{row.unit.lower()}"
    return f"{row.key.removesuffix(suffix)}_{part}{suffix}"


def _row_entities(row: Field, ha: HomeAssistant) -> Iterator[Entity]:
    name, key = row.label.en, row.key
    if row.shape is Shape.PHASES:
        for phase in PHASES:
            yield Entity(
                _part_key(row, phase.value.lower()),
                f"{name} {phase.value}",
                f"{{{{ value_json.{key}.{phase.value} }}}}",
                ha,
            )
        return
    yield Entity(key, name, f"{{{{ value_json.{key} }}}}", ha)
    if row.shape is Shape.TARIFFS:
        for tariff in TARIFFS:
            yield Entity(
                _part_key(row, f"t{tariff}"),
                f"{name} tariff {tariff}",
                f"{{{{ value_json.{row.tariff_key}['{tariff}'] }}}}",
                ha,
            )


LAST_TELEGRAM = Entity(
    "last_telegram",
    "Last telegram",
    f"{{{{ value_json.{RECEIVED_AT} }}}}",
    HomeAssistant("timestamp", None, None, diagnostic=True),
)
#: A field's entity keys: its own key if it is one (not for per-phase fields), and where its
#: parts are (the tariff or phase map) with the key of each part.
Probe = tuple[str | None, str, dict[Any, str]]
SHARED_LAYOUTS = 256


@dataclass(frozen=True, slots=True)
class Entities:
    """The entities of one field table: every one by key, the probes that find a meter's, and
    the layouts seen (one tuple for every meter of one layout)."""

    every: dict[str, Entity]
    probes: tuple[Probe, ...]
    layouts: dict[tuple[str, ...], tuple[str, ...]]


def entities_of(fields: FieldTable) -> Entities:
    every: dict[str, Entity] = {}
    probes: list[Probe] = []
    for row in fields.rows:
        if row.home_assistant is None:
            continue
        every |= {entity.key: entity for entity in _row_entities(row, row.home_assistant)}
        if row.shape is Shape.PHASES:
            probes.append(
                (None, row.key, {p.value: _part_key(row, p.value.lower()) for p in PHASES})
            )
        elif row.shape is Shape.TARIFFS:
            parts = {t: _part_key(row, f"t{t}") for t in TARIFFS}
            probes.append((row.key, row.tariff_key, parts))
        else:
            probes.append((row.key, "", {}))
    every[LAST_TELEGRAM.key] = LAST_TELEGRAM
    return Entities(every, tuple(probes), {})


@dataclass(frozen=True, slots=True)
class Settled:
    """The settlement entities of one figure table: every one by key, and the keys of each
    scheme's."""

    every: dict[str, Entity]
    by_scheme: dict[Scheme, tuple[str, ...]]


def settled_of(figures: FigureTable) -> Settled:
    every: dict[str, Entity] = {}
    by_scheme: dict[Scheme, tuple[str, ...]] = {}
    for row in figures.now:
        if row.home_assistant is None:
            continue
        template = f"{{{{ value_json.{row.key} }}}}"
        every[row.key] = Entity(row.key, row.label.en, template, row.home_assistant, True)
        for scheme in sorted(row.schemes):
            by_scheme[scheme] = (*by_scheme.get(scheme, ()), row.key)
    return Settled(every, by_scheme)


def entities() -> dict[str, Entity]:
    """Every entity a meter can have, by key: the field table's in its order, then the
    settlement figures'."""
    return {**table().derived(entities_of).every, **figure_table().derived(settled_of).every}


def entity(key: str) -> Entity:
    """One entity by key (a field's or a settlement figure's)."""
    found = table().derived(entities_of).every.get(key)
    return found if found is not None else figure_table().derived(settled_of).every[key]


def settled_keys(scheme: Scheme | None) -> tuple[str, ...]:
    """The settlement entities of a meter settled by `scheme` (none when not settled)."""
    if scheme is None:
        return ()
    return figure_table().derived(settled_of).by_scheme.get(scheme, ())


def entity_keys(values: Mapping[str, Any]) -> tuple[str, ...]:
    """The entities of the fields a meter has sent (its merged values), in table order; meters
    that sent the same fields share the tuple."""
    known = table().derived(entities_of)
    keys: list[str] = []
    for key, parts_key, parts in known.probes:
        if key is not None and values.get(key) is not None:
            keys.append(key)
        present = values.get(parts_key) if parts_key else None
        if present:
            keys.extend(parts[part] for part in sorted(present) if part in parts)
    keys.append(LAST_TELEGRAM.key)
    found = tuple(keys)
    layouts = known.layouts
    return layouts.setdefault(found, found) if len(layouts) < SHARED_LAYOUTS else found


def received_at_text(moment: float) -> str:
    """The receive time: ISO 8601, UTC, milliseconds."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


def state_payload(update: MeterUpdate) -> bytes:
    """The state message: the reading's identity, the meter's merged values as `decode` prints
    them, and the receive time; compact JSON."""
    out = update.reading.identity()
    out.update(values_as_json(update.values))
    out[RECEIVED_AT] = received_at_text(update.received_at)
    return _dumps(out)


def settlement_payload(update: MeterUpdate) -> bytes:
    """The settlement message: the scheme, every figure of the ledger now that the scheme has
    (null while not known), the start of the hour counting and the receive time of the reading
    the figures are as of; compact JSON."""
    view = update.settlement
    assert view is not None
    out: dict[str, Any] = {"scheme": view.scheme.value}
    for row in figure_table().now:
        if view.scheme in row.schemes:
            value = row.read(view)
            out[row.key] = None if value is None else round(float(value), 6)
    out["hour_start"] = None if view.hour is None else received_at_text(view.hour.start)
    out[RECEIVED_AT] = received_at_text(update.received_at)
    return _dumps(out)


def _dumps(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _slug(text: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in text)


@dataclass(frozen=True, slots=True)
class Identity:
    """What the device entry of a meter says about it."""

    name: str
    manufacturer: str  # the 3-letter code
    version: int
    device_type: int
    serial_number: str | None


class Topics:
    """Every topic of one configuration and the discovery documents that name them."""

    def __init__(self, config: MqttConfig) -> None:
        self.base = config.base_topic
        self.prefix = config.discovery_prefix
        self.qos = config.qos
        self.status = f"{self.base}/status"
        self.exporter_id = f"amiplus_exporter_{_slug(self.base)}"
        suffix = "" if self.base == DEFAULT_BASE_TOPIC else f" {self.base}"
        self.exporter_name = f"amiplus-exporter{suffix}"

    def state(self, meter: str) -> str:
        return f"{self.base}/{meter}/state"

    def availability(self, meter: str) -> str:
        return f"{self.base}/{meter}/availability"

    def settlement(self, meter: str) -> str:
        return f"{self.base}/{meter}/settlement"

    def discovery(self, meter: str, entity: str) -> str:
        return f"{self.prefix}/sensor/amiplus_{_slug(meter)}/{entity}/config"

    @property
    def exporter_discovery(self) -> str:
        return f"{self.prefix}/binary_sensor/{self.exporter_id}/status/config"

    @property
    def home_assistant_status(self) -> str:
        return f"{self.prefix}/status"

    def device(self, meter: str, identity: Identity) -> dict[str, Any]:
        code = identity.manufacturer
        model = model_of(code, identity.version, identity.device_type)
        device: dict[str, Any] = {
            "identifiers": [f"amiplus_{meter}"],
            "name": identity.name,
            "manufacturer": MAKERS.get(code, code),
            "model": model or f"{code} version {identity.version}",
        }
        if identity.serial_number:
            device["serial_number"] = identity.serial_number
        device["via_device"] = self.exporter_id
        return device

    def sensor(self, meter: str, identity: Identity, entity: Entity) -> bytes:
        """The discovery document of one sensor of a meter."""
        ha = entity.classes
        document: dict[str, Any] = {
            "name": entity.name,
            "unique_id": f"amiplus_{meter}_{entity.key}",
            "state_topic": self.settlement(meter) if entity.settled else self.state(meter),
            "value_template": entity.template,
        }
        if ha.device_class:
            document["device_class"] = ha.device_class
        if ha.state_class:
            document["state_class"] = ha.state_class
        if ha.unit:
            document["unit_of_measurement"] = ha.unit
        if ha.precision is not None:
            document["suggested_display_precision"] = ha.precision
        if ha.diagnostic:
            document["entity_category"] = "diagnostic"
        document["availability"] = [{"topic": self.status}, {"topic": self.availability(meter)}]
        document["availability_mode"] = "all"
        document["qos"] = self.qos
        document["device"] = self.device(meter, identity)
        document["origin"] = ORIGIN
        return _dumps(document)

    def exporter(self) -> bytes:
        """The exporter's own device (the meters' `via_device`) with its connectivity."""
        return _dumps(
            {
                "name": "Status",
                "unique_id": f"{self.exporter_id}_status",
                "state_topic": self.status,
                "payload_on": ONLINE,
                "payload_off": OFFLINE,
                "device_class": "connectivity",
                "entity_category": "diagnostic",
                "qos": self.qos,
                "device": {
                    "identifiers": [self.exporter_id],
                    "name": self.exporter_name,
                    "manufacturer": "amiplus-exporter",
                    "model": "wireless M-Bus receiver",
                    "sw_version": __version__,
                },
                "origin": ORIGIN,
            }
        )
