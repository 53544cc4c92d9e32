"""What AMIplus telegrams mean: the field table, readings, meter clocks, vendor families,
eLicznik credentials, plain-words explanations and simulated meters."""

from .clock import WARSAW
from .credentials import (
    CredentialsError,
    id_variants,
    normalise_meter_id,
    parse_key,
    parse_qr,
    reversed_meter_id,
)
from .explain import (
    ADVICE,
    NOT_HEARD,
    RECEIVER_FINISHED,
    RECEIVER_NO_ANSWER,
    RECEIVER_SILENT,
    RECEIVER_STARTING,
    RECEIVER_UNAVAILABLE,
    REGISTER_DECREASED,
    advice,
    failure_as_json,
)
from .families import FAMILIES_BY_NAME, MAKERS, model_of
from .fields import RSSI, Field, HomeAssistant, Metric, MetricType, Shape
from .reading import PHASES, TARIFFS, MeterReading, read_meter, values_as_json
from .simulated import (
    DEFAULT_FAMILY,
    DEFAULT_KEY,
    DEFAULT_METER_ID,
    SimulatedMeter,
    simulated_meters,
)

__all__ = [
    "ADVICE",
    "DEFAULT_FAMILY",
    "DEFAULT_KEY",
    "DEFAULT_METER_ID",
    "FAMILIES_BY_NAME",
    "MAKERS",
    "NOT_HEARD",
    "PHASES",
    "RECEIVER_FINISHED",
    "RECEIVER_NO_ANSWER",
    "RECEIVER_SILENT",
    "RECEIVER_STARTING",
    "RECEIVER_UNAVAILABLE",
    "REGISTER_DECREASED",
    "RSSI",
    "TARIFFS",
    "WARSAW",
    "CredentialsError",
    "Field",
    "HomeAssistant",
    "MeterReading",
    "Metric",
    "MetricType",
    "Shape",
    "SimulatedMeter",
    "advice",
    "failure_as_json",
    "id_variants",
    "model_of",
    "normalise_meter_id",
    "parse_key",
    "parse_qr",
    "read_meter",
    "reversed_meter_id",
    "simulated_meters",
    "values_as_json",
]
