"""MQTT output benchmark: prints figures, asserts nothing.

    .venv/bin/python tests/bench/bench_mqtt.py [--minutes M] [--meters N] [--lead S]

`--meters` (default 1,000) simulated meters (Apator Otus, the documented key) each send a
telegram once a second for `--minutes` (default 5), replayed in real time into the exporter (the
installed console script, a subprocess), twice: with the MQTT output publishing to a local Debian
mosquitto (started here on 127.0.0.1 with a password file; QoS 1, retained, Home Assistant
discovery on) and without any output but Prometheus. The telegrams are written to a file first;
this script, run with `--pace FILE --at T`, is the exporter's `lines: command:` receiver and
replays the file with each line at its offset from T. (The `replay` receiver reads its whole file
into memory, 90 MB here, which would swamp the memory figure.) The first telegrams are due
`--lead` seconds after the exporter is started. A paho subscriber in this process takes every
state message (QoS 1, as Home Assistant subscribes). Every `SAMPLE_EVERY` seconds: /metrics,
and /proc (no /api/status: rendering it for 1,000 meters would
stall the exporter and show in the latency).

Figure 1, backlog: frames received against the schedule, MQTT messages published against
frames, state messages the subscriber has against telegrams sent, and what the output dropped
for want of room (`queue_full`); no growth means the exporter keeps up.
Figure 2, telegram-to-broker latency: the subscriber's receive time minus the state's
`received_at` (when the receiver read the telegram), so it includes the broker's delivery to
the subscriber; the first `WARM_UP` seconds of telegrams (every meter's discovery) apart from the
rest. Target: p99 <= 100 ms after the warm-up.
Figure 3, CPU: the exporter's utime+stime (all threads) over the telegrams' span per published
message, and the difference to the run without MQTT per message.
Figure 4, memory: VmRSS with and without the MQTT output at the same moments of the replay.
Target: <= 8 MB more at the end (MB = 2**20 bytes).

A figure that cannot be measured stops the run with a report and exit status 1. The machine may
be shared: the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import re
import shlex
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

# The repository, so that `tests` imports also when this file runs as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import exporter
from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.simulated import DEFAULT_FAMILY, DEFAULT_KEY, SimulatedMeter
from tests.bench.bench_exporter import (
    BenchError,
    ExporterProcess,
    at_most,
    percentile,
    run_figures,
)
from tests.bench.bench_scale import meter_id
from tests.bench.provenance import source_state
from tests.mosquitto import PASSWORD, USER, Mosquitto

BASE = "bench"
SAMPLE_EVERY = 15.0  # seconds
WARM_UP = 10.0  # seconds of telegrams counted apart: every meter's first discovery
P99_TARGET_MS = 100.0
MEMORY_TARGET_MB = 8.0
SETTLE = 10.0  # seconds after the last telegram for the last messages
RECEIVED_AT = re.compile(rb'"received_at":"([^"]+)"')
METRIC = r"^{name} (\S+)$"


# --- the replay file ------------------------------------------------------------------------


def _meter_lines(job: tuple[int, int, int]) -> list[str]:
    """One meter's telegram lines, a second apart, spread over the second by its number."""
    number, meters, seconds = job
    meter = SimulatedMeter(
        FAMILIES_BY_NAME[DEFAULT_FAMILY], meter_id=meter_id(number), key=DEFAULT_KEY
    )
    start = datetime.now(UTC)
    lines = []
    for second in range(seconds):
        frame, _ = meter.telegram(start + timedelta(seconds=second))
        due = second + number / meters
        lines.append(f"telegram=|{frame.hex().upper()}|+{due:.3f}\n")
    return lines


