"""Text lines that carry telegrams: plain hex, rtl_wmbus, wmbusmeters `telegram=|..|`, rtl_433 JSON.

Sans-I/O: one line in, the frames it holds (or why it holds none) out. Used by the `decode`
command and by every line-based receiver (subprocess, TCP, UDP, stdin, replay files).
"""

from __future__ import annotations

import enum
import json
import math
import re
import string
from dataclasses import dataclass

from ..wmbus import format_a_length
from .base import Dialect, ErrorReason, Event, Frame, FrameError, Framer


class LineFormat(enum.Enum):
    HEX = "hex"
    RTL_WMBUS = "rtl_wmbus"
    TELEGRAM_LOG = "telegram=|..|"
    RTL_433_JSON = "rtl_433 JSON"


@dataclass(frozen=True, slots=True)
class LineFrame:
    """A frame found in a line, as the receiver handed it over (CRCs possibly still in)."""

    frame: bytes
    line_format: LineFormat
    rssi_dbm: float | None = None
    link_mode: str | None = None  # "T1", "C1" where the line says


@dataclass(frozen=True, slots=True)
class LineProblem:
    """A line, or part of one, that holds no usable frame; `code` follows docs/contracts.md, 2."""

    code: str
    message: str


LineItem = LineFrame | LineProblem

_HEX_DIGITS = frozenset(string.hexdigits)
_SEPARATORS = str.maketrans("", "", " \t|_:-")
_RTL_WMBUS_MODES = frozenset({"T1", "C1", "S1", "T2", "C2", "S2"})
_TELEGRAM_LOG = re.compile(r"telegram=\|?([0-9A-Fa-f|_ ]+?)\|?(?:\s*\+\d+(?:\.\d+)?)?\s*$")
_RTL_433_MODEL = "Wireless-MBus"
_RTL_433_MODES = {"T": "T1", "C": "C1", "S": "S1"}

NOT_A_TELEGRAM = (
    "This line is not a telegram. Expected hex digits (e.g. 4E4401...), an rtl_wmbus line "
    "(T1;1;1;...;0x...), a wmbusmeters line (telegram=|...|) or an rtl_433 JSON line."
)


def _hex_frame(
    text: str, line_format: LineFormat, rssi: float | None = None, mode: str | None = None
) -> LineItem:
    compact = text.translate(_SEPARATORS)
    if compact[:2] in ("0x", "0X"):
        compact = compact[2:]
    if not compact or not _HEX_DIGITS.issuperset(compact):
        return LineProblem("malformed", NOT_A_TELEGRAM)
    if len(compact) % 2:
        return LineProblem(
            "malformed",
            f"The telegram has an odd number of hex digits ({len(compact)}): a character "
            "was lost on the way; copy the whole line again.",
        )
    return LineFrame(bytes.fromhex(compact), line_format, rssi, mode)


def _rtl_433(line: str) -> list[LineItem]:
    try:
        event = json.loads(line)
    except ValueError:
        return [LineProblem("malformed", "The line starts like JSON but is not valid JSON.")]
    if not isinstance(event, dict):
        return [LineProblem("malformed", NOT_A_TELEGRAM)]
    model = event.get("model")
    data = event.get("data")
    if model != _RTL_433_MODEL or not isinstance(data, str):
        return [
            LineProblem(
                "malformed",
                f"This rtl_433 line is from the model {model!r}, not a wireless M-Bus "
                f"telegram (model {_RTL_433_MODEL!r} with a 'data' field).",
            )
        ]
    mode = event.get("mode")
    rssi = event.get("rssi")  # with `-M level`: dB below the SDR's full scale
    level = float(rssi) if isinstance(rssi, int | float) and not isinstance(rssi, bool) else None
    if level is not None and not math.isfinite(level):
        level = None
    return [_hex_frame(data, LineFormat.RTL_433_JSON, level, _RTL_433_MODES.get(str(mode)))]


