"""Random and oversized input at every listener of a running exporter for a bounded time, while
Prometheus' view of it (`/metrics`) is scraped twice a second (issue 23): no scrape may take a
second, memory may not run away, and the meters keep being read.

    AMIPLUS_FUZZ_SECONDS=600 .venv/bin/pytest tests/test_fuzz.py   # longer than the default 20 s
    AMIPLUS_FUZZ_SEED=1234 ...                                      # again with the same input

Each listener has an attacker below, all in `ATTACKERS`; the MQTT receiver's publishes to the
test broker, under gateway names made up by the thousand.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from exporter.amiplus import simulated_meters

from .conftest import free_port, wait_until
from .mosquitto import PASSWORD, USER, Mosquitto
from .servers import SIMULATED_METER, ExporterProcess, Start

SECONDS = float(os.environ.get("AMIPLUS_FUZZ_SECONDS", "20"))
SEED = int(os.environ.get("AMIPLUS_FUZZ_SEED", str(random.randrange(1 << 32))))
SCRAPE_LIMIT = 1.0  # seconds: what Prometheus' default timeout leaves a scrape
RSS_GROWTH_MB = 60  # bounded: the limits hold memory to this, however long it runs


@dataclass
class Target:
    """The exporter under fire and what the attackers share."""

    exporter: ExporterProcess
    udp: int
    tcp: int
    broker: Mosquitto
    deadline: float
    sent: dict[str, int] = field(default_factory=dict)

    def running(self) -> bool:
        return time.monotonic() < self.deadline


def _telegram_like(rng: random.Random) -> bytes:
    """A genuine telegram, one damaged, one forged in clear, random bytes, or far too many."""
    meter = simulated_meters(1, seed=rng.randrange(100))[0]
    frame = bytearray(meter.telegram(datetime.now(UTC))[0])
    kind = rng.randrange(5)
    if kind == 1:
        for _ in range(rng.randrange(1, 8)):
            frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
    elif kind == 2:
        frame[13:15] = b"\x00\x00"  # claims no encryption: rejected, whatever it holds
    elif kind == 3:
        frame = bytearray(rng.randbytes(rng.randrange(1, 300)))
    elif kind == 4:
        frame = bytearray(rng.randbytes(rng.randrange(1000, 30_000)))
    return bytes(frame)


def _line(rng: random.Random) -> bytes:
    """A text line as a receiver might send one, or one no receiver would."""
    hexed = _telegram_like(rng).hex()
    forms = (
        hexed,
        f"T1;1;1;2026-01-01 00:00:00.000;97;148;12345678;0x{hexed}",
        f"telegram=|{hexed}|",
        '{"model":"Wireless-MBus","mode":"T","data":"' + hexed + '"}',
        rng.randbytes(rng.randrange(0, 3000)).decode("latin-1"),
        "\x00" * rng.randrange(5000),
    )
    return rng.choice(forms).encode("utf-8", "replace") + rng.choice((b"\n", b"\r\n", b""))


def attack_udp(target: Target, rng: random.Random) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while target.running():
            datagram = b"".join(_line(rng) for _ in range(rng.randrange(1, 4)))[:65_000]
            with contextlib.suppress(OSError):
                sock.sendto(datagram, ("127.0.0.1", target.udp))
            target.sent["udp"] = target.sent.get("udp", 0) + 1
            time.sleep(rng.uniform(0, 0.004))


def attack_tcp(target: Target, rng: random.Random) -> None:
    """Connections that send lines, halves of lines, endless lines, or nothing, then linger."""
    while target.running():
        with contextlib.suppress(OSError):
            sock = socket.create_connection(("127.0.0.1", target.tcp), timeout=2)
            with sock:
                for _ in range(rng.randrange(0, 20)):
                    chunk = _line(rng) if rng.random() < 0.8 else b"A" * rng.randrange(70_000)
                    sock.sendall(chunk)
                if rng.random() < 0.3:
                    time.sleep(rng.uniform(0, 1))  # a slow sender holding its place
        target.sent["tcp"] = target.sent.get("tcp", 0) + 1
        time.sleep(rng.uniform(0, 0.01))


def _request(rng: random.Random, port: int) -> bytes:
    """An HTTP request a client should not send: too long, too many headers, a body, a strange
    method, path or Host, or no HTTP at all."""
    method = rng.choice(("GET", "HEAD", "POST", "DELETE", "G\x00T", "GET" * 3000))
    path = rng.choice(("/", "/metrics", "/api/status?history=1,day", "/" + "a" * 70_000, "*"))
    headers = [f"Host: {rng.choice(('127.0.0.1', f'127.0.0.1:{port}', 'evil.example', ''))}"]
    for _ in range(rng.randrange(0, 120)):
        headers.append(f"X-{rng.randrange(10**6)}: {'v' * rng.randrange(0, 5000)}")
    if rng.random() < 0.3:
        headers.append(rng.choice(("Content-Length: 10", "Transfer-Encoding: chunked")))
    if rng.random() < 0.2:
        headers.append("Authorization: Basic " + "QQ==" * rng.randrange(1, 2000))
    head = f"{method} {path} HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n\r\n"
    body = rng.randbytes(rng.randrange(0, 2000)) if rng.random() < 0.3 else b""
    if rng.random() < 0.1:
        return rng.randbytes(rng.randrange(1, 20_000))  # not HTTP (a TLS hello, noise)
    return head.encode("utf-8", "replace") + body


def attack_http(target: Target, rng: random.Random) -> None:
    port = target.exporter.port
    while target.running():
        with contextlib.suppress(OSError):
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            with sock:
                sock.sendall(_request(rng, port))
                if rng.random() < 0.5:
                    sock.recv(65536)
        target.sent["http"] = target.sent.get("http", 0) + 1
        time.sleep(rng.uniform(0, 0.01))


def _topic(rng: random.Random) -> str:
    """A topic the receiver subscribes to, under a gateway name that is new, long or odd."""
    gateway = rng.choice(
        (f"esp{rng.randrange(5)}", f"forged{rng.randrange(10**6)}", "g" * rng.randrange(60, 400))
    )
    return rng.choice(
        (
            f"wmbus/{gateway}/telegram",
            f"{gateway}/wmbus/raw/{rng.randrange(10**8):08d}",
            f"rtl_433/{gateway}/devices/2/Wireless-MBus/{rng.randrange(10**8)}/data",
        )
    )


def attack_mqtt(target: Target, rng: random.Random) -> None:
    """Gateways at the broker: lines, JSON, binary frames, noise, empty or oversized messages."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fuzz-{rng.random()}")
    client.username_pw_set(USER, PASSWORD)
    client.connect("127.0.0.1", target.broker.port)
    client.loop_start()
    try:
        while target.running():
            payload = rng.choice(
                (
                    _line(rng),
                    _telegram_like(rng),
                    b'{"mode": "T", "rssi": -70, "frame": "' + _telegram_like(rng).hex().encode(),
                    b"",
                    rng.randbytes(rng.randrange(70_000, 200_000)),
                )
            )
            client.publish(_topic(rng), payload, qos=0)
            target.sent["mqtt"] = target.sent.get("mqtt", 0) + 1
            time.sleep(rng.uniform(0, 0.004))
    finally:
        client.disconnect()
        client.loop_stop()


