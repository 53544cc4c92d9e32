"""MQTT receiver benchmark (ESP32 gateways through mosquitto): prints figures, asserts nothing.

    .venv/bin/python tests/bench/bench_gateways.py [--seconds S] [--rate N] [--meters M]
        [--gateways G] [--passes P]

The exporter is this script run with `--serve CONFIG RECORD` in a subprocess: `daemon.Exporter`
(receivers, intake, state, calendar; no HTTP server, no output) and a recorder, an `Output` that
notes when each reading reached the state (the intake hands it on right after the state and the
calendar took it) with the meter and the telegram's access number. It has two receivers:
`type: mqtt` on a local Debian mosquitto (started here on 127.0.0.1 with a password file) with
the default topic filters, and `type: lines` on a UDP port. `--meters` (default 1,000) simulated
meters (Apator Otus, the documented key) each have one telegram per second of `--seconds`
(default 60), written as ESPHome's `wmbus_radio` writes them (`frame->as_rtlwmbus()`, with an
RSSI). The telegrams are sent at `--rate` (default 1,000) per second, evenly spaced: first a
warm-up through UDP (one second's worth, so every meter's first reading is behind us), then
`--passes` (default 2) times each through mosquitto by `--gateways` (default 3) ESP32 boards
(persistent connections publishing QoS 0 to `wmbus/<board>/telegram`, as ESPHome's `mqtt:`
component does) and through UDP datagrams (one per telegram, as a `socket_transmitter` does),
alternating. The dedupe window is 0 so that no pass hides another's telegrams.

Figures per path: telegrams sent and readings in the state, matched by meter and access number
(target for MQTT: none lost); latency from the send (just before `publish` or `sendto`) to the
reading in the state over every pass, p50, p99 and max (target for MQTT: p99 <= 50 ms); exporter
CPU (utime + stime of the process, all threads) from a pass's first send to its last reading, per
reading, the least of the passes (a busy machine only adds) and every pass's; the MQTT path's
least against the UDP path's (target: <= 1.2). The machine may be shared: the load average is
printed at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# The repository, so that `tests` imports also when this file runs as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from exporter import daemon
from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.simulated import DEFAULT_FAMILY, DEFAULT_KEY, SimulatedMeter
from exporter.config import load_config
from exporter.pipeline import MeterUpdate, Output
from tests.bench.bench_exporter import BenchError, at_most, percentile, read_cpu_seconds
from tests.bench.bench_scale import meter_id
from tests.bench.provenance import source_state
from tests.mosquitto import PASSWORD, USER, Mosquitto

REPO = Path(__file__).resolve().parents[2]
P99_TARGET_MS = 50.0
CPU_RATIO_TARGET = 1.2
SETTLE = 20.0  # seconds after the last send for the last readings
PAUSE = 2.0  # seconds between passes
RSSI = -71


# --- the telegrams --------------------------------------------------------------------------


def _meter_lines(job: tuple[int, int]) -> list[tuple[int, bytes]]:
    """One meter's telegrams, a second apart, as `frame->as_rtlwmbus()` writes them, with their
    access numbers."""
    number, seconds = job
    meter = SimulatedMeter(
        FAMILIES_BY_NAME[DEFAULT_FAMILY], meter_id=meter_id(number), key=DEFAULT_KEY
    )
    start = datetime.now(UTC)
    stamp = start.strftime("%Y-%m-%d %H:%M:%S.00Z")
    lines = []
    for second in range(seconds):
        frame, reading = meter.telegram(start + timedelta(seconds=second))
        assert reading.access_number is not None
        line = f"T1;1;1;{stamp};{RSSI};;;0x{frame.hex()}\n".encode()
        lines.append((reading.access_number, line))
    return lines


#: A telegram: (meter ID, access number), and its line.
Telegram = tuple[tuple[str, int], bytes]


def telegrams(meters: int, seconds: int) -> list[Telegram]:
    """Every telegram, in the order they are sent: second by second."""
    with multiprocessing.Pool() as pool:
        per_meter = pool.map(_meter_lines, [(n, seconds) for n in range(meters)])
    return [
        ((meter_id(n), per_meter[n][second][0]), per_meter[n][second][1])
        for second in range(seconds)
        for n in range(meters)
    ]


# --- the exporter (the subprocess) ----------------------------------------------------------


class Recorder(Output):
    """Notes when each reading reached the state: (meter ID, access number, time.time())."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[tuple[str, int | None, float]] = []

    def submit(self, update: MeterUpdate) -> None:
        self.seen.append((update.meter_id, update.reading.access_number, time.time()))

    def start(self) -> None:
        return

    def stop(self) -> None:
        return

    def status(self) -> dict[str, Any] | None:
        return None


