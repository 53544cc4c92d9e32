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
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from . import __version__
from .amiplus import DEFAULT_KEY, DEFAULT_METER_ID, id_variants
from .config import (
    Config,
    ConfigError,
    MeterConfig,
    PriceEntry,
    Prices,
    Problem,
    TariffPrice,
    load_config,
)
from .outputs import (
    OUTPUTS,
    ConfigReloads,
    ExporterCollector,
    Exposition,
    SettlementCollector,
    registry,
)
from .pipeline import Calendar, Intake, Output, Settlements, State
from .plumbing import (
    EVERY_INTERFACE,
    MissingExtra,
    collector_paused,
    interface_addresses,
    limit_malloc_arenas,
    parse_listen,
)
from .receivers import Receiver, ReceiverSpec, ReceiverStats, build_receiver
from .web import (
    Ingress,
    Listener,
    PageHistory,
    Routes,
    SecurityFile,
    WebConfigError,
    WebServer,
    render,
    status,
)
from .wmbus import MeterKey, shown

log = logging.getLogger(__name__)

#: What a configuration without receivers lacks for the exporter (it is enough for `settle`).
NO_RECEIVERS = (
    "no receivers: this file is enough for `amiplus-exporter settle`, but the exporter needs "
    "at least one receiver to hear meters (see README.md, 'Receivers')"
)
READY_WITHIN = 900.0  # /readyz: a frame in the last 15 minutes
CONFIG_POLL = 2.0  # seconds between checks of the configuration file's modification time


#: The built-in setup's prices, shown as examples: about TAURON's 2026 G12 tariff without VAT, in
#: PLN per kWh. Zone 1 (day): energy 0.58, distribution 0.33 (the variable rate with the quality,
#: RES and cogeneration fees); zone 2 (13-15 h, 22-6 h): 0.40 and 0.10; export as net-billing
#: pays it, about the month's market price.
EXAMPLE_PRICES = Prices(
    (
        PriceEntry(
            date(2026, 1, 1),
            ((1, TariffPrice(0.58, 0.33)), (2, TariffPrice(0.40, 0.10))),
            export=0.25,
        ),
    )
)


