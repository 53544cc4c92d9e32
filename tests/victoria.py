"""Debian's VictoriaMetrics (single node) for integration tests: a remote-write target on
127.0.0.1 with a free port, queried through its Prometheus-compatible API."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from pathlib import Path

from .conftest import free_port, http_get, require, server_process, stop_process, wait_until
from .servers import InstantQueries


class VictoriaMetrics(InstantQueries):
    """`victoria-metrics` with its own data directory; samples are visible to queries at once
    (no 30-second latency offset, no response cache)."""

    def __init__(self, directory: Path) -> None:
        self.binary = require("victoria-metrics", "victoria-metrics")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = directory / "victoria-metrics.log"
        self.process = server_process(
            [
                self.binary,
                f"-storageDataPath={directory / 'data'}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                "-search.latencyOffset=0s",
                "-search.disableCache",
                "-loggerLevel=WARN",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log_path.open("wb"),
        )
        assert wait_until(lambda: self.get("/health")[0] == 200, 60), self.log()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        """Where Prometheus's remote_write sends to."""
        return f"{self.url}/api/v1/write"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, bytes]:
        if self.process.poll() is not None:
            raise AssertionError(f"victoria-metrics exited with {self.process.returncode}")
        return http_get(f"{self.url}{path}", timeout=10)

    def label_values(self, label: str, selector: str) -> set[str]:
        """The values of `label` on the series `selector` matches (what Grafana's
        `label_values(selector, label)` asks)."""
        code, body = self.get(
            f"/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": selector})
        )
        assert code == 200, body
        found: list[str] = json.loads(body)["data"]
        return set(found)

    def stop(self) -> None:
        stop_process(self.process)
