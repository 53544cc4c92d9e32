"""CUL, nanoCUL and CUN sticks running culfw with wM-Bus (docs/receivers.md, section 4).

culfw prints ASCII lines: a telegram is ``b`` (``bY`` for frame format B) and the uppercase hex
of the whole frame with its DLL CRCs, then, once `X21` enabled it, two hex digits of LQI and two
of RSSI. Everything else (``V 1.67 nanoCUL868``, ``TMODE``, ``OFF``) answers a command.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..wmbus import CRCError, format_a_length, strip_format_a, strip_format_b
from .amber import MIN_L, rssi_dbm
from .base import (
    Dialect,
    ErrorReason,
    Event,
    Frame,
    FrameError,
    Framer,
    LinkMode,
    Reply,
    SessionStep,
)

MAX_LINE = 1024  # a format-B frame of L = 255 with LQI and RSSI takes under 600 characters
FIRMWARE_LIMIT = (
    "standard culfw buffers cut telegrams longer than about 148 bytes, and AMIplus frames "
    "are up to 163 bytes on air: flash a culfw build with a larger buffer (300-byte builds exist)"
)
# The telegram at the end of a line: its marker is lowercase and its hex uppercase, so whatever
# precedes the match is noise (a nanoCUL rebooting as the port opens, line noise).
_TELEGRAM = re.compile(rb"b(Y?)([0-9A-F]+)\Z")
_HEX = re.compile(rb"[0-9A-F]+")
_PRINTABLE = re.compile(rb"[\x20-\x7e]")
_CRC_SIZE = 2


@dataclass(frozen=True, slots=True)
class _FrameFormat:
    """How a telegram line's frame format sizes and strips the frame."""

    on_air: Callable[[int], int]  # bytes with CRCs, from L
    strip: Callable[[bytes], bytes]  # verify and remove the CRCs
    min_length: int  # the smallest L that holds a header
    link_mode: str | None  # what the format says about the mode (frame B exists only in C1)


#: Line prefix after ``b``: format A (L excludes CRCs) or ``Y``, format B (L counts them).
FRAME_FORMATS = {
    b"": _FrameFormat(format_a_length, strip_format_a, MIN_L, None),
    b"Y": _FrameFormat(lambda length: length + 1, strip_format_b, MIN_L + _CRC_SIZE, "C1"),
}
#: Mode commands, and the answer that confirms each.
MODE_COMMANDS = {LinkMode.T1: (b"brt\r\n", b"TMODE"), LinkMode.C1_T1: (b"brc\r\n", b"CMODE")}
MODE_ANSWERS = frozenset({b"TMODE", b"CMODE", b"SMODE", b"OFF"})


def _too_short(why: str) -> FrameError:
    return FrameError(ErrorReason.TOO_SHORT, f"{why}; {FIRMWARE_LIMIT}")


