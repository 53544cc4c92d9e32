"""The InfluxDB output against a real InfluxDB 1.x (Debian's), and against misbehaving servers."""

from __future__ import annotations

import datetime
import http.server
import json
import math
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.amiplus.reading import MeterReading, read_meter
from exporter.amiplus.simulated import DEFAULT_KEY
from exporter.outputs.influx import outcome_of, point
from exporter.outputs.lineprotocol import line
from exporter.outputs.spool import Spool
from exporter.wmbus import MeterKey, decode

from .conftest import free_port, reading, wait_until
from .servers import CONSOLE_SCRIPT, SIMULATED_KEY, InfluxDB, Start, simulated_config

KEY = SIMULATED_KEY
T0 = 1_782_043_205_000  # a timestamp in milliseconds


def test_line_protocol_points() -> None:
    line = point(
        reading(
            energy_imported_kwh=1.5,
            energy_imported_tariff_kwh={1: 1.0, 2: 0.5},
            power_exported_w=300.0,
            voltage_v={"L1": 231.0, "L2": 229.9},
            rssi_dbm=-70.0,
            meter_time=datetime.datetime(2026, 6, 21, 12, 0, 1, tzinfo=datetime.UTC),
        ),
        "attic, west=1",
        1_782_043_205.9,
    )
    assert line == (
        r"amiplus,meter_id=12345678,name=attic\,\ west\=1 "
        "rssi_dbm=-70.0,meter_clock=1782043201.0,"
        "energy_imported_kwh=1.5,energy_imported_t1_kwh=1.0,energy_imported_t2_kwh=0.5,"
        "power_exported_w=300.0,voltage_l1_v=231.0,voltage_l2_v=229.9 1782043205900"
    )
    assert point(reading(), None, 1.0) is None  # nothing to write
    assert point(reading(power_imported_w=5), None, 2.0) == (
        "amiplus,meter_id=12345678 power_imported_w=5.0 2000"
    )


@pytest.mark.parametrize(
    ("status", "retry_after", "reason", "invalid", "after"),
    [
        (204, None, "", False, None),
        (400, None, "rejected", True, None),
        (401, None, "unauthorized", False, None),
        (404, None, "not_found", False, None),
        (429, "7", "rate_limited", False, 7.0),
        (500, None, "server_error", False, None),
        (503, "2.5", "server_error", False, 2.5),
    ],
)
def test_answers_are_classified(
    status: int, retry_after: str | None, reason: str, invalid: bool, after: float | None
) -> None:
    outcome = outcome_of(status, '{"error": "x"}', retry_after)
    assert (outcome.accepted, outcome.reason, outcome.invalid, outcome.retry_after) == (
        status == 204,
        reason,
        invalid,
        after,
    )


def test_the_spool_seals_batches_recovers_and_drops_the_oldest(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000, batch_size=3)
    for n in range(7):
        spool.append([f"m v={n} {T0 + n}"], (T0 + n) / 1000)
    assert spool.points == 7
    first = spool.oldest()
    assert first is not None and first.points == 3 and first.first_timestamp == T0 / 1000
    assert spool.read(first) == f"m v=0 {T0}\nm v=1 {T0 + 1}\nm v=2 {T0 + 2}\n".encode()
    spool.remove(first)
    second = spool.oldest()
    assert second is not None
    moved = spool.reject(second)
    assert moved.parent.name == "rejected" and moved.read_bytes().startswith(b"m v=3 ")
    # A crash: the open segment ends in half a line.
    open_segment = sorted(tmp_path.glob("*.lp"))[-1]
    with open_segment.open("ab") as handle:
        handle.write(b"m v=99 12")
    again = Spool(tmp_path, max_bytes=10_000, batch_size=3)
    assert again.points == 1
    left = again.oldest()
    assert left is not None and again.read(left) == f"m v=6 {T0 + 6}\n".encode()
    again.append([f"m v=7 {T0 + 7}"], (T0 + 7) / 1000)
    assert all(int(p.stem) > int(moved.stem) for p in tmp_path.glob("*.lp"))  # new names
    small = Spool(tmp_path / "small", max_bytes=60, batch_size=1)
    for n in range(5):
        small.append([f"m v={n} {T0 + 2000 + n}"], (T0 + 2000 + n) / 1000)
    assert small.dropped["spool_full"] >= 2 and small.size <= 60
    oldest = small.oldest()
    assert oldest is not None and oldest.first_timestamp is not None
    assert oldest.first_timestamp >= (T0 + 2002) / 1000


