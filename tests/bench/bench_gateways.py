"""MQTT receiver benchmark (ESP32 gateways through mosquitto): prints figures, asserts nothing.

    .venv/bin/python tests/bench/bench_gateways.py [--seconds S] [--rate N] [--meters M]
        [--gateways G]

The exporter is this script run with `--serve CONFIG RECORD` in a subprocess: `daemon.Exporter`
(receivers, intake, state, calendar; no HTTP server, no output) and a recorder, an `Output` that
notes when each reading reached the state (the intake hands it on right after the state and the
calendar took it). It has two receivers: `type: mqtt` on a local Debian mosquitto (started here
on 127.0.0.1 with a password file) with the default topic filters, and `type: lines` on a UDP
port. `--meters` (default 1,000) simulated meters (Apator Otus, the documented key) each have
one telegram per second of `--seconds` (default 60), written as ESPHome's `wmbus_radio` writes
them (`frame->as_rtlwmbus()`, with an RSSI). The same telegrams are sent at `--rate` (default
1,000) per second, evenly spaced, three times: a warm-up through UDP (one second's worth, so
every meter's first reading is behind us), then through mosquitto by `--gateways` (default 3)
ESP32 boards (each a persistent connection publishing QoS 0 to `wmbus/<board>/telegram`, as
ESPHome's `mqtt:` component does), then through UDP datagrams (one per telegram, as a
`socket_transmitter` does). The dedupe window is 0 so that no pass hides another's telegrams.

Figures per path: telegrams sent and readings in the state (target: none lost); latency from the
send (just before `publish` or `sendto`) to the reading in the state, p50, p99 and max (target for
MQTT: p99 <= 50 ms); exporter CPU (utime + stime of the process, all threads) from the first send
to the last reading, per telegram; the MQTT path's CPU per telegram against the UDP path's
(target: <= 1.2). The machine may be shared: the load average is printed at the start and end,
and a busy machine only adds CPU and latency.
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
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_exporter import REPO, BenchError, at_most, percentile, read_cpu_seconds
from bench_scale import meter_id
from provenance import source_state

sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt

from exporter import daemon
from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.simulated import DEFAULT_FAMILY, DEFAULT_KEY, SimulatedMeter
from exporter.config import load_config
from exporter.pipeline import MeterUpdate, Output
from tests.mosquitto import PASSWORD, USER, Mosquitto

P99_TARGET_MS = 50.0
CPU_RATIO_TARGET = 1.2
SETTLE = 20.0  # seconds after the last send for the last readings
PAUSE = 2.0  # seconds between passes
RSSI = -71


# --- the telegrams --------------------------------------------------------------------------


def _meter_lines(job: tuple[int, int]) -> list[bytes]:
    """One meter's telegrams, a second apart, as `frame->as_rtlwmbus()` writes them."""
    number, seconds = job
    meter = SimulatedMeter(
        FAMILIES_BY_NAME[DEFAULT_FAMILY], meter_id=meter_id(number), key=DEFAULT_KEY
    )
    start = datetime.now(UTC)
    stamp = start.strftime("%Y-%m-%d %H:%M:%S.00Z")
    lines = []
    for second in range(seconds):
        frame, _ = meter.telegram(start + timedelta(seconds=second))
        lines.append(f"T1;1;1;{stamp};{RSSI};;;0x{frame.hex()}\n".encode())
    return lines


def telegrams(meters: int, seconds: int) -> list[tuple[str, bytes]]:
    """(meter ID, line) of every telegram, in the order they are sent: second by second."""
    with multiprocessing.Pool() as pool:
        per_meter = pool.map(_meter_lines, [(n, seconds) for n in range(meters)])
    return [(meter_id(n), per_meter[n][second]) for second in range(seconds) for n in range(meters)]


# --- the exporter (the subprocess) ----------------------------------------------------------


