"""Decoded records to a `MeterReading`: named values in meter units (docs/contracts.md, section 2).

Meaning comes from what a record measures (quantity, function, direction, tariff, phase), looked
up in the field table, not from a list of byte strings, so every vendor's layout
(docs/amiplus-meters.md, section 3) maps through the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..wmbus import (
    BoundedCache,
    Coding,
    Combinable,
    DataInformation,
    InvalidValue,
    Phase,
    RecordHeader,
    Telegram,
    TimePoint,
    Value,
)
from .clock import WARSAW, local_time, time_point_text
from .fields import RSSI, Field, Shape, table

TARIFFS = range(1, 5)
PHASES = (Phase.L1, Phase.L2, Phase.L3)

_DIRECTIONS = frozenset({Combinable.FORWARD, Combinable.BACKWARD})
_NUMERIC = frozenset({Coding.BCD, Coding.INTEGER, Coding.REAL})
_DIGITS = frozenset({Coding.BCD, Coding.INTEGER})


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one record goes in a reading, worked out once per record header."""

    field: Field
    tariff: int  # 0: the total
    phase: str | None  # "L1", "L2", "L3" for per-phase fields
    exponent: int  # value in the field's unit = raw * 10**exponent
    multiplier: int  # `factors(exponent)`, kept for the hot path
    divisor: int


