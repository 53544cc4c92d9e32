"""Simulated AMIplus meters that behave like real ones, sent as real encrypted frames.

The default is a three-phase, two-tariff (G12) prosumer household: a daily load shape with
morning and evening peaks, PV export around midday, voltages wandering between about 225 and
250 V and rising under export, registers that only grow. The physics is worked out once per
telegram (a `Step`) and handed to every row of the field table by the row's selector (`PHYSICS`);
a row it does not know is imagined from its shape (`Imagined`). Telegrams are built with the
core's encoder in the record layout of any family (docs/amiplus-meters.md, section 3), plus
records for the rows no family carries, and go through the same framer, core and state path as a
USB stick's (they leave `SimulatorSource` as hex lines).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from ..wmbus import (
    Address,
    Coding,
    DataInformation,
    Function,
    Phase,
    Quantity,
    TimePoint,
    TimeType,
    encode_frame,
    encode_header,
    manufacturer_code,
    parse_header,
    vif_exponents,
)
from .clock import WARSAW
from .encoding import encode_reading
from .families import FAMILIES, FAMILIES_BY_NAME, Family
from .fields import Field, FieldTable, Selector, Shape, table
from .reading import PHASES, TARIFFS, MeterReading, UnknownRecord, factors, scale, slot_for

DEFAULT_FAMILY = "otus"  # a TAURON Apator Otus 3: three phases, tariff registers
DEFAULT_KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")  # documented, not secret
DEFAULT_METER_ID = "12345678"
G12_ZONES = (1, 2)  # the tariffs a G12 meter counts in

#: What an unknown record of a family carries (observed values; docs/amiplus-meters.md, 3).
UNKNOWN_VALUES: dict[str, dict[str, int]] = {
    "gama": {"0BABC8FC10": 70_000},
    "kpl": {"0BABC8FC10": 99_000},
}


def g12_tariff(moment: datetime) -> int:
    """TAURON G12: tariff 2 (cheaper) 13-15 h and 22-6 h local time, tariff 1 otherwise."""
    hour = moment.astimezone(WARSAW).hour
    return 2 if hour >= 22 or hour < 6 or 13 <= hour < 15 else 1


def household_load_w(moment: datetime, rng: random.Random) -> float:
    """Consumption of a household: base load, morning and evening peaks, appliance noise."""
    local = moment.astimezone(WARSAW)
    hour = local.hour + local.minute / 60
    base = 180 + 60 * math.sin(hour / 24 * 2 * math.pi)
    morning = 900 * math.exp(-(((hour - 7.2) / 0.8) ** 2))
    evening = 1600 * math.exp(-(((hour - 19.5) / 1.6) ** 2))
    appliance = 2000 if rng.random() < 0.03 else 0  # kettle, oven, washing machine
    return max(80.0, base + morning + evening + appliance + rng.gauss(0, 40))


def pv_power_w(moment: datetime, peak_w: float, cloudiness: float, rng: random.Random) -> float:
    """A PV system: a bell around solar noon, taller in summer, dimmed by clouds."""
    local = moment.astimezone(WARSAW)
    hour = local.hour + local.minute / 60 - (1 if local.dst() else 0)
    day = local.timetuple().tm_yday
    season = 0.55 + 0.45 * math.cos((day - 172) / 365 * 2 * math.pi)
    width = 2.2 + 1.3 * season
    sun = math.exp(-(((hour - 12.3) / width) ** 2)) if 4 < hour < 21 else 0.0
    clouds = 1 - cloudiness * (0.6 + 0.4 * rng.random())
    return max(0.0, peak_w * season * sun * clouds)


#: What one step measured for a row, in the VIF's base units: a number, one per tariff or per
#: phase, the clock or the serial number.
Measured = float | dict[Any, float] | datetime | str


@dataclass(frozen=True, slots=True)
class Step:
    """What the meter measures at one moment, in the VIF's base units (Wh, W, V, A, varh, var):
    worked out once per telegram, then handed to every row of the field table."""

    clock: datetime
    serial: str
    elapsed_h: float
    load_w: float
    tariff: int
    imported_w: float
    exported_w: float
    maximum_w: float
    imported_wh: dict[int, float]
    exported_wh: dict[int, float]
    reactive_imported_varh: float
    reactive_exported_varh: float
    reactive_imported_var: float
    reactive_exported_var: float
    voltages: dict[str, float]
    currents: dict[str, float]


@dataclass(frozen=True, slots=True)
class Physical:
    """A quantity the simulated household knows: the shape it comes in, what a step measured,
    and its resolution (registers count, gauges are rounded to, 10**resolution base units)."""

    shape: Shape
    measure: Callable[[Step], Measured]
    resolution: int = 0


_NOW, _MAXIMUM = Function.INSTANTANEOUS, Function.MAXIMUM

#: The field table's selectors the physics knows; a row of another selector or shape is imagined.
PHYSICS: dict[Selector, Physical] = {
    (Quantity.DATE_TIME, _NOW, False): Physical(Shape.TIME, attrgetter("clock")),
    (Quantity.FABRICATION_NUMBER, _NOW, False): Physical(Shape.DIGITS, attrgetter("serial")),
    (Quantity.ENERGY, _NOW, False): Physical(Shape.TARIFFS, attrgetter("imported_wh")),
    (Quantity.ENERGY, _NOW, True): Physical(Shape.TARIFFS, attrgetter("exported_wh")),
    (Quantity.POWER, _NOW, False): Physical(Shape.SINGLE, attrgetter("imported_w")),
    (Quantity.POWER, _NOW, True): Physical(Shape.SINGLE, attrgetter("exported_w")),
    (Quantity.POWER, _MAXIMUM, False): Physical(Shape.SINGLE, attrgetter("maximum_w")),
    (Quantity.VOLTAGE, _NOW, False): Physical(Shape.PHASES, attrgetter("voltages"), -1),
    (Quantity.CURRENT, _NOW, False): Physical(Shape.PHASES, attrgetter("currents"), -2),
    (Quantity.REACTIVE_ENERGY, _NOW, False): Physical(
        Shape.SINGLE, attrgetter("reactive_imported_varh")
    ),
    (Quantity.REACTIVE_ENERGY, _NOW, True): Physical(
        Shape.SINGLE, attrgetter("reactive_exported_varh")
    ),
    (Quantity.REACTIVE_POWER, _NOW, False): Physical(
        Shape.SINGLE, attrgetter("reactive_imported_var")
    ),
    (Quantity.REACTIVE_POWER, _NOW, True): Physical(
        Shape.SINGLE, attrgetter("reactive_exported_var")
    ),
}

GAUGE_MIDDLE = 50.0  # an imagined gauge wanders around 50 of its unit (a frequency looks right)
GAUGE_SPREAD = 5.0  # ... and stays within +-5


#: What an imagined value is kept per, by shape: each G12 zone, each phase, else one number.
_PARTS: dict[Shape, tuple[Any, ...]] = {
    Shape.TARIFFS: G12_ZONES,
    Shape.PHASES: tuple(phase.value for phase in PHASES),
}
#: The records a simulated meter adds for a row, by shape: (tariff, phase) of each, else one.
_PLACES: dict[Shape, tuple[tuple[int, Phase | None], ...]] = {
    Shape.TARIFFS: ((0, None), *((zone, None) for zone in G12_ZONES)),
    Shape.PHASES: tuple((0, phase) for phase in PHASES),
}
#: How those records are coded, by shape; numbers have 12 BCD digits.
_CODINGS: dict[Shape, tuple[Coding, int]] = {
    Shape.TIME: (Coding.INTEGER, 6),  # type I, as 066D
    Shape.DIGITS: (Coding.BCD, 4),  # eight digits, as 0C78
}


@dataclass
class Imagined:
    """A row the physics does not know, simulated by its shape: a register grows with the
    household's load (one of its units per kWh), a gauge wanders around `GAUGE_MIDDLE` of its
    unit; per phase gives L1-L3, tariffs follow the G12 zone."""

    row: Field
    rng: random.Random
    parts: dict[Any, float] = field(init=False)  # registers in base units, gauges' offsets

    def __post_init__(self) -> None:
        register = self.row.register
        self.parts = {
            part: self.rng.uniform(100, 1000) * self.unit if register else 0.0
            for part in _PARTS.get(self.row.shape, ("",))
        }

    @property
    def unit(self) -> float:
        """The row's unit in base units."""
        return scale(1, self.row.unit_exponent)

    def measure(self, step: Step) -> Measured:
        """Advance by one step and say what the meter measures now."""
        shape = self.row.shape
        if shape is Shape.TIME:
            return step.clock
        if shape is Shape.DIGITS:
            return step.serial
        share = 1 / len(self.parts) if shape is Shape.PHASES else 1.0  # of the load
        values: dict[Any, float] = {}
        for part in self.parts:
            if shape is Shape.TARIFFS and part != step.tariff:
                values[part] = self.parts[part] if self.row.register else 0.0
            elif self.row.register:
                self.parts[part] += step.load_w / 1000 * step.elapsed_h * share * self.unit
                values[part] = self.parts[part]
            else:
                offset = 0.9 * self.parts[part] + self.rng.gauss(0, GAUGE_SPREAD / 5)
                self.parts[part] = min(GAUGE_SPREAD, max(-GAUGE_SPREAD, offset))
                values[part] = (GAUGE_MIDDLE + self.parts[part]) * self.unit
        return values if shape in (Shape.TARIFFS, Shape.PHASES) else values[""]


