"""Value information tables of EN 13757-3: primary VIF, the FB and FD extensions, combinable VIFEs.

Each table maps a 7-bit code to its meaning; the extension bit (bit 7) is stripped by the caller.
A value in base units is ``raw * 10 ** exponent``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Quantity(enum.Enum):
    """What a record measures (the VIF's quantity, independent of its scale)."""

    ENERGY = "energy"
    ENERGY_JOULE = "energy (joule)"
    ENERGY_CALORIE = "energy (calorie)"
    VOLUME = "volume"
    MASS = "mass"
    ON_TIME = "on time"
    OPERATING_TIME = "operating time"
    POWER = "power"
    POWER_JOULE = "power (joule per hour)"
    VOLUME_FLOW = "volume flow"
    MASS_FLOW = "mass flow"
    FLOW_TEMPERATURE = "flow temperature"
    RETURN_TEMPERATURE = "return temperature"
    TEMPERATURE_DIFFERENCE = "temperature difference"
    EXTERNAL_TEMPERATURE = "external temperature"
    PRESSURE = "pressure"
    DATE = "date"
    DATE_TIME = "date and time"
    HCA_UNITS = "heat cost allocator units"
    AVERAGING_DURATION = "averaging duration"
    ACTUALITY_DURATION = "actuality duration"
    FABRICATION_NUMBER = "fabrication number"
    IDENTIFICATION = "identification"
    BUS_ADDRESS = "bus address"
    PLAIN_TEXT = "plain-text unit"
    ANY = "any VIF"
    MANUFACTURER_SPECIFIC = "manufacturer-specific"
    CREDIT = "credit"
    DEBIT = "debit"
    ACCESS_NUMBER = "access number"
    MEDIUM = "medium"
    MANUFACTURER = "manufacturer"
    PARAMETER_SET = "parameter set identification"
    MODEL_VERSION = "model / version"
    HARDWARE_VERSION = "hardware version"
    FIRMWARE_VERSION = "firmware version"
    SOFTWARE_VERSION = "software version"
    CUSTOMER_LOCATION = "customer location"
    CUSTOMER = "customer"
    ACCESS_CODE = "access code"
    PASSWORD = "password"
    ERROR_FLAGS = "error flags"
    ERROR_MASK = "error mask"
    DIGITAL_OUTPUT = "digital output"
    DIGITAL_INPUT = "digital input"
    BAUD_RATE = "baud rate"
    RESPONSE_DELAY = "response delay time"
    RETRY = "retry"
    STORAGE_MANAGEMENT = "storage management"
    STORAGE_INTERVAL = "storage interval"
    DURATION_SINCE_READOUT = "duration since last readout"
    TARIFF_MANAGEMENT = "tariff management"
    DIMENSIONLESS = "dimensionless"
    VOLTAGE = "voltage"
    CURRENT = "current"
    RESET_COUNTER = "reset counter"
    CUMULATION_COUNTER = "cumulation counter"
    CONTROL_SIGNAL = "control signal"
    DAY_OF_WEEK = "day of week"
    WEEK_NUMBER = "week number"
    DAY_CHANGE = "time point of day change"
    PARAMETER_ACTIVATION = "state of parameter activation"
    SUPPLIER_INFORMATION = "special supplier information"
    DURATION_SINCE_CUMULATION = "duration since last cumulation"
    BATTERY_OPERATING_TIME = "operating time battery"
    BATTERY_CHANGE = "date and time of battery change"
    RF_LEVEL = "RF level"
    DAYLIGHT_SAVING = "daylight saving"
    LISTENING_WINDOW = "listening window management"
    BATTERY_REMAINING = "remaining battery life time"
    STOP_COUNTER = "number of times the meter was stopped"
    MANUFACTURER_CONTAINER = "manufacturer-specific data container"
    REACTIVE_ENERGY = "reactive energy"
    APPARENT_ENERGY = "apparent energy"
    REACTIVE_POWER = "reactive power"
    APPARENT_POWER = "apparent power"
    RELATIVE_HUMIDITY = "relative humidity"
    PHASE_VOLTAGE_VOLTAGE = "phase U-U"
    PHASE_VOLTAGE_CURRENT = "phase U-I"
    FREQUENCY = "frequency"
    RESERVED = "reserved"


@dataclass(frozen=True, slots=True)
class VifEntry:
    """One table row: the quantity, its base unit and the decimal exponent of the raw value."""

    quantity: Quantity
    unit: str = ""
    exponent: int = 0


Table = dict[int, VifEntry]

_DURATION_UNITS = ("s", "min", "h", "d")


def _scaled(first: int, count: int, quantity: Quantity, unit: str, exponent: int) -> Table:
    """`count` consecutive codes whose low bits step the decimal exponent by one."""
    return {first + n: VifEntry(quantity, unit, exponent + n) for n in range(count)}


def _durations(first: int, quantity: Quantity) -> Table:
    """Four codes whose low two bits select seconds, minutes, hours or days."""
    return {first + n: VifEntry(quantity, unit) for n, unit in enumerate(_DURATION_UNITS)}


def _single(code: int, quantity: Quantity, unit: str = "") -> Table:
    return {code: VifEntry(quantity, unit)}


def _table(*parts: Table) -> Table:
    merged: Table = {}
    for part in parts:
        merged.update(part)
    return {code: merged.get(code, VifEntry(Quantity.RESERVED)) for code in range(0x80)}


#: Primary VIF (EN 13757-3 Table 10). 0x7B, 0x7C, 0x7D and 0x7F switch tables or formats.
PRIMARY: Table = _table(
    _scaled(0x00, 8, Quantity.ENERGY, "Wh", -3),
    _scaled(0x08, 8, Quantity.ENERGY_JOULE, "J", 0),
    _scaled(0x10, 8, Quantity.VOLUME, "m³", -6),
    _scaled(0x18, 8, Quantity.MASS, "kg", -3),
    _durations(0x20, Quantity.ON_TIME),
    _durations(0x24, Quantity.OPERATING_TIME),
    _scaled(0x28, 8, Quantity.POWER, "W", -3),
    _scaled(0x30, 8, Quantity.POWER_JOULE, "J/h", 0),
    _scaled(0x38, 8, Quantity.VOLUME_FLOW, "m³/h", -6),
    _scaled(0x40, 8, Quantity.VOLUME_FLOW, "m³/min", -7),
    _scaled(0x48, 8, Quantity.VOLUME_FLOW, "m³/s", -9),
    _scaled(0x50, 8, Quantity.MASS_FLOW, "kg/h", -3),
    _scaled(0x58, 4, Quantity.FLOW_TEMPERATURE, "°C", -3),
    _scaled(0x5C, 4, Quantity.RETURN_TEMPERATURE, "°C", -3),
    _scaled(0x60, 4, Quantity.TEMPERATURE_DIFFERENCE, "K", -3),
    _scaled(0x64, 4, Quantity.EXTERNAL_TEMPERATURE, "°C", -3),
    _scaled(0x68, 4, Quantity.PRESSURE, "bar", -3),
    _single(0x6C, Quantity.DATE),
    _single(0x6D, Quantity.DATE_TIME),
    _single(0x6E, Quantity.HCA_UNITS),
    _durations(0x70, Quantity.AVERAGING_DURATION),
    _durations(0x74, Quantity.ACTUALITY_DURATION),
    _single(0x78, Quantity.FABRICATION_NUMBER),
    _single(0x79, Quantity.IDENTIFICATION),
    _single(0x7A, Quantity.BUS_ADDRESS),
    _single(0x7C, Quantity.PLAIN_TEXT),
    _single(0x7E, Quantity.ANY),
    _single(0x7F, Quantity.MANUFACTURER_SPECIFIC),
)

PRIMARY_FB = 0x7B
PRIMARY_PLAIN_TEXT = 0x7C
PRIMARY_FD = 0x7D
PRIMARY_MANUFACTURER = 0x7F

#: First extension table, after VIF 0xFD (EN 13757-3 Table 12).
EXTENSION_FD: Table = _table(
    _scaled(0x00, 4, Quantity.CREDIT, "currency", -3),
    _scaled(0x04, 4, Quantity.DEBIT, "currency", -3),
    _single(0x08, Quantity.ACCESS_NUMBER),
    _single(0x09, Quantity.MEDIUM),
    _single(0x0A, Quantity.MANUFACTURER),
    _single(0x0B, Quantity.PARAMETER_SET),
    _single(0x0C, Quantity.MODEL_VERSION),
    _single(0x0D, Quantity.HARDWARE_VERSION),
    _single(0x0E, Quantity.FIRMWARE_VERSION),
    _single(0x0F, Quantity.SOFTWARE_VERSION),
    _single(0x10, Quantity.CUSTOMER_LOCATION),
    _single(0x11, Quantity.CUSTOMER),
    {code: VifEntry(Quantity.ACCESS_CODE) for code in range(0x12, 0x16)},
    _single(0x16, Quantity.PASSWORD),
    _single(0x17, Quantity.ERROR_FLAGS),
    _single(0x18, Quantity.ERROR_MASK),
    _single(0x1A, Quantity.DIGITAL_OUTPUT),
    _single(0x1B, Quantity.DIGITAL_INPUT),
    _single(0x1C, Quantity.BAUD_RATE, "Bd"),
    _single(0x1D, Quantity.RESPONSE_DELAY, "bit times"),
    _single(0x1E, Quantity.RETRY),
    {code: VifEntry(Quantity.STORAGE_MANAGEMENT) for code in range(0x20, 0x23)},
    _durations(0x24, Quantity.STORAGE_INTERVAL),
    _single(0x28, Quantity.STORAGE_INTERVAL, "month"),
    _single(0x29, Quantity.STORAGE_INTERVAL, "year"),
    _durations(0x2C, Quantity.DURATION_SINCE_READOUT),
    {code: VifEntry(Quantity.TARIFF_MANAGEMENT) for code in range(0x30, 0x3A)},
    _single(0x3A, Quantity.DIMENSIONLESS),
    _scaled(0x40, 16, Quantity.VOLTAGE, "V", -9),
    _scaled(0x50, 16, Quantity.CURRENT, "A", -12),
    _single(0x60, Quantity.RESET_COUNTER),
    _single(0x61, Quantity.CUMULATION_COUNTER),
    _single(0x62, Quantity.CONTROL_SIGNAL),
    _single(0x63, Quantity.DAY_OF_WEEK),
    _single(0x64, Quantity.WEEK_NUMBER),
    _single(0x65, Quantity.DAY_CHANGE),
    _single(0x66, Quantity.PARAMETER_ACTIVATION),
    _single(0x67, Quantity.SUPPLIER_INFORMATION),
    _durations(0x68, Quantity.DURATION_SINCE_CUMULATION),
    _durations(0x6C, Quantity.BATTERY_OPERATING_TIME),
    _single(0x70, Quantity.BATTERY_CHANGE),
    _single(0x71, Quantity.RF_LEVEL, "dBm"),
    _single(0x72, Quantity.DAYLIGHT_SAVING),
    _single(0x73, Quantity.LISTENING_WINDOW),
    _single(0x74, Quantity.BATTERY_REMAINING, "d"),
    _single(0x75, Quantity.STOP_COUNTER),
    _single(0x76, Quantity.MANUFACTURER_CONTAINER),
)

#: Second extension table, after VIF 0xFB (EN 13757-3:2013 Table 14).
EXTENSION_FB: Table = _table(
    _scaled(0x00, 2, Quantity.ENERGY, "Wh", 5),  # 10^(n-1) MWh
    _scaled(0x02, 2, Quantity.REACTIVE_ENERGY, "varh", 3),  # 10^n kvarh
    _scaled(0x04, 2, Quantity.APPARENT_ENERGY, "VAh", 3),  # 10^n kVAh
    _scaled(0x08, 2, Quantity.ENERGY_JOULE, "J", 8),  # 10^(n-1) GJ
    _scaled(0x0C, 4, Quantity.ENERGY_CALORIE, "cal", 5),  # 10^(n-1) MCal
    _scaled(0x10, 2, Quantity.VOLUME, "m³", 2),
    _scaled(0x14, 4, Quantity.REACTIVE_POWER, "var", 0),  # 10^(n-3) kvar
    _scaled(0x18, 2, Quantity.MASS, "kg", 5),  # 10^(n+2) t
    _scaled(0x1A, 2, Quantity.RELATIVE_HUMIDITY, "%", -1),
    _scaled(0x28, 2, Quantity.POWER, "W", 5),  # 10^(n-1) MW
    _single(0x2A, Quantity.PHASE_VOLTAGE_VOLTAGE, "°"),
    _single(0x2B, Quantity.PHASE_VOLTAGE_CURRENT, "°"),
    _scaled(0x2C, 4, Quantity.FREQUENCY, "Hz", -3),
    _scaled(0x30, 2, Quantity.POWER_JOULE, "J/h", 8),  # 10^(n-1) GJ/h
    _scaled(0x34, 4, Quantity.APPARENT_POWER, "VA", 0),  # 10^(n-3) kVA
)


class Combinable(enum.Enum):
    """Orthogonal (combinable) VIFE meanings (EN 13757-3 Table 15 and its 0x7C extension)."""

    PER_TIME = "per unit of time"
    PER_UNIT = "per unit"
    MULTIPLIED = "multiplied by a unit"
    START_DATE = "start date of"
    UNCORRECTED = "uncorrected unit"
    FORWARD = "forward flow (positive contributions)"
    BACKWARD = "backward flow (negative contributions)"
    NON_METRIC = "alternate non-metric unit system"
    BASE_CONDITIONS = "value at base conditions"
    OBIS = "OBIS declaration"
    LOWER_LIMIT = "lower limit value"
    UPPER_LIMIT = "upper limit value"
    LIMIT_EXCEEDS = "number of limit exceeds"
    LIMIT_EXCEED_TIME = "date of a limit exceed"
    LIMIT_EXCEED_DURATION = "duration of a limit exceed"
    DURATION = "duration of"
    LIMIT_EXCEED_VALUE = "value during a limit exceed"
    LEAKAGE = "leakage values"
    OVERFLOW = "overflow values"
    ADDITIVE_CORRECTION = "additive correction constant"
    FUTURE_VALUE = "future value"
    ERROR = "record error code"
    NEUTRAL = "at neutral"
    QUADRANT = "quadrant"
    DELTA = "delta between import and export"
    ABSOLUTE = "accumulation of absolute values of both directions"
    TYPE_C = "data presented as type C"
    TYPE_D = "data presented as type D"
    RESERVED = "reserved"


class Phase(enum.Enum):
    """Phase codes of the combinable extension table (after a 0x7C VIFE)."""

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"
    L1_L2 = "L1-L2"
    L2_L3 = "L2-L3"
    L3_L1 = "L3-L1"


def _codes(first: int, last: int, meaning: Combinable) -> dict[int, Combinable]:
    return dict.fromkeys(range(first, last + 1), meaning)


#: Combinable VIFE codes without effect on the scale. 0x70-0x77 and 0x7D scale the value,
#: 0x7C selects `COMBINABLE_EXTENSION`, 0x7F makes the rest manufacturer-specific.
COMBINABLE: dict[int, Combinable] = {
    **_codes(0x00, 0x1F, Combinable.ERROR),
    **_codes(0x20, 0x27, Combinable.PER_TIME),
    **_codes(0x28, 0x35, Combinable.PER_UNIT),
    **_codes(0x36, 0x38, Combinable.MULTIPLIED),
    0x39: Combinable.START_DATE,
    0x3A: Combinable.UNCORRECTED,
    0x3B: Combinable.FORWARD,
    0x3C: Combinable.BACKWARD,
    0x3D: Combinable.NON_METRIC,
    0x3E: Combinable.BASE_CONDITIONS,
    0x3F: Combinable.OBIS,
    0x40: Combinable.LOWER_LIMIT,
    0x48: Combinable.UPPER_LIMIT,
    0x41: Combinable.LIMIT_EXCEEDS,
    0x49: Combinable.LIMIT_EXCEEDS,
    **dict.fromkeys((66, 67, 70, 71, 74, 75, 78, 79), Combinable.LIMIT_EXCEED_TIME),
    **_codes(0x50, 0x5F, Combinable.LIMIT_EXCEED_DURATION),
    **_codes(0x60, 0x67, Combinable.DURATION),
    0x68: Combinable.LIMIT_EXCEED_VALUE,
    0x6C: Combinable.LIMIT_EXCEED_VALUE,
    0x69: Combinable.LEAKAGE,
    0x6D: Combinable.LEAKAGE,
    **dict.fromkeys((106, 107, 110, 111), Combinable.OVERFLOW),
    **_codes(0x78, 0x7B, Combinable.ADDITIVE_CORRECTION),
    0x7E: Combinable.FUTURE_VALUE,
}

COMBINABLE_SCALE_FIRST = 0x70  # 0x70-0x77: multiplicative correction 10^(nnn-6)
COMBINABLE_SCALE_LAST = 0x77
COMBINABLE_THOUSAND = 0x7D  # multiplicative correction 10^3
COMBINABLE_EXTENSION_MARKER = 0x7C
COMBINABLE_MANUFACTURER = 0x7F

#: Codes after a 0x7C VIFE: a phase, or another combinable meaning.
COMBINABLE_EXTENSION: dict[int, Phase | Combinable] = {
    0x01: Phase.L1,
    0x02: Phase.L2,
    0x03: Phase.L3,
    0x04: Combinable.NEUTRAL,
    0x05: Phase.L1_L2,
    0x06: Phase.L2_L3,
    0x07: Phase.L3_L1,
    **_codes(0x08, 0x0B, Combinable.QUADRANT),
    0x0C: Combinable.DELTA,
    0x10: Combinable.ABSOLUTE,
    0x11: Combinable.TYPE_C,
    0x12: Combinable.TYPE_D,
}
