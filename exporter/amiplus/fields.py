"""The one field table: every quantity a reading can carry, described once.

Each row says which records carry the quantity and how every output shows it: the JSON key of
`decode`, the Prometheus family, the InfluxDB field, whether the state guards it as a register,
Home Assistant's classes and the status page's label. A new quantity is one new row here
(docs/contracts.md lists the names; docs/amiplus-meters.md, section 4, the meaning of records).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..wmbus import Derives, Function, Quantity, TableViews

JOULES_PER_KWH = 3_600_000.0
RSSI = "rssi_dbm"  # the one field a receiver adds, not a record
VARH_PER_KVARH = 1000.0


class Shape(enum.Enum):
    """How a field holds its values."""

    SINGLE = "single number"
    TARIFFS = "total and tariffs 1-4"
    PHASES = "per phase"
    TIME = "date and time"
    DIGITS = "digits"


class MetricType(enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"


@dataclass(frozen=True, slots=True)
class Metric:
    """A Prometheus family: its name (`_total` is added to counters), help, and the factor from
    the meter's unit to the Prometheus base unit."""

    name: str
    type: MetricType
    help: str
    scale: float = 1.0

    @property
    def sample_name(self) -> str:
        return f"{self.name}_total" if self.type is MetricType.COUNTER else self.name


@dataclass(frozen=True, slots=True)
class HomeAssistant:
    """How Home Assistant should show the field (MQTT discovery)."""

    device_class: str | None
    state_class: str | None
    unit: str | None
    precision: int | None = None
    diagnostic: bool = False


@dataclass(frozen=True, slots=True)
class Label:
    """The field's name on the status page."""

    en: str
    pl: str


#: Which records carry a field: (quantity, function, backward flow) of the record's VIB and DIB.
Selector = tuple[Quantity, Function, bool]


@dataclass(frozen=True, slots=True)
class Field:
    """One quantity. `key` is its JSON key and its key in a reading's values; a field with
    tariffs also has `tariff_key` (the per-tariff map) and `derived_key` (the total was summed
    from the tariffs). `influx` is a field name, or a pattern with `{}` for the tariff or phase."""

    key: str
    shape: Shape
    label: Label
    records: Selector | None  # None: not from a record (the receiver's RSSI)
    unit: str = ""
    unit_exponent: int = 0  # the field's unit = the VIF's SI unit * 10**unit_exponent (kWh: 3)
    metric: Metric | None = None
    tariff_metric: Metric | None = None
    influx: str | None = None
    influx_tariff: str | None = None
    register: bool = False  # a meter register: guarded against going backwards
    home_assistant: HomeAssistant | None = None
    tariff_key: str = ""
    derived_key: str = ""


def _energy(direction: str, backward: bool, obis: str, polish: str) -> Field:
    stem = f"energy_{direction}"
    return Field(
        f"{stem}_kwh",
        Shape.TARIFFS,
        Label(f"Energy {direction}", polish),
        (Quantity.ENERGY, Function.INSTANTANEOUS, backward),
        unit="kWh",
        unit_exponent=3,
        metric=Metric(
            f"amiplus_{stem}_joules",
            MetricType.COUNTER,
            f"Active energy {direction} (meter register {obis}.8.0).",
            JOULES_PER_KWH,
        ),
        tariff_metric=Metric(
            f"amiplus_{stem}_tariff_joules",
            MetricType.COUNTER,
            f"Active energy {direction} per tariff ({obis}.8.x).",
            JOULES_PER_KWH,
        ),
        influx=f"{stem}_kwh",
        influx_tariff=f"{stem}_t{{}}_kwh",
        register=True,
        home_assistant=HomeAssistant("energy", "total_increasing", "kWh", 3),
        tariff_key=f"{stem}_tariff_kwh",
        derived_key=f"{stem}_derived",
    )


def _reactive_energy(direction: str, backward: bool, sign: str, polish: str) -> Field:
    stem = f"reactive_energy_{direction}"
    return Field(
        f"{stem}_kvarh",
        Shape.SINGLE,
        Label(f"Reactive energy {direction}", polish),
        (Quantity.REACTIVE_ENERGY, Function.INSTANTANEOUS, backward),
        unit="kvarh",
        unit_exponent=3,
        metric=Metric(
            f"amiplus_{stem}_var_hours",
            MetricType.COUNTER,
            f"Reactive energy, {'backward' if backward else 'forward'} ({sign}R).",
            VARH_PER_KVARH,
        ),
        influx=f"{stem}_kvarh",
        register=True,
        home_assistant=HomeAssistant("reactive_energy", "total_increasing", "kvarh", 3),
    )


def _power(key: str, selector: Selector, label: Label, help_text: str) -> Field:
    return Field(
        key,
        Shape.SINGLE,
        label,
        selector,
        unit="W",
        metric=Metric(f"amiplus_{key.removesuffix('_w')}_watts", MetricType.GAUGE, help_text),
        influx=key,
        home_assistant=HomeAssistant("power", "measurement", "W", 0),
    )