class Recorder(Output):
    """Notes when each reading reached the state: (receiver, meter ID, time.time())."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float]] = []

    def submit(self, update: MeterUpdate) -> None:
        self.seen.append((update.receiver, update.meter_id, time.time()))

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
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{number}")
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


def paced(
    lines: list[tuple[str, bytes]], rate: float, send: Any, sent: list[tuple[str, float]]
) -> None:
    """Send every line at its slot (`rate` per second), noting (meter ID, time) just before."""
    start = time.time() + 0.5
    for number, (meter, line) in enumerate(lines):
        wait = start + number / rate - time.time()
        if wait > 0.0005:
            time.sleep(wait)
        sent.append((meter, time.time()))
        send(number, line)


@dataclass
class Pass:
    name: str
    sent: list[tuple[str, float]]
    cpu_s: float
    wall_s: float


def run_pass(
    name: str, lines: list[tuple[str, bytes]], *, rate: float, send: Any, pid: int, count: Any
) -> Pass:
    """One pass: send, wait for the readings, the exporter's CPU over it all."""
    sent: list[tuple[str, float]] = []
    before, cpu_before = count(), read_cpu_seconds(pid)
    started = time.time()
    paced(lines, rate, send, sent)
    deadline = time.time() + SETTLE
    while count() < before + len(lines) and time.time() < deadline:
        time.sleep(0.05)
    cpu = read_cpu_seconds(pid) - cpu_before
    return Pass(name, sent, cpu, time.time() - started)


# --- main -----------------------------------------------------------------------------------


def latencies(sent: list[tuple[str, float]], seen: list[tuple[str, float]]) -> list[float]:
    """Each telegram's latency: a meter's k-th reading answers its k-th send."""
    arrived: dict[str, list[float]] = defaultdict(list)
    for meter, at in seen:
        arrived[meter].append(at)
    taken: dict[str, int] = defaultdict(int)
    out = []
    for meter, at in sent:
        index = taken[meter]
        taken[meter] += 1
        if index < len(arrived[meter]):
            out.append(arrived[meter][index] - at)
    return sorted(out)


def report(one: Pass, seen: list[tuple[str, float]], target: float | None) -> float:
    found = latencies(one.sent, seen)
    lost = len(one.sent) - len(found)
    per = one.cpu_s / len(one.sent)
    print(f"  {one.name}:")
    print(f"    telegrams sent      : {len(one.sent):,} in {one.wall_s:.1f} s")
    verdict = "target met" if not lost else "ABOVE TARGET"
    print(f"    readings in state   : {len(found):,}, lost {lost:,} ({verdict}: none lost)")
    if found:
        p99 = percentile(found, 0.99) * 1000
        verdict = f" ({at_most(p99, target)}: <= {target:g} ms)" if target else ""
        print(
            f"    latency send->state : p50 {percentile(found, 0.5) * 1000:.1f} ms, "
            f"p99 {p99:.1f} ms{verdict}, max {found[-1] * 1000:.1f} ms"
        )
    print(f"    exporter CPU        : {one.cpu_s:.2f} s, {per * 1e6:.0f} us per telegram")
    return per


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=60, help="telegram seconds (default 60)")
    parser.add_argument("--rate", type=float, default=1000.0, help="telegrams/s (default 1000)")
    parser.add_argument("--meters", type=int, default=1000, help="meters (default 1000)")
    parser.add_argument("--gateways", type=int, default=3, help="ESP32 boards (default 3)")
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

    def stop(self) -> list[tuple[str, str, float]]:
        """Stop it; what it recorded: (receiver, meter ID, time)."""
        self.stdin.close()
        self.process.wait(60)
        return [tuple(item) for item in json.loads(self.record.read_text())]  # type: ignore[misc]


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

        def one(name: str, some: list[tuple[str, bytes]], send: Any) -> Pass:
            assert exporter is not None
            done = run_pass(
                name, some, rate=args.rate, send=send, pid=exporter.pid, count=exporter.count
            )
            time.sleep(PAUSE)
            return done

        one("warm-up", lines[: args.meters], udp)
        passes = [one(f"MQTT, {args.gateways} boards", lines, boards.send), one("UDP", lines, udp)]
    finally:
        sender.close()
        if boards is not None:
            boards.close()
        seen = exporter.stop() if exporter is not None else []
        broker.stop()
    by_path: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for receiver, meter, at in seen:
        by_path["udp" if receiver == "udp" else "mqtt"].append((meter, at))
    print(f"\nFigures ({args.rate:g} telegrams/s for {args.seconds} s, {args.meters:,} meters):")
    mqtt_per = report(passes[0], by_path["mqtt"], P99_TARGET_MS)
    udp_per = report(passes[1], by_path["udp"][args.meters :], None)  # after the warm-up
    ratio = mqtt_per / udp_per
    verdict = f"{at_most(ratio, CPU_RATIO_TARGET)}: <= {CPU_RATIO_TARGET}"
    print(f"  MQTT against UDP, CPU per telegram: {ratio:.2f} ({verdict})")


if __name__ == "__main__":
    sys.exit(main())