def test_a_segment_of_nuls_holds_no_point_and_old_second_timestamps_become_ms(
    tmp_path: Path,
) -> None:
    (tmp_path / "000000000001.lp").write_bytes(b"\x00" * 4096)  # crash debris, no newline
    (tmp_path / "000000000002.lp").write_bytes(b"\x00" * 100 + b"\n" + b"\x00\x00\n")
    (tmp_path / "000000000003.lp").write_bytes(  # spooled by a version with second precision
        b"amiplus,meter_id=1 power_imported_w=1.0 1782043205\n\x00\x00\x00\n"
        b"amiplus,meter_id=1 power_imported_w=2.0 1782043206\n"
    )
    spool = Spool(tmp_path, max_bytes=10_000, batch_size=3)
    assert spool.points == 2
    segment = spool.oldest()
    assert segment is not None and segment.first_timestamp == 1782043205.0
    assert spool.read(segment) == (
        b"amiplus,meter_id=1 power_imported_w=1.0 1782043205000\n"
        b"amiplus,meter_id=1 power_imported_w=2.0 1782043206000\n"
    )
    assert sorted(p.name for p in tmp_path.glob("*.lp")) == ["000000000003.lp"]


@pytest.fixture(scope="module")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    server = InfluxDB(tmp_path_factory.mktemp("influxdb"))
    yield server
    server.stop()


def database(server: InfluxDB, name: str) -> str:
    server.query(f'CREATE DATABASE "{name}"')
    return name


def simulated(influx: str, interval: float = 0.3) -> str:
    return simulated_config(interval, f"influxdb:\n{influx}")


def test_v1_writes_float_fields_with_tags(
    influxdb: InfluxDB, start_exporter: Start, tmp_path: Path
) -> None:
    name = database(influxdb, "v1")
    exporter = start_exporter(
        simulated(f"""  url: {influxdb.url}
  api: v1
  database: {name}
  spool: {tmp_path / "spool"}
  flush_interval: 0.3
""")
    )
    assert wait_until(lambda: len(influxdb.points(name)) >= 3, 30), exporter.log()
    rows = influxdb.points(name)
    assert {row["meter_id"] for row in rows} == {"12345678"} and {row["name"] for row in rows} == {
        "home"
    }
    assert all(row["voltage_l1_v"] for row in rows if row.get("voltage_l1_v") is not None)
    fields = influxdb.query('SHOW FIELD KEYS FROM "amiplus"', name)[0]["values"]
    assert {kind for _, kind in fields} == {"float"}
    assert {"energy_imported_t1_kwh", "power_imported_w", "meter_clock", "rssi_dbm"} - {
        f for f, _ in fields
    } == {"rssi_dbm"}  # the simulator's lines carry no RSSI
    status = exporter.status()["influxdb"]
    assert status["points_written"] >= 3 and status["target"].endswith(f"database {name}")
    metrics = exporter.get("/metrics")[1].decode()
    assert "amiplus_influxdb_points_written_total" in metrics
    assert "amiplus_influxdb_spool_points" in metrics