#: An attacker per listener; a new kind of listener adds its own here.
ATTACKERS: dict[str, Callable[[Target, random.Random], None]] = {
    "udp": attack_udp,
    "tcp": attack_tcp,
    "http": attack_http,
    "mqtt": attack_mqtt,
}


def rss_mb(exporter: ExporterProcess) -> float:
    assert exporter.process is not None
    status = Path(f"/proc/{exporter.process.pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1]) / 1024


def scrape(port: int) -> float:
    """One scrape on a fresh connection, as Prometheus makes it: how long it took."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
    finally:
        connection.close()
    return time.monotonic() - started


def telegrams(exporter: ExporterProcess) -> int:
    count: int = exporter.status()["meters"][0]["telegrams"]
    return count


def test_every_listener_under_random_and_oversized_input(
    start_exporter: Start, broker: Mosquitto
) -> None:
    udp, tcp = free_port(), free_port()
    exporter = start_exporter(f"""
{SIMULATED_METER}receivers:
  - type: simulator
    interval: 0.5
  - type: lines
    name: udp
    listen: udp://127.0.0.1:{udp}
  - type: lines
    name: tcp
    listen: tcp://127.0.0.1:{tcp}
  - type: mqtt
    name: mqtt
    host: 127.0.0.1
    port: {broker.port}
    username: {USER}
    password: {PASSWORD}
""")
    assert wait_until(lambda: telegrams(exporter) > 0 and scrape(exporter.port) < 1, 20)
    before, read_before = rss_mb(exporter), telegrams(exporter)
    target = Target(exporter, udp, tcp, broker, time.monotonic() + SECONDS)
    threads = [
        threading.Thread(target=attack, args=(target, random.Random(f"{SEED}-{name}-{n}")))
        for name, attack in ATTACKERS.items()
        for n in range(2)
    ]
    for thread in threads:
        thread.start()
    scrapes: list[float] = []
    peak = before
    try:
        while target.running():
            scrapes.append(scrape(exporter.port))
            peak = max(peak, rss_mb(exporter))
            time.sleep(0.5)
    finally:
        target.deadline = 0.0
        for thread in threads:
            thread.join(30)
    seed = f"(AMIPLUS_FUZZ_SEED={SEED}; sent {target.sent})"
    assert max(scrapes) < SCRAPE_LIMIT, f"slowest scrape {max(scrapes):.2f} s {seed}"
    assert len(scrapes) >= SECONDS, f"{len(scrapes)} scrapes in {SECONDS:.0f} s {seed}"
    assert peak - before < RSS_GROWTH_MB, f"RSS {before:.0f} -> {peak:.0f} MB {seed}"
    assert all(target.sent.get(name, 0) > 10 for name in ATTACKERS), seed
    assert telegrams(exporter) > read_before, f"the meter was no longer read {seed}"
    receivers = {r["name"]: r for r in exporter.status()["receivers"]}
    assert all(r["up"] for r in receivers.values()), receivers
    assert receivers["udp"]["errors"].get("framing", 0) > 0  # the lines were seen, and refused
    assert receivers["mqtt"]["gateways_refused"] > 0  # names beyond 64 views, and too long
    assert len([name for name in receivers if name.startswith("mqtt/")]) <= 64
    assert "Traceback" not in exporter.log(), exporter.log()[-3000:]