def default_config() -> Config:
    """The built-in setup: one simulated meter, a telegram every two seconds, example prices."""
    meter = MeterConfig(
        "simulated",
        DEFAULT_METER_ID,
        id_variants(DEFAULT_METER_ID),
        MeterKey.from_bytes(DEFAULT_KEY),
    )
    simulator = ReceiverSpec("simulator", name="simulator", interval=2.0, realtime=True)
    return Config(
        (meter,), (simulator,), prices=EXAMPLE_PRICES, source="<built-in simulated meter>"
    )


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
    """One handler on standard error; `level` applies to every logger of the exporter (they are
    named after their modules, under `exporter`), the libraries' loggers say INFO and above."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if form == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.INFO, logging.getLevelName(level.upper())))
    logging.getLogger(__name__.partition(".")[0]).setLevel(level.upper())


class Exporter:
    """The running parts around one (replaceable) configuration: receivers feed the intake,
    which keeps the state and hands readings to the outputs."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.started_at = time.time()
        self.state = State(config.stale_after)
        self.settlements = Settlements(config)
        self.calendar = Calendar(
            config.timezone,
            config.prices,
            config.state_directory,
            market=self.settlements.market_price,
        )
        self.history = PageHistory()
        self.outputs: dict[str, Output] = {}
        self.intake = Intake(
            config, self.state, calendar=self.calendar, settlements=self.settlements
        )
        self.receivers: dict[ReceiverSpec, Receiver] = {}
        self.reloads = ConfigReloads(True, self.started_at)
        self.state.reconfigure(config.stale_after, config.meters)
        self.calendar.reconfigure(
            config.timezone, config.prices, config.meter_ids, config.forget_after
        )
        collector = ExporterCollector(
            self.state,
            self.receiver_stats,
            lambda: list(self.outputs.values()),
            self.reloads,
            self.calendar,
        )
        collectors = registry(collector)
        collectors.register(SettlementCollector(self.settlements, self.state))
        self.exposition = Exposition(
            self.state, collectors, calendar=self.calendar, periods=config.prometheus.periods
        )

    def start(self) -> None:
        self.calendar.start()
        self.settlements.start()
        self._start_outputs(self.config)
        self._start_receivers(self.config.receivers)

    def _start_outputs(self, config: Config, old: Config | None = None) -> None:
        """Start the outputs whose configuration section is new or changed (they are handed
        the settled meters' figures with the next readings)."""
        started = False
        for section, build in OUTPUTS.items():
            wanted = config.outputs.get(section)
            if old is not None and wanted == old.outputs.get(section):
                continue
            running = self.outputs.pop(section, None)
            if running is not None:
                running.stop()
            if wanted is not None:
                try:
                    output = build(wanted, self.state)
                    output.start()
                except MissingExtra as error:
                    log.error("output %s not started: %s", section, error)
                    continue
                except Exception:  # a bug; one output's fault must not stop the others
                    log.exception("output %s not started", section)
                    continue
                self.outputs[section] = output
                started = True
        if started:
            self.settlements.resend()
        self.intake.outputs = [self.history, *self.outputs.values()]

    def _start_receivers(self, specs: tuple[ReceiverSpec, ...]) -> None:
        for spec in specs:
            try:
                receiver = build_receiver(spec, self.intake.on_frame)
            except MissingExtra as error:
                log.error("receiver %s not started: %s", spec.label, error)
                continue
            self.receivers[spec] = receiver
            receiver.start()
            log.info("receiver %s started: %s", spec.label, receiver.source.description)

    def apply(self, config: Config) -> None:
        """Use a new configuration: meters and keys at once; receivers and outputs whose
        configuration changed restart."""
        old, self.config = self.config, config
        self.intake.reconfigure(config)
        self.state.reconfigure(config.stale_after, config.meters)
        self.calendar.reconfigure(
            config.timezone, config.prices, config.meter_ids, config.forget_after
        )
        self.exposition.reconfigure(periods=config.prometheus.periods)
        self.settlements.reconfigure(config)
        meters = {m.meter_id: m.name for m in config.meters}
        for output in self.intake.outputs:
            output.meters_changed(meters)
        removed = [spec for spec in self.receivers if spec not in config.receivers]
        for spec in removed:
            self.receivers.pop(spec).stop()
            log.info("receiver %s stopped (no longer configured)", spec.label)
        self._start_receivers(tuple(s for s in config.receivers if s not in self.receivers))
        self._start_outputs(config, old)
        log.info(
            "configuration reloaded: %d meters, %d receivers (%d restarted)",
            len(config.meters),
            len(config.receivers),
            len(removed),
        )

    def stop(self) -> None:
        for receiver in self.receivers.values():
            receiver.stop()
        self.calendar.stop()
        self.settlements.stop()
        for output in self.outputs.values():
            output.stop()

    def ready(self, private: bool = False) -> tuple[bool, str]:
        """Ready when a receiver is up and a frame arrived recently; why not names devices and
        files only to a `private` client."""
        views = [receiver.views() for receiver in self.receivers.values()]
        if not any(own.up for own, *_ in views):
            reasons = "; ".join(
                f"{own.name}: {own.down_reason if private else own.down_code}" for own, *_ in views
            )
            return False, f"no receiver is up ({reasons or 'no receivers'})"
        latest = max((view.last_frame_at or 0 for each in views for view in each), default=0)
        if time.time() - latest > READY_WITHIN:
            return False, f"no frame in the last {READY_WITHIN / 60:.0f} minutes"
        return True, "ready"

    def receiver_stats(self) -> list[ReceiverStats]:
        """Every receiver's views: its own, then one per gateway it hears through."""
        return [view for receiver in self.receivers.values() for view in receiver.views()]

    def status(
        self, histories: frozenset[str] = frozenset(), private: bool = False
    ) -> dict[str, Any]:
        return status(
            self.config,
            self.state,
            receivers=self.receiver_stats(),
            heard=self.intake.heard.snapshot(),
            started_at=self.started_at,
            outputs=self.outputs.values(),
            history=self.history,
            histories=histories,
            calendar=self.calendar,
            settlements=self.settlements,
            example_prices=self.config.prices is EXAMPLE_PRICES,
            extra={"version": __version__},
            private=private,
        )


def say_warnings(config: Config) -> None:
    """What the configuration lets run but should be mended, a line each with the fix."""
    for warning in config.warnings:
        log.warning("%s", warning.format(config.source))