class Forwarder(http.server.ThreadingHTTPServer):
    """What InfluxDB 1.8 does natively and 1.6 does not: `/api/v2/write?bucket=db/rp` taken as
    `/write?db=db&rp=rp`, the token `user:password` as credentials. A test-side stand-in, so the
    influxdb-client (v2) path is exercised against the real InfluxDB 1.6."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), ForwardHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class ForwardHandler(http.server.BaseHTTPRequestHandler):
    server: Forwarder

    def do_POST(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        self.server.requests.append(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if parts.path != "/api/v2/write":
            self.send_error(404)
            return
        db, _, rp = query.get("bucket", "").partition("/")
        token = self.headers.get("Authorization", "").removeprefix("Token ")
        user, _, password = token.partition(":")
        target = {"db": db, "precision": query.get("precision", "ns"), "u": user, "p": password}
        if rp:
            target["rp"] = rp
        request = urllib.request.Request(
            f"{self.server.target}/write?{urllib.parse.urlencode(target)}", data=body, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, answer = error.code, error.read()
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def test_v2_through_influxdb_client(
    influxdb: InfluxDB, start_exporter: Start, tmp_path: Path
) -> None:
    name = database(influxdb, "v2")
    forwarder = Forwarder(influxdb.url)
    try:
        exporter = start_exporter(
            simulated(f"""  url: http://127.0.0.1:{forwarder.server_address[1]}
  api: v2
  bucket: {name}/autogen
  org: home
  token: reader:secret
  spool: {tmp_path / "spool"}
  flush_interval: 0.3
