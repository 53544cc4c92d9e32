"""AMIplus meaning: decoded records to a typed `MeterReading` (design.md 3.2), and back.

Meaning comes from what a record measures (quantity, function, direction, tariff, phase), not from
a list of byte strings, so every vendor's layout (spec/protocol.md 7) maps through one table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .wmbus import Telegram, WMBusError
from .wmbus.encoder import encode_data
from .wmbus.records import Coding, Function, Record, RecordHeader, Value, parse_header
from .wmbus.timepoint import TimePoint, TimeType
from .wmbus.vif import Combinable, Phase, Quantity

WARSAW = ZoneInfo("Europe/Warsaw")

#: Makers whose clocks set the summer-time flag reliably (spec/protocol.md 6.3); for the others
#: a clear flag says nothing, and the repeated autumn hour is resolved with the receive time.
SUMMER_FLAG_MANUFACTURERS = frozenset({"APA", "DEV", "EGM", "KPL"})

TARIFFS = range(1, 5)
PHASES = (Phase.L1, Phase.L2, Phase.L3)


class Field(enum.Enum):
    """A named value of a reading; the value is the JSON key of design.md 3.2."""

    METER_TIME = "meter_time"
    SERIAL_NUMBER = "serial_number"
    ENERGY_IMPORTED = "energy_imported_kwh"
    ENERGY_EXPORTED = "energy_exported_kwh"
    POWER_IMPORTED = "power_imported_w"
    POWER_EXPORTED = "power_exported_w"
    POWER_IMPORTED_MAX = "power_imported_max_w"
    VOLTAGE = "voltage_v"
    CURRENT = "current_a"
    REACTIVE_ENERGY_IMPORTED = "reactive_energy_imported_kvarh"
    REACTIVE_ENERGY_EXPORTED = "reactive_energy_exported_kvarh"
    REACTIVE_POWER_IMPORTED = "reactive_power_imported_var"
    REACTIVE_POWER_EXPORTED = "reactive_power_exported_var"


class Shape(enum.Enum):
    """How a field holds its values."""

    SINGLE = "single"
    TARIFFS = "total and tariffs 1-4"
    PHASES = "per phase"


@dataclass(frozen=True, slots=True)
class Meaning:
    field: Field
    unit_exponent: int = 0  # reported unit = base unit * 10**unit_exponent (kWh: 3)
    shape: Shape = Shape.SINGLE


#: (quantity, function, backward flow) -> meaning. Everything else is an unknown record.
MEANINGS: dict[tuple[Quantity, Function, bool], Meaning] = {
    (Quantity.DATE_TIME, Function.INSTANTANEOUS, False): Meaning(Field.METER_TIME),
    (Quantity.FABRICATION_NUMBER, Function.INSTANTANEOUS, False): Meaning(Field.SERIAL_NUMBER),
    (Quantity.ENERGY, Function.INSTANTANEOUS, False): Meaning(
        Field.ENERGY_IMPORTED, 3, Shape.TARIFFS
    ),
    (Quantity.ENERGY, Function.INSTANTANEOUS, True): Meaning(
        Field.ENERGY_EXPORTED, 3, Shape.TARIFFS
    ),
    (Quantity.POWER, Function.INSTANTANEOUS, False): Meaning(Field.POWER_IMPORTED),
    (Quantity.POWER, Function.INSTANTANEOUS, True): Meaning(Field.POWER_EXPORTED),
    (Quantity.POWER, Function.MAXIMUM, False): Meaning(Field.POWER_IMPORTED_MAX),
    (Quantity.VOLTAGE, Function.INSTANTANEOUS, False): Meaning(Field.VOLTAGE, 0, Shape.PHASES),
    (Quantity.CURRENT, Function.INSTANTANEOUS, False): Meaning(Field.CURRENT, 0, Shape.PHASES),
    (Quantity.REACTIVE_ENERGY, Function.INSTANTANEOUS, False): Meaning(
        Field.REACTIVE_ENERGY_IMPORTED, 3
    ),
    (Quantity.REACTIVE_ENERGY, Function.INSTANTANEOUS, True): Meaning(
        Field.REACTIVE_ENERGY_EXPORTED, 3
    ),
    (Quantity.REACTIVE_POWER, Function.INSTANTANEOUS, False): Meaning(
        Field.REACTIVE_POWER_IMPORTED
    ),
    (Quantity.REACTIVE_POWER, Function.INSTANTANEOUS, True): Meaning(Field.REACTIVE_POWER_EXPORTED),
}

_DIRECTIONS = frozenset({Combinable.FORWARD, Combinable.BACKWARD})
_NUMERIC = frozenset({Coding.BCD, Coding.INTEGER, Coding.REAL})


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one record goes in a reading: field, tariff (0 = total), phase, and scale."""

    meaning: Meaning
    tariff: int
    phase: Phase | None
    exponent: int  # value in the reported unit = raw * 10**exponent


