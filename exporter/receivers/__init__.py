"""Receivers: sans-I/O framers for sticks, text formats and MQTT messages, delivering frames to
the core."""

from .base import ErrorReason, Frame
from .build import build_receiver
from .devices import device_problem
from .grammar import (
    BROKER_OPTIONS,
    COMMON,
    OPTIONS,
    TYPES,
    Kind,
    ReceiverSpec,
    ReceiverSpecError,
    build_spec,
    convert,
    parse_spec,
    unknown_options,
)
from .lines import LineFrame, parse_line
from .receiver import Receiver
from .sources import SimulatorSource, SourceFinished
from .topics import DEFAULT_TOPICS, filter_problem
from .views import ReceiverStats

__all__ = [
    "BROKER_OPTIONS",
    "COMMON",
    "DEFAULT_TOPICS",
    "OPTIONS",
    "TYPES",
    "ErrorReason",
    "Frame",
    "Kind",
    "LineFrame",
    "Receiver",
    "ReceiverSpec",
    "ReceiverSpecError",
    "ReceiverStats",
    "SimulatorSource",
    "SourceFinished",
    "build_receiver",
    "build_spec",
    "convert",
    "device_problem",
    "filter_problem",
    "parse_line",
    "parse_spec",
    "unknown_options",
]