def run(
    config: Config, config_path: Path | None, listen: str | None, ingress: Ingress | None = None
) -> int:
    """Run until SIGTERM or SIGINT; returns the exit code. With `ingress`, the page is also
    served to Home Assistant's ingress proxy (the add-on)."""
    limit_malloc_arenas()
    setup_logging(config.log_level, config.log_format)
    say_warnings(config)
    try:
        address = parse_listen(listen or config.web.listen)
    except ValueError as error:
        log.error("listen address %s: %s", shown(listen or config.web.listen), error)
        return 2
    try:
        security = SecurityFile(config.web.config_file)
    except WebConfigError as error:
        log.error("%s", error)
        return 2
    with collector_paused():  # a fleet's state: 20,000 meters at once
        exporter = Exporter(config)
    routes = Routes(
        lambda compressed: exporter.exposition.body(compressed=compressed),
        exporter.status,
        render,
        exporter.ready,
    )
    main = Listener(allowed_hosts=config.web.allowed_hosts)
    listeners = [(address, routes, security, main)]
    if ingress is not None:
        listeners.append(
            (ingress.address, ingress.routes(routes), SecurityFile(None), ingress.listener)
        )
    servers = _open(listeners)
    if not servers:
        return 1
    server = servers[0]
    stop = threading.Event()
    reload = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        (reload if number == signal.SIGHUP else stop).set()

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, on_signal)
    exporter.start()  # before serving: the first answer already lists every receiver
    for each in servers:
        threading.Thread(target=each.serve_forever, name="http", daemon=True).start()
    url, reach = where_served(address[0], server.server_address[1], server.scheme, security)
    log.info("amiplus-exporter %s serving %s (configuration: %s)", __version__, url, config.source)
    if ingress is not None:
        log.info("Home Assistant ingress: the page on %s", ingress.describe())
    print(f"Status page: {url}", flush=True)
    if reach:
        log.info("%s", reach)
        print(reach, flush=True)
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
        for each in servers:
            each.shutdown()
        exporter.stop()
        for each in servers:
            each.server_close()
    return 0


def _open(
    listeners: list[tuple[tuple[str, int], Routes, SecurityFile, Listener]],
) -> list[WebServer]:
    """A server for each listening address; none (and the reason logged) if one cannot listen."""
    servers: list[WebServer] = []
    for address, routes, security, listener in listeners:
        try:
            servers.append(WebServer(address, routes, security, listener=listener))
        except OSError as error:
            log.error("cannot listen on %s:%s: %s", address[0] or "*", address[1], error.strerror)
            for server in servers:
                server.server_close()
            return []
    return servers


def where_served(host: str, port: int, scheme: str, security: SecurityFile) -> tuple[str, str]:
    """The page's address on this machine, and, when every interface listens, the truth about
    who else reaches it (this machine's other addresses, with or without a password)."""
    if host not in EVERY_INTERFACE:
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}/", ""
    others = [a for a in interface_addresses() if not a.startswith("127.")]
    if not others:
        return f"{scheme}://localhost:{port}/", ""
    urls = ", ".join(f"{scheme}://{address}:{port}/" for address in others)
    guard = (
        "with the password of web.config_file"
        if security.current().users
        else "without a password: --listen 127.0.0.1:9264 keeps them to this machine, "
        "web.config_file can ask for a password"
    )
    return (
        f"{scheme}://localhost:{port}/",
        f"Listening on every interface: anyone on these networks opens the page and /metrics at "
        f"{urls} ({guard})",
    )


def _stamp(path: Path | None) -> float | None:
    try:
        return path.stat().st_mtime if path else None
    except OSError:
        return None


def _reload(exporter: Exporter, path: Path | None) -> None:
    if path is None:
        log.info("nothing to reload: the configuration is %s, not a file", exporter.config.source)
        return
    try:
        config = load_config(path)
        if not config.receivers:
            raise ConfigError(str(path), [Problem(None, NO_RECEIVERS)])
        with collector_paused():
            exporter.apply(config)
    except ConfigError as error:
        exporter.reloads.successful = False
        log.error("configuration not reloaded, the previous one stays:\n%s", error)
        return
    say_warnings(exporter.config)
    exporter.reloads.successful = True
    exporter.reloads.success_at = time.time()