def write_replay(path: Path, meters: int, seconds: int) -> None:
    """Every meter's lines, in the order they are due, written on every CPU."""
    jobs = [(n, meters, seconds) for n in range(meters)]
    with multiprocessing.Pool() as pool:
        per_meter = pool.map(_meter_lines, jobs, chunksize=max(1, meters // 64))
    with path.open("w") as out:
        for second in range(seconds):
            out.writelines(lines[second] for lines in per_meter)


def pace(path: Path, at: float) -> int:
    """Write the file's lines to standard output, each at its `+offset` after `at`; then wait
    until the exporter stops it or is gone (it would start an ended command again)."""
    out = sys.stdout.buffer
    with path.open("rb") as lines:
        for line in lines:
            wait = at + float(line.rsplit(b"+", 1)[1]) - time.time()
            if wait > 0.001:
                out.flush()
                time.sleep(wait)
            out.write(line)
    out.flush()
    while os.getppid() != 1:  # until the exporter that started it is gone
        time.sleep(1)
    return 0


def config(meters: int, replay: Path, at: float, broker: Mosquitto | None) -> str:
    key = DEFAULT_KEY.hex().upper()
    lines = ["meters:"]
    for n in range(meters):
        lines += [f'  - id: "{meter_id(n)}"', f'    key: "{key}"', f"    name: m{n:04d}"]
    command = shlex.join([sys.executable, str(Path(__file__).resolve()), "--pace", str(replay)])
    lines += ["receivers:", "  - type: lines", f"    command: 'exec {command} --at {at:.3f}'"]
    if broker is not None:
        lines += [
            "mqtt:",
            "  host: 127.0.0.1",
            f"  port: {broker.port}",
            f"  username: {USER}",
            f"  password: {PASSWORD}",
            f"  base_topic: {BASE}",
        ]
    return "\n".join(lines) + "\n"


# --- the subscriber -------------------------------------------------------------------------


@dataclass
class Arrivals:
    """Every state message's latency (s) and arrival time, as the subscriber saw them."""

    latencies: list[tuple[float, float]] = field(default_factory=list)  # (arrival, latency)
    unreadable: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.latencies)


def subscribe(broker: Mosquitto, arrivals: Arrivals) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-subscriber")
    client.username_pw_set(USER, PASSWORD)
    ready = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        found = RECEIVED_AT.search(message.payload)
        if found is None:
            arrivals.unreadable += 1
            return
        sent = datetime.fromisoformat(found.group(1).decode()).timestamp()
        with arrivals.lock:
            arrivals.latencies.append((now, now - sent))

    client.on_message = on_message
    client.on_connect = lambda c, *args: c.subscribe(f"{BASE}/+/state", qos=1)
    client.on_subscribe = lambda *args: ready.set()
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    if not ready.wait(10):
        raise BenchError("the benchmark's subscriber could not subscribe")
    return client


# --- one run --------------------------------------------------------------------------------


@dataclass
class Sample:
    at: float  # seconds since the first telegram was due
    frames: int
    due: int
    published: float | None
    delivered: int
    rss_mb: float


@dataclass
class Run:
    name: str
    samples: list[Sample]
    cpu_s: float  # over the telegrams' span
    span_s: float
    published: float  # MQTT messages during the span
    dropped: float  # updates and messages the MQTT output dropped for want of room (queue_full)
    final_rss_mb: float
    peak_rss_mb: float
    telegrams: int


def metric(process: ExporterProcess, name: str) -> float | None:
    body = process.get("/metrics").body.decode()
    found = re.search(METRIC.format(name=re.escape(name)), body, re.MULTILINE)
    return float(found.group(1)) if found else None


def run(
    directory: Path,
    name: str,
    *,
    replay: Path,
    meters: int,
    seconds: int,
    lead: float,
    broker: Mosquitto | None,
    arrivals: Arrivals | None,
) -> Run:
    telegrams = meters * seconds
    first_due = time.time() + lead
    process = ExporterProcess(directory, name, config(meters, replay, first_due, broker))
    try:
        healthy = process.wait_healthy()
        if time.time() > first_due - 1:
            raise BenchError(f"start-up took too long ({healthy:.1f} s): raise --lead")
        print(f"  {name}: {shlex.join(process.command)} (pid {process.pid}), up in {healthy:.1f} s")
        time.sleep(max(0.0, first_due - time.time()))
        cpu_before = process.cpu_seconds()
        published_before = metric(process, "amiplus_mqtt_messages_published_total") or 0.0
        samples: list[Sample] = []
        next_sample = first_due + SAMPLE_EVERY
        header = f"     {'t s':>6} {'frames':>9} {'due':>9} {'published':>10}"
        print(header + f" {'delivered':>10} {'RSS MB':>7}", flush=True)
        while True:
            time.sleep(max(0.0, next_sample - time.time()))
            now = time.time()
            frames = int(metric(process, 'amiplus_receiver_frames_total{receiver="lines"}') or 0)
            sample = Sample(
                now - first_due,
                frames,
                min(telegrams, int((now - first_due) * meters)),
                metric(process, "amiplus_mqtt_messages_published_total"),
                arrivals.count() if arrivals else 0,
                process.memory().rss_mb,
            )
            samples.append(sample)
            print(
                f"     {sample.at:6.0f} {sample.frames:9,} {sample.due:9,} "
                f"{'-' if sample.published is None else f'{sample.published:,.0f}':>10} "
                f"{sample.delivered:10,} {sample.rss_mb:7.1f}",
                flush=True,
            )
            if frames >= telegrams:
                break
            if now > first_due + seconds + 60:
                raise BenchError(f"only {frames:,} of {telegrams:,} frames after the schedule")
            next_sample += SAMPLE_EVERY
        span = time.time() - first_due
        cpu = process.cpu_seconds() - cpu_before
        if arrivals is not None:
            deadline = time.time() + SETTLE
            while arrivals.count() < telegrams and time.time() < deadline:
                time.sleep(0.2)
        published = (metric(process, "amiplus_mqtt_messages_published_total") or 0.0) - (
            published_before
        )
        dropped = metric(process, 'amiplus_mqtt_errors_total{reason="queue_full"}') or 0.0
        memory = process.memory()
        process.stop()
    finally:
        process.kill()
    return Run(
        name, samples, cpu, span, published, dropped, memory.rss_mb, memory.hwm_mb, telegrams
    )


# --- the figures ----------------------------------------------------------------------------


def figures(directory: Path, meters: int, minutes: float, lead: float) -> None:
    seconds = round(minutes * 60)
    telegrams = meters * seconds
    replay = directory / "replay.txt"
    made = time.perf_counter()
    write_replay(replay, meters, seconds)
    print(
        f"\nSetup: {meters:,} meters x {seconds:,} s = {telegrams:,} telegrams "
        f"({replay.stat().st_size / 1e6:.0f} MB file of telegram lines written in "
        f"{time.perf_counter() - made:.0f} s)",
        flush=True,
    )
    broker = Mosquitto(directory / "mosquitto")
    arrivals = Arrivals()
    subscriber = subscribe(broker, arrivals)
    try:
        print("\nRun with the MQTT output:", flush=True)
        with_mqtt = run(
            directory,
            "mqtt",
            replay=replay,
            meters=meters,
            seconds=seconds,
            lead=lead,
            broker=broker,
            arrivals=arrivals,
        )
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()
        broker.stop()
    print("\nRun without it:", flush=True)
    without = run(
        directory,
        "plain",
        replay=replay,
        meters=meters,
        seconds=seconds,
        lead=lead,
        broker=None,
        arrivals=None,
    )

    print("\nFigure 1: backlog")
    growth = [s.frames - s.due for s in with_mqtt.samples]
    print(
        f"  frames behind schedule : {min(growth):,} to {max(growth):,} (a constant offset is the "
        "start; growth would be a backlog)"
    )
    sent = [(s.published or 0) - s.frames for s in with_mqtt.samples]
    print(
        f"  MQTT messages - frames : {min(sent):,} to {max(sent):,} (discovery and availability "
        "on top of a state per telegram; a fall would be states not sent)"
    )
    delivered = arrivals.count()
    print(
        f"  state messages         : {delivered:,} delivered for {telegrams:,} telegrams "
        f"({arrivals.unreadable} unreadable)"
    )
    print(
        f"  dropped for want of room: {with_mqtt.dropped:,.0f} "
        '(amiplus_mqtt_errors_total{reason="queue_full"}: updates and messages)'
    )

    print("\nFigure 2: telegram-to-broker latency (to this process's subscriber)")
    first_arrival = min((a for a, _ in arrivals.latencies), default=0.0)
    warm = sorted(x * 1000 for a, x in arrivals.latencies if a - first_arrival < WARM_UP)
    steady = sorted(x * 1000 for a, x in arrivals.latencies if a - first_arrival >= WARM_UP)
    if not steady:
        raise BenchError("no state message after the warm-up")
    for label, values in ((f"first {WARM_UP:g} s", warm), ("after it", steady)):
        if values:
            print(
                f"  {label:<22} : {len(values):,} messages, p50 {percentile(values, 0.5):.1f}, "
                f"p90 {percentile(values, 0.9):.1f}, p99 {percentile(values, 0.99):.1f}, max "
                f"{values[-1]:.1f}, mean {statistics.mean(values):.1f} ms"
            )
    p99 = percentile(steady, 0.99)
    print(
        f"  target                 : p99 <= {P99_TARGET_MS:g} ms after the warm-up "
        f"[{at_most(p99, P99_TARGET_MS)}]"
    )

    print("\nFigure 3: exporter CPU")
    for result in (with_mqtt, without):
        print(
            f"  {result.name:<22} : {result.cpu_s:.1f} s in {result.span_s:.0f} s "
            f"({result.cpu_s / result.span_s:.0%} of one core), "
            f"{result.cpu_s / result.telegrams * 1e6:.0f} µs per telegram"
        )
    if with_mqtt.published:
        print(
            f"  per published message  : {with_mqtt.cpu_s / with_mqtt.published * 1e6:.0f} µs "
            f"of all the exporter's CPU ({with_mqtt.published:,.0f} messages); the MQTT output's "
            f"own share {(with_mqtt.cpu_s - without.cpu_s) / with_mqtt.published * 1e6:.0f} µs "
            "(the difference to the run without it)"
        )

    print("\nFigure 4: resident memory (MB = 2**20 bytes)")
    print(f"     {'t s':>6} {'with MQTT':>10} {'without':>8} {'more':>6}")
    for a, b in zip(with_mqtt.samples, without.samples, strict=False):
        print(f"     {a.at:6.0f} {a.rss_mb:10.1f} {b.rss_mb:8.1f} {a.rss_mb - b.rss_mb:+6.1f}")
    more = with_mqtt.final_rss_mb - without.final_rss_mb
    print(
        f"  at the end             : {with_mqtt.final_rss_mb:.1f} MB with, "
        f"{without.final_rss_mb:.1f} MB without: {more:+.1f} MB "
        f"[{at_most(more, MEMORY_TARGET_MB)}]; peaks (VmHWM) {with_mqtt.peak_rss_mb:.1f} and "
        f"{without.peak_rss_mb:.1f} MB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=5.0, help="telegrams' span (default 5)")
    parser.add_argument("--meters", type=int, default=1000, help="meters (default 1,000)")
    parser.add_argument(
        "--lead",
        type=float,
        default=15.0,
        help="seconds from the replay's start to its first telegram (default 15)",
    )
    parser.add_argument("--pace", type=Path, help=argparse.SUPPRESS)  # the receiver's command
    parser.add_argument("--at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pace:
        return pace(args.pace, args.at)
    if args.minutes <= 0 or args.meters < 1 or args.lead <= 0:
        parser.error("--minutes, --meters and --lead must be positive")
    wall = time.perf_counter()
    print("amiplus-exporter MQTT output benchmark")
    print(f"  command line : {shlex.join(sys.orig_argv)}")
    print(f"  python       : {platform.python_implementation()} {platform.python_version()}")
    print(f"  platform     : {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"  load average : {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    print(f"  exporter     : {exporter.__version__} ({Path(exporter.__file__).parent})")
    print(f"  source       : {source_state()}", flush=True)
    result = run_figures(
        "bench-mqtt-", [lambda d: figures(d, args.meters, args.minutes, args.lead)], wall
    )
    print(f"  load average : {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")
    return result


if __name__ == "__main__":
    sys.exit(main())