def record_exponent(row: Field) -> int:
    """The exponent of the records a simulated meter adds for a row: three decimals of the row's
    unit, or the nearest exponent the VIF tables hold for its quantity."""
    wanted = row.unit_exponent - 3
    held = vif_exponents(row.records[0]) if row.records else ()
    return min(held, key=lambda e: (abs(e - wanted), -e), default=wanted)


def _shaped(row: Field, measured: Measured, resolution: int) -> dict[str, Any]:
    """A row's reading values from what a step measured in base units: registers count whole
    steps of 10**resolution base units (as the meters' BCD does), gauges are rounded to them."""

    steps, per_step = factors(-resolution)
    multiplier, divisor = factors(-row.unit_exponent)

    def in_unit(value: float) -> float:
        if row.register:
            value = math.floor(value * steps / per_step) * per_step / steps
        else:
            value = round(value, -resolution)
        return value * multiplier / divisor

    if isinstance(measured, datetime | str):
        return {row.key: measured}
    if not isinstance(measured, dict):
        return {row.key: in_unit(measured)}
    if row.shape is Shape.TARIFFS:
        total = in_unit(sum(measured.values()))
        return {row.key: total, row.tariff_key: {t: in_unit(measured.get(t, 0.0)) for t in TARIFFS}}
    return {row.key: {part: in_unit(value) for part, value in measured.items()}}


