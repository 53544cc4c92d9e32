"""The exporter process: receivers -> core -> state -> outputs, and its lifecycle.

SIGTERM and SIGINT stop it cleanly; SIGHUP, or a changed configuration file, reloads meters
and keys without dropping the receivers that did not change.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from . import __version__
from .amiplus.credentials import id_variants
from .amiplus.reading import read_meter
from .amiplus.simulated import DEFAULT_KEY, DEFAULT_METER_ID
from .config import Config, ConfigError, InfluxConfig, MeterConfig, load_config
from .outputs.influx import InfluxWriter
from .outputs.prometheus import Exposition
from .pipeline.dedupe import Deduplicator
from .pipeline.heard import HeardMeters
from .pipeline.state import State
from .receivers.base import Frame
from .receivers.build import build_receiver
from .receivers.grammar import ReceiverSpec
from .receivers.receiver import Receiver
from .web.page import render
from .web.server import Routes, SecurityFile, WebConfigError, WebServer, parse_listen
from .web.status import status
from .wmbus import Address, MeterKey, WMBusError, decode
from .wmbus.frame import normalise

log = logging.getLogger("amiplus_exporter")

READY_WITHIN = 900.0  # /readyz: a frame in the last 15 minutes
CONFIG_POLL = 2.0  # seconds between checks of the configuration file's modification time


def default_config() -> Config:
    """The built-in setup: one simulated meter, a telegram every two seconds."""
    meter = MeterConfig(
        "simulated",
        DEFAULT_METER_ID,
        id_variants(DEFAULT_METER_ID),
        MeterKey.from_bytes(DEFAULT_KEY),
    )
    simulator = ReceiverSpec("simulator", name="simulator", interval=2.0, realtime=True)
    return Config((meter,), (simulator,), source="<built-in simulated meter>")


class JsonFormatter(logging.Formatter):
    """One JSON object per log line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, form: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if form == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


@dataclass
class Exporter:
    """The running parts around one (replaceable) configuration."""

    config: Config
    state: State = field(init=False)
    heard: HeardMeters = field(default_factory=HeardMeters)
    receivers: dict[ReceiverSpec, Receiver] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.writer: InfluxWriter | None = None
        self.state = State(self.config.stale_after, self.config.timezone)
        self.dedupe = Deduplicator(self.config.dedupe_window)
        self._dedupe_lock = threading.Lock()
        for meter in self.config.meters:
            self.state.meter(meter.meter_id, meter.name)

    def _key(self, address: Address) -> MeterKey | None:
        meter = self.config.meter_for(address.meter_id)
        return meter.key if meter else None

    def on_frame(self, receiver: str, frame: Frame) -> None:
        """Called from receiver threads for every frame: dedupe, decode, name, keep."""
        try:
            canonical = normalise(frame.data)
        except WMBusError:
            canonical = frame.data
        with self._dedupe_lock:
            first = self.dedupe.first(canonical, frame.received_at)
        if not first:
            with self.state.lock:
                self.state.duplicates += 1
            return
        self.heard.hear(receiver, frame)
        config = self.config
        try:
            telegram = decode(frame.data, self._key)
        except WMBusError as error:
            address = (error.transport.address if error.transport else None) or (
                error.link.address if error.link else None
            )
            meter = config.meter_for(address.meter_id) if address else None
            if meter is not None:
                self.state.record_failure(
                    meter.meter_id, meter.name, error.code, error.message, frame.received_at
                )
                log.warning("meter %s: %s", meter.name, error.message)
            else:
                with self.state.lock:
                    if address is not None:
                        self.state.unconfigured_telegrams += 1
                    else:
                        self.state.undecodable[error.code] += 1
            return
        meter = config.meter_for(telegram.address.meter_id)
        if meter is None:
            with self.state.lock:
                self.state.unconfigured_telegrams += 1
            return
        reading = read_meter(
            telegram,
            zone=config.timezone,
            received_at=datetime.fromtimestamp(frame.received_at, UTC),
            rssi_dbm=frame.rssi_dbm,
        )
        accepted = self.state.record(
            meter.meter_id, meter.name, reading, frame.received_at, receiver
        )
        writer = self.writer
        if writer is not None:
            writer.submit(accepted, meter.name, frame.received_at)

    def start(self) -> None:
        self._start_writer(self.config.influxdb)
        self._start_receivers(self.config.receivers)

    def _start_writer(self, config: InfluxConfig | None) -> None:
        if config is None:
            self.writer = None
            return
        self.writer = InfluxWriter(config)
        self.writer.start()
        log.info(
            "InfluxDB output to %s (%d points spooled from before)",
            self.writer.sender.description,
            self.writer.spool.points,
        )

    def _start_receivers(self, specs: tuple[ReceiverSpec, ...]) -> None:
        for spec in specs:
            receiver = build_receiver(spec, self.on_frame)
            self.receivers[spec] = receiver
            receiver.start()
            log.info("receiver %s started: %s", spec.label, receiver.source.description)

    def apply(self, config: Config) -> None:
        """Use a new configuration: meters and keys at once; receivers that changed restart."""
        old = self.config
        self.config = config
        self.state.stale_after_seconds = config.stale_after
        self.dedupe.window = config.dedupe_window
        with self.state.lock:
            for meter in config.meters:
                self.state.meter(meter.meter_id, meter.name)
        self.state.forget_except({m.meter_id for m in config.meters})
        removed = [spec for spec in old.receivers if spec not in config.receivers]
        for spec in removed:
            self.receivers.pop(spec).stop()
            log.info("receiver %s stopped (no longer configured)", spec.label)
        self._start_receivers(tuple(s for s in config.receivers if s not in old.receivers))
        if config.influxdb != old.influxdb:
            writer, self.writer = self.writer, None
            if writer is not None:
                writer.stop()
            self._start_writer(config.influxdb)
        log.info(
            "configuration reloaded: %d meters, %d receivers (%d restarted)",
            len(config.meters),
            len(config.receivers),
            len(removed),
        )

    def stop(self) -> None:
        for receiver in self.receivers.values():
            receiver.stop()
        if self.writer is not None:
            self.writer.stop()

    def ready(self) -> tuple[bool, str]:
        """Ready when a receiver is up and a frame arrived recently."""
        stats = [r.stats for r in self.receivers.values()]
        up = [s for s in stats if s.up]
        if not up:
            reasons = "; ".join(f"{s.name}: {s.down_reason}" for s in stats) or "no receivers"
            return False, f"no receiver is up ({reasons})"
        latest = max((s.last_frame_at or 0 for s in stats), default=0)
        if time.time() - latest > READY_WITHIN:
            return False, f"no frame in the last {READY_WITHIN / 60:.0f} minutes"
        return True, "ready"

    def status(self, with_history: bool = False) -> dict[str, Any]:
        return status(
            self.config,
            self.state,
            receivers=[r.stats for r in self.receivers.values()],
            heard=self.heard.snapshot(),
            started_at=self.started_at,
            extra={
                "version": __version__,
                "influxdb": self.writer.status() if self.writer else None,
            },
            with_history=with_history,
        )

    def exposition(self) -> Exposition:
        return Exposition(
            self.state,
            lambda: [r.stats for r in self.receivers.values()],
            [lambda: self.writer.metrics() if self.writer else ""],
        )