class CulFramer(Framer):
    """culfw lines (CRLF or LF, split anywhere) to frames with RSSI, and replies.

    The frame's length follows from L (format A: L plus block CRCs; format B: L + 1), so the
    optional LQI/RSSI suffix is whatever follows it. The firmware checked the CRCs before
    printing, but the line may have been cut since: this framer verifies them again and emits
    the CRC-free frame. Standard culfw buffers truncate telegrams longer than about 148 bytes
    while AMIplus frames reach 163 bytes on air, so long telegrams arrive as odd-length or
    short lines (TOO_SHORT errors that name the limit) until the stick runs a build with a
    larger buffer. RSSI: int8(r) / 2 - 74 dBm, the scale of Amber's `rssi_dbm` (docs/receivers.md,
    section 8).
    Noise before a telegram on its line, or non-printable bytes before a reply, is skipped as
    FRAMING; so is a bare hex line, the tail of a telegram whose start was missed. Other
    lines are `Reply(0, line)`.
    """

    def __init__(self) -> None:
        self._partial = b""
        self._overlong = False  # the rest of the current line is dropped (already reported)

    def feed(self, data: bytes, now: float) -> list[Event]:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if self._overlong and lines:
            lines.pop(0)
            self._overlong = False
        events: list[Event] = []
        for line in lines:
            events += self._overlong_line() if len(line) > MAX_LINE else self._line(line, now)
        if len(self._partial) > MAX_LINE:
            events += self._overlong_line()
            self._overlong = True
            self._partial = b""
        return events

    @staticmethod
    def _overlong_line() -> list[Event]:
        return [FrameError(ErrorReason.FRAMING, f"a line of over {MAX_LINE} bytes dropped")]

    def _line(self, line: bytes, now: float) -> list[Event]:
        line = line.rstrip(b"\r")
        telegram = _TELEGRAM.search(line)
        if telegram:
            start = telegram.start()
        else:
            printable = _PRINTABLE.search(line)
            start = printable.start() if printable else len(line)
        events: list[Event] = []
        if start:
            events.append(FrameError(ErrorReason.FRAMING, f"skipped {start} bytes of noise"))
        text = line[start:]
        if telegram:
            events.append(self._telegram(FRAME_FORMATS[telegram[1]], telegram[2], now))
        elif text.startswith(b"b") or _HEX.fullmatch(text):
            events.append(
                FrameError(
                    ErrorReason.FRAMING,
                    f"not a whole telegram line: {text[:40]!r} (its start was lost, or it "
                    "holds characters other than uppercase hex)",
                )
            )
        elif text:
            events.append(Reply(0, text))
        return events

    @staticmethod
    def _telegram(frame_format: _FrameFormat, digits: bytes, now: float) -> Event:
        if len(digits) % 2:
            return _too_short(f"the telegram line has an odd number of hex digits ({len(digits)})")
        raw = bytes.fromhex(digits.decode("ascii"))
        if not raw or raw[0] < frame_format.min_length:
            return FrameError(ErrorReason.TOO_SHORT, "the telegram cannot hold a wM-Bus header")
        size = frame_format.on_air(raw[0])
        if len(raw) < size:
            return _too_short(
                f"the telegram line holds {len(raw)} bytes but its L = 0x{raw[0]:02X} "
                f"announces {size} with CRCs"
            )
        suffix = raw[size:]
        if len(suffix) not in (0, 2):
            return FrameError(
                ErrorReason.FRAMING,
                f"{len(suffix)} bytes follow the frame; culfw prints none, or LQI and RSSI",
            )
        try:
            frame = frame_format.strip(raw[:size])
        except CRCError as error:
            return FrameError(ErrorReason.CRC, error.message)
        rssi = rssi_dbm(suffix[1]) if suffix else None
        return Frame(frame, now, rssi, frame_format.link_mode)


def _mode_verdict(expected: bytes, mode: LinkMode) -> Callable[[Reply], str | None]:
    def verdict(reply: Reply) -> str | None:
        if reply.payload == expected:
            return None
        return (
            f"the firmware answered {reply.payload.decode('ascii')} instead of "
            f"{expected.decode('ascii')}: this culfw build cannot receive {mode.value}; "
            "flash a culfw build with wM-Bus T and C modes"
        )

    return verdict


class Cul(Dialect):
    """culfw at 38400 8N1: check the version, set the mode, enable RSSI/LQI reporting.

    Arduino nanoCULs reboot when the port opens, which forgets the mode: the session runs
    after every open. `X21` gets no answer.
    """

    name = "cul"
    baudrate = 38400

    def framer(self) -> Framer:
        return CulFramer()

    def session(self, mode: LinkMode) -> list[SessionStep]:
        command, answer = MODE_COMMANDS[mode]
        return [
            SessionStep(
                "ask the firmware version", b"V\r\n", accepts=lambda r: b"CUL" in r.payload
            ),
            SessionStep(
                f"set link mode {mode.value}",
                command,
                accepts=lambda r: r.payload in MODE_ANSWERS,
                verdict=_mode_verdict(answer, mode),
            ),
            SessionStep("report RSSI and LQI", b"X21\r\n", accepts=lambda r: False, timeout=0),
        ]
