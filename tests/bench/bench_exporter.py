"""Exporter daemon benchmark: prints figures, asserts nothing.

    .venv/bin/python tests/bench/bench_exporter.py [--minutes M] [--seconds S]
        [--memory-only | --scrape-only] [--no-gzip]

Both figures run the installed console script (`amiplus-exporter`, next to this Python) as a
subprocess on 127.0.0.1 with a free port, and read its figures from outside: HTTP answers, and
/proc/PID/status and /proc/PID/stat of the exporter process.

Figure 1: resident memory of the default exporter (no configuration: the built-in simulated
meter sends a telegram every 2 s; Prometheus output only). `/metrics` is fetched once at start
(warm-up) and then every 15 s, as a Prometheus would scrape it; VmRSS and VmHWM are sampled
every 30 s for `--minutes` (default 10). Target: the final RSS <= 40 MB (MB = 2**20 bytes; it
was 35 MB before prometheus-client ran in the exporter, which costs about 2 MB).

Figure 2: `/metrics` latency with 1,000 configured meters, whose simulator sends 200 telegrams/s
in all (a telegram per meter every 5 s, in real time), under 20 concurrent scrapers, each on its
own keep-alive connection and asking for gzip like Prometheus, for `--seconds` (default 30).
Target: p99 <= 50 ms. The body is checked once before timing (every line a comment or a
`name{labels} value` sample, >= 1,000 meter IDs); telegrams keep arriving while the scrapers
run, so the body served changes every second.

A figure that cannot be measured (the exporter does not start, meters never report, the body
does not parse) stops the run with a report and exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import math
import os
import platform
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The repository, so that `tests` imports also when this file runs as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import exporter
from exporter.amiplus.simulated import DEFAULT_KEY, DEFAULT_METER_ID
from tests.bench.provenance import source_state

CONSOLE_SCRIPT = Path(sys.executable).parent / "amiplus-exporter"
MB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Figure 1
DEFAULT_MINUTES = 10.0
SCRAPE_EVERY = 15.0  # seconds, a Prometheus scrape interval
SAMPLE_EVERY = 30.0  # seconds between RSS samples
RSS_TARGET_MB = 40.0

# Figure 2
METERS = 1000
TELEGRAMS_PER_SECOND = 200  # of all meters together
SCRAPERS = 20
DEFAULT_SECONDS = 30.0
P99_TARGET_MS = 50.0
REPORT_TIMEOUT = 120.0  # seconds to wait for every meter's first telegram
START_TIMEOUT = 60.0  # seconds to wait for /healthz

SAMPLE_FAMILIES = ("amiplus_power_imported_watts", "amiplus_energy_imported_joules_total")
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
SAMPLE_LINE = re.compile(
    rf"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{{((?:{_LABEL})(?:,{_LABEL})*)?,?\}})? (\S+)"
)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


class BenchError(Exception):
    """A figure cannot be measured; the message says why."""


# --- the exporter process ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch(port: int, path: str, *, gzipped: bool = False, timeout: float = 30) -> Response:
    """One GET on a fresh connection; the body as sent (still compressed if it was)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Accept-Encoding": "gzip"} if gzipped else {})
        response = connection.getresponse()
        body = response.read()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        connection.close()


def plain_body(response: Response) -> bytes:
    if response.headers.get("content-encoding") == "gzip":
        return gzip.decompress(response.body)
    return response.body


