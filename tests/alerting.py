"""Alert delivery end to end, for tests/test_alerts.py and tests/bench/bench_alerts.py: a meter
steered over UDP into overvoltage and high power, the exporter, a real Prometheus loading
deploy/prometheus/rules, a real Alertmanager (Debian's prometheus-alertmanager) with the
routing of deploy/alertmanager/alertmanager.yml, and a webhook receiver that records what
arrives.

`time_scale` compresses the rules' durations (`for:` and range windows) so that a test need not
wait the shipped five and ten minutes: 60 makes minutes seconds. promtool tests the same rules
at their real durations in virtual time (deploy/prometheus/tests); this harness proves that
what they decide reaches a receiver, firing and resolved.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.reading import MeterReading
from exporter.amiplus.simulated import SimulatedMeter

from .conftest import free_port, http_get, require, server_process, stop_process, wait_until
from .servers import SIMULATED_KEY, ExporterProcess, Prometheus

DEPLOY = Path(__file__).parent.parent / "deploy"
RULES = DEPLOY / "prometheus" / "rules"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
METER_ID = "20260001"
OVERVOLTAGE, HIGH_POWER = "AmiplusOvervoltage", "AmiplusPowerAboveContracted"
NORMAL = (231.0, 2_000.0)  # volts on L1, watts imported
#: 5 V over the 253 V limit, under the 260 V of the critical alert; 2 kW over 14 kW contracted.
EXCESS = (258.0, 16_000.0)
DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
UNIT_MS["y"] = 365 * UNIT_MS["d"]  # Prometheus' year


def compress(duration: str, scale: float) -> str:
    """A Prometheus duration divided by `scale`, in milliseconds."""
    milliseconds = sum(int(number) * UNIT_MS[unit] for number, unit in DURATION.findall(duration))
    assert DURATION.sub("", duration) == "", f"not a duration: {duration}"
    return f"{max(1, round(milliseconds / scale))}ms"


def scaled_rules(source: Path, target: Path, scale: float) -> list[Path]:
    """Copies of the rule files with every `for:` and range window divided by `scale`."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source.glob("*.yml")):
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = compress(rule["for"], scale)
                rule["expr"] = re.sub(
                    r"\[([0-9a-z]+)\]", lambda m: f"[{compress(m.group(1), scale)}]", rule["expr"]
                )
        copy = target / path.name
        copy.write_text(yaml.safe_dump(document, sort_keys=False))
        written.append(copy)
    return written


# --- the meter -----------------------------------------------------------------------------------


@dataclass
class SteeredMeter(SimulatedMeter):
    """A simulated meter whose L1 voltage and imported power are set from outside."""

    volts: float = NORMAL[0]
    watts: float = NORMAL[1]

    def reading(self, now: datetime) -> MeterReading:
        reading = super().reading(now)
        volts = {**reading.get("voltage_v", {}), "L1": self.volts}
        steered = {"voltage_v": volts, "power_imported_w": self.watts, "power_exported_w": 0.0}
        return dataclasses.replace(reading, values={**reading.values, **steered})


class UdpRadio:
    """Sends the meter's telegrams as hex lines to a `lines` receiver every `interval` seconds;
    `steer()` changes what the next one carries and returns when it was sent."""

    def __init__(self, port: int, interval: float = 0.5) -> None:
        self.meter = SteeredMeter(FAMILIES_BY_NAME["otus"], meter_id=METER_ID)
        self.port = port
        self.interval = interval
        self._lock = threading.Lock()
        self._changed: threading.Event | None = None
        self._changed_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="udp radio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            while not self._stop.is_set():
                with self._lock:
                    frame, _ = self.meter.telegram(datetime.now(UTC))
                    udp.sendto(frame.hex().encode() + b"\n", ("127.0.0.1", self.port))
                    if self._changed is not None:
                        self._changed_at = time.monotonic()
                        self._changed.set()
                        self._changed = None
                self._stop.wait(self.interval)

    def steer(self, volts: float, watts: float) -> float:
        """Set the meter's values; the monotonic time the first telegram carrying them left."""
        changed = threading.Event()
        with self._lock:
            self.meter.volts, self.meter.watts = volts, watts
            self._changed = changed
        assert changed.wait(10 * self.interval + 5), "the radio thread stopped sending"
        return self._changed_at

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def exporter_config(port: int) -> str:
    return f"""
meters:
  - id: "{METER_ID}"
    key: "{SIMULATED_KEY}"
    name: home
    contracted_power: 14000
receivers:
  - type: lines
    name: radio
    listen: udp://127.0.0.1:{port}
"""


# --- the webhook receiver -------------------------------------------------------------------------


@dataclass
class Notification:
    received: float  # time.monotonic()
    body: dict[str, Any]

    def alert(self, alertname: str) -> dict[str, Any] | None:
        """The alert of that name in this notification, if any."""
        return next(
            (a for a in self.body["alerts"] if a["labels"].get("alertname") == alertname), None
        )