def slot_for(header: RecordHeader) -> Slot | None:
    """The reading slot of a record header, or None when it is an unknown record."""
    data, value = header.data, header.value
    if data.storage_number or data.subunit or value.manufacturer_specific:
        return None
    if value.combinables - _DIRECTIONS:
        return None
    backward = Combinable.BACKWARD in value.combinables
    meaning = MEANINGS.get((value.quantity, data.function, backward))
    if meaning is None:
        return None
    if meaning.field is Field.METER_TIME:
        ok = data.coding is Coding.INTEGER and data.length == 6 and not data.tariff
    elif meaning.field is Field.SERIAL_NUMBER:
        ok = data.coding in (Coding.BCD, Coding.INTEGER) and not data.tariff
    else:
        ok = data.coding in _NUMERIC and (
            data.tariff in TARIFFS
            if meaning.shape is Shape.TARIFFS and data.tariff
            else not data.tariff
        )
    if meaning.shape is Shape.PHASES:
        ok = ok and value.phase in PHASES
    elif value.phase is not None:
        ok = False
    if not ok:
        return None
    return Slot(meaning, data.tariff, value.phase, value.exponent - meaning.unit_exponent)


class _SlotCache:
    """Slots by record key; bounded like the header cache, so garbage cannot grow it."""

    def __init__(self, limit: int = 4096) -> None:
        self._slots: dict[str, Slot | None] = {}
        self._limit = limit

    def get(self, header: RecordHeader) -> Slot | None:
        try:
            return self._slots[header.key]
        except KeyError:
            slot = slot_for(header)
            if len(self._slots) < self._limit:
                self._slots[header.key] = slot
            return slot


_SLOTS = _SlotCache()


def scale(raw: int | float, exponent: int) -> float:
    """raw * 10**exponent, correctly rounded (a division for negative exponents)."""
    return raw / 10**-exponent if exponent < 0 else float(raw * 10**exponent)


def local_time(
    point: TimePoint,
    manufacturer: str,
    zone: ZoneInfo = WARSAW,
    received_at: datetime | None = None,
) -> datetime | None:
    """A meter's wall-clock time as an aware datetime; None if the fields are not a date.

    The zone rules give the offset; the summer-time flag (or, for makers that never set it,
    the receive time) only decides which of the two repeated autumn hours is meant.
    """
    try:
        first = datetime(
            point.year,
            point.month,
            point.day,
            point.hour,
            point.minute,
            point.second,
            tzinfo=zone,
        )
    except ValueError:
        return None
    second = first.replace(fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    if point.summer_time:
        return first
    if manufacturer in SUMMER_FLAG_MANUFACTURERS:
        return second
    if received_at is not None:
        return min((first, second), key=lambda t: abs(t - received_at))
    return first


def time_point_text(point: TimePoint, manufacturer: str, zone: ZoneInfo = WARSAW) -> str:
    """A date/time record as text: ISO 8601 with the zone's offset where it has a date."""
    if point.type is TimeType.G:
        return f"{point.year:04d}-{point.month:02d}-{point.day:02d}"
    if point.type is TimeType.J:
        return f"{point.hour:02d}:{point.minute:02d}:{point.second:02d}"
    moment = local_time(point, manufacturer, zone)
    if moment is None:
        return (
            f"{point.year:04d}-{point.month:02d}-{point.day:02d}T"
            f"{point.hour:02d}:{point.minute:02d}:{point.second:02d}"
        )
    return moment.isoformat()


@dataclass(frozen=True, slots=True)
class UnknownRecord:
    """A record without a named field, kept with its key and raw (unscaled) value."""

    key: str
    value: Value

    def as_json(self, manufacturer: str, zone: ZoneInfo = WARSAW) -> dict[str, Any]:
        value = self.value
        out: dict[str, Any] = {"key": self.key}
        if isinstance(value, TimePoint):
            out["value"] = time_point_text(value, manufacturer, zone)
            if value.invalid:
                out["invalid"] = True
        elif isinstance(value, bytes):
            out["value"] = value.hex().upper()
        else:
            out["value"] = value
        return out


@dataclass(frozen=True, slots=True)
class MeterReading:
    """Everything one telegram said, in named fields and meter units (design.md 3.2)."""

    meter_id: str
    manufacturer: str
    version: int
    device_type: int
    access_number: int | None = None
    rssi_dbm: float | None = None
    meter_time: datetime | None = None
    serial_number: str | None = None
    energy_imported_kwh: float | None = None
    energy_imported_derived: bool = False
    energy_imported_tariff_kwh: Mapping[int, float] = field(default_factory=dict)
    energy_exported_kwh: float | None = None
    energy_exported_derived: bool = False
    energy_exported_tariff_kwh: Mapping[int, float] = field(default_factory=dict)
    power_imported_w: float | None = None
    power_exported_w: float | None = None
    power_imported_max_w: float | None = None
    voltage_v: Mapping[str, float] = field(default_factory=dict)
    current_a: Mapping[str, float] = field(default_factory=dict)
    reactive_energy_imported_kvarh: float | None = None
    reactive_energy_exported_kvarh: float | None = None
    reactive_power_imported_var: float | None = None
    reactive_power_exported_var: float | None = None
    unknown: tuple[UnknownRecord, ...] = ()

    def as_json(self, zone: ZoneInfo = WARSAW) -> dict[str, Any]:
        """The JSON object of design.md 3.2; keys without a value are left out."""
        out: dict[str, Any] = {"ok": True}
        for name in _JSON_ORDER:
            value = getattr(self, name)
            if value is None or value is False or (not value and isinstance(value, Mapping)):
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, Mapping):
                value = {str(k): v for k, v in value.items()}
            out[name] = value
        if self.unknown:
            out["unknown"] = [u.as_json(self.manufacturer, zone) for u in self.unknown]
        return out