class ExporterProcess:
    """`amiplus-exporter [--config FILE] --listen 127.0.0.1:PORT` in the background."""

    def __init__(
        self, directory: Path, name: str, config: str | None, state: Path | None = None
    ) -> None:
        self.port = free_port()
        self.log_path = directory / f"{name}.log"
        self.command = [str(CONSOLE_SCRIPT), "--listen", f"127.0.0.1:{self.port}"]
        if config is not None:
            config_path = directory / f"{name}.yml"
            config_path.write_text(config)
            self.command[1:1] = ["--config", str(config_path)]
        # No configuration must mean the built-in meter, whatever the caller's environment says;
        # the calendar's files go to a directory of the run's (`state`, or one per name).
        environment = {k: v for k, v in os.environ.items() if k != "AMIPLUS_CONFIG"}
        environment["STATE_DIRECTORY"] = str(state or directory / f"{name}-state")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=directory
            )
        self.started = time.monotonic()
        self.exit_code: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join("    | " + line for line in text.splitlines()[-lines:]) or "(empty log)"

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise BenchError(f"the exporter exited with {code}; its log ends:\n{self.log_tail()}")

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> float:
        """Seconds from start until /healthz answered 200."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError, http.client.HTTPException):
                if fetch(self.port, "/healthz", timeout=1).status == 200:
                    return time.monotonic() - self.started
            time.sleep(0.05)
        raise BenchError(
            f"the exporter did not answer /healthz within {timeout:.0f} s; its log ends:\n"
            f"{self.log_tail()}"
        )

    def get(self, path: str, *, gzipped: bool = False) -> Response:
        self.check_alive()
        try:
            return fetch(self.port, path, gzipped=gzipped)
        except (OSError, http.client.HTTPException) as error:
            self.check_alive()
            raise BenchError(f"GET {path} failed: {error!r}") from None

    def status(self) -> dict[str, Any]:
        response = self.get("/api/status")
        if response.status != 200:
            raise BenchError(f"/api/status answered {response.status}")
        document: dict[str, Any] = json.loads(response.body)
        return document

    def memory(self) -> Memory:
        self.check_alive()
        return read_memory(self.pid)

    def cpu_seconds(self) -> float:
        self.check_alive()
        return read_cpu_seconds(self.pid)

    def stop(self) -> tuple[int, float]:
        """SIGTERM and wait: the exit code and how long the exporter took to stop."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.exit_code = self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
                raise BenchError("the exporter ignored SIGTERM for 20 s; killed") from None
        else:
            self.exit_code = self.process.returncode
        return self.exit_code, time.monotonic() - started

    def kill(self) -> None:
        """The last resort when a figure failed half-way."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


# --- /proc --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    rss_kb: int  # VmRSS
    hwm_kb: int  # VmHWM: the peak RSS so far

    @property
    def rss_mb(self) -> float:
        return self.rss_kb * 1024 / MB

    @property
    def hwm_mb(self) -> float:
        return self.hwm_kb * 1024 / MB


def read_memory(pid: int) -> Memory:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])  # kB
    return Memory(fields["VmRSS"], fields["VmHWM"])


def read_cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    rest = text[text.rindex(")") + 2 :].split()  # from field 3 (state) on
    utime, stime = int(rest[11]), int(rest[12])  # fields 14 and 15
    return (utime + stime) / CLOCK_TICKS


# --- figures' helpers -------------------------------------------------------------------------


def at_most(value: float, target: float) -> str:
    return "target met" if value <= target else "ABOVE TARGET"


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def clock(seconds: float) -> str:
    return f"{int(seconds // 60):2d}:{int(seconds % 60):02d}"


@dataclass
class BodyCheck:
    lines: int = 0
    comments: int = 0
    samples: int = 0
    bad: list[str] = field(default_factory=list)
    meter_ids: dict[str, set[str]] = field(default_factory=dict)


def check_body(body: bytes) -> BodyCheck:
    """Every line a comment or `name{labels} value`; the meter IDs of `SAMPLE_FAMILIES`."""
    result = BodyCheck(meter_ids={name: set() for name in SAMPLE_FAMILIES})
    try:
        text = body.decode()
    except UnicodeDecodeError as error:
        result.bad.append(f"not UTF-8: {error}")
        return result
    if not text.endswith("\n"):
        result.bad.append("the body does not end with a newline")
    for number, line in enumerate(text.splitlines(), start=1):
        result.lines += 1
        if line.startswith("#"):
            result.comments += 1
            continue
        match = SAMPLE_LINE.fullmatch(line)
        value_ok = False
        if match is not None:
            with contextlib.suppress(ValueError):
                float(match[3])
                value_ok = True
        if match is None or not value_ok:
            if len(result.bad) < 5:
                result.bad.append(f"line {number}: {line[:120]!r}")
            continue
        result.samples += 1
        ids = result.meter_ids.get(match[1])
        if ids is not None and match[2]:
            labels = dict(LABEL.findall(match[2]))
            if "meter_id" in labels:
                ids.add(labels["meter_id"])
    return result


# --- figure 1: memory -----------------------------------------------------------------------


def figure_memory(directory: Path, minutes: float) -> None:
    duration = minutes * 60
    print(
        f"\nFigure 1: resident memory of the default exporter (built-in simulated meter, a "
        f"telegram every 2 s), {minutes:g} min"
    )
    print(
        f"  scrapes              : GET /metrics (Accept-Encoding: gzip) at start, then every "
        f"{SCRAPE_EVERY:g} s; VmRSS/VmHWM every {SAMPLE_EVERY:g} s (1 MB = 2**20 bytes)"
    )
    process = ExporterProcess(directory, "memory", None)
    try:
        healthy = process.wait_healthy()
        started = time.monotonic()
        print(f"  command              : {shlex.join(process.command)} (pid {process.pid})")
        print(f"  /healthz answered    : {healthy:.2f} s after the process started")
        scrapes: list[Response] = []

        def scrape() -> None:
            scrapes.append(process.get("/metrics", gzipped=True))

        scrape()
        first = process.memory()
        series: list[tuple[float, Memory]] = [(time.monotonic() - started, first)]
        print(
            f"  RSS after start-up   : {first.rss_mb:.1f} MB (after the first scrape; "
            f"VmHWM {first.hwm_mb:.1f} MB)"
        )
        print("  series (progress as it goes):")
        print(f"     {'time':>5}  {'RSS MB':>7}  {'VmHWM MB':>8}")
        print(f"     {clock(series[0][0])}  {first.rss_mb:7.1f}  {first.hwm_mb:8.1f}", flush=True)
        next_scrape, next_sample = SCRAPE_EVERY, SAMPLE_EVERY
        while min(next_scrape, next_sample) <= duration + 1e-9:
            due = min(next_scrape, next_sample)
            time.sleep(max(started + due - time.monotonic(), 0))
            process.check_alive()
            if next_scrape <= due:
                scrape()
                next_scrape += SCRAPE_EVERY
            if next_sample <= due:
                memory = process.memory()
                series.append((time.monotonic() - started, memory))
                print(
                    f"     {clock(series[-1][0])}  {memory.rss_mb:7.1f}  {memory.hwm_mb:8.1f}",
                    flush=True,
                )
                next_sample += SAMPLE_EVERY
        if series[-1][0] < duration - 1:  # a duration that is not a multiple of the sampling
            time.sleep(max(started + duration - time.monotonic(), 0))
            series.append((time.monotonic() - started, process.memory()))
            last = series[-1][1]
            print(f"     {clock(series[-1][0])}  {last.rss_mb:7.1f}  {last.hwm_mb:8.1f}")
        status = process.status()
        final = series[-1][1]
        telegrams = sum(meter["telegrams"] for meter in status["meters"])
        code, stopping = process.stop()
    except BaseException:
        process.kill()
        raise
    failed = sum(1 for response in scrapes if response.status != 200)
    sizes = [len(response.body) for response in scrapes]
    plain = len(plain_body(scrapes[-1]))
    print(
        f"  final RSS            : {final.rss_mb:.1f} MB at {clock(series[-1][0])} "
        f"({final.rss_kb * 1024 / 1e6:.1f} MB of 10**6 bytes)  "
        f"[{at_most(final.rss_mb, RSS_TARGET_MB)}]"
    )
    print(
        f"  peak                 : VmHWM {final.hwm_mb:.1f} MB; highest sampled RSS "
        f"{max(m.rss_mb for _, m in series):.1f} MB"
    )
    print(f"  growth               : {final.rss_mb - first.rss_mb:+.1f} MB since start-up")
    print(
        f"  scrapes              : {len(scrapes)}, {failed} not 200; body {sizes[-1]:,} bytes "
        f"gzipped, {plain:,} plain"
    )
    print(f"  telegrams decoded    : {telegrams} (from /api/status at the end)")
    print(f"  SIGTERM              : exit code {code}, stopped in {stopping:.2f} s")
    print(f"  target               : final RSS <= {RSS_TARGET_MB:g} MB")


# --- figure 2: scrape latency ---------------------------------------------------------------


def meters_config(meters: int, interval: float) -> str:
    key = DEFAULT_KEY.hex().upper()
    lines = ["meters:"]
    for n in range(meters):
        lines += [
            f'  - id: "{int(DEFAULT_METER_ID) + n:08d}"',
            f'    key: "{key}"',
            f"    name: m{n:04d}",
        ]
    lines += [
        "receivers:",
        "  - type: simulator",
        f"    meters: {meters}",
        f"    interval: {interval:g}",
        "    realtime: true",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Scraper:
    """One scraper thread's record."""

    latencies: list[float] = field(default_factory=list)  # seconds
    sizes: list[int] = field(default_factory=list)
    bodies: set[tuple[int, int]] = field(default_factory=set)  # (length, crc32)
    errors: list[str] = field(default_factory=list)
    encodings: set[str] = field(default_factory=set)


