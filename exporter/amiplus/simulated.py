"""Simulated AMIplus meters that behave like real ones, sent as real encrypted frames.

The default is a three-phase, two-tariff (G12) prosumer household: a daily load shape with
morning and evening peaks, PV export around midday, voltages wandering between about 225 and
250 V and rising under export, registers that only grow. Telegrams are built with the core's
encoder in the record layout of any family (docs/amiplus-meters.md, section 3) and go through the
same framer, core and state path as a USB stick's (they leave `SimulatorSource` as hex lines).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..wmbus import (
    Address,
    Coding,
    TimePoint,
    TimeType,
    encode_frame,
    manufacturer_code,
    parse_header,
)
from .clock import WARSAW
from .encoding import encode_reading
from .families import FAMILIES_BY_NAME, Family
from .reading import MeterReading, UnknownRecord, slot_for

DEFAULT_FAMILY = "otus"  # a TAURON Apator Otus 3: three phases, tariff registers
DEFAULT_KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")  # documented, not secret
DEFAULT_METER_ID = "12345678"

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

    def reading(self, now: datetime) -> MeterReading:
        """Advance the physics to `now` and return what the meter would display."""
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
        for n, phase in enumerate(("L1", "L2", "L3")):
            self.voltage_offsets[n] = 0.9 * self.voltage_offsets[n] + self.rng.gauss(0, 1.2)
            rise = exported / 1000 * 2.4 - imported / 1000 * 0.8
            volts = min(252.0, max(224.0, 234.0 + self.voltage_offsets[n] + rise))
            voltages[phase] = round(volts, 1)
            currents[phase] = round((imported + exported) / 3 / volts, 2)
        return MeterReading(
            meter_id=self.meter_id,
            manufacturer=self.family.manufacturer,
            version=self.family.version,
            device_type=self.family.device_type,
            access_number=self.access_number,
            values={
                "meter_time": now.astimezone(WARSAW).replace(microsecond=0),
                "serial_number": self.meter_id,
                "energy_imported_kwh": _kwh(sum(self.imported_wh.values())),
                "energy_imported_tariff_kwh": {t: _kwh(wh) for t, wh in self.imported_wh.items()}
                | {3: 0.0, 4: 0.0},
                "energy_exported_kwh": _kwh(sum(self.exported_wh.values())),
                "energy_exported_tariff_kwh": {t: _kwh(wh) for t, wh in self.exported_wh.items()}
                | {3: 0.0, 4: 0.0},
                "power_imported_w": round(imported),
                "power_exported_w": round(exported),
                "power_imported_max_w": round(self.maximum_w),
                "voltage_v": voltages,
                "current_a": currents,
                "reactive_energy_imported_kvarh": _kwh(self.reactive_varh[0]),
                "reactive_energy_exported_kvarh": _kwh(self.reactive_varh[1]),
                "reactive_power_imported_var": round(0.12 * load),
                "reactive_power_exported_var": round(0.03 * pv),
            },
            unknown=self._unknown(now),
        )

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
        out = []
        for key in sorted({k for keys in self.family.record_sets for k in keys}):
            header = parse_header(bytes.fromhex(key))
            if slot_for(header) is None:
                value = when if header.data.coding is Coding.INTEGER else values.get(key, 0)
                out.append(UnknownRecord(key, value))
        return tuple(out)

    def telegram(self, now: datetime) -> tuple[bytes, MeterReading]:
        """The next canonical encrypted frame (record sets alternate where the family's do),
        and the reading it carries."""
        reading = self.reading(now)
        record_set = self.family.record_sets[self.sent % len(self.family.record_sets)]
        records = encode_reading(reading, record_set)
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


def _kwh(wh: float) -> float:
    """Registers count whole watt-hours (kWh with three decimals), as the meters' BCD does."""
    return math.floor(wh) / 1000


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
