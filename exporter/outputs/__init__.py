"""Where readings go: Prometheus (read at scrape time) and the outputs built from configuration
sections, each behind the interface of `base.py`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import Output
from .influx import InfluxOutput

#: Output by configuration section (an attribute of `Config`): how to build it from that section.
OUTPUTS: dict[str, Callable[[Any], Output]] = {
    "influxdb": InfluxOutput,
}