def run(config: Config, config_path: Path | None, listen: str | None) -> int:
    """Run until SIGTERM or SIGINT; returns the exit code."""
    setup_logging(config.log_level, config.log_format)
    try:
        address = parse_listen(listen or config.web.listen)
        security = SecurityFile(config.web.config_file)
    except (ValueError, WebConfigError) as error:
        log.error("%s", error)
        return 2
    exporter = Exporter(config)
    exposition = exporter.exposition()
    routes = Routes(
        lambda compressed: exposition.body(compressed=compressed),
        exporter.status,
        render,
        exporter.ready,
    )
    try:
        server = WebServer(address, routes, security)
    except OSError as error:
        log.error("cannot listen on %s:%s: %s", address[0] or "*", address[1], error.strerror)
        return 1
    stop = threading.Event()
    reload = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        (reload if number == signal.SIGHUP else stop).set()

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, on_signal)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    exporter.start()
    host = address[0] or "localhost"
    url = f"{server.scheme}://{host}:{server.server_address[1]}/"
    log.info("amiplus-exporter %s serving %s (configuration: %s)", __version__, url, config.source)
    print(f"Status page: {url}", flush=True)
    stamp = _stamp(config_path)
    try:
        while not stop.wait(CONFIG_POLL):
            current = _stamp(config_path)
            if reload.is_set() or current != stamp:
                reload.clear()
                stamp = current
                _reload(exporter, config_path)
    finally:
        log.info("stopping")
        server.shutdown()
        exporter.stop()
        server.server_close()
    return 0


def _stamp(path: Path | None) -> float | None:
    try:
        return path.stat().st_mtime if path else None
    except OSError:
        return None


def _reload(exporter: Exporter, path: Path | None) -> None:
    if path is None:
        log.info("running the built-in configuration: nothing to reload")
        return
    try:
        exporter.apply(load_config(path))
    except ConfigError as error:
        log.error("configuration not reloaded, the previous one stays:\n%s", error)
