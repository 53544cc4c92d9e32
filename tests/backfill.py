"""History for a real Prometheus: samples of the past sent through Prometheus's remote-write
receiver (protobuf, snappy-framed), oldest first, to a server whose retention keeps the past.

`promtool tsdb create-blocks-from openmetrics` would do as well, but it writes a block per two
hours of history: a month took it 80 seconds here, remote write takes one or two.
"""

from __future__ import annotations

import re
import struct
import subprocess
import urllib.request
from pathlib import Path

from .conftest import free_port, http_get, require, server_process, stop_process, wait_until

SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="((?:\\.|[^"\\])*)"')

#: Series (its labels, `__name__` included, sorted) -> (time, value) samples.
Samples = dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]


def collect(samples: Samples, exposition: str, at: float, families: set[str]) -> None:
    """Add the samples of `families` in one text-format exposition, as scraped at `at`."""
    for line in exposition.splitlines():
        match = SAMPLE.match(line)
        if match and match.group(1) in families:
            labels = [("__name__", match.group(1)), *LABEL.findall(match.group(2) or "")]
            samples[tuple(sorted(labels))].append((at, float(match.group(3))))


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def write_request(
    series: list[tuple[tuple[tuple[str, str], ...], list[tuple[float, float]]]],
) -> bytes:
    """A remote-write WriteRequest: TimeSeries (1) of Labels (1: name, value) and Samples
    (1: double value, 2: int64 milliseconds)."""
    out = bytearray()
    for labels, points in series:
        body = b"".join(
            _field(1, _field(1, name.encode()) + _field(2, value.encode()))
            for name, value in labels
        )
        for at, value in points:
            sample = b"\x09" + struct.pack("<d", value) + b"\x10" + _varint(int(at * 1000))
            body += _field(2, sample)
        out += _field(1, body)
    return bytes(out)


def snappy_block(data: bytes) -> bytes:
    """Snappy's block format with the whole input as one literal (valid, not compressed)."""
    return _varint(len(data)) + b"\xfc" + struct.pack("<I", len(data) - 1) + data


class BackfilledPrometheus:
    """A Prometheus server with a 100-year retention, given `samples` through remote write."""

    def __init__(self, directory: Path, samples: Samples, chunk: float = 86400.0) -> None:
        binary = require("prometheus", "prometheus")
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1m\n")
        self.port = free_port()
        self.log_path = directory / "prometheus.log"
        self.process = server_process(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                "--storage.tsdb.retention.time=100y",
                "--web.enable-remote-write-receiver",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log_path.open("wb"),
        )
        ready = wait_until(lambda: http_get(f"{self.url}/-/ready", timeout=2)[0] == 200, 120)
        assert ready, self.log_path.read_text(errors="replace")
        # oldest first, a day at a time: the head takes samples in time order
        first = min(at for points in samples.values() for at, _ in points)
        last = max(at for points in samples.values() for at, _ in points)
        start = first
        while start <= last:
            batch = [
                (labels, [(at, v) for at, v in points if start <= at < start + chunk])
                for labels, points in sorted(samples.items())
            ]
            self._send([(labels, points) for labels, points in batch if points])
            start += chunk

    def _send(
        self, series: list[tuple[tuple[tuple[str, str], ...], list[tuple[float, float]]]]
    ) -> None:
        request = urllib.request.Request(
            f"{self.url}/api/v1/write",
            data=snappy_block(write_request(series)),
            headers={
                "Content-Encoding": "snappy",
                "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status in (200, 204), response.read()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)
