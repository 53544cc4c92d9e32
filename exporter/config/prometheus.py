"""The `prometheus:` section: what `/metrics` holds besides what it always holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .reader import Reader

if TYPE_CHECKING:
    from yaml import Node

_KEYS = ("periods",)


@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    """`periods`: each meter's calendar periods (energy and cost of the day, week and month)
    in `/metrics`. A fleet that sums registers in recording rules turns them off: a third of
    the body and of the memory it costs (the page, `/api/status` and InfluxDB keep them)."""

    periods: bool = True


def prometheus_section(reader: Reader, node: Node) -> PrometheusConfig:
    fields = reader.mapping(node, "prometheus", _KEYS)
    periods = reader.optional(fields, "periods", reader.boolean, "prometheus")
    return PrometheusConfig(periods=True if periods is None else periods)