""")
        )
        assert wait_until(lambda: len(influxdb.points(name)) >= 3, 30), exporter.log()
        assert all(p.startswith("/api/v2/write?") for p in forwarder.requests)
        assert (
            "precision=ms" in forwarder.requests[0]
            and f"bucket={name}%2Fautogen" in forwarder.requests[0]
        )
    finally:
        forwarder.shutdown()


class Feeder:
    """Telegrams of three simulated meters sent over UDP, remembered as readings."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [str(CONSOLE_SCRIPT), "simulate", "--meters", "3", "--interval", "1"],
            stdout=subprocess.PIPE,
        )
        self.sent: list[MeterReading] = []
        self.key = MeterKey.from_bytes(DEFAULT_KEY)

    def send(self, rounds: int) -> None:
        """`rounds` telegrams per meter, a second apart (points have second precision)."""
        assert self.process.stdout is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(rounds):
                for _ in range(3):
                    line = self.process.stdout.readline()
                    sender.sendto(line, ("127.0.0.1", self.port))
                    self.sent.append(
                        read_meter(decode(bytes.fromhex(line.decode().strip()), self.key))
                    )
                time.sleep(1.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def test_nothing_is_lost_across_an_outage_and_a_restart(
    start_exporter: Start, tmp_path: Path
) -> None:
    server = InfluxDB(tmp_path / "influx")
    name = database(server, "outage")
    udp = free_port()
    meters = "\n".join(
        f'  - id: "{12345678 + n}"\n    key: "{KEY}"\n    name: m{n}' for n in range(3)
    )
    config = f"""meters:
{meters}
receivers:
  - type: lines
    listen: udp://127.0.0.1:{udp}
influxdb:
  url: {server.url}
  api: v1
  database: {name}
  spool: {tmp_path / "spool"}
  flush_interval: 0.3
  batch_size: 4
"""
    feeder = Feeder(udp)
    try:
        exporter = start_exporter(config)
        assert wait_until(lambda: exporter.status()["receivers"][0]["up"], 20)  # UDP bound
        feeder.send(3)
        assert wait_until(lambda: len(server.points(name)) == 9, 30)
        server.stop()  # the database goes away
        feeder.send(3)
        assert wait_until(lambda: exporter.status()["influxdb"]["spool_points"] == 9, 30)
        assert exporter.stop() == 0  # and the exporter restarts meanwhile
        exporter.start()
        assert wait_until(lambda: exporter.status()["receivers"][0]["up"], 20)
        assert exporter.status()["influxdb"]["spool_points"] == 9
        feeder.send(2)
        server.start()
        assert wait_until(lambda: exporter.status()["influxdb"]["spool_points"] == 0, 60), (
            exporter.log()
        )
    finally:
        feeder.stop()
        server.stop()
    server.start()
    try:
        rows = server.points(name)
    finally:
        server.stop()
    assert len(rows) == len(feeder.sent) == 24  # every reading exactly once
    got = sorted((r["meter_id"], r["energy_imported_kwh"], r["power_imported_w"]) for r in rows)
    sent = sorted(
        (r.meter_id, r.get("energy_imported_kwh"), r.get("power_imported_w")) for r in feeder.sent
    )
    assert got == sent


class Misbehaving(http.server.ThreadingHTTPServer):
    """An InfluxDB stand-in that answers as told: slow, 500 with Retry-After, then fine."""

    def __init__(self, answers: list[tuple[float, int, dict[str, str]]]) -> None:
        self.answers = answers  # (delay, status, headers) per request; the last repeats
        self.times: list[float] = []
        self.bodies: list[bytes] = []
        super().__init__(("127.0.0.1", 0), MisbehavingHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class MisbehavingHandler(http.server.BaseHTTPRequestHandler):
    server: Misbehaving

    def do_POST(self) -> None:
        self.server.times.append(time.monotonic())
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        index = min(len(self.server.times), len(self.server.answers)) - 1
        delay, status, headers = self.server.answers[index]
        time.sleep(delay)
        if status == 204:
            self.server.bodies.append(body)
        answer = json.dumps({"error": "simulated trouble"}).encode() if status != 204 else b""
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _writer_config(url: str, spool: Path, extra: str = "") -> str:
    return f"""  url: {url}
  api: v1
  database: db
  spool: {spool}
  flush_interval: 0.2
  timeout: 1
{extra}"""


def test_a_slow_server_then_500s_with_retry_after(start_exporter: Start, tmp_path: Path) -> None:
    server = Misbehaving(
        [
            (2.0, 204, {}),
            (0, 500, {"Retry-After": "1"}),
            (0, 500, {"Retry-After": "1"}),
            (0, 204, {}),
        ]
    )
    try:
        exporter = start_exporter(simulated(_writer_config(server.url, tmp_path / "spool")))
        assert wait_until(lambda: exporter.status()["influxdb"]["points_written"] > 0, 40), (
            exporter.log()
        )
        status = exporter.status()["influxdb"]
        assert status["errors"]["timeout"] >= 1 and status["errors"]["server_error"] == 2
        gaps = [b - a for a, b in zip(server.times[1:], server.times[2:], strict=False)][:2]
        assert all(gap >= 0.75 for gap in gaps)  # Retry-After: 1, with jitter
        assert b"amiplus,meter_id=12345678,name=home " in b"".join(server.bodies)
        metrics = exporter.get("/metrics")[1].decode()
        assert 'amiplus_influxdb_write_errors_total{reason="server_error"} 2.0' in metrics
    finally:
        server.shutdown()


def test_a_bad_point_is_set_aside_and_newer_data_still_flows(
    influxdb: InfluxDB, start_exporter: Start, tmp_path: Path
) -> None:
    name = database(influxdb, "bad")
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "000000000001.lp").write_bytes(b"amiplus,meter_id=1 power_imported_w=oops!! 1\n")
    exporter = start_exporter(
        simulated(f"""  url: {influxdb.url}
  api: v1
  database: {name}
  spool: {spool}
  flush_interval: 0.3
""")
    )
    assert wait_until(lambda: len(influxdb.points(name)) >= 2, 30), exporter.log()
    assert (spool / "rejected" / "000000000001.lp").exists()
    status = exporter.status()["influxdb"]
    assert status["rejected_points"] == 1 and status["errors"]["rejected"] == 1
    assert "InfluxDB refused 1 of 1 points as invalid (HTTP 400: " in exporter.log()
    assert "unable to parse" in exporter.log()  # the server's own message is logged
    metrics = exporter.get("/metrics")[1].decode()
    assert 'amiplus_influxdb_points_dropped_total{reason="rejected"} 1.0' in metrics


def test_the_spool_cap_drops_the_oldest_with_a_warning(
    start_exporter: Start, tmp_path: Path
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    exporter = start_exporter(
        simulated(
            _writer_config(nowhere, tmp_path / "spool", "  spool_max_mb: 0.002\n  batch_size: 1\n"),
            0.1,
        )
    )
    assert wait_until(lambda: exporter.status()["influxdb"]["dropped_points"] > 0, 30)
    assert wait_until(lambda: exporter.status()["influxdb"]["errors"].get("connection"), 30)
    assert exporter.status()["influxdb"]["spool_bytes"] <= 2000
    assert "InfluxDB spool full" in exporter.log()
    assert (
        'amiplus_influxdb_points_dropped_total{reason="spool_full"}'
        in exporter.get("/metrics")[1].decode()
    )


def test_sigterm_sends_what_is_spooled(
    influxdb: InfluxDB, start_exporter: Start, tmp_path: Path
) -> None:
    name = database(influxdb, "flush")
    exporter = start_exporter(
        simulated(
            f"""  url: {influxdb.url}
  api: v1
  database: {name}
  spool: {tmp_path / "spool"}
  flush_interval: 3600
  batch_size: 100000
""",
            1.1,  # points have second precision: one per second, so that each one counts
        )
    )
    assert wait_until(lambda: exporter.status()["influxdb"]["spool_points"] >= 3, 30)
    assert influxdb.points(name) == []
    exporter.signal(signal.SIGTERM)
    assert exporter.stop() == 0
    assert len(influxdb.points(name)) >= 3
    assert not list((tmp_path / "spool").glob("*.lp"))


def test_a_value_influxdb_cannot_store_is_left_out_of_the_point() -> None:
    """An infinity or NaN from a meter's float record would fail the whole batch."""
    values = {"power_imported_w": math.inf, "power_exported_w": 12.0, "voltage_v": {"L1": math.nan}}
    reading = MeterReading("12345678", "APA", 1, 2, values=values)
    assert point(reading, "home", 1_000.0) == (
        "amiplus,meter_id=12345678,name=home power_exported_w=12.0 1000000"
    )


#: Names a user may give a meter, with every character the line protocol makes special in a tag.
AWKWARD_NAMES = ["attic, west=1", 'say "hi"', "zażółć gęślą jaźń", "x=y z,", " lead and trail "]
#: String field values: the backslash is special there too.
AWKWARD_TEXTS = ["ends in a backslash\\", 'a\\"b', "c:\\temp\\", '"', "a,b=c d"]


def test_every_element_is_escaped_as_influxdb_reads_it(influxdb: InfluxDB) -> None:
    name = database(influxdb, "escaping")
    measurement = "amiplus test,x"
    body = "\n".join(
        line(
            measurement,
            {"meter_id": f"{n:08d}", "name": tag, "tag key=, x": tag},
            {"field key, =x": 1.5, "text": text},
            T0 + n,
        )
        for n, (tag, text) in enumerate(zip(AWKWARD_NAMES, AWKWARD_TEXTS, strict=True))
    )
    request = urllib.request.Request(
        f"{influxdb.url}/write?db={name}&precision=ms", data=body.encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204
    rows = influxdb.points(name, measurement)
    assert len(rows) == len(AWKWARD_NAMES)  # one point per line: no name ended a point early
    for row in rows:
        n = int(row["meter_id"])
        assert (row["name"], row["tag key=, x"]) == (AWKWARD_NAMES[n], AWKWARD_NAMES[n])
        assert (row["text"], row["field key, =x"]) == (AWKWARD_TEXTS[n], 1.5)


def test_a_meter_named_awkwardly_reaches_influxdb_under_its_name(
    influxdb: InfluxDB, start_exporter: Start, tmp_path: Path
) -> None:
    name = database(influxdb, "names")
    meter = json.dumps("the attic, " + AWKWARD_NAMES[1])  # YAML reads a JSON string
    exporter = start_exporter(
        simulated_config(
            0.3,
            f"""influxdb:
  url: {influxdb.url}
  api: v1
  database: {name}
  spool: {tmp_path / "spool"}
  flush_interval: 0.3
""",
        ).replace("name: home", f"name: {meter}")
    )
    assert wait_until(lambda: len(influxdb.points(name)) >= 2, 30), exporter.log()
    assert {row["name"] for row in influxdb.points(name)} == {json.loads(meter)}
    assert exporter.status()["influxdb"]["rejected_points"] == 0
