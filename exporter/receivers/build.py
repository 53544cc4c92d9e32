"""Running parts from receiver descriptions: a source and a dialect, then the receiver thread."""

from __future__ import annotations

import sys
from pathlib import Path

from ..amiplus.families import FAMILIES_BY_NAME
from ..amiplus.simulated import DEFAULT_KEY, simulated_meters
from .base import Dialect
from .grammar import STICKS, TYPES, ReceiverSpec, ReceiverSpecError, host_port
from .lines import Lines
from .receiver import DEFAULT_BACKOFF, Backoff, FrameSink, Receiver
from .sources import (
    ProcessSource,
    ReplaySource,
    SerialSource,
    SimulatorSource,
    Source,
    StreamSource,
    TcpClientSource,
    TcpServerSource,
    UdpSource,
)


def build_source(spec: ReceiverSpec) -> tuple[Source, Dialect]:
    """The source and dialect of a receiver description."""
    if spec.type in STICKS:
        dialect = STICKS[spec.type]()
        if not spec.device:
            raise ReceiverSpecError(f"the {spec.type} receiver needs a device")
        return SerialSource(spec.device, spec.baudrate or dialect.baudrate), dialect
    if spec.type == "lines":
        if spec.command:
            return ProcessSource(spec.command), Lines()
        if spec.listen:
            host, port, scheme = host_port(spec.listen, "listen")
            server = UdpSource(host, port) if scheme == "udp" else TcpServerSource(host, port)
            return server, Lines()
        if spec.connect:
            host, port, scheme = host_port(spec.connect, "connect")
            if scheme != "tcp":
                raise ReceiverSpecError("connect= takes tcp://HOST:PORT")
            return TcpClientSource(host, port), Lines()
        if spec.stdin:
            return StreamSource(sys.stdin.buffer), Lines()
        raise ReceiverSpecError("a lines receiver needs command, listen, connect or stdin")
    if spec.type == "replay":
        if not spec.file:
            raise ReceiverSpecError("a replay receiver needs a file")
        return ReplaySource(Path(spec.file), realtime=bool(spec.realtime)), Lines()
    if spec.type == "simulator":
        if spec.family not in FAMILIES_BY_NAME:
            raise ReceiverSpecError(
                f"unknown family {spec.family!r}; one of: {', '.join(FAMILIES_BY_NAME)}"
            )
        keys = list(spec.keys) + [DEFAULT_KEY] * (spec.meters - len(spec.keys))
        meters = simulated_meters(spec.meters, spec.family, keys)
        realtime = spec.realtime is not False
        source = SimulatorSource(meters, interval=spec.interval, realtime=realtime)
        return source, Lines()
    raise ReceiverSpecError(f"unknown receiver type {spec.type!r}; one of: {', '.join(TYPES)}")


def build_receiver(
    spec: ReceiverSpec, sink: FrameSink, backoff: Backoff = DEFAULT_BACKOFF
) -> Receiver:
    """A receiver thread (not started) delivering frames to `sink`."""
    source, dialect = build_source(spec)
    finite = spec.type == "replay" or (spec.type == "lines" and spec.stdin)
    return Receiver(
        spec.label,
        source,
        dialect,
        sink,
        mode=spec.mode,
        silence_timeout=None if finite else spec.silence_timeout,
        backoff=backoff,
    )
