"""The `listen` command as a user runs it: which meters are on the air, and which is mine."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.commands.listen import run_listen
from exporter.pipeline.heard import HeardMeters, configured_match, peek_or_none
from exporter.receivers import Receiver, parse_spec
from exporter.receivers.base import Frame

from .conftest import vector

CONSOLE_SCRIPT = Path(sys.executable).parent / "amiplus-exporter"
A7 = vector("A7")["frame_hex"]  # NES 00086426, clear payload
C7A = vector("C7a")["frame_hex"]  # Apator 57081221 (A-field bytes 21 12 08 57), encrypted
B2 = vector("B2")["frame_hex"]  # Elgama 30584551, encrypted


def listen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONSOLE_SCRIPT), "listen", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.integration
def test_json_lines_name_every_meter_and_mark_mine(tmp_path: Path) -> None:
    capture = tmp_path / "capture.txt"
    capture.write_text(f"{A7}\n{C7A}\n{B2}\ngarbage\n{C7A}\n")
    done = listen("--receiver", f"replay:{capture}", "--json", "--id", "21120857")
    assert done.returncode == 0, done.stderr
    heard = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(h["meter_id"], h["count"]) for h in heard] == [
        ("00086426", 1),
        ("57081221", 1),
        ("30584551", 1),
        ("57081221", 2),
    ]
    assert [h["encrypted"] for h in heard] == [False, True, True, True]
    assert heard[0]["manufacturer"] == "NES" and heard[2]["manufacturer"] == "EGM"
    assert heard[1]["configured"] == (
        "configured as 21120857: the same ID byte-reversed (both orders work)"
    )
    assert heard[0]["configured"] is None
    assert heard[2]["device_type_name"] == "electricity"


@pytest.mark.integration
def test_table_at_the_end_when_not_on_a_terminal(tmp_path: Path) -> None:
    capture = tmp_path / "capture.txt"
    capture.write_text(f"{A7}\n{B2}\n{B2}\n")
    done = listen("--receiver", f"replay:{capture}", "--id", "30584551")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "3 frames" in done.stdout
    header = next(n for n, line in enumerate(lines) if line.startswith("ID"))
    rows = lines[header + 1 :]
    assert rows[0].split()[:4] == ["30584551", "EGM", "1", "electricity"]
    assert rows[0].endswith("configured")
    assert "2" in rows[0].split()
    assert rows[1].split()[:2] == ["00086426", "NES"]


@pytest.mark.integration
def test_simulated_meters_for_a_while() -> None:
    done = listen("--receiver", "simulator:meters=2,interval=0.2", "--duration", "1.5", "--json")
    assert done.returncode == 0, done.stderr
    ids = {json.loads(line)["meter_id"] for line in done.stdout.splitlines()}
    assert ids == {"12345678", "12345679"}


@pytest.mark.integration
def test_nothing_heard_says_what_to_check(tmp_path: Path) -> None:
    capture = tmp_path / "empty.txt"
    capture.write_text("\n")
    done = listen("--receiver", f"replay:{capture}")
    assert done.returncode == 0
    assert "HAN is activated in eLicznik" in done.stderr


@pytest.mark.integration
def test_bad_receiver_is_a_usage_error() -> None:
    done = listen("--receiver", "carrier-pigeon:/dev/null")
    assert done.returncode == 2
    assert "unknown receiver type 'carrier-pigeon'" in done.stderr
    done = listen("--receiver", "lines:listen=http://x")
    assert done.returncode == 2 and "udp://0.0.0.0:9011" in done.stderr


def test_heard_meters_are_bounded_and_ordered() -> None:
    heard = HeardMeters(limit=2)
    for n, frame in enumerate((A7, C7A, B2, C7A)):
        data = bytes.fromhex(frame)
        heard.hear("r", Frame(data, float(n), rssi_dbm=-70.0 - n), peek_or_none(data))
    assert (
        heard.hear("r", Frame(b"\x01\x02", 9.0), peek_or_none(b"\x01\x02")) is None
        and heard.unreadable == 1
    )
    snapshot = heard.snapshot()
    assert [m.meter_id for m in snapshot] == ["57081221", "30584551"]
    assert snapshot[0].count == 2 and snapshot[0].rssi_dbm == -73.0
    assert configured_match("57081221", frozenset({"57081221"})) == "configured"
    assert configured_match("57081221", frozenset({"11111111"})) == ""


def test_ctrl_c_while_receivers_start_stops_those_already_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ctrl-C that lands between two receivers' starts: the first is stopped, so that the
    command ends instead of waiting on its thread."""
    real_start = Receiver.start
    started: list[Receiver] = []

    def start(receiver: Receiver) -> None:
        if started:
            raise KeyboardInterrupt
        started.append(receiver)
        real_start(receiver)

    monkeypatch.setattr(Receiver, "start", start)
    specs = [parse_spec("simulator:meters=1"), parse_spec("simulator:meters=1,name=other")]
    run_listen(specs, frozenset(), io.StringIO(), as_lines=True, duration=5)
    assert started and started[0].finished.is_set()  # its thread has ended


def test_ctrl_c_inside_a_receivers_start_stops_its_thread_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ctrl-C that lands inside `start`, once the receiver's thread runs (Thread.start waits
    for the thread to say so, and a signal interrupts that wait): that thread is stopped too,
    or it would keep the command alive, retrying its stick for ever."""
    real_start = Receiver.start
    started: list[Receiver] = []

    def start(receiver: Receiver) -> None:
        started.append(receiver)
        real_start(receiver)
        raise KeyboardInterrupt

    monkeypatch.setattr(Receiver, "start", start)
    specs = [parse_spec("simulator:meters=1")]
    run_listen(specs, frozenset(), io.StringIO(), as_lines=True, duration=None)
    assert started[0].finished.is_set()  # without a duration: only the stop ended it