def _rssi_dbm(text: str) -> float | None:
    """rtl_wmbus prints unitless magnitudes; ESPHome prints negative dBm in the same place."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value < 0 else None


def _rtl_wmbus(fields: list[str]) -> list[LineItem]:
    mode_at = next(i for i, f in enumerate(fields) if f.strip() in _RTL_WMBUS_MODES)
    flags = fields[mode_at + 1 : mode_at + 3]
    frames = [f for f in fields[mode_at + 1 :] if f.strip()[:2] in ("0x", "0X")]
    if not frames:
        return [LineProblem("malformed", "This rtl_wmbus line holds no 0x... telegram.")]
    if [f.strip() for f in flags] != ["1", "1"]:
        return [
            LineProblem(
                "crc",
                "rtl_wmbus marked this frame as damaged (CRC or 3-out-of-6 check failed, "
                "flags " + ";".join(flags) + "): the signal was too weak or disturbed.",
            )
            for _ in frames
        ]
    rssi_fields = fields[mode_at + 4 : mode_at + 5]
    rssi = _rssi_dbm(rssi_fields[0]) if rssi_fields else None
    mode = fields[mode_at].strip()
    return [_hex_frame(f, LineFormat.RTL_WMBUS, rssi, mode) for f in frames]


def parse_line(line: str) -> list[LineItem]:
    """The frames in one text line; blank lines and `#` comments give an empty list."""
    try:
        frame = bytes.fromhex(line)  # the common case, plain hex, at C speed
    except ValueError:
        pass
    else:
        return [LineFrame(frame, LineFormat.HEX)] if frame else []
    text = line.strip()
    if not text or text.startswith("#"):
        return []
    if text.startswith("{"):
        return _rtl_433(text)
    if "telegram=" in text:
        match = _TELEGRAM_LOG.search(text)
        if match is None:
            return [LineProblem("malformed", "The telegram=|...| line holds no hex telegram.")]
        return [_hex_frame(match.group(1), LineFormat.TELEGRAM_LOG)]
    if ";" in text:
        fields = text.split(";")
        if any(f.strip() in _RTL_WMBUS_MODES for f in fields):
            return _rtl_wmbus(fields)
    if text.startswith("rtl_wmbus:"):
        return [LineProblem("malformed", f"A message from rtl_wmbus, not a telegram: {text}")]
    return [_hex_frame(text, LineFormat.HEX)]


#: Line problems by code, as receiver error reasons (a line that is no telegram is framing).
_LINE_ERRORS = {"crc": ErrorReason.CRC, "truncated": ErrorReason.TOO_SHORT}
#: The longest frame a receiver can hand over: L = 255 in format A with its 17 block CRCs.
LONGEST_FRAME = format_a_length(0xFF)  # 290 bytes
#: The longest line worth reading (docs/receivers.md, 6): the longest frame in hex with a
#: separator after every byte (3 x 290 = 870 characters) leaves 1,178 for the rest of the
#: line, twice what rtl_433's JSON (the longest format) adds with every `-M` option but `bits`.
#: A longer line holds no telegram; keeping it would let a sender fill the memory.
MAX_LINE_BYTES = 2048
TOO_LONG = f"a line longer than {MAX_LINE_BYTES} bytes, which no telegram needs: skipped"


class LineFramer(Framer):
    """Newline-separated text (hex, rtl_wmbus, telegram=|..|, rtl_433 JSON) to frames; a line
    longer than `MAX_LINE_BYTES`, with its newline or without, is a framing error and is never
    held whole."""

    def __init__(self) -> None:
        self._partial = b""
        self._skipping = False  # inside a line already reported as too long

    def feed(self, data: bytes, now: float) -> list[Event]:
        events: list[Event] = []
        if self._skipping:
            end = data.find(b"\n")
            if end < 0:
                return events
            data, self._skipping = data[end + 1 :], False
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if len(line) > MAX_LINE_BYTES:
                events.append(FrameError(ErrorReason.FRAMING, TOO_LONG))
            else:
                events.extend(self.line(line.decode("utf-8", "replace"), now))
        if len(self._partial) > MAX_LINE_BYTES:
            self._partial, self._skipping = b"", True
            events.append(FrameError(ErrorReason.FRAMING, TOO_LONG))
        return events

    def end(self, now: float) -> list[Event]:
        """A connection or datagram ended: its last line needs no newline (ESPHome sends none)."""
        partial, self._partial, self._skipping = self._partial, b"", False
        return self.line(partial.decode("utf-8", "replace"), now) if partial.strip() else []

    @staticmethod
    def line(text: str, now: float) -> list[Event]:
        """The events of one complete line."""
        return [
            Frame(item.frame, now, item.rssi_dbm, item.link_mode)
            if isinstance(item, LineFrame)
            else FrameError(_LINE_ERRORS.get(item.code, ErrorReason.FRAMING), item.message)
            for item in parse_line(text)
        ]


class Lines(Dialect):
    """Receivers that print one telegram per line: rtl_wmbus, rtl_433, ESPHome, MQTT bridges."""

    name = "lines"

    def framer(self) -> Framer:
        return LineFramer()
