"""What a neighbour on the radio or the LAN can send (issue 23, items 1, 2, 12 and 14): forged
telegrams in clear, lines too long for any telegram, and what the exporter leaves behind: the
processes of a `command:` receiver and the modes of its files."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exporter.amiplus import simulated_meters
from exporter.amiplus.encoding import encode_reading
from exporter.amiplus.simulated import SimulatedMeter
from exporter.cli import main
from exporter.config import parse_config
from exporter.outputs.spool import Spool
from exporter.pipeline.calendar_file import Store
from exporter.pipeline.dedupe import Deduplicator
from exporter.pipeline.intake import Intake
from exporter.pipeline.state import State
from exporter.receivers.base import ErrorReason, Frame, FrameError
from exporter.receivers.lines import LONGEST_FRAME, MAX_LINE_BYTES, LineFramer
from exporter.receivers.sources import ProcessSource
from exporter.wmbus import encode_frame
from exporter.wmbus.encoder import to_air

from .conftest import free_port, wait_until
from .servers import SIMULATED_KEY, SIMULATED_METER, Start

START = datetime(2026, 7, 1, 12, tzinfo=UTC)
CONFIG = SIMULATED_METER  # and receivers of each test


def in_clear(meter: SimulatedMeter, moment: datetime, imported_kwh: float, mode: int) -> bytes:
    """A telegram for `meter` that anyone could write: its records unencrypted, in a mode-5
    frame (`mode` 5) or with security mode 0."""
    reading = meter.reading(moment)
    values = dict(reading.values, energy_imported_kwh=imported_kwh)
    values["energy_imported_tariff_kwh"] = {1: imported_kwh, 2: 0.0, 3: 0.0, 4: 0.0}
    records = encode_reading(replace(reading, values=values), meter.family.record_sets[0])
    frame = bytearray(encode_frame(meter.address, records, access_number=7, key=None))
    if mode == 0:
        frame[13:15] = b"\x00\x00"  # the configuration word: no security at all
    return bytes(frame)


# --- 1. forged readings --------------------------------------------------------------------------


def test_telegrams_in_clear_for_a_meter_with_a_key_are_rejected_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = parse_config(CONFIG + "receivers:\n  - type: simulator\n")
    taken = Intake(config, State(600.0))
    meter = simulated_meters(1)[0]
    taken.on_frame("radio", Frame(meter.telegram(START)[0], START.timestamp()))
    with caplog.at_level(logging.WARNING, logger="exporter"):
        for n, mode in enumerate((5, 0, 5)):
            moment = START + timedelta(seconds=10 + n)
            forged = in_clear(meter, moment, 1_000_000.0, mode)
            taken.on_frame("radio", Frame(forged, moment.timestamp()))
    (state,) = taken.state.snapshot()
    assert state.last_failure is not None and state.last_failure.code == "not_encrypted"
    later = START + timedelta(seconds=60)
    taken.on_frame("radio", Frame(meter.telegram(later)[0], later.timestamp()))
    (state,) = taken.state.snapshot()
    assert state.telegrams == 2 and state.values["energy_imported_kwh"] < 10_000
    assert dict(state.rejected) == {"not_encrypted": 3}  # and no register_decreased after
    (warning,) = [r.getMessage() for r in caplog.records]  # one per meter, then summaries
    assert warning.startswith(
        "meter home: A telegram from meter 12345678 arrived with its AES area already in clear"
    )
    assert "AMIplus meters always encrypt" in warning


def test_decode_says_a_telegram_in_clear_proves_nothing_about_the_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    meter = simulated_meters(1)[0]
    clear = in_clear(meter, START, 1234.0, 5).hex()
    assert main(["decode", "--key", SIMULATED_KEY, clear]) == 0
    with_key = json.loads(capsys.readouterr().out)
    assert with_key["ok"] is True and with_key["encrypted"] is False
    assert "does not show that the key given is right" in with_key["warning"]
    assert main(["decode", clear]) == 0  # without a key there is nothing to warn about
    without = json.loads(capsys.readouterr().out)
    assert "warning" not in without and "encrypted" not in without
    encrypted = meter.telegram(START)[0].hex()
    assert main(["decode", "--key", SIMULATED_KEY, encrypted]) == 0
    assert "warning" not in json.loads(capsys.readouterr().out)


def metric(body: str, line_start: str) -> float | None:
    for line in body.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_forged_datagram_changes_no_reading(start_exporter: Start) -> None:
    port = free_port()
    exporter = start_exporter(
        CONFIG + f"receivers:\n  - type: lines\n    name: udp\n    listen: udp://127.0.0.1:{port}\n"
    )
    meter = simulated_meters(1)[0]
    energy = 'amiplus_energy_imported_joules_total{meter_id="12345678"}'
    rejected = 'amiplus_meter_rejected_telegrams_total{meter_id="12345678",reason="not_encrypted"}'
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:

        def send(frame: bytes) -> None:
            sender.sendto(frame.hex().encode() + b"\n", ("127.0.0.1", port))

        assert wait_until(lambda: exporter.status()["receivers"][0]["up"], 20)
        send(meter.telegram(START)[0])
        assert wait_until(lambda: metric(exporter.get("/metrics")[1].decode(), energy), 20)
        genuine = metric(exporter.get("/metrics")[1].decode(), energy)
        send(in_clear(meter, START + timedelta(seconds=5), 1_000_000.0, 5))
        assert wait_until(lambda: metric(exporter.get("/metrics")[1].decode(), rejected) == 1, 20)
        failure = exporter.status()["meters"][0]["last_failure"]
        assert failure["code"] == "not_encrypted"
        assert failure["what"]["pl"].startswith("Telegram przyszedł niezaszyfrowany")
        send(meter.telegram(START + timedelta(seconds=10))[0])
        assert wait_until(lambda: exporter.status()["meters"][0]["telegrams"] == 2, 20)
    body = exporter.get("/metrics")[1].decode()
    assert genuine is not None and genuine <= (metric(body, energy) or 0) < 1e11
    assert "register_decreased" not in body
    assert (
        sum("arrived with its AES area already in clear" in x for x in exporter.log().splitlines())
        == 1
    )


# --- 2. lines longer than any telegram -----------------------------------------------------------


def test_the_longest_telegram_line_fits_and_a_longer_one_is_refused_whole() -> None:
    longest = to_air(bytes((0xFF,)) + bytes(range(255)))  # L = 255 in format A, with its CRCs
    assert len(longest) == LONGEST_FRAME == 290
    spaced = " ".join(f"{byte:02X}" for byte in longest)
    rtl_433 = json.dumps(
        {
            "time": "2026-07-28T00:40:20.123456+0200",
            "protocol": 104,
            "model": "Wireless-MBus",
            "mode": "T",
            "M": "EGM",
            "id": 30584551,
            "version": 1,
            "type": "0x02",
            "type_string": "Electricity",
            "C": "0x44",
            "data": spaced,
            "mic": "CRC",
            "mod": "FSK",
            "freq1": 868.951,
            "freq2": 869.012,
            "rssi": -12.345,
            "snr": 23.456,
            "noise": -35.801,
        }
    )
    assert len(rtl_433) < MAX_LINE_BYTES
    events = LineFramer().feed(rtl_433.encode() + b"\n", 1.0)
    assert events == [Frame(longest, 1.0, -12.345, "T1")]
    framer = LineFramer()
    flood = os.urandom(30_000).hex().encode()
    assert framer.feed(flood + b"\n" + b"Z" * 100, 1.0) == [
        FrameError(
            ErrorReason.FRAMING,
            f"a line longer than {MAX_LINE_BYTES} bytes, which no telegram needs: skipped",
        )
    ]
    rest = framer.end(1.0)[0]  # "ZZZ...": no telegram either
    assert isinstance(rest, FrameError) and rest.reason is ErrorReason.FRAMING


def test_the_duplicate_table_keeps_digests_not_frames() -> None:
    table = Deduplicator(window=3600)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(2000):
            assert table.first(n.to_bytes(4, "big") + os.urandom(30_000), float(n))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(table) == 2000 and grown < 1_000_000, grown  # 60 MB of frames went through
    frame = bytes(range(200))
    assert table.first(frame, 1.0) and not table.first(bytes(frame), 2.0)


# --- 12. a command receiver's processes ----------------------------------------------------------


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its parent's wait() does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    "command",
    [
        "sleep 300 & echo $! > {pids}; exec cat",  # a child in the background, cat in front
        "sh -c 'echo $$ > {pids}; exec sleep 300' | cat",  # a pipeline
        "sh -c 'trap \"\" TERM; echo $$ > {pids}; while :; do sleep 0.1; done' | cat",  # stubborn
    ],
    ids=["background", "pipeline", "ignores SIGTERM"],
)
@pytest.mark.integration
def test_a_stop_ends_every_process_of_the_command(tmp_path: Path, command: str) -> None:
    pids = tmp_path / "pids"
    source = ProcessSource(command.format(pids=pids))
    source.STOP_WAIT = 1.0
    source.open()
    try:
        assert wait_until(lambda: pids.exists() and pids.read_text().strip(), 10)
        child = int(pids.read_text())
        assert alive(child)
    finally:
        started = time.monotonic()
        source.close()
    assert wait_until(lambda: not alive(child), 5), f"{child} was left running"
    assert time.monotonic() - started < 5


# --- 14. file modes -----------------------------------------------------------------------------


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    before = os.umask(0)
    yield
    os.umask(before)


def modes(root: Path) -> dict[str, int]:
    return {
        str(path.relative_to(root)): stat.S_IMODE(path.stat().st_mode)
        for path in sorted(root.rglob("*"))
    }


@pytest.mark.usefixtures("permissive_umask")
def test_state_and_spool_files_are_private_even_with_umask_0(tmp_path: Path) -> None:
    Store(tmp_path / "state").save({"12345678": {}})
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, batch_size=2)
    for second in (1, 2, 3):
        spool.append([f"amiplus,meter_id=12345678 power_imported_w=1.0 {second}000"], second)
    oldest = spool.oldest()
    assert oldest is not None
    spool.reject(oldest)  # set aside in rejected/, a directory of its own
    spool.close()
    assert modes(tmp_path / "state") == {"calendar.json": 0o600}
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    assert modes(tmp_path / "spool") == {
        "000000000002.lp": 0o600,
        "rejected": 0o700,
        "rejected/000000000001.lp": 0o600,
    }


def test_the_exporter_keeps_its_state_private(start_exporter: Start) -> None:
    exporter = start_exporter(CONFIG + "receivers:\n  - type: simulator\n    interval: 0.2\n")
    state = exporter.directory / "state"
    assert wait_until(lambda: exporter.status()["meters"][0]["telegrams"] > 0, 20)
    assert exporter.stop() == 0  # the calendar is saved at stop
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert modes(state) == {"calendar.json": 0o600}
