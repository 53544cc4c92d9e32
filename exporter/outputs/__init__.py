"""Where readings go: Prometheus (read at scrape time; the prosumer settlement through its own
collector) and the outputs built from configuration sections, each an `Output` (the interface
the pipeline hands readings to)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..pipeline import Output
from .exposition import Exposition
from .influx import InfluxOutput
from .mqtt import MqttOutput
from .prometheus import ConfigReloads, ExporterCollector, registry
from .settlement import SettlementCollector
from .spool import unusable_entries

if TYPE_CHECKING:
    from ..pipeline import State

__all__ = [
    "OUTPUTS",
    "ConfigReloads",
    "ExporterCollector",
    "Exposition",
    "SettlementCollector",
    "registry",
    "unusable_entries",
]

#: Output by configuration section (a key of `Config.outputs`): how to build it from that section
#: and the state (which an output may read, never write).
OUTPUTS: dict[str, Callable[[Any, State], Output]] = {
    "influxdb": lambda section, state: InfluxOutput(section),
    "mqtt": MqttOutput,
}