_JSON_ORDER = tuple(f for f in MeterReading.__dataclass_fields__ if f != "unknown")

_SINGLE_ATTRIBUTE = {
    Field.METER_TIME: "meter_time",
    Field.SERIAL_NUMBER: "serial_number",
    Field.POWER_IMPORTED: "power_imported_w",
    Field.POWER_EXPORTED: "power_exported_w",
    Field.POWER_IMPORTED_MAX: "power_imported_max_w",
    Field.REACTIVE_ENERGY_IMPORTED: "reactive_energy_imported_kvarh",
    Field.REACTIVE_ENERGY_EXPORTED: "reactive_energy_exported_kvarh",
    Field.REACTIVE_POWER_IMPORTED: "reactive_power_imported_var",
    Field.REACTIVE_POWER_EXPORTED: "reactive_power_exported_var",
}

#: Tariff fields: (total attribute, derived flag attribute, per-tariff attribute).
_TARIFF_ATTRIBUTES = {
    Field.ENERGY_IMPORTED: (
        "energy_imported_kwh",
        "energy_imported_derived",
        "energy_imported_tariff_kwh",
    ),
    Field.ENERGY_EXPORTED: (
        "energy_exported_kwh",
        "energy_exported_derived",
        "energy_exported_tariff_kwh",
    ),
}
_PHASE_ATTRIBUTES = {Field.VOLTAGE: "voltage_v", Field.CURRENT: "current_a"}


def _serial(record: Record) -> str | None:
    value = record.value
    if not isinstance(value, int):
        return None
    return f"{value:0{2 * record.header.data.length}d}" if value >= 0 else str(value)


def read_meter(
    telegram: Telegram,
    *,
    zone: ZoneInfo = WARSAW,
    received_at: datetime | None = None,
    rssi_dbm: float | None = None,
) -> MeterReading:
    """Name every record of a decoded telegram; unmatched records are kept as unknown."""
    address = telegram.address
    manufacturer = address.manufacturer
    values: dict[str, Any] = {}
    tariffs: dict[Field, dict[int, tuple[int | float, int]]] = {}
    phases: dict[str, dict[str, float]] = {}
    unknown: list[UnknownRecord] = []
    slot_get = _SLOTS.get
    for record in telegram.records:
        slot = slot_get(record.header)
        raw = record.value
        if slot is None or raw is None:
            if slot is None:
                unknown.append(UnknownRecord(record.header.key, raw))
            continue
        target = slot.meaning.field
        if target is Field.METER_TIME:
            moment = (
                local_time(raw, manufacturer, zone, received_at)
                if isinstance(raw, TimePoint) and not raw.invalid
                else None
            )
            if moment is None or "meter_time" in values:
                unknown.append(UnknownRecord(record.header.key, raw))
            else:
                values["meter_time"] = moment
            continue
        if target is Field.SERIAL_NUMBER:
            values.setdefault("serial_number", _serial(record))
            continue
        if not isinstance(raw, int | float):
            unknown.append(UnknownRecord(record.header.key, raw))
        elif target in _TARIFF_ATTRIBUTES:
            tariffs.setdefault(target, {}).setdefault(slot.tariff, (raw, slot.exponent))
        elif target in _PHASE_ATTRIBUTES and slot.phase is not None:
            phases.setdefault(_PHASE_ATTRIBUTES[target], {}).setdefault(
                slot.phase.value, scale(raw, slot.exponent)
            )
        else:
            values.setdefault(_SINGLE_ATTRIBUTE[target], scale(raw, slot.exponent))
    for target, registers in tariffs.items():
        total_name, derived_name, per_tariff_name = _TARIFF_ATTRIBUTES[target]
        per_tariff = {t: scale(*registers[t]) for t in sorted(registers) if t}
        values[per_tariff_name] = per_tariff
        if 0 in registers:
            values[total_name] = scale(*registers[0])
        elif per_tariff:
            values[total_name] = _sum_registers([registers[t] for t in per_tariff])
            values[derived_name] = True
    values.update(phases)
    return MeterReading(
        meter_id=address.meter_id,
        manufacturer=manufacturer,
        version=address.version,
        device_type=address.device_type,
        access_number=telegram.transport.access_number,
        rssi_dbm=rssi_dbm,
        unknown=tuple(unknown),
        **values,
    )


