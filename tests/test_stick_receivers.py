"""USB sticks end to end: a receiver thread, pyserial, and an emulated stick on a pseudo-terminal.

Every dialect: the session puts the stick into T1, frames arrive whole, byte by byte, after
garbage and after a damaged frame; a stick that is pulled out and comes back under a new tty
behind the same /dev/serial/by-id link forgot its mode and is set up again; a stick that never
answers is reported down with the reason; a silent stick is reopened by the watchdog.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exporter.plumbing import Backoff
from exporter.receivers.amber import Amber
from exporter.receivers.base import Dialect, LinkMode
from exporter.receivers.cul import Cul
from exporter.receivers.imst import Im871a, Iu891a
from exporter.receivers.rc1180 import Rc1180
from exporter.receivers.receiver import Receiver
from exporter.receivers.sources import SerialSource

from .conftest import vector, wait_until
from .emulators.imst import Im871aEmulator, Iu891aEmulator
from .emulators.pty_device import PtyDevice
from .emulators.sticks import AmberEmulator, CulEmulator, Rc1180Emulator
from .test_sources import Collector

FRAME = bytes.fromhex("1844AE4C4455223368077A55000000041389E20100023B0000")
LONG = bytes.fromhex(vector("A7")["frame_hex"])[:143]  # 143 bytes: a long AMIplus frame
FAST = Backoff(first=0.05, cap=0.3)


@dataclass(frozen=True)
class Stick:
    """One dialect and its emulator; `corrupt` names the emulator's damage switch, if any."""

    name: str
    dialect: Callable[[], Dialect]
    emulator: Callable[..., PtyDevice]
    corrupt: str | None
    error: str | None  # the error reason a damaged frame counts as
    has_session: bool = True


STICKS = [
    Stick("im871a", Im871a, Im871aEmulator, "corrupt_fcs", "checksum"),
    Stick("iu891a", Iu891a, Iu891aEmulator, "corrupt_fcs", "checksum"),
    Stick(
        "amber-command",
        Amber,
        lambda **kw: AmberEmulator(transparent=False, **kw),
        "corrupt",
        "checksum",
    ),
    Stick(
        "amber-transparent", Amber, lambda **kw: AmberEmulator(transparent=True, **kw), None, None
    ),
    Stick("cul", Cul, CulEmulator, "corrupt", "crc"),
    Stick("rc1180", Rc1180, Rc1180Emulator, None, None, has_session=False),
]
WITH_SESSION = [s for s in STICKS if s.has_session]


def start(
    stick: Stick, device: str, sink: Collector, receivers: list[Receiver], **options: Any
) -> Receiver:
    dialect = stick.dialect()
    options.setdefault("reply_timeout", 1.0)
    receiver = Receiver(
        stick.name, SerialSource(device, dialect.baudrate), dialect, sink, backoff=FAST, **options
    )
    receivers.append(receiver)
    receiver.start()
    return receiver


def send(emulator: PtyDevice, frame: bytes, **options: Any) -> bool:
    sent: bool = emulator.telegram(frame, **options)  # type: ignore[attr-defined]
    return sent


@pytest.mark.parametrize("stick", STICKS, ids=lambda s: s.name)
def test_frames_whole_split_after_garbage_and_after_damage(
    stick: Stick, emulators: list[PtyDevice], receivers: list[Receiver]
) -> None:
    emulator = stick.emulator()
    emulators.append(emulator)
    sink = Collector()
    receiver = start(stick, emulator.path, sink, receivers)
    assert wait_until(lambda: receiver.stats.up), receiver.stats.down_reason
    if stick.has_session:
        assert emulator.mode is LinkMode.T1  # type: ignore[attr-defined]
    assert send(emulator, FRAME)
    assert send(emulator, LONG, byte_by_byte=True)
    assert send(emulator, FRAME, garbage_before=bytes.fromhex("112233"))
    expected = 3
    if stick.corrupt:
        assert send(emulator, FRAME, **{stick.corrupt: True})
        assert send(emulator, LONG)
        expected += 1
    assert wait_until(lambda: len(sink.data) >= expected)
    assert sink.data == [FRAME, LONG, FRAME, *([LONG] if stick.corrupt else [])]
    assert all(frame.rssi_dbm is not None for _, frame in sink.frames)
    if stick.error:
        assert wait_until(lambda: receiver.stats.errors[stick.error] >= 1)  # type: ignore[index]
    assert receiver.stats.frames == expected


