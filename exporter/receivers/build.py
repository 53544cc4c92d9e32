"""Running parts from receiver descriptions: a source and a dialect, then the receiver thread."""

from __future__ import annotations

import re
import secrets
import sys
from dataclasses import replace
from pathlib import Path

from ..amiplus import DEFAULT_KEY, simulated_meters
from ..plumbing import Backoff
from .base import Dialect
from .grammar import ReceiverSpec, host_port
from .lines import Lines
from .mqtt import MqttSource
from .receiver import DEFAULT_BACKOFF, FrameSink, Receiver
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
    """The source and dialect of a checked receiver description (nothing is opened yet)."""
    dialect_type = spec.receiver_type.dialect
    if dialect_type is not None:
        dialect = dialect_type()
        assert spec.device is not None
        return SerialSource(spec.device, spec.baudrate or dialect.baudrate), dialect
    if spec.type == "lines":
        if spec.command:
            return ProcessSource(spec.command), Lines()
        if spec.listen:
            host, port, scheme = host_port(spec.listen, "listen")
            server = UdpSource(host, port) if scheme == "udp" else TcpServerSource(host, port)
            return server, Lines()
        if spec.connect:
            host, port, _ = host_port(spec.connect, "connect")
            return TcpClientSource(host, port), Lines()
        return StreamSource(sys.stdin.buffer), Lines()
    if spec.type == "mqtt":
        assert spec.broker is not None
        broker = replace(spec.broker, client_id=spec.broker.client_id or client_id(spec.label))
        return MqttSource(broker, spec.topics, spec.qos), Lines()
    if spec.type == "replay":
        assert spec.file is not None
        return ReplaySource(Path(spec.file), realtime=bool(spec.realtime)), Lines()
    keys = list(spec.keys) + [DEFAULT_KEY] * (spec.meters - len(spec.keys))
    meters = simulated_meters(spec.meters, spec.family, keys)
    source = SimulatorSource(meters, interval=spec.interval, realtime=spec.realtime is not False)
    return source, Lines()


def client_id(name: str) -> str:
    """An MQTT client ID of its own for a receiver that names none: its name and a random part,
    so that two exporters (or a restart overlapping the old session) never take each other's."""
    return f"amiplus-exporter-{re.sub(r'[^A-Za-z0-9_-]', '-', name)[:32]}-{secrets.token_hex(4)}"


def build_receiver(
    spec: ReceiverSpec, sink: FrameSink, backoff: Backoff = DEFAULT_BACKOFF
) -> Receiver:
    """A receiver thread (not started) delivering frames to `sink`."""
    source, dialect = build_source(spec)
    finite = spec.receiver_type.finite or (spec.type == "lines" and spec.stdin)
    return Receiver(
        spec.label,
        source,
        dialect,
        sink,
        mode=spec.mode,
        silence_timeout=None if finite else spec.silence_timeout,
        backoff=backoff,
    )
