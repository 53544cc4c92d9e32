"""AMIplus meaning: decoded records to a typed `MeterReading` (design.md 3.2), and back.

Meaning comes from what a record measures (quantity, function, direction, tariff, phase), not from
a list of byte strings, so every vendor's layout (spec/protocol.md 7) maps through one table.
"""

from __future__ import annotations

import enum
import functools
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..wmbus import Telegram, WMBusError
from ..wmbus.encoder import encode_data
from ..wmbus.records import Coding, DataInformation, Function, RecordHeader, Value, parse_header
from ..wmbus.timepoint import TimePoint, TimeType
from ..wmbus.vif import Combinable, Phase, Quantity

WARSAW = ZoneInfo("Europe/Warsaw")

#: Makers whose clocks set the summer-time flag reliably (spec/protocol.md 6.3); for the others
#: a clear flag says nothing, and the repeated autumn hour is resolved with the receive time.
SUMMER_FLAG_MANUFACTURERS = frozenset({"APA", "DEV", "EGM", "KPL"})

TARIFFS = range(1, 5)
PHASES = (Phase.L1, Phase.L2, Phase.L3)


class Field(enum.Enum):
    """A named value of a reading; the value is its `MeterReading` attribute and JSON key."""

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

    SINGLE = "single number"
    TARIFFS = "total and tariffs 1-4"
    PHASES = "per phase"
    TIME = "date and time"
    DIGITS = "digits"


@dataclass(frozen=True, slots=True)
class Meaning:
    field: Field
    unit_exponent: int = 0  # reported unit = base unit * 10**unit_exponent (kWh: 3)
    shape: Shape = Shape.SINGLE