@pytest.mark.parametrize("stick", STICKS, ids=lambda s: s.name)
def test_a_replugged_stick_behind_the_same_link_is_set_up_again(
    stick: Stick, tmp_path: Path, emulators: list[PtyDevice], receivers: list[Receiver]
) -> None:
    link = tmp_path / "usb-stick-if00-port0"  # like /dev/serial/by-id/...
    first = stick.emulator()
    emulators.append(first)
    link.symlink_to(first.path)
    sink = Collector()
    receiver = start(stick, str(link), sink, receivers)
    assert wait_until(lambda: receiver.stats.up)
    assert send(first, FRAME)
    assert wait_until(lambda: len(sink.data) == 1)
    first.unplug()
    assert wait_until(lambda: not receiver.stats.up)
    second = stick.emulator()  # a new tty name; the stick forgot its mode
    emulators.append(second)
    if stick.has_session:
        assert not send(second, LONG)  # deaf until the host sets the mode again
    link.unlink()
    link.symlink_to(second.path)
    assert wait_until(lambda: receiver.stats.up and second.mode is not None)  # type: ignore[attr-defined]
    assert send(second, LONG)
    assert wait_until(lambda: len(sink.data) == 2)
    assert sink.data == [FRAME, LONG]
    assert receiver.stats.reconnects >= 1


@pytest.mark.parametrize(
    "stick", [s for s in WITH_SESSION if s.name != "amber-transparent"], ids=lambda s: s.name
)
def test_a_telegram_between_command_and_acknowledgement_is_kept(
    stick: Stick, emulators: list[PtyDevice], receivers: list[Receiver]
) -> None:
    emulator = stick.emulator(telegram_before_ack=FRAME)
    emulators.append(emulator)
    sink = Collector()
    receiver = start(stick, emulator.path, sink, receivers)
    assert wait_until(lambda: receiver.stats.up), receiver.stats.down_reason
    assert wait_until(lambda: len(sink.data) >= 1)
    assert set(sink.data) == {FRAME}


@pytest.mark.parametrize("stick", WITH_SESSION, ids=lambda s: s.name)
def test_a_stick_that_never_answers_is_down_with_the_reason(
    stick: Stick, emulators: list[PtyDevice], receivers: list[Receiver]
) -> None:
    emulator = stick.emulator(silent=True)
    emulators.append(emulator)
    receiver = start(stick, emulator.path, Collector(), receivers, reply_timeout=0.3)
    assert wait_until(lambda: (receiver.stats.down_reason or "").startswith("no answer to"))
    stats = receiver.stats
    assert not stats.up
    assert "within 0.3 s" in (stats.down_reason or "")
    assert wait_until(lambda: receiver.stats.reconnects >= 1)  # and it keeps trying


@pytest.mark.parametrize("stick", [STICKS[0], STICKS[4]], ids=lambda s: s.name)
def test_the_watchdog_reopens_a_silent_stick(
    stick: Stick, emulators: list[PtyDevice], receivers: list[Receiver]
) -> None:
    emulator = stick.emulator()
    emulators.append(emulator)
    receiver = start(stick, emulator.path, Collector(), receivers, silence_timeout=0.5)
    assert wait_until(lambda: receiver.stats.up)
    sessions = len(emulator.commands)
    assert wait_until(lambda: receiver.stats.reconnects >= 1, timeout=15)
    assert wait_until(lambda: len(emulator.commands) > sessions)  # set up again after reopening
    assert "watchdog" in (receiver.stats.down_reason or "") or receiver.stats.up


def test_pty_paths_are_real_ttys(emulators: list[PtyDevice]) -> None:
    emulator = Im871aEmulator()
    emulators.append(emulator)
    assert os.isatty(emulator.slave) and emulator.path.startswith("/dev/pts/")