def serve(config_path: Path, record: Path) -> int:
    """The exporter without HTTP, answering each line of its standard input with the number of
    readings so far, until that input ends; then the record, as JSON."""
    exporter = daemon.Exporter(load_config(config_path))
    recorder = Recorder()
    exporter.start()
    exporter.intake.outputs = [*exporter.intake.outputs, recorder]
    deadline = time.monotonic() + 30
    while not all(view.up for view in exporter.receiver_stats()):
        if time.monotonic() > deadline:
            print(f"receivers not up: {exporter.receiver_stats()}", flush=True)
            return 1
        time.sleep(0.05)
    print("ready", flush=True)
    for _ in sys.stdin:  # each line asks how many readings so far
        print(len(recorder.seen), flush=True)
    exporter.stop()
    record.write_text(json.dumps(recorder.seen))
    return 0


def config(meters: int, broker: Mosquitto, udp: int, directory: Path) -> str:
    key = DEFAULT_KEY.hex().upper()
    lines = ["meters:"]
    for n in range(meters):
        lines += [f'  - id: "{meter_id(n)}"', f'    key: "{key}"', f"    name: m{n:04d}"]
    lines += [
        "receivers:",
        "  - type: mqtt",
        "    name: esp",
        "    host: 127.0.0.1",
        f"    port: {broker.port}",
        f"    username: {USER}",
        f"    password: {PASSWORD}",
        "  - type: lines",
        "    name: udp",
        f"    listen: udp://127.0.0.1:{udp}",
        "state:",
        f"  directory: {directory}",
        "  dedupe_window: 0",
        "log:",
        "  level: warning",
    ]
    return "\n".join(lines) + "\n"


# --- the senders ------------------------------------------------------------------------------


class Boards:
    """ESP32 boards on the broker: persistent connections that publish with QoS 0."""

    def __init__(self, broker: Mosquitto, count: int) -> None:
        self.clients = []
        for number in range(count):
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{number}")
            client.username_pw_set(USER, PASSWORD)
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            self.clients.append((client, f"wmbus/esp{number}/telegram"))

    def send(self, number: int, line: bytes) -> None:
        client, topic = self.clients[number % len(self.clients)]
        client.publish(topic, line, qos=0)

    def close(self) -> None:
        for client, _ in self.clients:
            client.disconnect()
            client.loop_stop()


def paced(lines: list[Telegram], rate: float, send: Any) -> list[tuple[tuple[str, int], float]]:
    """Send every line at its slot (`rate` per second); when each was sent (just before)."""
    sent = []
    start = time.time() + 0.5
    for number, (telegram, line) in enumerate(lines):
        wait = start + number / rate - time.time()
        if wait > 0.0005:
            time.sleep(wait)
        sent.append((telegram, time.time()))
        send(number, line)
    return sent


@dataclass
class Pass:
    """One pass through one path: what was sent when, the exporter's CPU over it, and which
    of the recorder's readings are its own (from `first` to `last`)."""

    path: str
    sent: list[tuple[tuple[str, int], float]]
    cpu_s: float
    first: int
    last: int


def run_pass(path: str, lines: list[Telegram], *, rate: float, send: Any, exporter: Any) -> Pass:
    """One pass: send, wait for the readings, the exporter's CPU over it all."""
    before, cpu_before = exporter.count(), read_cpu_seconds(exporter.pid)
    sent = paced(lines, rate, send)
    deadline = time.time() + SETTLE
    while exporter.count() < before + len(lines) and time.time() < deadline:
        time.sleep(0.05)
    cpu = read_cpu_seconds(exporter.pid) - cpu_before
    time.sleep(PAUSE)
    return Pass(path, sent, cpu, before, exporter.count())


# --- main -----------------------------------------------------------------------------------