def _record_keys(row: Field) -> tuple[str, ...]:
    """Record keys (DIB+VIB hex) that carry a row: the total and the G12 zones of a row with
    tariffs, L1-L3 of one per phase, else one; from its selector and `record_exponent`."""
    assert row.records is not None
    quantity, function, backward = row.records
    coding, length = _CODINGS.get(row.shape, (Coding.BCD, 6))
    exponent = record_exponent(row)
    return tuple(
        encode_header(
            DataInformation(coding, length, function, tariff=tariff),
            quantity,
            exponent,
            backward=backward,
            phase=phase,
        )
        .hex()
        .upper()
        for tariff, phase in _PLACES.get(row.shape, ((0, None),))
    )


def _unnamed(family: Family) -> tuple[tuple[str, bool], ...]:
    """The family's record keys that no row of the field table names, and whether each holds a
    time (they reach the reading as unknown records)."""
    keys = sorted({key for keys in family.record_sets for key in keys})
    headers = [parse_header(bytes.fromhex(key)) for key in keys]
    return tuple(
        (header.key, header.data.coding is Coding.INTEGER)
        for header in headers
        if slot_for(header) is None
    )


@dataclass(frozen=True, eq=False)
class Extras:
    """What simulated telegrams carry besides the named records of their family, worked out
    once per field table: `appended`, the record keys of the rows no family carries (a quantity
    new to the table), which every telegram adds; and `unnamed` by family."""

    appended: tuple[str, ...]
    unnamed: dict[Family, tuple[tuple[str, bool], ...]]


