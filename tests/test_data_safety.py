"""Never stop, never lose (issue 14, items 1-6): the InfluxDB output against a full, read-only or
odd spool disk (a real 1 MB tmpfs), partial writes and outages of a real InfluxDB, and SIGTERM
while InfluxDB hangs (a real influxd stopped with SIGSTOP)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.config import InfluxConfig
from exporter.outputs import influx
from exporter.outputs.influx import InfluxOutput
from exporter.pipeline.handoff import MeterUpdate
from exporter.plumbing import Backoff

from .conftest import free_port, reading, require, wait_until
from .servers import (
    CONSOLE_SCRIPT,
    ExporterProcess,
    InfluxDB,
    Start,
    simulated_config,
)

FREE_BYTES = 24_000  # what is left on the tmpfs once the filler took the rest


def mount(*options: str) -> None:
    require("mount", "mount")
    result = subprocess.run(["mount", *options], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"mount {' '.join(options)}: {result.stderr} (needs root)"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs of our own, unmounted after the test (request it before `start_exporter`,
    so that the exporter has stopped by then)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk))
    yield disk
    for _ in range(50):
        if subprocess.run(["umount", str(disk)], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path, leave: int = FREE_BYTES) -> Path:
    """Fill a file system up to `leave` free bytes; the filler file (delete it to free)."""
    filler = disk / "filler"
    block = b"\0" * 4096
    with filler.open("wb", buffering=0) as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(block)
        size = handle.tell()
        os.ftruncate(handle.fileno(), max(0, size - leave))
    return filler


def remount(disk: Path, mode: str) -> bool:
    """`mount -o remount,MODE`: refused while the exporter holds a segment open for writing,
    so the caller retries until the segment is sealed."""
    result = subprocess.run(
        ["mount", "-o", f"remount,{mode}", str(disk)], capture_output=True, check=False
    )
    return result.returncode == 0


def config(influx_url: str, spool: Path, interval: float, extra: str = "") -> str:
    return (
        simulated_config(interval)
        + f"""influxdb:
  url: {influx_url}
  api: v1
  database: safety
  spool: {spool}
  spool_max_mb: 100
  flush_interval: 0.2
  timeout: 10
{extra}"""
    )


def influx_status(exporter: ExporterProcess) -> dict[str, Any]:
    status: dict[str, Any] = exporter.status()["influxdb"]
    return status


def running(exporter: ExporterProcess) -> ExporterProcess:
    """The exporter once its outputs and receivers run (/healthz answers a little before)."""
    assert wait_until(lambda: "influxdb" in exporter.status() and receiver_up(exporter), 20), (
        exporter.log()
    )
    return exporter


def telegrams(exporter: ExporterProcess) -> int:
    count: int = exporter.status()["meters"][0]["telegrams"]
    return count


def receiver_up(exporter: ExporterProcess) -> bool:
    return all(r["up"] for r in exporter.status()["receivers"])


def rows_ms(server: InfluxDB, database: str) -> list[list[Any]]:
    """Every point of `amiplus` as [time in ms, meter_id, ...] rows."""
    query = urllib.parse.urlencode({"q": 'SELECT * FROM "amiplus"', "db": database, "epoch": "ms"})
    with urllib.request.urlopen(f"{server.url}/query?{query}", timeout=30) as response:
        result = json.loads(response.read())["results"][0]
    return [row for series in result.get("series", []) for row in series["values"]]


def down_influxdb(directory: Path, database: str = "safety") -> InfluxDB:
    """A real InfluxDB with `database`, stopped: start it to end the outage."""
    server = InfluxDB(directory)
    server.query(f'CREATE DATABASE "{database}"')
    server.stop()
    return server


# --- 1. the disk under the spool full, or read-only, while running ------------------------------


def test_a_full_disk_under_the_spool_is_counted_logged_once_and_recovers(
    tmpfs: Path, start_exporter: Start, tmp_path: Path
) -> None:
    server = down_influxdb(tmp_path / "influx")
    try:
        exporter = running(
            start_exporter(config(server.url, tmpfs / "spool", 0.05, "  batch_size: 50\n"))
        )
        filler = fill(tmpfs)
        assert wait_until(lambda: influx_status(exporter)["dropped"].get("disk_full", 0) > 20, 30)
        # Receivers and Prometheus never notice: telegrams keep counting, /metrics answers.
        before = telegrams(exporter)
        assert wait_until(lambda: telegrams(exporter) > before + 20, 10)
        assert receiver_up(exporter)
        assert influx_status(exporter)["spool_problem"] == "disk_full"
        metrics = exporter.get("/metrics")[1].decode()
        assert 'amiplus_influxdb_points_dropped_total{reason="disk_full"}' in metrics
        assert "amiplus_receiver_up" in metrics
        log = exporter.log()
        full_lines = [line for line in log.splitlines() if 'reason="disk_full"' in line]
        assert len(full_lines) == 1, full_lines  # one clear line, with the fix
        assert (
            "No space left on device" in full_lines[0]
            and "Free space on that disk" in full_lines[0]
        )
        assert "Traceback" not in log
        # Space returns, then InfluxDB: the output recovers by itself.
        filler.unlink()
        assert wait_until(lambda: influx_status(exporter)["spool_problem"] is None, 10)
        server.start()
        assert wait_until(lambda: influx_status(exporter)["spool_points"] == 0, 30), exporter.log()
        written = influx_status(exporter)["points_written"]
        assert written > 0 and len(rows_ms(server, "safety")) >= written
        assert "takes readings again" in exporter.log()
    finally:
        server.stop()


def test_a_spool_turned_read_only_while_running_keeps_the_writer_alive(
    tmpfs: Path, start_exporter: Start, tmp_path: Path
) -> None:
    server = down_influxdb(tmp_path / "influx")
    spool = tmpfs / "spool"
    try:
        exporter = running(start_exporter(config(server.url, spool, 0.3)))
        assert wait_until(lambda: influx_status(exporter)["spool_points"] >= 3, 20)
        assert wait_until(lambda: remount(tmpfs, "ro"), 20)
        sealed = sorted(spool.glob("*.lp"))
        assert wait_until(lambda: influx_status(exporter)["dropped"].get("spool_error", 0) > 0, 10)
        # InfluxDB comes back: the sealed segments are delivered although the spool cannot
        # delete them (this used to kill the writer thread with a PermissionError/EROFS).
        server.start()
        assert wait_until(lambda: influx_status(exporter)["spool_points"] == 0, 30), exporter.log()
        assert influx_status(exporter)["points_written"] >= 3
        assert all(path.exists() for path in sealed)  # the disk did not let go of them yet
        assert "cannot delete" in exporter.log()
        assert receiver_up(exporter)
        # The disk is writable again: leftovers go, new readings are spooled and written.
        assert remount(tmpfs, "rw")
        assert wait_until(lambda: not any(path.exists() for path in sealed), 10)
        assert wait_until(lambda: influx_status(exporter)["spool_problem"] is None, 10)
        written = influx_status(exporter)["points_written"]
        assert wait_until(lambda: influx_status(exporter)["points_written"] > written + 2, 20)
        error_lines = [ln for ln in exporter.log().splitlines() if 'reason="spool_error"' in ln]
        assert len(error_lines) == 1 and "Read-only file system" in error_lines[0]
        assert "Traceback" not in exporter.log()
        written = influx_status(exporter)["points_written"]
        assert len(rows_ms(server, "safety")) >= written  # every accepted point is there
    finally:
        remount(tmpfs, "rw")
        server.stop()


# --- 2. problems with the spool at start -------------------------------------------------------


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *arguments], capture_output=True, text=True, timeout=30, check=False
    )


def spool_line(text: str) -> int:
    """The line of `spool:` in a configuration, where its warning points."""
    return next(
        n for n, line in enumerate(text.splitlines(), 1) if line.strip().startswith("spool:")
    )


def test_a_read_only_spool_is_a_warning_at_start_and_in_check_config(
    start_exporter: Start, tmp_path: Path
) -> None:
    """Said at once, with the line and the fix; the exporter runs, and what cannot be spooled
    is dropped and counted until the disk allows it (issues 21 and 24)."""
    disk = tmp_path / "ro"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(disk))
    try:
        path = tmp_path / "amiplus.yml"
        text = config(f"http://127.0.0.1:{free_port()}", disk / "spool", 0.3)
        path.write_text(text)
        checked = run_cli("check-config", str(path))
        said = (
            f"{path}:{spool_line(text)}: warning: influxdb spool {disk / 'spool'}: {disk} is on a "
            "read-only file system, so readings for InfluxDB would be dropped; make it writable "
            "for this user or set influxdb: spool: to a directory that is"
        )
        assert checked.returncode == 0 and said in checked.stdout, checked
        exporter = running(start_exporter(text))
        assert exporter.log().count("warning: influxdb spool") == 1  # at start, in one line
        (warning,) = exporter.status()["warnings"]
        assert warning["code"] == "spool_unwritable" and warning["path"] is None  # a password's
        assert str(disk / "spool") in exporter.log()  # the log names the place
        assert warning["what"]["pl"] and warning["advice"]["pl"]
        assert wait_until(lambda: influx_status(exporter)["dropped"].get("spool_error", 0) > 0)
        assert "Traceback" not in exporter.log()
        exporter.stop()
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.integration
def test_a_file_in_place_of_the_spool_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "spool").write_text("not a directory")
    path = tmp_path / "amiplus.yml"
    text = config(f"http://127.0.0.1:{free_port()}", tmp_path / "spool", 1)
    path.write_text(text)
    checked = run_cli("check-config", str(path))
    assert checked.returncode == 0, checked
    assert f":{spool_line(text)}: warning: influxdb spool" in checked.stdout
    assert f"{tmp_path / 'spool'} is not a directory" in checked.stdout


def test_a_directory_named_like_a_segment_is_skipped_with_a_warning(
    start_exporter: Start, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    (spool / "000000000007.lp").mkdir(parents=True)
    path = tmp_path / "amiplus.yml"
    text = config(f"http://127.0.0.1:{free_port()}", spool, 0.3)
    path.write_text(text)
    checked = run_cli("check-config", str(path))
    warning = f"InfluxDB spool: {spool / '000000000007.lp'} is not a file; it is skipped"
    assert checked.returncode == 0 and warning in checked.stdout, checked
    exporter = running(start_exporter(text))
    assert wait_until(lambda: influx_status(exporter)["spool_points"] >= 1, 10)
    assert warning in exporter.log()
    assert all(int(p.stem) > 7 for p in spool.glob("*.lp") if p.is_file())


# --- 3 and 4. millisecond points, partial writes ------------------------------------------------


@pytest.fixture(scope="module")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    server = InfluxDB(tmp_path_factory.mktemp("influxdb"))
    yield server
    server.stop()


def update(received_at: float, power: float) -> MeterUpdate:
    decoded = reading(power_imported_w=power)
    return MeterUpdate("12345678", "home", decoded, decoded.values, received_at, "test")


def output(
    url: str, spool: Path, database: str, backoff: Backoff = influx.BACKOFF, **options: Any
) -> InfluxOutput:
    config = InfluxConfig(
        url, api="v1", database=database, spool=spool, flush_interval=0.1, **options
    )
    return InfluxOutput(config, backoff=backoff)


def test_two_readings_of_one_meter_in_one_second_are_two_points(
    influxdb: InfluxDB, tmp_path: Path
) -> None:
    influxdb.query('CREATE DATABASE "second"')
    writer = output(influxdb.url, tmp_path / "spool", "second")
    writer.start()
    try:
        now = int(time.time())
        writer.submit(update(now + 0.120, 100.0))
        writer.submit(update(now + 0.870, 200.0))
        assert wait_until(lambda: writer.written == 2, 20)
    finally:
        writer.stop()
    rows = rows_ms(influxdb, "second")
    assert [(row[0], row[3]) for row in rows] == [
        (now * 1000 + 120, 100.0),
        (now * 1000 + 870, 200.0),
    ]


def test_a_partial_write_counts_only_the_refused_lines(influxdb: InfluxDB, tmp_path: Path) -> None:
    influxdb.query('CREATE DATABASE "partial"')
    stamp = int(time.time() * 1000)
    seed = f"amiplus,meter_id=1 power_imported_w=1.0 {stamp}".encode()
    request = urllib.request.Request(
        f"{influxdb.url}/write?db=partial&precision=ms", data=seed, method="POST"
    )
    urllib.request.urlopen(request, timeout=10).close()  # power_imported_w is a float now
    spool = tmp_path / "spool"
    spool.mkdir()
    conflict = [
        *(f"amiplus,meter_id=2 power_imported_w={n}.0 {stamp + n}" for n in range(1, 4)),
        f"amiplus,meter_id=3 power_imported_w=7i {stamp + 10}",  # a field type conflict
    ]
    unparseable = [
        f"amiplus,meter_id=4 power_imported_w=1.0 {stamp + 20}",
        f"amiplus,meter_id=4 power_imported_w=oops!! {stamp + 21}",
        f"amiplus,meter_id=4 power_imported_w=2.0 {stamp + 22}",
        f"amiplus,meter_id=4 power_imported_w=?? {stamp + 23}",
    ]
    for number, lines in enumerate((conflict, unparseable), start=1):
        (spool / f"{number:012d}.lp").write_text("".join(f"{line}\n" for line in lines))
    (spool / "000000000003.lp").write_bytes(b"\x00" * 512)  # crash debris: no point
    writer = output(influxdb.url, spool, "partial")
    assert writer.spool.points == 8
    writer.start()
    try:
        assert wait_until(lambda: writer.spool.points == 0, 20)
    finally:
        writer.stop()
    assert (writer.written, writer.rejected_points) == (5, 3)
    assert len(rows_ms(influxdb, "partial")) == 6  # the seed and the five good lines
    assert (spool / "rejected" / "000000000001.lp").exists()


# --- 5. the first write soon after InfluxDB answers again ---------------------------------------


@pytest.mark.integration
def test_the_first_write_follows_within_10_s_of_influxdb_answering(tmp_path: Path) -> None:
    # A long backoff as after a long outage (the cap is 120 s): only the probe can end it early.
    server = down_influxdb(tmp_path / "influx", "outage")
    writer = output(server.url, tmp_path / "spool", "outage", Backoff(first=100.0, cap=120.0))
    writer.start()
    try:
        writer.submit(update(time.time(), 300.0))
        assert wait_until(lambda: writer.errors["connection"] >= 1, 10)
        assert writer.retry_at - time.time() > 60  # backing off for a long time
        server.start()  # returns once /ping answers
        answered = time.monotonic()
        assert wait_until(lambda: writer.written == 1, 15)
        delay = time.monotonic() - answered
        print(f"\nfirst write {delay:.2f} s after InfluxDB answered /ping")
        assert delay < 10
    finally:
        writer.stop()
        server.stop()


# --- 6. SIGTERM while InfluxDB accepts connections but never answers ----------------------------


def test_sigterm_exits_within_5_s_while_influxdb_hangs_and_keeps_the_points(
    start_exporter: Start, tmp_path: Path
) -> None:
    server = InfluxDB(tmp_path / "influx")
    server.query('CREATE DATABASE "safety"')
    assert server.process is not None
    influxd = server.process.pid
    spool = tmp_path / "spool"
    text = config(server.url, spool, 0.2)
    try:
        exporter = running(start_exporter(text))
        assert wait_until(lambda: influx_status(exporter)["points_written"] >= 2, 20)
        os.kill(influxd, signal.SIGSTOP)  # the port still accepts; nothing answers
        assert wait_until(lambda: influx_status(exporter)["spool_points"] >= 5, 20)
        assert exporter.process is not None
        process = exporter.process
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
        took = time.monotonic() - started
        print(f"\nSIGTERM to exit while InfluxDB hangs: {took:.2f} s")
        exporter.process = None
        assert code == 0 and took < 5, exporter.log()
        kept = sum(
            len([line for line in p.read_bytes().split(b"\n") if line]) for p in spool.glob("*.lp")
        )
        assert kept >= 5
        os.kill(influxd, signal.SIGCONT)
        exporter.start()  # the same spool: everything kept reaches InfluxDB
        running(exporter)
        assert wait_until(lambda: influx_status(exporter)["points_written"] >= kept, 30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(influxd, signal.SIGCONT)
        server.stop()
