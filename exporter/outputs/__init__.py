"""Where readings go: Prometheus (read at scrape time) and the outputs built from configuration
sections, each behind the interface of `base.py`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .base import Output
from .influx import InfluxOutput
from .mqtt import MqttOutput

if TYPE_CHECKING:
    from ..pipeline.state import State

#: Output by configuration section (an attribute of `Config`): how to build it from that section
#: and the state (which an output may read, never write).
OUTPUTS: dict[str, Callable[[Any, State], Output]] = {
    "influxdb": lambda section, state: InfluxOutput(section),
    "mqtt": MqttOutput,
}
