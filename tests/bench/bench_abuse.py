"""Abuse from the same network (issue 23): prints figures, asserts nothing.

    .venv/bin/python tests/bench/bench_abuse.py [--only NAME ...] [--source DIR]

The exporter runs as a subprocess on 127.0.0.1; `--source DIR` runs the exporter of another
checkout (e.g. a worktree of main, for the figures before a change) while this script stays
the same.

forged: one UDP line carrying meter 12345678's telegram unencrypted (a clear mode-5 frame)
with an import register of 1,000,000 kWh, after a genuine encrypted one: whether
`amiplus_energy_imported_joules_total` took it, what was counted, and whether the next genuine
telegram was then refused as `register_decreased`.

udp: `--datagrams` UDP datagrams (default 20,000) each holding a different 60 KB hex line
ending in a newline, as fast as the exporter takes them (the pace adapts to what it counts):
its resident memory before, at the end, and 10 s later.

headers: `--connections` connections (default 120) each sending a request of 99 headers of
65 KB: the exporter's resident memory before, at its peak while they are answered, and 5 s
after they closed.

bcrypt: the time a request with a new wrong password takes for an unknown user and for a
configured user whose hash has cost 10 (median of 10 each).

tls: `--tls-seconds` (default 30) of clients that open a connection to the TLS port, send a
plain-HTTP request and close, as fast as 4 threads can: how many log lines and bytes the
exporter wrote.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import http.client
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import bcrypt  # noqa: E402

from exporter.amiplus import simulated_meters  # noqa: E402
from exporter.amiplus.encoding import encode_reading  # noqa: E402
from exporter.wmbus import encode_frame  # noqa: E402
from tests.bench.provenance import source_state  # noqa: E402
from tests.conftest import free_port, wait_until  # noqa: E402
from tests.servers import SIMULATED_METER, ExporterProcess  # noqa: E402
from tests.test_daemon import _certificates  # noqa: E402

LINE_BYTES = 60_000


def exporter_in(directory: Path, config: str | None, **options: Any) -> ExporterProcess:
    """The exporter as a subprocess, in a directory of its own."""
    directory.mkdir(parents=True)
    return ExporterProcess(directory, config, **options)


def rss_mb(process: ExporterProcess) -> float:
    assert process.process is not None
    for line in Path(f"/proc/{process.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def metric(process: ExporterProcess, name: str) -> float:
    """The sum of every sample of a metric family (0 when absent)."""
    body = process.get("/metrics")[1].decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith(name) and line[len(name)] in " {"
    )


def udp_config(port: int) -> str:
    return f"""
{SIMULATED_METER}receivers:
  - type: lines
    name: udp
    listen: udp://127.0.0.1:{port}
