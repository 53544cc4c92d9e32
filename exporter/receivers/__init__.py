"""Receivers: sans-I/O framers for sticks and text formats, delivering frames to the core."""

from .base import ErrorReason, Frame
from .build import build_receiver
from .devices import device_problem
from .grammar import (
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
from .receiver import Receiver, ReceiverStats
from .sources import SimulatorSource, SourceFinished

__all__ = [
    "COMMON",
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
    "parse_line",
    "parse_spec",
    "unknown_options",
]
