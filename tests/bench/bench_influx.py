"""InfluxDB output benchmark: prints figures, asserts nothing.

    .venv/bin/python tests/bench/bench_influx.py [--seconds S] [--points N]

Figure 1: the spool's cost per reading (`InfluxOutput.submit`: a line-protocol point appended
and written through to the operating system), with the sender paused.
Figure 2: sustained points per second into a local InfluxDB 1.x (Debian's influxd, started
here on 127.0.0.1) through the v1 writer: readings of 1,000 meters, distinct seconds, submitted
as fast as the writer takes them for `--seconds`; target >= 5,000 points/s.
Figure 3: resident memory of the exporter with the InfluxDB output enabled, api v1 and api v2
(the v2 client imported), after a minute of simulated telegrams; target <= 60 MB.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from exporter.amiplus.reading import MeterReading, read_meter  # noqa: E402
from exporter.amiplus.simulated import DEFAULT_KEY, simulated_meters  # noqa: E402
from exporter.config import InfluxConfig  # noqa: E402
from exporter.outputs.influx import InfluxOutput, Outcome, Sender  # noqa: E402
from exporter.pipeline.handoff import MeterUpdate  # noqa: E402
from exporter.wmbus import MeterKey, decode  # noqa: E402
from tests.conftest import wait_until  # noqa: E402
from tests.servers import ExporterProcess, InfluxDB  # noqa: E402
from tests.test_influx import Forwarder  # noqa: E402

THROUGHPUT_TARGET = 5_000
MEMORY_TARGET_MB = 60


class Paused(Sender):
    """A sender that never succeeds: the writer keeps everything in the spool."""

    description = "paused"

    def send(self, body: bytes, timeout: float | None = None) -> Outcome:
        return Outcome(reason="connection", message="paused for the benchmark")


def readings(count: int) -> list[MeterReading]:
    key = MeterKey.from_bytes(DEFAULT_KEY)
    now = datetime.now(UTC)
    return [read_meter(decode(m.telegram(now)[0], key)) for m in simulated_meters(count)]


def update(reading: MeterReading, name: str, received_at: float) -> MeterUpdate:
    return MeterUpdate(reading.meter_id, name, reading, reading.values, received_at, "bench")


def spool_cost(points: int) -> None:
    base = readings(100)
    with tempfile.TemporaryDirectory() as directory:
        config = InfluxConfig(
            url="http://127.0.0.1:9",
            api="v1",
            database="x",
            spool=Path(directory),
            spool_max_mb=10_000,
            batch_size=500,
        )
        writer = InfluxOutput(config, Paused())
        started = time.perf_counter()
        for n in range(points):
            writer.submit(update(base[n % 100], "meter", 1_700_000_000 + n))
        seconds = time.perf_counter() - started
        size = writer.spool.size
        writer.spool.close()
    print(f"\nFigure 1: spool cost per reading ({points:,} readings)")
    print(
        f"  submit               : {seconds / points * 1e6:.1f} us per reading "
        f"({points / seconds:,.0f} readings/s on one core)"
    )
    print(f"  on disk              : {size / points:.0f} bytes per reading")


def throughput(seconds: float) -> None:
    directory = Path(tempfile.mkdtemp())
    server = InfluxDB(directory / "influx")
    server.query('CREATE DATABASE "bench"')
    base = readings(1000)
    config = InfluxConfig(
        url=server.url,
        api="v1",
        database="bench",
        spool=directory / "spool",
        batch_size=5000,
        flush_interval=0.5,
        spool_max_mb=2000,
    )
    writer = InfluxOutput(config)
    writer.start()
    submitted = 0
    second = 1_700_000_000
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < seconds:
            for reading in base:  # 1,000 meters, one point each per second of data
                writer.submit(update(reading, "", second))
            submitted += len(base)
            second += 1
            while writer.spool.points > 50_000:  # do not outrun the server by more than 10 s
                time.sleep(0.01)
        sent_by = time.perf_counter()
        wait_until(lambda: writer.spool.points == 0, 120)
        drained = time.perf_counter()
        written = writer.written
    finally:
        writer.stop()
    count = server.query('SELECT count("power_imported_w") FROM "amiplus"', "bench")
    stored = count[0]["values"][0][1] if count else 0
    server.stop()
    rate = written / (drained - started)
    verdict = "target met" if rate >= THROUGHPUT_TARGET else "BELOW TARGET"
    print("\nFigure 2: sustained writes into a local influxd 1.x through the v1 writer")
    print(f"  submitted            : {submitted:,} points in {sent_by - started:.1f} s")
    print(
        f"  written              : {written:,} points in {drained - started:.1f} s, "
        f"{rate:,.0f} points/s  [{verdict}]"
    )
    print(f"  stored (InfluxQL)    : {stored:,} points")
    print(f"  errors               : {dict(writer.errors) or 'none'}")
    print(f"  target               : >= {THROUGHPUT_TARGET:,} points/s")


def resident(api: str, seconds: float) -> float:
    """RSS of an exporter writing to a real influxd (v2 through a 1.8-style forwarder)."""
    directory = Path(tempfile.mkdtemp())
    server = InfluxDB(directory / "influx")
    server.query('CREATE DATABASE "mem"')
    forwarder = Forwarder(server.url) if api == "v2" else None
    if forwarder is None:
        influx = f"  url: {server.url}\n  api: v1\n  database: mem\n"
    else:
        port = forwarder.server_address[1]
        influx = (
            f"  url: http://127.0.0.1:{port}\n  api: v2\n  bucket: mem/autogen\n"
            "  org: home\n  token: a:b\n"
        )
    (directory / "run").mkdir()
    exporter = ExporterProcess(
        directory / "run",
        f'meters:\n  - id: "12345678"\n    key: "{DEFAULT_KEY.hex()}"\n'
        f"receivers:\n  - type: simulator\n    interval: 2\n"
        f"influxdb:\n{influx}  spool: {directory / 'spool'}\n",
    )
    try:
        time.sleep(seconds)
        exporter.get("/metrics")
        pid = exporter.process.pid if exporter.process else 0
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1]) / 1024
        written = exporter.status()["influxdb"]["points_written"]
    finally:
        exporter.stop()
        if forwarder is not None:
            forwarder.shutdown()
        server.stop()
    print(
        f"  api {api}               : {rss:.1f} MB after {seconds:.0f} s ({written} points written)"
    )
    return rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="throughput run length")
    parser.add_argument("--points", type=int, default=100_000, help="readings for figure 1")
    parser.add_argument("--memory-seconds", type=float, default=60)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {' '.join(sys.argv)}")
    spool_cost(args.points)
    throughput(args.seconds)
    print(
        f"\nFigure 3: exporter resident memory with the InfluxDB output (target <= "
        f"{MEMORY_TARGET_MB} MB)"
    )
    peak = max(resident(api, args.memory_seconds) for api in ("v1", "v2"))
    verdict = "target met" if peak <= MEMORY_TARGET_MB else "ABOVE TARGET"
    print(f"  highest              : {peak:.1f} MB  [{verdict}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
