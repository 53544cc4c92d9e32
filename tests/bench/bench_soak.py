"""Soak benchmark: a long run at a fleet's pace, to see that nothing grows. Prints figures,
asserts nothing.

    .venv/bin/python tests/bench/bench_soak.py [--minutes M] [--settle M] [--meters N]
        [--interval S] [--scrape-every S] [--sample-every S]

The installed console script (`amiplus-exporter`, next to this Python) runs as a subprocess
with `--meters` (default 1,000) configured meters fed by its simulator receiver, a telegram per
meter every `--interval` seconds (default 5: 200 telegrams/s), with the InfluxDB output writing
to a real Debian influxd (API v1, its spool on disk) and the MQTT output publishing to a real
Debian mosquitto (QoS 1, retained, Home Assistant discovery), both started here on 127.0.0.1 as
the tests start them (tests/servers.py, tests/mosquitto.py). `/metrics` is scraped with gzip
every `--scrape-every` seconds (default 15), as Prometheus would. Every `--sample-every`
seconds (default 60) the exporter's resident memory (VmRSS), threads and open file descriptors
are read from /proc, for `--minutes` (default 30).

The verdict: after the first `--settle` minutes (default 5: every meter known, every buffer at
its size) none of the three grows: the mean RSS of the last 5 samples (fewer in a short run) is
within 1 MB of the mean of the first 5 from `--settle` on (MB = 2**20 bytes; one sample moves by
about a megabyte with each render and telegram), and the most threads and open files among the
last 5 samples are no more than among the first 5 (a connection open at a sample's instant, an
InfluxDB write or a scrape, is one file more for a moment, not growth). Telegrams, InfluxDB
points and MQTT messages are counted from `/metrics`, so that a quiet run cannot pass for a
steady one.

A figure that cannot be measured stops the run with a report and exit status 1. The machine
may be shared: the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# The repository, so that `tests` imports also when this file runs as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import exporter
from tests.bench.bench_exporter import (
    BenchError,
    ExporterProcess,
    clock,
    meters_config,
    plain_body,
    read_memory,
    run_figures,
)
from tests.bench.provenance import source_state
from tests.mosquitto import PASSWORD, USER, Mosquitto
from tests.servers import InfluxDB

RSS_TOLERANCE_MB = 1.0
EDGE = 5  # samples averaged at either end of the steady span
DATABASE = "soak"
COUNTERS = {
    "frames": "amiplus_receiver_frames_total",
    "InfluxDB points written": "amiplus_influxdb_points_written_total",
    "MQTT messages published": "amiplus_mqtt_messages_published_total",
}


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the exporter answered /healthz
    rss_mb: float
    threads: int
    files: int


def sample(pid: int, at: float) -> Sample:
    threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            threads = int(line.split()[1])
    return Sample(at, read_memory(pid).rss_mb, threads, len(os.listdir(f"/proc/{pid}/fd")))


def counters(body: bytes) -> dict[str, float]:
    """The counters of `COUNTERS` in a /metrics body (summed over their labels)."""
    text = body.decode()
    found = {}
    for label, name in COUNTERS.items():
        values = re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
        found[label] = sum(float(value) for value in values)
    return found


def outputs_config(influx: InfluxDB, broker: Mosquitto, spool: Path) -> str:
    return f"""influxdb:
  url: {influx.url}
  api: v1
  database: {DATABASE}
  spool: {spool}
mqtt:
  host: 127.0.0.1
  port: {broker.port}
  username: {USER}
  password: {PASSWORD}
  base_topic: soak