def _fits(shape: Shape, data: DataInformation, phase: Phase | None) -> bool:
    """Whether a record's coding, tariff and phase suit the shape of its field."""
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
    selector = (value.quantity, data.function, Combinable.BACKWARD in value.combinables)
    row = table().by_records.get(selector)
    if row is None or not _fits(row.shape, data, value.phase):
        return None
    exponent = value.exponent - row.unit_exponent
    return Slot(
        row,
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


@dataclass(frozen=True, slots=True)
class UnknownRecord:
    """A record without a field, kept with its key and raw (unscaled) value."""

    key: str
    value: Value

    def as_json(self, manufacturer: str, zone: ZoneInfo = WARSAW) -> dict[str, Any]:
        value = self.value
        out: dict[str, Any] = {"key": self.key}
        if isinstance(value, TimePoint):
            out["value"] = time_point_text(value, manufacturer, zone)
            if value.invalid:
                out["invalid"] = True
        elif isinstance(value, InvalidValue):
            out["value"] = value.data.hex().upper()
            out["invalid"] = True
            out["reason"] = value.reason
        elif isinstance(value, bytes):
            out["value"] = value.hex().upper()
        else:
            out["value"] = value
        return out


@dataclass(frozen=True, slots=True)
class MeterReading:
    """Everything one telegram said: who sent it, and its values by field key (fields.py).

    A field with tariffs keeps its total under `key`, the tariffs as `{tariff: value}` under
    `tariff_key`, and `derived_key: True` when the total was summed from the tariffs; a field
    per phase keeps `{"L1": value, ...}`.
    """

    meter_id: str
    manufacturer: str
    version: int
    device_type: int
    access_number: int | None = None
    key_variant: str | None = None  # set when only the byte-reversed key decrypts
    values: Mapping[str, Any] = field(default_factory=dict)
    unknown: tuple[UnknownRecord, ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        """The value of a field (see fields.py), or `default` when the telegram lacked it."""
        return self.values.get(key, default)

    @property
    def rssi_dbm(self) -> float | None:
        rssi: float | None = self.values.get(RSSI)
        return rssi

    @property
    def meter_time(self) -> datetime | None:
        moment: datetime | None = self.values.get("meter_time")
        return moment

    def identity(self) -> dict[str, Any]:
        """Who sent the telegram, as JSON: meter ID, manufacturer, version, device type, and the
        access number and key variant when known."""
        out: dict[str, Any] = {
            "meter_id": self.meter_id,
            "manufacturer": self.manufacturer,
            "version": self.version,
            "device_type": self.device_type,
        }
        if self.access_number is not None:
            out["access_number"] = self.access_number
        if self.key_variant is not None:
            out["key_variant"] = self.key_variant
        return out

    def as_json(self, zone: ZoneInfo = WARSAW) -> dict[str, Any]:
        """The JSON object of a decoded telegram; keys without a value are left out."""
        out: dict[str, Any] = {"ok": True, **self.identity()}
        out.update(values_as_json(self.values))
        if self.unknown:
            out["unknown"] = [u.as_json(self.manufacturer, zone) for u in self.unknown]
        return out


def values_as_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """Field values as JSON: table order, maps with text keys, times as ISO 8601."""
    out: dict[str, Any] = {}
    for row in table().rows:
        value = values.get(row.key)
        if value is not None:
            out[row.key] = value.isoformat() if row.shape is Shape.TIME else value
        if row.derived_key and values.get(row.derived_key):
            out[row.derived_key] = True
        per_key = values.get(row.tariff_key) if row.tariff_key else None
        if per_key:
            out[row.tariff_key] = {str(k): v for k, v in per_key.items()}
    return out


PlanStep = tuple[int, str, int, int]  # record index, key, multiplier, divisor


@dataclass(frozen=True, slots=True)
class Register:
    """A total register and its tariffs, as record indexes of one layout."""

    key: str  # the total's key
    derived_key: str  # flags a total summed from the tariffs
    tariff_key: str  # the key of the tariff map
    total: tuple[int, int, int] | None  # index, multiplier, divisor
    tariffs: tuple[tuple[int, int, int, int, int], ...]  # tariff, index, m, d, exponent


@dataclass(frozen=True, slots=True)
class Plan:
    """Where each record of one layout goes: worked out once, then used for every telegram.

    A record's Python type follows from its DIB coding, which `slot_for` checks, so the hot
    loop only tests for "no value". Of two records for the same field the first wins; the
    other is kept as unknown.
    """

    singles: tuple[PlanStep, ...]
    phases: tuple[tuple[int, str, str, int, int], ...]  # index, key, phase, m, d
    registers: tuple[Register, ...]
    times: tuple[tuple[int, str], ...]  # index, key
    serials: tuple[tuple[int, str, int], ...]  # index, key, BCD digits
    unknown: tuple[int, ...]
    bcd: tuple[int, ...]  # named records whose BCD data may turn out invalid (then unknown)

    @classmethod
    def of(cls, headers: tuple[RecordHeader, ...]) -> Plan:
        taken: set[tuple[str, object]] = set()
        singles: list[PlanStep] = []
        phases: list[tuple[int, str, str, int, int]] = []
        tariffs: dict[Field, dict[int, tuple[int, int, int, int]]] = {}
        times: list[tuple[int, str]] = []
        serials: list[tuple[int, str, int]] = []
        unknown: list[int] = []
        for index, header in enumerate(headers):
            slot = slot_for(header)
            place = (slot.field.key, slot.phase or slot.tariff) if slot is not None else None
            if slot is None or place is None or place in taken:
                unknown.append(index)
                continue
            taken.add(place)
            key, shape = slot.field.key, slot.field.shape
            if shape is Shape.SINGLE:
                singles.append((index, key, slot.multiplier, slot.divisor))
            elif shape is Shape.PHASES:
                phases.append((index, key, slot.phase or "", slot.multiplier, slot.divisor))
            elif shape is Shape.TARIFFS:
                tariffs.setdefault(slot.field, {})[slot.tariff] = (
                    index,
                    slot.multiplier,
                    slot.divisor,
                    slot.exponent,
                )
            elif shape is Shape.TIME:
                times.append((index, key))
            else:
                serials.append((index, key, 2 * header.data.length))
        registers = tuple(
            Register(
                row.key,
                row.derived_key,
                row.tariff_key,
                by_tariff[0][:3] if 0 in by_tariff else None,
                tuple((t, *by_tariff[t]) for t in sorted(by_tariff) if t),
            )
            for row, by_tariff in tariffs.items()
        )
        bcd = tuple(
            index
            for index, header in enumerate(headers)
            if index not in unknown and header.data.coding in (Coding.BCD, Coding.VARIABLE)
        )
        return cls(
            tuple(singles),
            tuple(phases),
            registers,
            tuple(times),
            tuple(serials),
            tuple(unknown),
            bcd,
        )


#: Plans by layout (the tuple of interned record headers).
PLANS: BoundedCache[tuple[RecordHeader, ...], Plan] = BoundedCache("reading plans", 1024)


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
    headers = records.headers
    plan = PLANS.get(headers) or PLANS.put(headers, Plan.of(headers))
    raws = records.values
    values: dict[str, Any] = {}
    if rssi_dbm is not None:
        values[RSSI] = rssi_dbm
    unknown = list(plan.unknown)
    for index, key, multiplier, divisor in plan.singles:
        raw = raws[index]
        if isinstance(raw, (int, float)):  # else None: the meter has no value for it
            values[key] = raw * multiplier / divisor
    for index, key, phase, multiplier, divisor in plan.phases:
        raw = raws[index]
        if isinstance(raw, (int, float)):
            values.setdefault(key, {})[phase] = raw * multiplier / divisor
    for register in plan.registers:
        _read_register(register, raws, values)
    for index, key in plan.times:
        point = raws[index]
        moment = None
        if isinstance(point, TimePoint) and not point.invalid:
            moment = local_time(point, address.manufacturer, zone, received_at)
        if moment is None:
            unknown.append(index)
        else:
            values[key] = moment
    for index, key, digits in plan.serials:
        raw = raws[index]
        if isinstance(raw, int):
            values[key] = f"{raw:0{digits}d}" if raw >= 0 else str(raw)
    unknown += (index for index in plan.bcd if type(raws[index]) is InvalidValue)
    if len(unknown) > len(plan.unknown):
        unknown.sort()
    variant = telegram.key_variant
    return MeterReading(
        meter_id=address.meter_id,
        manufacturer=address.manufacturer,
        version=address.version,
        device_type=address.device_type,
        access_number=telegram.transport.access_number,
        key_variant=variant.value if variant is not None and variant.reversed else None,
        values=values,
        unknown=tuple(UnknownRecord(headers[i].key, raws[i]) for i in unknown),
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
        values[register.tariff_key] = per_tariff
    if register.total is not None:
        index, multiplier, divisor = register.total
        raw = raws[index]
        if isinstance(raw, (int, float)):
            values[register.key] = raw * multiplier / divisor
    elif present and len(present) == len(register.tariffs):
        values[register.key] = _sum_registers(present)
        values[register.derived_key] = True


def _sum_registers(registers: list[tuple[int | float, int]]) -> float:
    """Exact sum of scaled integer registers (no binary rounding residue in the total)."""
    if not all(isinstance(raw, int) for raw, _ in registers):
        return sum(scale(raw, exponent) for raw, exponent in registers)
    low = min(exponent for _, exponent in registers)
    return scale(sum(int(raw) * 10 ** (exponent - low) for raw, exponent in registers), low)
