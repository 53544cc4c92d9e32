"""Odd input handled as it should be (issue 14, items 15-17): `decode` answers once per input
line whatever control characters a line holds, a damaged BCD record spoils only itself, and
signal levels come from rtl_433, the IMST fit and an RC1180 that pauses mid-telegram (real
subprocesses and sticks emulated on pseudo-terminals)."""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from exporter.amiplus.encoding import encode_reading
from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.simulated import DEFAULT_KEY, SimulatedMeter
from exporter.commands.decode import KeyRing, render
from exporter.plumbing import Backoff
from exporter.receivers.amber import AmberFramer
from exporter.receivers.base import ErrorReason, Frame, FrameError
from exporter.receivers.imst import Im871a, im871a_rssi_dbm
from exporter.receivers.lines import parse_line
from exporter.receivers.rc1180 import Rc1180, Rc1180Framer
from exporter.receivers.receiver import Receiver
from exporter.receivers.sources import SerialSource
from exporter.wmbus import MeterKey
from exporter.wmbus.encoder import encode_data, encode_frame
from exporter.wmbus.records import BAD_BCD, parse_header

from .conftest import vector, wait_until
from .emulators.imst import Im871aEmulator
from .emulators.pty_device import PtyDevice
from .emulators.sticks import Rc1180Emulator
from .servers import CONSOLE_SCRIPT, SIMULATED_KEY
from .test_sources import Collector

B2 = vector("B2")
SENSUS = bytes.fromhex("1844AE4C4455223368077A55000000041389E20100023B0000")


def decode(stdin: bytes, *args: str) -> tuple[int, list[str]]:
    """`decode` over real stdin; its output split at LF only (what a line reader must see)."""
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "decode", "--key", B2["key_hex"], *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.decode().split("\n")
    assert lines.pop() == ""
    return done.returncode, lines


# --- 15. one answer per input line ----------------------------------------------------------

INSIDE = ["\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028"]


@pytest.mark.integration
def test_decode_answers_once_per_line_whatever_the_line_holds() -> None:
    telegram = B2["frame_hex"]
    lines = [f"{telegram[:20]}{c}{telegram[20:]}".encode() for c in INSIDE]
    lines.append(b"rtl_wmbus: stopped\xc2\x85 and \xe2\x80\xa8 here")  # echoed in a message
    lines.append(b"abc\x85def")  # 0x85 alone is not UTF-8
    lines.append(telegram.encode() + b"\r")  # CRLF: one line, decoded
    _, out = decode(b"\n".join(lines) + b"\n")
    assert len(out) == len(lines), out
    results = [json.loads(line) for line in out]
    assert [r["ok"] for r in results[-3:]] == [False, False, True]
    assert "\u0085" in results[-3]["message"] and "\u2028" in results[-3]["message"]


@pytest.mark.integration
def test_a_line_over_1_mib_gives_one_answer() -> None:
    huge = b"A" * (5 * 2**20 + 123)  # one line of 5 MiB, then a telegram
    _, out = decode(huge + b"\n" + B2["frame_hex"].encode() + b"\n")
    assert len(out) == 2, [line[:200] for line in out]
    first, second = (json.loads(line) for line in out)
    assert first["ok"] is False and "longer than 1 MiB" in first["message"]
    assert second["ok"] is True
    _, out = decode(huge)  # no newline at all: still one answer
    assert len(out) == 1 and "longer than 1 MiB" in json.loads(out[0])["message"]


@pytest.mark.integration
def test_a_large_input_in_parallel_keeps_one_answer_per_line() -> None:
    telegram = B2["frame_hex"]
    lines = [f"{telegram[:30]}{INSIDE[n % len(INSIDE)]}{telegram[30:]}" for n in range(2500)]
    lines[::7] = [telegram] * len(lines[::7])
    _, out = decode(("\n".join(lines) + "\n").encode())
    assert len(out) == 2500
    keys = KeyRing(MeterKey.parse(B2["key_hex"]), frozenset())
    one_by_one = [render([line], keys)[0] for line in lines]
    assert [line + "\n" for line in out] == one_by_one  # in order, one answer each


# --- 16. a damaged BCD record spoils only itself ----------------------------------------------


def telegrams() -> tuple[bytes, bytes]:
    """The same properly encrypted telegram (valid CRCs) as sent, and with `3A 12 00` in its
    power record (0B2B): a BCD digit above 9."""
    meter = SimulatedMeter(FAMILIES_BY_NAME["otus"])
    reading = meter.reading(datetime(2026, 7, 1, 12, tzinfo=UTC))
    records = encode_reading(reading, FAMILIES_BY_NAME["otus"].record_sets[0])
    header = parse_header(bytes.fromhex("0B2B"))
    power = bytes.fromhex("0B2B") + encode_data(
        header.data, round(reading.values["power_imported_w"])
    )
    assert records.count(power) == 1
    damaged = records.replace(power, bytes.fromhex("0B2B 3A1200"))
    return tuple(  # type: ignore[return-value]
        encode_frame(meter.address, payload, access_number=7, key=DEFAULT_KEY)
        for payload in (records, damaged)
    )