def scrape_loop(
    port: int, gzipped: bool, start: threading.Barrier, until: list[float], record: Scraper
) -> None:
    """GET /metrics over one keep-alive connection until `until[0]` (a perf_counter time)."""
    headers = {"Accept-Encoding": "gzip"} if gzipped else {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.connect()
    start.wait()
    perf = time.perf_counter
    try:
        while perf() < until[0]:
            begun = perf()
            try:
                connection.request("GET", "/metrics", headers=headers)
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as error:
                record.errors.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            elapsed = perf() - begun
            if response.status != 200:
                record.errors.append(f"status {response.status}")
                continue
            record.latencies.append(elapsed)
            record.sizes.append(len(body))
            record.bodies.add((len(body), zlib.crc32(body)))
            record.encodings.add(response.getheader("Content-Encoding") or "identity")
    finally:
        connection.close()


def figure_scrape(directory: Path, seconds: float, gzipped: bool, scrapers: int) -> None:
    interval = METERS / TELEGRAMS_PER_SECOND
    print(
        f"\nFigure 2: /metrics latency, {METERS:,} meters, {scrapers} concurrent scrapers, "
        f"{seconds:g} s"
    )
    print(
        f"  setup                : {METERS:,} configured meters ({DEFAULT_METER_ID}.., the "
        f"documented key), one simulator receiver, a telegram per meter every {interval:g} s "
        f"in real time = {TELEGRAMS_PER_SECOND} telegrams/s"
    )
    process = ExporterProcess(directory, "scrape", meters_config(METERS, interval))
    try:
        healthy = process.wait_healthy()
        print(f"  command              : {shlex.join(process.command)} (pid {process.pid})")
        print(f"  /healthz answered    : {healthy:.2f} s after the process started")
        reporting, meters = wait_for_meters(process)
        print(
            f"  every meter reported : {meters:,} meters with telegrams >= 1, "
            f"{reporting:.1f} s after the process started"
        )
        idle = process.memory()

        # The body parses (checked once, outside timing).
        plain = process.get("/metrics")
        compressed = process.get("/metrics", gzipped=True)
        if plain.status != 200 or compressed.status != 200:
            raise BenchError(f"/metrics answered {plain.status} and {compressed.status} (gzip)")
        if compressed.headers.get("content-encoding") != "gzip":
            raise BenchError("/metrics did not gzip its answer to Accept-Encoding: gzip")
        check = check_body(plain.body)
        unzipped = check_body(gzip.decompress(compressed.body))
        ids = set().union(*check.meter_ids.values())
        counts = ", ".join(f"{len(v):,} in {k}" for k, v in check.meter_ids.items())
        if check.bad or unzipped.bad or len(ids) < METERS:
            raise BenchError(
                "the /metrics body does not parse as expected: "
                f"{len(ids):,} distinct meter IDs ({counts}); bad lines: "
                f"{check.bad or unzipped.bad or 'none'}"
            )
        print(
            f"  body check           : {check.lines:,} lines ({check.comments:,} comments, "
            f"{check.samples:,} samples), all well-formed, gzip body too; meter IDs: {counts} "
            f"[ok]"
        )
        print(
            f"  body size            : {len(plain.body):,} bytes plain, "
            f"{len(compressed.body):,} gzipped"
        )

        frames_before = sum(r["frames"] for r in process.status()["receivers"])
        cpu_before = process.cpu_seconds()
        records = [Scraper() for _ in range(scrapers)]
        start = threading.Barrier(scrapers + 1)
        until = [math.inf]
        threads = [
            threading.Thread(
                target=scrape_loop,
                args=(process.port, gzipped, start, until, record),
                name=f"scraper-{n}",
            )
            for n, record in enumerate(records)
        ]
        for thread in threads:
            thread.start()
        until[0] = time.perf_counter() + seconds
        wall = time.perf_counter()
        start.wait()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - wall
        cpu = process.cpu_seconds() - cpu_before
        frames = sum(r["frames"] for r in process.status()["receivers"]) - frames_before
        loaded = process.memory()
        code, stopping = process.stop()
    except BaseException:
        process.kill()
        raise

    latencies = sorted(x * 1000 for record in records for x in record.latencies)
    errors = [error for record in records for error in record.errors]
    bodies = set().union(*(record.bodies for record in records))
    encodings = set().union(*(record.encodings for record in records))
    if not latencies:
        raise BenchError(f"no scrape succeeded; errors: {errors[:5]}")
    sizes = [size for record in records for size in record.sizes]
    p99 = percentile(latencies, 0.99)
    asked = "Accept-Encoding: gzip" if gzipped else "no Accept-Encoding (--no-gzip)"
    print(
        f"  scrapers             : {scrapers} threads, one keep-alive http.client connection "
        f"each, {asked}, whole body read (not decompressed)"
    )
    print(
        f"  scrapes              : {len(latencies):,} in {wall:.1f} s "
        f"({len(latencies) / wall:,.0f}/s), {len(errors)} failed"
        + (f" (first: {errors[0]})" if errors else "")
    )
    print(
        f"  bodies received      : {statistics.mean(sizes):,.0f} bytes on average, "
        f"Content-Encoding {', '.join(sorted(encodings))}"
    )
    print(
        f"  body changed         : {len(bodies)} distinct bodies served; telegrams kept "
        f"arriving: {frames:,} frames received during the run ({frames / wall:,.0f}/s), so "
        "the body is rendered anew each second"
    )
    print(
        f"  latency ms           : p50 {percentile(latencies, 0.50):.1f}, "
        f"p90 {percentile(latencies, 0.90):.1f}, p99 {p99:.1f}, max {latencies[-1]:.1f}, "
        f"mean {statistics.mean(latencies):.1f}  [{at_most(p99, P99_TARGET_MS)}]"
    )
    print(
        f"  exporter CPU         : {cpu:.1f} s in {wall:.1f} s ({cpu / wall:.0%} of one core; "
        f"utime+stime, all threads)"
    )
    print(
        f"  exporter RSS         : {idle.rss_mb:.1f} MB with {METERS:,} meters before the "
        f"scrapers, {loaded.rss_mb:.1f} MB after (VmHWM {loaded.hwm_mb:.1f} MB)"
    )
    print(f"  SIGTERM              : exit code {code}, stopped in {stopping:.2f} s")
    print(
        f"  target               : p99 <= {P99_TARGET_MS:g} ms (latency measured by the "
        f"scrapers: request sent to last byte read, on the same {os.cpu_count()} CPUs)"
    )


def wait_for_meters(process: ExporterProcess) -> tuple[float, int]:
    """Seconds from the process start until every meter has a telegram, and the meter count."""
    deadline = process.started + REPORT_TIMEOUT
    while True:
        meters = process.status()["meters"]
        reported = sum(1 for meter in meters if meter["telegrams"] >= 1)
        if reported >= METERS:
            return time.monotonic() - process.started, reported
        if time.monotonic() > deadline:
            raise BenchError(
                f"after {REPORT_TIMEOUT:.0f} s only {reported:,} of {METERS:,} meters have a "
                f"telegram ({len(meters):,} in /api/status); log:\n{process.log_tail()}"
            )
        time.sleep(0.5)


def run_figures(prefix: str, figures: list[Callable[[Path], None]], wall: float) -> int:
    """Each figure in one scratch directory; the first that cannot be measured ends the run."""
    with tempfile.TemporaryDirectory(prefix=prefix) as temporary:
        for figure in figures:
            try:
                figure(Path(temporary))
            except BenchError as error:
                print(f"\nFAILED: {error}")
                return 1
            sys.stdout.flush()
    print(f"\nTotal run time: {time.perf_counter() - wall:.1f} s")
    return 0


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--minutes",
        type=float,
        default=DEFAULT_MINUTES,
        help=f"figure 1: how long to watch the memory (default {DEFAULT_MINUTES:g})",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help=f"figure 2: how long the scrapers run (default {DEFAULT_SECONDS:g})",
    )
    parser.add_argument(
        "--scrapers",
        type=int,
        default=SCRAPERS,
        help=f"figure 2: concurrent scrapers (default {SCRAPERS})",
    )
    parser.add_argument(
        "--no-gzip",
        action="store_true",
        help="figure 2: scrape without Accept-Encoding: gzip, to compare",
    )
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--memory-only", action="store_true", help="run figure 1 only")
    only.add_argument("--scrape-only", action="store_true", help="run figure 2 only")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.seconds <= 0 or args.scrapers < 1:
        parser.error("--minutes and --seconds must be positive, --scrapers at least 1")
    wall = time.perf_counter()

    print("amiplus-exporter daemon benchmark")
    print(f"  command line : {shlex.join(sys.orig_argv)}")
    print(f"  python       : {platform.python_implementation()} {platform.python_version()}")
    print(f"  executable   : {sys.executable}")
    print(f"  exporter run : {CONSOLE_SCRIPT}")
    print(f"  platform     : {platform.platform()}")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"  cpus         : {os.cpu_count()} (usable by this process: {usable})")
    print(f"  exporter     : {exporter.__version__} ({Path(exporter.__file__).parent})")
    print(f"  source       : {source_state()}", flush=True)
    if not CONSOLE_SCRIPT.exists():
        print(f"\nFAILED: {CONSOLE_SCRIPT} does not exist; `pip install -e .` installs it")
        return 1

    figures: list[Callable[[Path], None]] = []
    if not args.scrape_only:
        figures.append(lambda directory: figure_memory(directory, args.minutes))
    if not args.memory_only:
        figures.append(
            lambda directory: figure_scrape(
                directory, args.seconds, not args.no_gzip, args.scrapers
            )
        )
    return run_figures("bench-exporter-", figures, wall)


if __name__ == "__main__":
    sys.exit(main())
