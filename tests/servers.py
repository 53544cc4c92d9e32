"""Real servers for integration tests, on 127.0.0.1 with free ports: the exporter itself (as a
subprocess), Prometheus and InfluxDB. A missing binary fails the test with the command that
installs it (`require` in conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from exporter.amiplus.simulated import DEFAULT_KEY

from .conftest import free_port, http_get, require, server_process, stop_process, wait_until

CONSOLE_SCRIPT = Path(sys.executable).parent / "amiplus-exporter"
SIMULATED_KEY = DEFAULT_KEY.hex().upper()


#: Meter 12345678 with the simulator's key, named home: what every receiver below is heard as.
SIMULATED_METER = f'meters:\n  - id: "12345678"\n    key: "{SIMULATED_KEY}"\n    name: home\n'


def simulated_config(interval: float, extra: str = "") -> str:
    """A configuration for meter 12345678 from the built-in simulator, plus `extra` sections."""
    return f"""
{SIMULATED_METER}receivers:
  - type: simulator
    interval: {interval}
{extra}"""


class ExporterProcess:
    """`amiplus-exporter --config FILE --listen 127.0.0.1:PORT` in the background."""

    def __init__(
        self,
        directory: Path,
        config: str | None,
        *,
        extra: list[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.ssl_context = ssl_context  # for https, with the client certificate if needed
        self.headers = headers or {}  # e.g. basic auth
        self.directory = directory
        self.config_path = directory / "amiplus.yml"
        self.port = free_port()
        self.log_path = directory / "exporter.log"
        if config is not None:
            self.config_path.write_text(config)
        self.command = [str(CONSOLE_SCRIPT), "--listen", f"127.0.0.1:{self.port}", *(extra or [])]
        if config is not None:
            self.command[1:1] = ["--config", str(self.config_path)]
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            # the calendar's default state directory, as systemd's StateDirectory= gives it
            env = {**os.environ, "STATE_DIRECTORY": str(self.directory / "state")}
            self.process = server_process(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        assert wait_until(self.healthy, 20), f"the exporter did not start:\n{self.log()}"

    def healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"the exporter exited with {self.process.returncode}:\n{self.log()}"
            )
        with contextlib.suppress(OSError):
            return self.get("/healthz", timeout=1)[0] == 200
        return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(
        self,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
        context: ssl.SSLContext | None = None,
    ) -> tuple[int, bytes]:
        extra = {"context": context or self.ssl_context} if self.ssl_context else {}
        return http_get(
            f"{self.url}{path}",
            headers=self.headers if headers is None else headers,
            timeout=timeout,
            **extra,
        )

    def status(self) -> dict[str, Any]:
        code, body = self.get("/api/status")
        assert code == 200
        document: dict[str, Any] = json.loads(body)
        return document

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def stop(self) -> int:
        """SIGTERM and wait: the exit code (0 for a clean stop)."""
        if self.process is None:
            return 0
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                return process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
                raise AssertionError(f"the exporter ignored SIGTERM:\n{self.log()}") from None
        return process.returncode


class InstantQueries:
    """Instant PromQL queries against a server's /api/v1/query (Prometheus, and
    VictoriaMetrics, whose MetricsQL accepts PromQL); `get` is the server's."""

    def get(self, path: str) -> tuple[int, bytes]:
        raise NotImplementedError

    def query(self, expression: str) -> list[dict[str, Any]]:
        """An instant query: the result vector."""
        code, body = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expression}))
        document = json.loads(body)
        assert code == 200 and document["status"] == "success", (expression, document)
        result: list[dict[str, Any]] = document["data"]["result"]
        return result

    def values(self, expression: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Instant query results by their labels (without __name__)."""
        return {
            tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(
                r["value"][1]
            )
            for r in self.query(expression)
        }

    def value(self, expression: str) -> float | None:
        """The value of a query that yields at most one series."""
        values = list(self.values(expression).values())
        assert len(values) <= 1, values
        return values[0] if values else None


class Prometheus(InstantQueries):
    """A Prometheus server with a reloadable scrape configuration and 1-second scrapes;
    `extra` holds further top-level sections (rule_files, remote_write)."""

    def __init__(self, directory: Path, extra: dict[str, Any] | None = None) -> None:
        self.binary = require("prometheus", "prometheus")
        self.directory = directory
        self.extra = extra or {}
        self.config = directory / "prometheus.yml"
        self.port = free_port()
        self.write([])
        self.process = server_process(
            [
                self.binary,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(directory / "prometheus.log").open("wb"),
        )
        assert wait_until(lambda: self.get("/-/ready")[0] == 200, 60), self.log()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.directory / "prometheus.log").read_text(errors="replace")

    def get(self, path: str) -> tuple[int, bytes]:
        return http_get(f"{self.url}{path}", timeout=5)

    def write(self, scrape_configs: list[dict[str, Any]]) -> None:
        document = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "900ms",
                "evaluation_interval": "1s",
            },
            "scrape_configs": scrape_configs,
            **self.extra,
        }
        self.config.write_text(yaml.safe_dump(document))

    def scrape(self, *scrape_configs: dict[str, Any]) -> None:
        """Replace the scrape jobs and reload."""
        self.write(list(scrape_configs))
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def targets(self) -> list[dict[str, Any]]:
        code, body = self.get("/api/v1/targets")
        assert code == 200
        active: list[dict[str, Any]] = json.loads(body)["data"]["activeTargets"]
        return active

    def stop(self) -> None:
        stop_process(self.process)


def job(name: str, port: int, **options: Any) -> dict[str, Any]:
    """A scrape job for one exporter on 127.0.0.1."""
    return {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}], **options}


class InfluxDB:
    """Debian's InfluxDB 1.x with its own configuration and directories; stop and start it again
    (same data, same port) to stage an outage."""

    def __init__(self, directory: Path, *, auth: bool = False) -> None:
        self.binary = require("influxd", "influxdb")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.auth = auth
        self.config = directory / "influxdb.conf"
        self.config.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{free_port()}"
[meta]
  dir = "{directory / "meta"}"
[data]
  dir = "{directory / "data"}"
  wal-dir = "{directory / "wal"}"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if auth else "false"}
  log-enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
"""
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = server_process(
            [self.binary, "-config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "influxd.log").open("ab"),
        )
        process = self.process
        answered = wait_until(
            lambda: process.poll() is not None or http_get(f"{self.url}/ping", timeout=1)[0] == 204,
            60,
        )
        assert answered and process.poll() is None, (  # a server that exited is not waited for
            self.directory / "influxd.log"
        ).read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    def query(
        self, query: str, database: str = "", credentials: tuple[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Run InfluxQL; the series of the first statement."""
        parameters = {"q": query, "epoch": "s"}
        if database:
            parameters["db"] = database
        if credentials:
            parameters.update(u=credentials[0], p=credentials[1])
        request = urllib.request.Request(
            f"{self.url}/query", data=urllib.parse.urlencode(parameters).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            document = json.loads(response.read())
        result = document["results"][0]
        assert "error" not in result, result
        series: list[dict[str, Any]] = result.get("series", [])
        return series

    def points(self, database: str, measurement: str = "amiplus") -> list[dict[str, Any]]:
        """Every point of a measurement as dictionaries (time in epoch seconds)."""
        rows = []
        for series in self.query(f'SELECT * FROM "{measurement}"', database):
            for values in series["values"]:
                rows.append(dict(zip(series["columns"], values, strict=True)))
        return rows


Start = Callable[..., ExporterProcess]
"""The `start_exporter` fixture: a configuration's text (and options) in, a running exporter out."""