def _reactive_power(direction: str, backward: bool, sign: str, polish: str) -> Field:
    key = f"reactive_power_{direction}_var"
    return Field(
        key,
        Shape.SINGLE,
        Label(f"Reactive power {direction}", polish),
        (Quantity.REACTIVE_POWER, Function.INSTANTANEOUS, backward),
        unit="var",
        metric=Metric(
            f"amiplus_{key}",
            MetricType.GAUGE,
            f"Instantaneous reactive power, {'backward' if backward else 'forward'} ({sign}R).",
        ),
        influx=key,
        home_assistant=HomeAssistant("reactive_power", "measurement", "var", 0),
    )


def _per_phase(key: str, quantity: Quantity, unit: str, label: Label, metric: str) -> Field:
    name = key.removesuffix(f"_{unit.lower()}")
    precision = {"V": 1, "A": 2}[unit]
    return Field(
        key,
        Shape.PHASES,
        label,
        (quantity, Function.INSTANTANEOUS, False),
        unit=unit,
        metric=Metric(metric, MetricType.GAUGE, f"Instantaneous {name} per phase."),
        influx=f"{name}_{{}}_{unit.lower()}",
        home_assistant=HomeAssistant(name, "measurement", unit, precision),
    )


#: Every field, in the order of the JSON object and of the outputs.
FIELDS: tuple[Field, ...] = (
    Field(
        RSSI,
        Shape.SINGLE,
        Label("Signal", "Sygnał"),
        None,
        unit="dBm",
        metric=Metric(
            "amiplus_meter_rssi_dbm", MetricType.GAUGE, "Signal strength of the latest telegram."
        ),
        influx="rssi_dbm",
        home_assistant=HomeAssistant("signal_strength", "measurement", "dBm", 0, diagnostic=True),
    ),
    Field(
        "meter_time",
        Shape.TIME,
        Label("Meter clock", "Zegar licznika"),
        (Quantity.DATE_TIME, Function.INSTANTANEOUS, False),
        metric=Metric(
            "amiplus_meter_clock_timestamp_seconds",
            MetricType.GAUGE,
            "The meter's own clock at its latest telegram (compare with the receive time).",
        ),
        influx="meter_clock",
        home_assistant=HomeAssistant("timestamp", None, None, diagnostic=True),
    ),
    Field(
        "serial_number",
        Shape.DIGITS,
        Label("Serial number", "Numer seryjny"),
        (Quantity.FABRICATION_NUMBER, Function.INSTANTANEOUS, False),
    ),
    _energy("imported", False, "1", "Energia pobrana"),
    _energy("exported", True, "2", "Energia oddana"),
    _power(
        "power_imported_w",
        (Quantity.POWER, Function.INSTANTANEOUS, False),
        Label("Power imported", "Moc pobierana"),
        "Instantaneous active power imported (1.7.0).",
    ),
    _power(
        "power_exported_w",
        (Quantity.POWER, Function.INSTANTANEOUS, True),
        Label("Power exported", "Moc oddawana"),
        "Instantaneous active power exported (2.7.0).",
    ),
    _power(
        "power_imported_max_w",
        (Quantity.POWER, Function.MAXIMUM, False),
        Label("Maximum demand", "Moc maksymalna"),
        "Maximum demand of the month (1.6.0).",
    ),
    _per_phase(
        "voltage_v", Quantity.VOLTAGE, "V", Label("Voltage", "Napięcie"), "amiplus_voltage_volts"
    ),
    _per_phase(
        "current_a", Quantity.CURRENT, "A", Label("Current", "Prąd"), "amiplus_current_amperes"
    ),
    _reactive_energy("imported", False, "+", "Energia bierna pobrana"),
    _reactive_energy("exported", True, "-", "Energia bierna oddana"),
    _reactive_power("imported", False, "+", "Moc bierna pobierana"),
    _reactive_power("exported", True, "-", "Moc bierna oddawana"),
)


@dataclass(frozen=True, eq=False)
class FieldTable(Derives):
    """The field table as its readers need it: the rows in order, and views of them worked out
    once (what a row is found by, the registers, the energy registers) or by a reader
    (`derived`), so no reader copies or caches the table on its own."""

    rows: tuple[Field, ...]
    by_key: dict[str, Field] = field(init=False)
    by_records: dict[Selector, Field] = field(init=False)
    registers: tuple[Field, ...] = field(init=False)
    energy: tuple[Field, ...] = field(init=False)  # tariffed registers: what periods count

    def __post_init__(self) -> None:
        rows = self.rows
        energy = tuple(row for row in rows if row.register and row.shape is Shape.TARIFFS)
        views = {
            "by_key": {row.key: row for row in rows},
            "by_records": {row.records: row for row in reversed(rows) if row.records},
            "registers": tuple(row for row in rows if row.register),
            "energy": energy,
        }
        for name, view in views.items():
            object.__setattr__(self, name, view)

    @property
    def imported(self) -> Field:
        """The energy register of the forward flow (priced per tariff zone)."""
        return next(row for row in self.energy if not backward(row))

    @property
    def exported(self) -> Field:
        """The energy register of the backward flow (valued at the export price)."""
        return next(row for row in self.energy if backward(row))


def backward(row: Field) -> bool:
    """Whether the field's records are of the backward flow (export)."""
    return bool(row.records and row.records[2])


_TABLES = TableViews("field table views", FieldTable)


def table() -> FieldTable:
    """The one way to read the field table (tests may swap `FIELDS` and `clear_caches()`)."""
    return _TABLES.of(FIELDS)