@dataclass
class Webhook:
    """An HTTP server that keeps every Alertmanager webhook notification it is sent."""

    notifications: list[Notification] = field(default_factory=list)

    def __post_init__(self) -> None:
        received = self.notifications
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    received.append(Notification(time.monotonic(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def first(self, alertname: str, status: str, after: float) -> Notification | None:
        """The first notification since `after` in which `alertname` has `status`."""
        for notification in list(self.notifications):
            alert = notification.alert(alertname)
            if notification.received >= after and alert and alert["status"] == status:
                return notification
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the servers ----------------------------------------------------------------------------------


class Alertmanager:
    """Debian's prometheus-alertmanager on 127.0.0.1 with a configuration document, no cluster."""

    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        binary = require("prometheus-alertmanager", "prometheus-alertmanager")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = free_port()
        path = directory / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config))
        self.process = server_process(
            [
                binary,
                f"--config.file={path}",
                f"--storage.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(directory / "alertmanager.log").open("wb"),
        )
        assert wait_until(self.ready, 60), self.log()

    def ready(self) -> bool:
        assert self.process.poll() is None, f"alertmanager exited:\n{self.log()}"
        return http_get(f"http://127.0.0.1:{self.port}/-/ready", timeout=2)[0] == 200

    def log(self) -> str:
        return (self.directory / "alertmanager.log").read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)


def alertmanager_config(webhook: str, group_wait: str | None) -> dict[str, Any]:
    """deploy/alertmanager/alertmanager.yml with the webhook added to its default receiver;
    `group_wait` (and group_interval) shortened when given."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    route = config["route"]
    if group_wait is not None:
        route["group_wait"] = route["group_interval"] = group_wait
    (receiver,) = [r for r in config["receivers"] if r["name"] == route["receiver"]]
    receiver["webhook_configs"] = [{"url": webhook, "send_resolved": True}]
    return config


class AlertingPrometheus(Prometheus):
    """deploy/prometheus/prometheus.yml pointed at local targets: the exporter, the (scaled)
    rules and the Alertmanager; with a time scale, 1-second scrapes and evaluations."""

    def __init__(
        self, directory: Path, exporter_port: int, alertmanager_port: int, time_scale: float
    ) -> None:
        self.rule_files = scaled_rules(RULES, directory / "rules", time_scale)
        self.exporter_port = exporter_port
        self.alertmanager_port = alertmanager_port
        self.time_scale = time_scale
        super().__init__(directory)

    def write(self, scrape_configs: list[dict[str, Any]]) -> None:
        document: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
        if self.time_scale != 1:
            document["global"] = {
                "scrape_interval": "1s",
                "scrape_timeout": "900ms",
                "evaluation_interval": "1s",
            }
        document["rule_files"] = [str(path) for path in self.rule_files]
        (scrape,) = document["scrape_configs"]
        scrape["static_configs"] = [{"targets": [f"127.0.0.1:{self.exporter_port}"]}]
        (alertmanagers,) = document["alerting"]["alertmanagers"]
        alertmanagers["static_configs"] = [{"targets": [f"127.0.0.1:{self.alertmanager_port}"]}]
        self.config.write_text(yaml.safe_dump(document))


@dataclass
class Delivery:
    """The first notification of each alert, firing and resolved, and when the telegram that
    crossed the limits (and the one back under them) left the radio."""

    firing: dict[str, Notification]
    resolved: dict[str, Notification]
    crossed: float
    back: float

    def delays(self) -> dict[str, tuple[float, float]]:
        """Per alert: seconds to the webhook, firing and resolved."""
        return {
            name: (
                self.firing[name].received - self.crossed,
                self.resolved[name].received - self.back,
            )
            for name in self.firing
        }


def stopped_cleanly(exporter: ExporterProcess) -> None:
    assert exporter.stop() == 0, exporter.log()


@contextmanager
def pipeline(directory: Path, time_scale: float) -> Iterator[tuple[UdpRadio, Webhook, Prometheus]]:
    """Everything started; stopped afterwards in reverse order, also after a failed start."""
    with ExitStack() as started:
        webhook = Webhook()
        started.callback(webhook.close)
        group_wait = "1s" if time_scale != 1 else None
        config = alertmanager_config(webhook.url, group_wait)
        alertmanager = Alertmanager(directory / "alertmanager", config)
        started.callback(alertmanager.stop)
        port = free_port()
        (directory / "exporter").mkdir(parents=True, exist_ok=True)
        exporter = ExporterProcess(directory / "exporter", exporter_config(port))
        started.callback(stopped_cleanly, exporter)
        radio = UdpRadio(port)
        started.callback(radio.close)
        prometheus = AlertingPrometheus(
            directory / "prometheus", exporter.port, alertmanager.port, time_scale
        )
        started.callback(prometheus.stop)
        yield radio, webhook, prometheus


def deliver(
    radio: UdpRadio, webhook: Webhook, prometheus: Prometheus, settle: float, timeout: float
) -> Delivery:
    """Normal for `settle` seconds once Prometheus has the voltage (a full averaging window),
    then over the limits until both alerts arrive firing, then normal until both arrive
    resolved; fails when one does not arrive within `timeout` seconds."""
    l1 = f'amiplus_voltage_volts{{meter_id="{METER_ID}",phase="L1"}}'
    assert wait_until(lambda: prometheus.value(l1) == NORMAL[0], 60), "no voltage in Prometheus"
    time.sleep(settle)
    names = (OVERVOLTAGE, HIGH_POWER)

    def arrived(status: str, since: float) -> dict[str, Notification]:
        found = {name: webhook.first(name, status, since) for name in names}
        return {name: n for name, n in found.items() if n is not None}

    crossed = radio.steer(*EXCESS)
    assert wait_until(lambda: len(arrived("firing", crossed)) == len(names), timeout), (
        f"not firing at the webhook within {timeout} s: {webhook.notifications}"
    )
    back = radio.steer(*NORMAL)
    assert wait_until(lambda: len(arrived("resolved", back)) == len(names), timeout), (
        f"not resolved at the webhook within {timeout} s: {webhook.notifications}"
    )
    return Delivery(arrived("firing", crossed), arrived("resolved", back), crossed, back)