@pytest.mark.integration
def test_a_bcd_digit_above_9_makes_one_record_invalid_and_keeps_the_rest() -> None:
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "decode", "--key", SIMULATED_KEY, *(f.hex() for f in telegrams())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done
    sound, damaged = (json.loads(line) for line in done.stdout.splitlines())
    assert damaged["ok"] is True and "power_imported_w" in sound
    invalid = {"key": "0B2B", "value": "3A1200", "invalid": True, "reason": BAD_BCD}
    assert damaged.pop("unknown") == [*sound.pop("unknown", []), invalid]
    del sound["power_imported_w"]
    assert damaged == sound  # every other value kept


# --- 17. signal levels ------------------------------------------------------------------------


@pytest.mark.integration
def test_rtl_433_gives_its_rssi() -> None:
    line = json.dumps(
        {"model": "Wireless-MBus", "mode": "T", "data": SENSUS.hex(), "rssi": -12.3, "snr": 20.1}
    )
    (item,) = parse_line(line)
    assert item.rssi_dbm == -12.3  # type: ignore[union-attr]
    for odd in ("strong", True, None, float("nan")):
        (item,) = parse_line(
            json.dumps({"model": "Wireless-MBus", "data": SENSUS.hex(), "rssi": odd})
        )
        assert item.rssi_dbm is None  # type: ignore[union-attr]
    _, out = decode(
        json.dumps({"model": "Wireless-MBus", "data": B2["frame_hex"], "rssi": -7.5}).encode()
        + b"\n"
    )
    assert json.loads(out[0])["rssi_dbm"] == -7.5


def test_the_im871a_fit_has_no_jump_at_230() -> None:
    values = [im871a_rssi_dbm(raw) for raw in range(256)]
    assert all(0 <= b - a <= 0.5 for a, b in itertools.pairwise(values))
    assert (values[154], values[229], values[230], values[255]) == (-45.5, -8.0, -7.5, -7.5)


@pytest.fixture
def started() -> Iterator[list[Receiver | PtyDevice]]:
    parts: list[Receiver | PtyDevice] = []
    yield parts
    for part in parts:
        part.stop() if isinstance(part, Receiver) else part.close()


def test_an_im871a_reports_strong_signals_without_a_jump(
    started: list[Receiver | PtyDevice],
) -> None:
    stick = Im871aEmulator()
    sink = Collector()
    receiver = Receiver(
        "im871a", SerialSource(stick.path, 57600), Im871a(), sink, backoff=Backoff(0.05, 0.3)
    )
    started += [stick, receiver]
    receiver.start()
    assert wait_until(lambda: receiver.stats.up)
    for raw in (229, 230, 250):
        assert stick.telegram(SENSUS, raw)
    assert wait_until(lambda: len(sink.frames) == 3)
    assert [frame.rssi_dbm for _, frame in sink.frames] == [-8.0, -7.5, -7.5]


def test_an_rc1180_telegram_that_pauses_midway_is_kept(
    started: list[Receiver | PtyDevice],
) -> None:
    wire = bytes((len(SENSUS),)) + SENSUS[1:] + b"\x8c"
    framer = Rc1180Framer()
    assert framer.feed(wire[:10], 100.0) == []
    assert framer.feed(wire[10:], 103.5) == [Frame(SENSUS, 103.5, -70.0)]
    amber = AmberFramer()  # the Amber keeps its rule
    assert amber.feed(wire[:10], 100.0) == []
    assert isinstance(amber.feed(wire[10:], 103.5)[0], FrameError)
    stick = Rc1180Emulator()
    sink = Collector()
    receiver = Receiver("rc1180", SerialSource(stick.path, 19200), Rc1180(), sink)
    started += [stick, receiver]
    receiver.start()
    assert wait_until(lambda: receiver.stats.up)
    stick.send(wire[:12])
    time.sleep(2.5)  # a bridge that stalls for longer than the Amber's 2 s
    stick.send(wire[12:])
    assert wait_until(lambda: len(sink.frames) == 1)
    assert sink.frames[0][1].data == SENSUS and sink.frames[0][1].rssi_dbm == -70.0
    assert receiver.stats.errors[ErrorReason.FRAMING.value] == 0
