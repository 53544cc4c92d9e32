"""Telegrams as receivers hand them over: plain hex, rtl_wmbus, wmbusmeters `telegram=|..|`,
rtl_433 JSON, JSON objects that carry the frame, and raw binary frames.

Sans-I/O: one line in, the frames it holds (or why it holds none) out; or a whole message (an MQTT
payload, a UDP datagram, a TCP connection's bytes up to its close), which is one binary frame when
it is not text. Used by the `decode` command and by every line-based receiver (subprocess, TCP,
UDP, MQTT, stdin, replay files): one grammar for all of them.
"""

from __future__ import annotations

import enum
import json
import math
import re
import string
from dataclasses import dataclass
from typing import Any

from ..wmbus import format_a_length
from .base import Dialect, ErrorReason, Event, Frame, FrameError, Framer


class LineFormat(enum.Enum):
    HEX = "hex"
    RTL_WMBUS = "rtl_wmbus"
    TELEGRAM_LOG = "telegram=|..|"
    RTL_433_JSON = "rtl_433 JSON"
    JSON = "JSON"
    BINARY = "binary"


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
#: A JSON object's `mode` as a link mode: rtl_433 and ESPHome write the letter only.
_JSON_MODES = {"T": "T1", "C": "C1", "S": "S1", **{mode: mode for mode in _RTL_WMBUS_MODES}}
#: Where a JSON object may carry the frame (hex), the first present wins.
FRAME_KEYS = ("frame", "telegram", "data", "raw", "hex")
#: Where a JSON object may carry the signal in dBm, the first present wins.
RSSI_KEYS = ("rssi_dbm", "rssi")

NOT_A_TELEGRAM = (
    "This line is not a telegram. Expected hex digits (e.g. 4E4401...), an rtl_wmbus line "
    "(T1;1;1;...;0x...), a wmbusmeters line (telegram=|...|), a JSON object with the frame in "
    f"{', '.join(repr(key) for key in FRAME_KEYS)}, or an rtl_433 JSON line."
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


def _number(value: Any) -> float | None:
    """A finite JSON number (not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _json(line: str) -> list[LineItem]:
    """A JSON object: an rtl_433 event (it names its `model`), or any object that carries the
    frame as hex under one of `FRAME_KEYS`, with its signal under `RSSI_KEYS` and its `mode`."""
    try:
        event = json.loads(line)
    except ValueError:
        return [LineProblem("malformed", "The line starts like JSON but is not valid JSON.")]
    if not isinstance(event, dict):
        return [LineProblem("malformed", NOT_A_TELEGRAM)]
    model = event.get("model")
    if model is not None and (model != _RTL_433_MODEL or not isinstance(event.get("data"), str)):
        return [
            LineProblem(
                "malformed",
                f"This rtl_433 line is from the model {model!r}, not a wireless M-Bus "
                f"telegram (model {_RTL_433_MODEL!r} with a 'data' field).",
            )
        ]
    key = next((k for k in FRAME_KEYS if isinstance(event.get(k), str)), None)
    if key is None:
        return [
            LineProblem(
                "malformed",
                "This JSON object carries no telegram: expected its hex digits under one of "
                f"{', '.join(repr(k) for k in FRAME_KEYS)}.",
            )
        ]
    # rtl_433 with `-M level` gives `rssi` in dB below the SDR's full scale; others give dBm.
    rssi = next((n for k in RSSI_KEYS if (n := _number(event.get(k))) is not None), None)
    line_format = LineFormat.JSON if model is None else LineFormat.RTL_433_JSON
    return [_hex_frame(event[key], line_format, rssi, _JSON_MODES.get(str(event.get("mode"))))]


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
        return _json(text)
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


#: Bytes that text never holds: control characters other than tab, LF and CR, and DEL.
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def is_text(data: bytes) -> bool:
    """Whether bytes are text: UTF-8 without control characters other than tab, LF and CR."""
    if _CONTROL.search(data):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def binary_frame(data: bytes) -> LineItem:
    """Bytes that are not text as one frame, when their first byte (L) fits their length: the
    frame without block CRCs (L + 1 bytes; format B counts its CRCs in L) or with format A's."""
    length = data[0]
    if len(data) in (length + 1, format_a_length(length)):
        return LineFrame(data, LineFormat.BINARY)
    return LineProblem(
        "malformed",
        f"{len(data)} bytes of binary data are not one frame: their first byte (L = {length}) "
        f"announces {length + 1} bytes, or {format_a_length(length)} with block CRCs.",
    )


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
    """One stream (a process's output, a TCP connection, a datagram, an MQTT message) to frames:
    newline-separated text, or, when its first bytes are not text, one binary frame that ends
    with the stream. Undecided until a byte that text never holds, or a whole line, arrives. A
    text line longer than `MAX_LINE_BYTES` (with its newline or without) and binary bytes longer
    than `LONGEST_FRAME` are framing errors and are never held whole."""

    def __init__(self) -> None:
        self._partial = b""
        self._binary: bool | None = None  # None: not known yet
        self._skipping = False  # inside a line (text) or a stream (binary) reported too long

    def feed(self, data: bytes, now: float) -> list[Event]:
        if self._binary:
            return self._hold(data)
        events: list[Event] = []
        if self._skipping:
            end = data.find(b"\n")
            if end < 0:
                return events
            data, self._skipping = data[end + 1 :], False
        buffer = self._partial + data
        if self._binary is None:
            lines_end = buffer.rfind(b"\n")
            if _CONTROL.search(buffer) or not is_text(buffer[: max(lines_end, 0)]):
                self._binary, self._partial = True, b""
                return self._hold(buffer)
            if lines_end >= 0:
                self._binary = False
        lines = buffer.split(b"\n")
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

    def _hold(self, data: bytes) -> list[Event]:
        """Binary bytes wait for the end of the stream, up to the longest frame."""
        if self._skipping:
            return []
        self._partial += data
        if len(self._partial) <= LONGEST_FRAME:
            return []
        self._partial, self._skipping = b"", True
        return [
            FrameError(
                ErrorReason.FRAMING,
                f"over {LONGEST_FRAME} bytes of binary data, more than one frame can be",
            )
        ]

    def end(self, now: float) -> list[Event]:
        """A connection, datagram or message ended: its last line needs no newline (ESPHome
        sends none), and its binary bytes are one frame."""
        partial, self._partial = self._partial, b""
        skipping, self._skipping = self._skipping, False
        if self._binary or (self._binary is None and not is_text(partial)):
            return self.events([binary_frame(partial)], now) if partial and not skipping else []
        return self.line(partial.decode("utf-8", "replace"), now) if partial.strip() else []

    @staticmethod
    def line(text: str, now: float) -> list[Event]:
        """The events of one complete line."""
        return LineFramer.events(parse_line(text), now)

    @staticmethod
    def events(items: list[LineItem], now: float) -> list[Event]:
        """Frames and problems as a receiver's events."""
        return [
            Frame(item.frame, now, item.rssi_dbm, item.link_mode)
            if isinstance(item, LineFrame)
            else FrameError(_LINE_ERRORS.get(item.code, ErrorReason.FRAMING), item.message)
            for item in items
        ]


class Lines(Dialect):
    """Receivers that hand over text lines or whole binary frames: rtl_wmbus, rtl_433, ESPHome
    gateways, MQTT brokers."""

    name = "lines"

    def framer(self) -> Framer:
        return LineFramer()