"""


def figure_forged(directory: Path) -> None:
    port = free_port()
    exporter = exporter_in(directory / "forged", udp_config(port))
    try:
        meter = simulated_meters(1)[0]
        now = datetime.now(UTC)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

        def send(frame: bytes) -> None:
            sender.sendto(frame.hex().upper().encode() + b"\n", ("127.0.0.1", port))

        genuine, _ = meter.telegram(now)
        send(genuine)
        energy = "amiplus_energy_imported_joules_total"
        assert wait_until(lambda: metric(exporter, energy) > 0, 20)
        before = metric(exporter, energy)
        reading = meter.reading(now + timedelta(seconds=5))
        forged_values = dict(reading.values, energy_imported_kwh=1_000_000.0)
        forged_values["energy_imported_tariff_kwh"] = {1: 1_000_000.0, 2: 0.0, 3: 0.0, 4: 0.0}
        forged_reading = dataclasses.replace(reading, values=forged_values)
        records = encode_reading(forged_reading, meter.family.record_sets[0])
        send(encode_frame(meter.address, records, access_number=1, key=None))
        time.sleep(2)
        after_forged = metric(exporter, energy)
        genuine, _ = meter.telegram(now + timedelta(seconds=10))
        send(genuine)
        time.sleep(2)
        rejected = exporter.get("/metrics")[1].decode()
        reasons = [
            line for line in rejected.splitlines() if line.startswith("amiplus_meter_rejected")
        ]
        print(
            f"forged: import register {before:.6g} J -> {after_forged:.6g} J after the forged "
            f"telegram; rejected counts: {reasons or 'none'}"
        )
        warned = [
            line for line in exporter.log().splitlines() if "12345678" in line or "home" in line
        ]
        print(f"forged: log lines about the meter: {len(warned)}")
        for line in warned[:3]:
            print(f"  {line[:200]}")
    finally:
        exporter.stop()


def figure_udp(directory: Path, datagrams: int) -> None:
    port = free_port()
    exporter = exporter_in(directory / "udp", udp_config(port))
    try:
        time.sleep(2)
        start_rss = rss_mb(exporter)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

        def progress() -> float:
            return metric(exporter, "amiplus_receiver_frames_total") + metric(
                exporter, "amiplus_receiver_frame_errors_total"
            )

        started = time.monotonic()
        pause, counted = 0.002, progress()
        for sent in range(1, datagrams + 1):
            line = os.urandom(LINE_BYTES // 2).hex().upper().encode() + b"\n"
            sender.sendto(line, ("127.0.0.1", port))
            if sent % 3 == 0:  # the exporter's socket buffer holds three
                time.sleep(pause)
            if sent % 300 == 0:  # as fast as the exporter takes them, few lost
                now_counted = progress()
                lost = 300 - (now_counted - counted)
                pause = pause * 1.5 if lost > 30 else max(0.0005, pause * 0.9)
                counted = now_counted
        wait_until(lambda: progress() >= datagrams, 5)
        took = time.monotonic() - started
        end_rss = rss_mb(exporter)
        time.sleep(10)
        print(
            f"udp: {datagrams} datagrams of {LINE_BYTES // 1000} KB lines in {took:.0f} s, "
            f"{progress():.0f} counted (frames + frame errors): RSS {start_rss:.0f} MB -> "
            f"{end_rss:.0f} MB at the end, {rss_mb(exporter):.0f} MB 10 s later"
        )
    finally:
        exporter.stop()


def figure_headers(directory: Path, connections: int) -> None:
    exporter = exporter_in(directory / "headers", None)
    try:
        time.sleep(2)
        start_rss = rss_mb(exporter)
        peak = start_rss
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_mb(exporter))
                time.sleep(0.05)

        # 99 header lines of 65 KB: with the blank line, the 100 lines http.server allows.
        # Every client sends all but the blank line, then all send it at once, so that every
        # request is held whole at the same time.
        request = b"GET /metrics HTTP/1.1\r\n" + b"".join(
            b"X-Padding-%d: %s\r\n" % (n, b"a" * 65_000) for n in range(99)
        )
        sent = threading.Barrier(connections + 1)
        answers: list[str] = []

        def client() -> None:
            with socket.create_connection(("127.0.0.1", exporter.port), timeout=30) as sock:
                try:
                    sock.sendall(request)
                    failed = None
                except OSError as error:
                    failed = type(error).__name__
                with contextlib.suppress(threading.BrokenBarrierError):
                    sent.wait(60)
                try:
                    if failed is None:
                        sock.sendall(b"\r\n")
                    answers.append(sock.recv(64).split(b"\r\n", 1)[0].decode() or "closed")
                except OSError as error:
                    answers.append(failed or type(error).__name__)

        sampler = threading.Thread(target=sample)
        sampler.start()
        threads = [threading.Thread(target=client) for _ in range(connections)]
        for thread in threads:
            thread.start()
        with contextlib.suppress(threading.BrokenBarrierError):
            sent.wait(60)
        for thread in threads:
            thread.join(60)
        time.sleep(5)
        done.set()
        sampler.join()
        counted = {answer: answers.count(answer) for answer in sorted(set(answers))}
        print(
            f"headers: {connections} connections of 99 headers of 65 KB: RSS {start_rss:.0f} MB "
            f"-> peak {peak:.0f} MB, {rss_mb(exporter):.0f} MB 5 s after they closed; "
            f"answers {counted}"
        )
    finally:
        exporter.stop()


def figure_bcrypt(directory: Path) -> None:
    path = directory / "bcrypt"
    path.mkdir()
    hashed = bcrypt.hashpw(b"right password", bcrypt.gensalt(rounds=10)).decode()
    web = path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    os.chmod(web, 0o600)
    right = base64.b64encode(b"prometheus:right password").decode()
    exporter = exporter_in(
        path / "exporter",
        f"web:\n  config_file: {web}\n" + udp_config(free_port()),
        headers={"Authorization": f"Basic {right}"},
    )
    try:

        def timed(user: str, n: int) -> float:
            token = base64.b64encode(f"{user}:wrong {n}".encode()).decode()
            connection = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=30)
            started = time.perf_counter()
            connection.request("GET", "/metrics", headers={"Authorization": f"Basic {token}"})
            connection.getresponse().read()
            took = time.perf_counter() - started
            connection.close()
            return took * 1000

        for user in ("nobody", "prometheus"):
            times = [timed(user, n) for n in range(10)]
            print(
                f"bcrypt: a new wrong password for {user!r}: "
                f"median {statistics.median(times):.1f} ms"
            )
    finally:
        exporter.stop()


def figure_tls(directory: Path, seconds: float) -> None:
    path = directory / "tls"
    path.mkdir()
    _certificates(path)
    web = path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    os.chmod(web, 0o600)
    exporter = exporter_in(
        path / "exporter",
        f"web:\n  config_file: {web}\n" + udp_config(free_port()),
        ssl_context=_trusting(path),
    )
    try:
        before_lines = len(exporter.log().splitlines())
        before_bytes = len(exporter.log().encode())
        deadline = time.monotonic() + seconds
        attempts = 0
        lock = threading.Lock()

        def client() -> None:
            nonlocal attempts
            while time.monotonic() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", exporter.port), timeout=5) as sock:
                        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                        sock.recv(16)
                except OSError:
                    pass
                with lock:
                    attempts += 1

        threads = [threading.Thread(target=client) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 30)
        time.sleep(1)
        log = exporter.log()
        lines = len(log.splitlines()) - before_lines
        size = len(log.encode()) - before_bytes
        print(
            f"tls: {attempts} failed handshakes in {seconds:.0f} s: {lines} log lines, "
            f"{size / 1e6:.2f} MB of log"
        )
    finally:
        exporter.stop()


def _trusting(path: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(path / "ca.crt"))


FIGURES = ("forged", "udp", "headers", "bcrypt", "tls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--only", nargs="*", choices=FIGURES, default=list(FIGURES))
    parser.add_argument("--source", type=Path, help="run the exporter of this checkout")
    parser.add_argument("--datagrams", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=120)
    parser.add_argument("--tls-seconds", type=float, default=30.0)
    args = parser.parse_args()
    if args.source is not None:
        os.environ["PYTHONPATH"] = str(args.source.resolve())
    if args.source is None:
        print(source_state())
    else:
        head = subprocess.run(
            ["git", "-C", str(args.source), "rev-parse", "--short", "HEAD"],
            check=False,
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(f"the exporter of {args.source} (git {head or '?'})")
    runs: dict[str, Callable[[Path], None]] = {
        "forged": figure_forged,
        "udp": lambda d: figure_udp(d, args.datagrams),
        "headers": lambda d: figure_headers(d, args.connections),
        "bcrypt": figure_bcrypt,
        "tls": lambda d: figure_tls(d, args.tls_seconds),
    }
    with tempfile.TemporaryDirectory() as temporary:
        for name in args.only:
            directory = Path(temporary) / name
            directory.mkdir()
            runs[name](directory)


if __name__ == "__main__":
    main()