def _sum_registers(registers: list[tuple[int | float, int]]) -> float:
    """Exact sum of scaled integer registers (no binary rounding residue in the total)."""
    if not all(isinstance(raw, int) for raw, _ in registers):
        return sum(scale(raw, exponent) for raw, exponent in registers)
    low = min(exponent for _, exponent in registers)
    return scale(sum(int(raw) * 10 ** (exponent - low) for raw, exponent in registers), low)


def _time_point(moment: datetime) -> TimePoint:
    """A type I time point as AMIplus meters send it (summer-time flag set in summer)."""
    return TimePoint(
        TimeType.I,
        year=moment.year,
        month=moment.month,
        day=moment.day,
        hour=moment.hour,
        minute=moment.minute,
        second=moment.second,
        summer_time=bool(moment.dst()),
        day_of_week=moment.isoweekday(),
    )


def _field_value(reading: MeterReading, slot: Slot) -> float | datetime | str | None:
    target = slot.meaning.field
    if target in _TARIFF_ATTRIBUTES:
        total_name, _, per_tariff_name = _TARIFF_ATTRIBUTES[target]
        if slot.tariff:
            per_tariff: Mapping[int, float] = getattr(reading, per_tariff_name)
            return per_tariff.get(slot.tariff)
        total: float | None = getattr(reading, total_name)
        return total
    if target in _PHASE_ATTRIBUTES:
        per_phase: Mapping[str, float] = getattr(reading, _PHASE_ATTRIBUTES[target])
        return per_phase.get(slot.phase.value) if slot.phase else None
    value: float | datetime | str | None = getattr(reading, _SINGLE_ATTRIBUTE[target])
    return value


def encode_reading(reading: MeterReading, keys: tuple[str, ...], zone: ZoneInfo = WARSAW) -> bytes:
    """The records of `keys` (DIB+VIB hex) carrying the reading's values: the inverse of
    `read_meter`, for the simulator and round-trip tests. Unknown keys take their value from
    `reading.unknown`; a key without a value is an error, so layouts stay honest."""
    unknown = {u.key: u.value for u in reading.unknown}
    out = bytearray()
    for key in keys:
        header_bytes = bytes.fromhex(key)
        header = parse_header(header_bytes)
        slot = slot_for(header)
        value: Value
        if slot is None:
            if key not in unknown:
                raise ValueError(f"no value for the unknown record {key}")
            value = unknown[key]
        else:
            wanted = _field_value(reading, slot)
            if wanted is None:
                raise ValueError(f"the reading has no value for {key} ({slot.meaning.field.value})")
            if isinstance(wanted, datetime):
                value = _time_point(wanted.astimezone(zone))
            elif isinstance(wanted, str):
                value = int(wanted)
            else:
                value = round(wanted * 10**-slot.exponent)
        out += header_bytes + encode_data(header.data, value)
    return bytes(out)


def failure_as_json(error: WMBusError) -> dict[str, Any]:
    """The failure object of design.md 3.2, with the header fields known before the failure."""
    out: dict[str, Any] = {"ok": False, "error": error.code, "message": error.message}
    transport = error.transport
    address = (transport.address if transport else None) or (
        error.link.address if error.link else None
    )
    if address is not None:
        out["meter_id"] = address.meter_id
        out["manufacturer"] = address.manufacturer
        out["version"] = address.version
        out["device_type"] = address.device_type
    if transport is not None and transport.access_number is not None:
        out["access_number"] = transport.access_number
    return out