def report(path: str, passes: list[Pass], seen: list[tuple[str, int, float]]) -> float:
    """The figures of one path over its passes; its least CPU per reading."""
    found: list[float] = []
    sent = lost = 0
    per_reading = []
    for one in passes:
        arrived = {(meter, access): at for meter, access, at in seen[one.first : one.last]}
        latencies = [arrived[key] - at for key, at in one.sent if key in arrived]
        found += latencies
        sent += len(one.sent)
        lost += len(one.sent) - len(latencies)
        per_reading.append(one.cpu_s / max(len(latencies), 1))
    found.sort()
    target = P99_TARGET_MS if path == "MQTT" else None
    print(f"  {path}, {len(passes)} passes:")
    verdict = "" if target is None else f" ({'target met' if not lost else 'ABOVE TARGET'})"
    print(
        f"    telegrams sent      : {sent:,}; in the state {len(found):,}, lost {lost:,}{verdict}"
    )
    if found:
        p99 = percentile(found, 0.99) * 1000
        verdict = f" ({at_most(p99, target)}: <= {target:g} ms)" if target else ""
        print(
            f"    latency send->state : p50 {percentile(found, 0.5) * 1000:.1f} ms, "
            f"p99 {p99:.1f} ms{verdict}, max {found[-1] * 1000:.1f} ms"
        )
    each = ", ".join(f"{per * 1e6:.0f}" for per in per_reading)
    print(f"    exporter CPU        : {min(per_reading) * 1e6:.0f} us per reading (passes: {each})")
    return min(per_reading)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=60, help="telegram seconds (default 60)")
    parser.add_argument("--rate", type=float, default=1000.0, help="telegrams/s (default 1000)")
    parser.add_argument("--meters", type=int, default=1000, help="meters (default 1000)")
    parser.add_argument("--gateways", type=int, default=3, help="ESP32 boards (default 3)")
    parser.add_argument("--passes", type=int, default=2, help="passes per path (default 2)")
    parser.add_argument("--serve", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(*args.serve)
    print(f"bench_gateways: {source_state()}")
    print(f"  python       : {platform.python_implementation()} {platform.python_version()}")
    print(f"  platform     : {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"  load average : {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    with tempfile.TemporaryDirectory(prefix="bench-gateways-") as temporary:
        try:
            run(Path(temporary), args)
        except BenchError as error:
            print(f"\nFAILED: {error}")
            return 1
    print(f"  load average : {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")
    return 0


class Exporter:
    """The exporter subprocess: started, asked how many readings it has, stopped."""

    def __init__(self, path: Path, record: Path) -> None:
        self.record = record
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(path), str(record)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        if self.stdout.readline().strip() != "ready":
            raise BenchError("the exporter did not start its receivers")

    @property
    def pid(self) -> int:
        return self.process.pid

    def count(self) -> int:
        self.stdin.write("?\n")
        self.stdin.flush()
        return int(self.stdout.readline())

    def stop(self) -> list[tuple[str, int, float]]:
        """Stop it; what it recorded: (meter ID, access number, time)."""
        self.stdin.close()
        self.process.wait(60)
        return [tuple(item) for item in json.loads(self.record.read_text())]


def run(directory: Path, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    lines = telegrams(args.meters, args.seconds)
    made = time.perf_counter() - started
    print(f"  {len(lines):,} telegrams of {args.meters:,} meters made in {made:.1f} s")
    broker = Mosquitto(directory / "mosquitto")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = directory / "amiplus.yml"
    path.write_text(config(args.meters, broker, port, directory))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    boards: Boards | None = None
    exporter: Exporter | None = None
    try:
        exporter = Exporter(path, directory / "record.json")
        boards = Boards(broker, args.gateways)

        def udp(number: int, line: bytes) -> None:
            sender.sendto(line, ("127.0.0.1", port))

        paths = {"MQTT": boards.send, "UDP": udp}
        run_pass("warm-up", lines[: args.meters], rate=args.rate, send=udp, exporter=exporter)
        passes = [
            run_pass(path, lines, rate=args.rate, send=send, exporter=exporter)
            for _ in range(args.passes)
            for path, send in paths.items()
        ]
    finally:
        sender.close()
        if boards is not None:
            boards.close()
        seen = exporter.stop() if exporter is not None else []
        broker.stop()
    print(f"\nFigures ({args.rate:g} telegrams/s for {args.seconds} s, {args.meters:,} meters):")
    mqtt_per = report("MQTT", [p for p in passes if p.path == "MQTT"], seen)
    udp_per = report("UDP", [p for p in passes if p.path == "UDP"], seen)
    ratio = mqtt_per / udp_per
    verdict = f"{at_most(ratio, CPU_RATIO_TARGET)}: <= {CPU_RATIO_TARGET}"
    print(f"  MQTT against UDP, the least CPU per reading: {ratio:.2f} ({verdict})")


if __name__ == "__main__":
    sys.exit(main())