#: (quantity, function, backward flow) -> meaning. Everything else is an unknown record.
MEANINGS: dict[tuple[Quantity, Function, bool], Meaning] = {
    (Quantity.DATE_TIME, Function.INSTANTANEOUS, False): Meaning(Field.METER_TIME, 0, Shape.TIME),
    (Quantity.FABRICATION_NUMBER, Function.INSTANTANEOUS, False): Meaning(
        Field.SERIAL_NUMBER, 0, Shape.DIGITS
    ),
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

#: `MeterReading` attributes holding one number (totals included), and those holding a map
#: (tariff or phase -> number): what outputs walk.
NUMBER_FIELDS = tuple(
    m.field.value for m in MEANINGS.values() if m.shape in (Shape.SINGLE, Shape.TARIFFS)
)
MAP_FIELDS = (
    "energy_imported_tariff_kwh",
    "energy_exported_tariff_kwh",
    *(m.field.value for m in MEANINGS.values() if m.shape is Shape.PHASES),
)

_DIRECTIONS = frozenset({Combinable.FORWARD, Combinable.BACKWARD})
_NUMERIC = frozenset({Coding.BCD, Coding.INTEGER, Coding.REAL})
_DIGITS = frozenset({Coding.BCD, Coding.INTEGER})


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one record goes in a reading, precomputed for the hot path of `read_meter`."""

    shape: Shape
    name: str  # the `MeterReading` attribute (for tariffs: the total's)
    tariff: int  # 0: the total
    phase: str | None  # "L1", "L2", "L3" for per-phase fields
    exponent: int  # value in the reported unit = raw * 10**exponent
    multiplier: int  # `factors(exponent)`, kept for the hot path
    divisor: int


def _fits(shape: Shape, data: DataInformation, phase: Phase | None) -> bool:
    """Whether a record's coding, tariff and phase suit the shape of its meaning."""
    if (phase is not None) != (shape is Shape.PHASES) or (
        phase is not None and phase not in PHASES
    ):
        return False
    if data.tariff and not (shape is Shape.TARIFFS and data.tariff in TARIFFS):
        return False
    if shape is Shape.TIME:
        return data.coding is Coding.INTEGER and data.length == 6  # type I
    if shape is Shape.DIGITS:
        return data.coding in _DIGITS
    return data.coding in _NUMERIC


def slot_for(header: RecordHeader) -> Slot | None:
    """The reading slot of a record header, or None when it is an unknown record."""
    data, value = header.data, header.value
    if data.storage_number or data.subunit or value.manufacturer_specific:
        return None
    if value.combinables - _DIRECTIONS:
        return None
    backward = Combinable.BACKWARD in value.combinables
    meaning = MEANINGS.get((value.quantity, data.function, backward))
    if meaning is None or not _fits(meaning.shape, data, value.phase):
        return None
    exponent = value.exponent - meaning.unit_exponent
    return Slot(
        meaning.shape,
        meaning.field.value,
        data.tariff,
        value.phase.value if value.phase else None,
        exponent,
        *factors(exponent),
    )


def factors(exponent: int) -> tuple[int, int]:
    """10**exponent as (multiplier, divisor): `raw * m / d` is exact integer arithmetic and one
    correctly rounded division, so 15694050 Wh is 15694.05 kWh, not 15694.050000000001."""
    return 10 ** max(exponent, 0), 10 ** max(-exponent, 0)


def scale(raw: int | float, exponent: int) -> float:
    """raw * 10**exponent, correctly rounded."""
    multiplier, divisor = factors(exponent)
    return raw * multiplier / divisor


@functools.lru_cache(maxsize=1024)
def _repeated_hour(zone: ZoneInfo, year: int, month: int, day: int, hour: int) -> bool:
    """Whether this wall-clock hour happens twice (clocks go back; on the hour in Europe)."""
    moment = datetime(year, month, day, hour, 30, tzinfo=zone)
    return moment.utcoffset() != moment.replace(fold=1).utcoffset()


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
    if not _repeated_hour(zone, point.year, point.month, point.day, point.hour):
        return first
    second = first.replace(fold=1)
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
    key_variant: str | None = None  # set when only the byte-reversed key decrypts
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
        for name, value in zip(_JSON_ORDER, _json_values(self), strict=True):
            if value is None or value is False:
                continue
            kind = type(value)
            if kind is dict:
                if value:
                    out[name] = {str(k): v for k, v in value.items()}
            elif kind is datetime:
                out[name] = value.isoformat()
            else:
                out[name] = value
        if self.unknown:
            out["unknown"] = [u.as_json(self.manufacturer, zone) for u in self.unknown]
        return out


_JSON_ORDER = tuple(f for f in MeterReading.__dataclass_fields__ if f != "unknown")
_json_values = operator.attrgetter(*_JSON_ORDER)

#: Total register attribute -> (derived flag attribute, per-tariff attribute).
_TARIFF_ATTRIBUTES = {
    Field.ENERGY_IMPORTED.value: ("energy_imported_derived", "energy_imported_tariff_kwh"),
    Field.ENERGY_EXPORTED.value: ("energy_exported_derived", "energy_exported_tariff_kwh"),
}

Step = tuple[int, str, int, int]  # record index, attribute, multiplier, divisor


@dataclass(frozen=True, slots=True)
class Register:
    """A total register and its tariffs, as record indexes of one layout."""

    name: str  # the total's attribute
    derived: str  # the attribute flagging a total summed from the tariffs
    per_tariff: str  # the attribute of the tariff map
    total: tuple[int, int, int] | None  # index, multiplier, divisor
    tariffs: tuple[tuple[int, int, int, int, int], ...]  # tariff, index, m, d, exponent


@dataclass(frozen=True, slots=True)
class Plan:
    """Where each record of one layout goes: worked out once, then used for every telegram.

    A record's Python type follows from its DIB coding, which `slot_for` checks, so the hot
    loop only tests for "no value". Of two records for the same field the first wins; the
    other is kept as unknown.
    """

    singles: tuple[Step, ...]
    phases: tuple[tuple[int, str, str, int, int], ...]  # index, attribute, phase, m, d
    registers: tuple[Register, ...]
    times: tuple[int, ...]
    serials: tuple[tuple[int, int], ...]  # index, BCD digits
    unknown: tuple[int, ...]

    @classmethod
    def of(cls, headers: tuple[RecordHeader, ...]) -> Plan:
        taken: set[tuple[str, object]] = set()
        singles: list[Step] = []
        phases: list[tuple[int, str, str, int, int]] = []
        tariffs: dict[str, dict[int, tuple[int, int, int, int]]] = {}
        times: list[int] = []
        serials: list[tuple[int, int]] = []
        unknown: list[int] = []
        for index, header in enumerate(headers):
            slot = slot_for(header)
            place = (slot.name, slot.phase or slot.tariff) if slot is not None else None
            if slot is None or place is None or place in taken:
                unknown.append(index)
                continue
            taken.add(place)
            step = (index, slot.name, slot.multiplier, slot.divisor)
            if slot.shape is Shape.SINGLE:
                singles.append(step)
            elif slot.shape is Shape.PHASES:
                phases.append((index, slot.name, slot.phase or "", *factors(slot.exponent)))
            elif slot.shape is Shape.TARIFFS:
                tariffs.setdefault(slot.name, {})[slot.tariff] = (
                    index,
                    slot.multiplier,
                    slot.divisor,
                    slot.exponent,
                )
            elif slot.shape is Shape.TIME:
                times.append(index)
            else:
                serials.append((index, 2 * header.data.length))
        registers = tuple(
            Register(
                name,
                *_TARIFF_ATTRIBUTES[name],
                by_tariff[0][:3] if 0 in by_tariff else None,
                tuple((t, *by_tariff[t]) for t in sorted(by_tariff) if t),
            )
            for name, by_tariff in tariffs.items()
        )
        return cls(
            tuple(singles),
            tuple(phases),
            registers,
            tuple(times),
            tuple(serials),
            tuple(unknown),
        )


#: Plans by layout (the tuple of interned record headers); bounded like the header cache.
_PLANS: dict[tuple[RecordHeader, ...], Plan] = {}
PLAN_CACHE_LIMIT = 1024


def _plan(headers: tuple[RecordHeader, ...]) -> Plan:
    plan = _PLANS.get(headers)
    if plan is None:
        plan = Plan.of(headers)
        if len(_PLANS) < PLAN_CACHE_LIMIT:
            _PLANS[headers] = plan
    return plan


def read_meter(
    telegram: Telegram,
    *,
    zone: ZoneInfo = WARSAW,
    received_at: datetime | None = None,
    rssi_dbm: float | None = None,
) -> MeterReading:
    """Name every record of a decoded telegram; unmatched records are kept as unknown."""
    address = telegram.address
    records = telegram.records
    plan = _plan(records.headers)
    raws = records.values
    values: dict[str, Any] = {}
    unknown = list(plan.unknown)
    for index, name, multiplier, divisor in plan.singles:
        raw = raws[index]
        if isinstance(raw, (int, float)):  # else None: the meter has no value for it
            values[name] = raw * multiplier / divisor
    for index, name, phase, multiplier, divisor in plan.phases:
        raw = raws[index]
        if isinstance(raw, (int, float)):
            values.setdefault(name, {})[phase] = raw * multiplier / divisor
    for register in plan.registers:
        _read_register(register, raws, values)
    for index in plan.times:
        point = raws[index]
        moment = None
        if isinstance(point, TimePoint) and not point.invalid:
            moment = local_time(point, address.manufacturer, zone, received_at)
        if moment is None:
            unknown.append(index)
        else:
            values["meter_time"] = moment
    for index, digits in plan.serials:
        raw = raws[index]
        if isinstance(raw, int):
            values["serial_number"] = f"{raw:0{digits}d}" if raw >= 0 else str(raw)
    if len(unknown) > len(plan.unknown):
        unknown.sort()
    headers = records.headers
    variant = telegram.key_variant
    return MeterReading(
        meter_id=address.meter_id,
        manufacturer=address.manufacturer,
        version=address.version,
        device_type=address.device_type,
        access_number=telegram.transport.access_number,
        rssi_dbm=rssi_dbm,
        key_variant=variant.value if variant is not None and variant.reversed else None,
        unknown=tuple(UnknownRecord(headers[i].key, raws[i]) for i in unknown),
        **values,
    )


def _read_register(register: Register, raws: tuple[Value, ...], values: dict[str, Any]) -> None:
    """A total and its tariffs; a missing total is the exact sum of all the tariffs."""
    per_tariff: dict[int, float] = {}
    present: list[tuple[int | float, int]] = []
    for tariff, index, multiplier, divisor, exponent in register.tariffs:
        raw = raws[index]
        if isinstance(raw, (int, float)):
            per_tariff[tariff] = raw * multiplier / divisor
            present.append((raw, exponent))
    if per_tariff:
        values[register.per_tariff] = per_tariff
    if register.total is not None:
        index, multiplier, divisor = register.total
        raw = raws[index]
        if isinstance(raw, (int, float)):
            values[register.name] = raw * multiplier / divisor
    elif present and len(present) == len(register.tariffs):
        values[register.name] = _sum_registers(present)
        values[register.derived] = True


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
    )


def _field_value(reading: MeterReading, slot: Slot) -> float | datetime | str | None:
    """The reading's value for a slot: the inverse of `read_meter` for one record."""
    shape = slot.shape
    if shape is Shape.TARIFFS and slot.tariff:
        per_tariff: Mapping[int, float] = getattr(reading, _TARIFF_ATTRIBUTES[slot.name][1])
        return per_tariff.get(slot.tariff)
    if shape is Shape.PHASES and slot.phase is not None:
        per_phase: Mapping[str, float] = getattr(reading, slot.name)
        return per_phase.get(slot.phase)
    value: float | datetime | str | None = getattr(reading, slot.name)
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
                raise ValueError(f"the reading has no value for {key} ({slot.name})")
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