def extras(fields: FieldTable) -> Extras:
    """The `Extras` of a field table (a `FieldTable.derived` view)."""
    unnamed = {family: _unnamed(family) for family in FAMILIES}
    carried: set[str] = set()
    for family in FAMILIES:
        for keys in family.record_sets:
            slots = (slot_for(parse_header(bytes.fromhex(key))) for key in keys)
            carried.update(slot.field.key for slot in slots if slot is not None)
    appended = tuple(
        key
        for row in fields.rows
        if row.records and row.key not in carried
        for key in _record_keys(row)
    )
    return Extras(appended, unnamed)


@dataclass
class SimulatedMeter:
    """One meter's physical state; `telegram(now)` advances it and encodes a frame."""

    family: Family
    meter_id: str = DEFAULT_METER_ID
    key: bytes = DEFAULT_KEY
    seed: int = 0
    pv_peak_w: float = 5_500.0
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    imported_wh: dict[int, float] = field(default_factory=lambda: {1: 2_345_678.0, 2: 1_234_567.0})
    exported_wh: dict[int, float] = field(default_factory=lambda: {1: 456_789.0, 2: 98_765.0})
    reactive_varh: list[float] = field(default_factory=lambda: [123_456.0, 23_456.0])
    voltage_offsets: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    maximum_w: float = 0.0
    maximum_at: datetime | None = None
    access_number: int = 0
    sent: int = 0
    last: datetime | None = None
    imagined: dict[str, Imagined] = field(default_factory=dict)  # by row key
    rng: random.Random = field(init=False)
    cloudiness: float = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}-{self.meter_id}")
        self.cloudiness = self.rng.random()
        if self.family.constant_access_number is not None:
            self.access_number = self.family.constant_access_number
        else:
            self.access_number = self.rng.randrange(256)

    @property
    def address(self) -> Address:
        return Address(
            manufacturer_code(self.family.manufacturer),
            bytes.fromhex(self.meter_id)[::-1],
            self.family.version,
            self.family.device_type,
        )

    def step(self, now: datetime) -> Step:
        """Advance the physics to `now`: what the household measures at that moment."""
        elapsed_h = (now - self.last).total_seconds() / 3600 if self.last else 0.0
        self.last = now
        if now.astimezone(WARSAW).day == 1 and now.astimezone(WARSAW).hour == 0:
            self.maximum_w = 0.0  # maximum demand resets with the billing month
        load = household_load_w(now, self.rng)
        pv = pv_power_w(now, self.pv_peak_w, self.cloudiness, self.rng)
        imported, exported = max(0.0, load - pv), max(0.0, pv - load)
        tariff = g12_tariff(now)
        self.imported_wh[tariff] += imported * elapsed_h
        self.exported_wh[tariff] += exported * elapsed_h
        self.reactive_varh[0] += 0.12 * load * elapsed_h
        self.reactive_varh[1] += 0.03 * pv * elapsed_h
        if imported > self.maximum_w:
            self.maximum_w, self.maximum_at = imported, now
        voltages = {}
        currents = {}
        for n, phase in enumerate(PHASES):
            self.voltage_offsets[n] = 0.9 * self.voltage_offsets[n] + self.rng.gauss(0, 1.2)
            rise = exported / 1000 * 2.4 - imported / 1000 * 0.8
            volts = min(252.0, max(224.0, 234.0 + self.voltage_offsets[n] + rise))
            voltages[phase.value] = volts
            currents[phase.value] = (imported + exported) / 3 / volts
        return Step(
            clock=now.astimezone(WARSAW).replace(microsecond=0),
            serial=self.meter_id,
            elapsed_h=elapsed_h,
            load_w=load,
            tariff=tariff,
            imported_w=imported,
            exported_w=exported,
            maximum_w=self.maximum_w,
            imported_wh=dict(self.imported_wh),
            exported_wh=dict(self.exported_wh),
            reactive_imported_varh=self.reactive_varh[0],
            reactive_exported_varh=self.reactive_varh[1],
            reactive_imported_var=0.12 * load,
            reactive_exported_var=0.03 * pv,
            voltages=voltages,
            currents=currents,
        )

    def reading(self, now: datetime) -> MeterReading:
        """Advance the physics to `now` and return what the meter would display: a value for
        every row of the field table that comes from records."""
        step = self.step(now)
        values: dict[str, Any] = {}
        for row in table().rows:
            if row.records is None:
                continue
            known = PHYSICS.get(row.records)
            if known is not None and known.shape is row.shape:
                values |= _shaped(row, known.measure(step), known.resolution)
            else:
                values |= _shaped(row, self._imagined(row).measure(step), record_exponent(row))
        return MeterReading(
            meter_id=self.meter_id,
            manufacturer=self.family.manufacturer,
            version=self.family.version,
            device_type=self.family.device_type,
            access_number=self.access_number,
            values=values,
            unknown=self._unknown(now),
        )

    def _imagined(self, row: Field) -> Imagined:
        found = self.imagined.get(row.key)
        if found is None or found.row is not row:
            rng = random.Random(f"{self.seed}-{self.meter_id}-{row.key}")
            found = self.imagined[row.key] = Imagined(row, rng)
        return found

    def _unknown(self, now: datetime) -> tuple[UnknownRecord, ...]:
        values = UNKNOWN_VALUES.get(self.family.name, {})
        maximum_at = (self.maximum_at or now).astimezone(WARSAW)
        when = TimePoint(
            TimeType.F,
            maximum_at.year,
            maximum_at.month,
            maximum_at.day,
            maximum_at.hour,
            maximum_at.minute - maximum_at.minute % 15,
            invalid=True,  # as the Otus 3 sends it (docs/wmbus-records.md, 3)
            summer_time=bool(maximum_at.dst()),
        )
        unnamed = table().derived(extras).unnamed.get(self.family)
        if unnamed is None:  # a family of its own
            unnamed = _unnamed(self.family)
        return tuple(
            UnknownRecord(key, when if is_time else values.get(key, 0)) for key, is_time in unnamed
        )

    def telegram(self, now: datetime) -> tuple[bytes, MeterReading]:
        """The next canonical encrypted frame (record sets alternate where the family's do, the
        records of rows no family carries follow), and the reading it carries."""
        reading = self.reading(now)
        record_set = self.family.record_sets[self.sent % len(self.family.record_sets)]
        records = encode_reading(reading, record_set + table().derived(extras).appended)
        iv_code = self.family.iv_manufacturer
        frame = encode_frame(
            self.address,
            records,
            access_number=self.access_number,
            key=self.key,
            iv_manufacturer=manufacturer_code(iv_code) if iv_code else None,
        )
        self.sent += 1
        if self.family.constant_access_number is None:
            self.access_number = (self.access_number + 1) % 256
        return frame, reading


def simulated_meters(
    count: int = 1, family: str = DEFAULT_FAMILY, keys: list[bytes] | None = None, seed: int = 0
) -> list[SimulatedMeter]:
    """`count` meters of one family with IDs 12345678, 12345679, ... and their keys."""
    chosen = FAMILIES_BY_NAME[family]
    return [
        SimulatedMeter(
            chosen,
            meter_id=f"{int(DEFAULT_METER_ID) + n:08d}",
            key=keys[n] if keys else DEFAULT_KEY,
            seed=seed,
        )
        for n in range(count)
    ]