"""


def verdict(samples: list[Sample], settle: float) -> tuple[bool, str]:
    """Whether nothing grew after `settle` seconds, and the figures that say so. RSS moves
    with each render and telegram by a megabyte or so: its growth is the mean of the last
    `EDGE` samples against the mean of the first `EDGE` from `settle` on; threads and open
    files, the most among the last `EDGE` against the most among the first."""
    later = [s for s in samples if s.at >= settle - 1]
    if len(later) < 2:
        raise BenchError(f"fewer than 2 samples after {settle / 60:g} minutes: run longer")
    start, edge = later[0], max(1, min(EDGE, len(later) // 3))
    first, last = later[:edge], later[-edge:]
    rss = statistics.mean(s.rss_mb for s in last) - statistics.mean(s.rss_mb for s in first)
    spread = max(s.rss_mb for s in later) - min(s.rss_mb for s in later)
    threads = max(s.threads for s in last) - max(s.threads for s in first)
    files = max(s.files for s in last) - max(s.files for s in first)
    steady = rss <= RSS_TOLERANCE_MB and threads <= 0 and files <= 0
    return steady, (
        f"from {clock(start.at)} on: RSS {rss:+.1f} MB (the last {edge} samples against the "
        f"first {edge}; tolerance {RSS_TOLERANCE_MB:g} MB; samples within {spread:.1f} MB), "
        f"threads {threads:+d}, open files {files:+d} (the most of the last {edge} against the "
        f"first {edge})"
    )


def figure_soak(directory: Path, args: argparse.Namespace) -> None:
    duration, settle = args.minutes * 60, args.settle * 60
    print(
        f"\nFigure 1: {args.meters:,} meters, a telegram each every {args.interval:g} s "
        f"({args.meters / args.interval:,.0f}/s), InfluxDB and MQTT on, /metrics every "
        f"{args.scrape_every:g} s, {args.minutes:g} min"
    )
    influx = InfluxDB(directory / "influxdb")
    broker = Mosquitto(directory / "mosquitto")
    process: ExporterProcess | None = None
    try:
        influx.query(f'CREATE DATABASE "{DATABASE}"')
        config = meters_config(args.meters, args.interval) + outputs_config(
            influx, broker, directory / "spool"
        )
        process = ExporterProcess(directory, "soak", config)
        process.wait_healthy()
        started = time.monotonic()
        print(f"  command  : {shlex.join(process.command)} (pid {process.pid})")
        print(f"  servers  : influxd at {influx.url}, mosquitto on port {broker.port}")
        print(f"     {'time':>5}  {'RSS MB':>7}  {'threads':>7}  {'files':>5}  counters")
        samples: list[Sample] = []
        first: dict[str, float] = {}
        latest: dict[str, float] = {}
        next_scrape, next_sample = 0.0, 0.0
        while True:
            due = min(next_scrape, next_sample)
            if due > duration + 1e-9:
                break
            time.sleep(max(started + due - time.monotonic(), 0))
            if next_scrape <= due:
                response = process.get("/metrics", gzipped=True)
                if response.status != 200:
                    raise BenchError(f"/metrics answered {response.status}")
                latest = counters(plain_body(response))
                first = first or latest
                next_scrape += args.scrape_every
            if next_sample <= due:
                process.check_alive()
                samples.append(sample(process.pid, time.monotonic() - started))
                shown = ", ".join(f"{k} {v:,.0f}" for k, v in latest.items())
                last = samples[-1]
                print(
                    f"     {clock(last.at)}  {last.rss_mb:7.1f}  {last.threads:7d}  "
                    f"{last.files:5d}  {shown}",
                    flush=True,
                )
                next_sample += args.sample_every
        code, stopping = process.stop()
    finally:
        if process is not None:
            process.kill()
        broker.stop()
        influx.stop()
    steady, figures = verdict(samples, settle)
    span = samples[-1].at - samples[0].at
    for label in COUNTERS:
        grown = latest[label] - first[label]
        print(f"  {label:<24}: {grown:,.0f} in the run ({grown / span:,.1f}/s)")
        if grown <= 0:
            raise BenchError(f"no {label} during the run: the figures would mean nothing")
    print(f"  steady   : {figures}  [{'nothing grows' if steady else 'GROWS'}]")
    print(f"  SIGTERM  : exit code {code}, stopped in {stopping:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="minutes before the verdict's start (default 5)"
    )
    parser.add_argument("--meters", type=int, default=1000, help="meters (default 1,000)")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="seconds between a meter's telegrams"
    )
    parser.add_argument("--scrape-every", type=float, default=15.0, help="seconds (default 15)")
    parser.add_argument("--sample-every", type=float, default=60.0, help="seconds (default 60)")
    args = parser.parse_args(argv)
    if not 0 < args.settle < args.minutes or args.meters < 1 or args.interval <= 0:
        parser.error("--settle must be within --minutes; --meters and --interval positive")
    wall = time.perf_counter()
    print("amiplus-exporter soak benchmark")
    print(f"  command line : {shlex.join(sys.orig_argv)}")
    print(f"  platform     : {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"  exporter     : {exporter.__version__} ({Path(exporter.__file__).parent})")
    print(f"  source       : {source_state()}")
    print(f"  load average : {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    figures: list[Callable[[Path], None]] = [lambda directory: figure_soak(directory, args)]
    code = run_figures("bench-soak-", figures, wall)
    print(f"  load average : {' '.join(f'{x:.2f}' for x in os.getloadavg())} (at the end)")
    return code


if __name__ == "__main__":
    sys.exit(main())
