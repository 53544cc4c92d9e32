"""IMST sticks: the iM871A-USB (HCI frames, 57600 baud) and the iU891A-XL (SLIP frames, 115200).

Sans-I/O framers and the sessions that put a stick into T1 after every open (docs/receivers.md,
section 2). Both families protect their serial frames with the same CRC-16/X-25.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

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

MIN_FRAME = 10  # L C M M A A A A V T: the shortest frame that holds a wM-Bus header


def crc16_x25(data: bytes) -> int:
    """CRC-16/X-25 (reflected polynomial 0x8408, init and final XOR 0xFFFF); sent LSB first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def _checksum_error(what: str, sent: int, computed: int) -> FrameError:
    return FrameError(
        ErrorReason.CHECKSUM,
        f"{what}: checksum {sent:04X} on the wire, {computed:04X} computed; frame dropped",
    )


def _status_verdict(reply: Reply) -> str | None:
    """iU891A responses start with a status byte; 0 means the command was carried out."""
    if not reply.payload:
        return "the stick's reply holds no status byte"
    if reply.payload[0] != 0:
        return f"the stick answered with status 0x{reply.payload[0]:02X} (0 means OK)"
    return None


def _mode_verdict(
    names: dict[int, str], wanted: int, reported: Callable[[Reply], int | str]
) -> Callable[[Reply], str | None]:
    """A verdict comparing the link mode a configuration reply reports with the one we set."""

    def verdict(reply: Reply) -> str | None:
        got = reported(reply)
        if isinstance(got, str):
            return got
        if got == wanted:
            return None
        return (
            f"the stick reports link mode 0x{got:02X} ({names.get(got, 'unknown')}) "
            f"after being set to {names[wanted]} (0x{wanted:02X})"
        )

    return verdict


# --- iM871A: HCI frames ------------------------------------------------------------------------

HCI_SOF = 0xA5
HCI_HEADER = 4  # SOF, control/endpoint, message id, payload length
HCI_RESERVED = 0x1  # control-nibble bits
HCI_TIMESTAMP = 0x2
HCI_RSSI = 0x4
HCI_FCS = 0x8
# Trailers after the payload, in wire order, by control bit: timestamp, RSSI, FCS.
HCI_TRAILERS = {HCI_TIMESTAMP: 4, HCI_RSSI: 1, HCI_FCS: 2}
HCI_ENDPOINTS = {1: "device management", 2: "radio link", 3: "radio-link test", 4: "hardware test"}
DEVICE_MANAGEMENT = 1
RADIO_LINK = 2
WMBUSMSG_IND = 0x03  # radio link: a received telegram

# Device-management message ids (requests; each response is the request id + 1).
IM871A_PING = 0x01
IM871A_SET_CONFIG = 0x03
IM871A_GET_CONFIG = 0x05

IM871A_LINK_MODES = {
    0x00: "S1",
    0x01: "S1-m",
    0x02: "S2",
    0x03: "T1",
    0x04: "T2",
    0x05: "R2",
    0x06: "C1 format A",
    0x07: "C1 format B",
    0x08: "C2 format A",
    0x09: "C2 format B",
    0x0A: "C1+T1",  # firmware 0x14 and later
}
IM871A_MODE_CODES = {LinkMode.T1: 0x03, LinkMode.C1_T1: 0x0A}


IM871A_RSSI_TOP = 230  # the raw value where the fit's range ends (-7.5 dBm)


def im871a_rssi_dbm(raw: int) -> float:
    """Approximate dBm of the iM871A's raw RSSI byte (a rough fit, not a calibration).

    The stick's byte is not in dBm; this is a linear fit (docs/receivers.md, section 8), good
    enough to compare receptions, not to quote absolute signal levels. It stays at its top
    value from raw 230 on instead of jumping to 0 dBm there, so a stronger signal never reads
    weaker and no step appears where there is none.
    """
    return -100 + 0.5 * (min(raw, IM871A_RSSI_TOP) - 45)


def im871a_command(message: int, payload: bytes = b"") -> bytes:
    """A host HCI frame to the device-management endpoint (control 0: no trailers, no FCS)."""
    return bytes((HCI_SOF, DEVICE_MANAGEMENT, message, len(payload))) + payload


def _hci_header_problem(control_endpoint: int) -> str | None:
    control, endpoint = control_endpoint >> 4, control_endpoint & 0x0F
    if control & HCI_RESERVED:
        return f"A5 {control_endpoint:02X}: reserved control bit 0x1 set, not a frame start"
    if endpoint not in HCI_ENDPOINTS:
        return f"A5 {control_endpoint:02X}: no endpoint {endpoint} (1-4), not a frame start"
    return None


class Im871aFramer(Framer):
    """iM871A HCI byte stream to telegrams (endpoint 2, message 0x03) and endpoint-1 replies.

    Frames of the test endpoints 3 and 4 and other radio-link messages are valid but not for us:
    they are skipped without an event. Garbage costs one FRAMING error per run of skipped bytes;
    a bad FCS drops that frame only (scanning resumes right after its A5).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()  # starts with A5 between feeds; at most one frame long
        self._skipping = False  # inside a run of discarded bytes already reported

    def feed(self, data: bytes, now: float) -> list[Event]:
        buffer = self._buffer
        buffer += data
        events: list[Event] = []
        while buffer:
            if buffer[0] != HCI_SOF:
                self._skip(events, f"byte {buffer[0]:02X} outside any frame (frames start A5)")
                continue
            if len(buffer) < 2:
                break
            problem = _hci_header_problem(buffer[1])
            if problem is not None:
                self._skip(events, problem)
                continue
            if len(buffer) < HCI_HEADER:
                break
            control = buffer[1] >> 4
            size = HCI_HEADER + buffer[3]
            size += sum(n for bit, n in HCI_TRAILERS.items() if control & bit)
            if len(buffer) < size:
                break
            event = self._decode(bytes(buffer[:size]), now)
            if isinstance(event, FrameError) and event.reason is ErrorReason.CHECKSUM:
                del buffer[:1]  # the rest may hide the next frame's A5
                self._skipping = True  # what follows up to it belongs to this rejected frame
            else:
                del buffer[:size]
                self._skipping = False
            if event is not None:
                events.append(event)
        return events

    def end(self, now: float) -> list[Event]:
        """A partial frame left at the end of the stream is reported, then forgotten."""
        pending, self._buffer = len(self._buffer), bytearray()
        self._skipping = False
        if not pending:
            return []
        return [FrameError(ErrorReason.FRAMING, f"stream ended {pending} bytes into a frame")]

    def _skip(self, events: list[Event], why: str) -> None:
        """Drop bytes up to the next A5; the first skip of a run is reported."""
        found = self._buffer.find(HCI_SOF, 1)
        del self._buffer[: found if found > 0 else len(self._buffer)]
        if not self._skipping:
            events.append(FrameError(ErrorReason.FRAMING, why + "; skipped to the next A5"))
            self._skipping = True

    @staticmethod
    def _decode(frame: bytes, now: float) -> Event | None:
        control, endpoint, message = frame[1] >> 4, frame[1] & 0x0F, frame[2]
        length = frame[3]
        trailer = HCI_HEADER + length
        if control & HCI_FCS:
            sent = int.from_bytes(frame[-2:], "little")
            computed = crc16_x25(frame[1:-2])
            if sent != computed:
                where = f"HCI {HCI_ENDPOINTS[endpoint]} message {message:02X}"
                return _checksum_error(where, sent, computed)
        payload = frame[HCI_HEADER:trailer]
        if endpoint == DEVICE_MANAGEMENT:
            return Reply(message, payload)
        if (endpoint, message) != (RADIO_LINK, WMBUSMSG_IND):
            return None
        wmbus = bytes((length,)) + payload  # the HCI length is the wM-Bus L field
        if len(wmbus) < MIN_FRAME:
            return FrameError(ErrorReason.TOO_SHORT, f"a {len(wmbus)}-byte telegram: {wmbus.hex()}")
        rssi = None
        if control & HCI_RSSI:
            at = trailer + (HCI_TRAILERS[HCI_TIMESTAMP] if control & HCI_TIMESTAMP else 0)
            rssi = im871a_rssi_dbm(frame[at])
        return Frame(wmbus, now, rssi)


# The get-config reply holds IIF1, the fields IIF1 selects, IIF2 and the fields IIF2 selects,
# each group in bit order (bit 0 first). IIF1 bits: 0 device mode (1 byte), 1 link mode (1),
# 2 C field (1), 3 manufacturer (2, LE), 4 ID (4, LE), 5 version, 6 device type, 7 radio channel.
# IIF2 bits: 0 power, 1 data rate, 2 RX window, 3 auto power saving, 4 auto RSSI,
# 5 auto timestamp, 6 LED, 7 RTC (1 byte each). A real stick's reply A5 81 06 16 then
#   FF | 00 | 03 | 44 | B3 25 | 78 56 34 12 | 01 | 00 | 01 || FF | 07 02 32 00 01 00 00 00
# adds up to the length 0x16 = 22 in exactly this order: device mode 00, link mode 03, ...,
# auto RSSI 01. The set command `00 02 03 30 01 00` agrees: NVM flag, IIF1 bit 1 -> link mode,
# IIF2 bits 4 and 5 -> auto RSSI 1, auto timestamp 0. So the link mode follows IIF1, after the
# device-mode byte when IIF1 bit 0 is set.
IIF1_DEVICE_MODE = 0x01
IIF1_LINK_MODE = 0x02
IIF2_AUTO_RSSI = 0x10
IIF2_AUTO_TIMESTAMP = 0x20


def im871a_reported_mode(reply: Reply) -> int | str:
    """The link-mode code in a get-config reply, or why it holds none."""
    payload = reply.payload
    if not payload or not payload[0] & IIF1_LINK_MODE:
        return "the stick's configuration reply holds no link mode"
    at = 2 if payload[0] & IIF1_DEVICE_MODE else 1
    if len(payload) <= at:
        return "the stick's configuration reply is cut short before the link mode"
    return payload[at]


class Im871a(Dialect):
    """IMST iM871A-USB and iM170A: HCI at 57600 baud; the link mode is volatile (set per open)."""

    name = "im871a"
    baudrate = 57600

    def framer(self) -> Framer:
        return Im871aFramer()

    def session(self, mode: LinkMode) -> list[SessionStep]:
        code = IM871A_MODE_CODES[mode]
        # NVM flag 0 (temporary), IIF1 = link mode, IIF2 = auto RSSI on, auto timestamp off.
        config = bytes((0x00, IIF1_LINK_MODE, code, IIF2_AUTO_RSSI | IIF2_AUTO_TIMESTAMP, 1, 0))
        return [
            SessionStep(
                "ping", im871a_command(IM871A_PING), lambda r: r.message == IM871A_PING + 1
            ),
            SessionStep(
                f"set link mode {mode.value}",
                im871a_command(IM871A_SET_CONFIG, config),
                lambda r: r.message == IM871A_SET_CONFIG + 1,
            ),
            SessionStep(
                "read the link mode back",
                im871a_command(IM871A_GET_CONFIG),
                lambda r: r.message == IM871A_GET_CONFIG + 1,
                _mode_verdict(IM871A_LINK_MODES, code, im871a_reported_mode),
            ),
        ]


# --- iU891A: SLIP frames -------------------------------------------------------------------------

SLIP_END = 0xC0
SLIP_ESC = 0xDB
SLIP_ESCAPES = {SLIP_END: b"\xdb\xdc", SLIP_ESC: b"\xdb\xdd"}
SLIP_UNESCAPES = {0xDC: SLIP_END, 0xDD: SLIP_ESC}
SLIP_WAKE_UP = bytes((SLIP_END,)) * 30

IU891A_DEVICE_MANAGEMENT = 0x01
IU891A_GATEWAY = 0x09
IU891A_DEVICE_INFO = 0x03
IU891A_GET_CONFIG = 0x01
IU891A_SET_CONFIG = 0x03
IU891A_RX_MESSAGE_IND = 0x20  # on the gateway endpoint: a received telegram, no status byte
IU891A_TELEGRAM_HEADER = 8  # 4 bytes time/counter, 3 bytes flags, 1 byte RSSI (signed dBm)
# Endpoint, message id, the header and a 255-byte telegram, CRC; escaping can double that.
IU891A_MAX_RAW = 2 * (2 + IU891A_TELEGRAM_HEADER + 256 + 2)

IU891A_LINK_MODES = {0: "off", 1: "S", 2: "T", 3: "C+T", 5: "C", 6: "enhanced T"}
IU891A_MODE_CODES = {LinkMode.T1: 2, LinkMode.C1_T1: 3}
IU891A_RX_INDICATION = 0x0002  # option bits; bit 0 (receive filter) cleared: hear every meter
IU891A_TX_INDICATION = 0x0004


def slip_escape(content: bytes) -> bytes:
    """Escape C0 and DB inside a SLIP frame's content."""
    return b"".join(SLIP_ESCAPES.get(byte, bytes((byte,))) for byte in content)


def slip_unescape(raw: bytes) -> bytes | None:
    """The content of one SLIP frame, or None when a DB is not followed by DC or DD."""
    head, *rest = raw.split(bytes((SLIP_ESC,)))
    content = bytearray(head)
    for part in rest:
        if not part or part[0] not in SLIP_UNESCAPES:
            return None
        content.append(SLIP_UNESCAPES[part[0]])
        content += part[1:]
    return bytes(content)


def iu891a_command(endpoint: int, message: int, payload: bytes = b"") -> bytes:
    """A host SLIP frame: endpoint, message id, payload and X-25 CRC (LSB first), escaped."""
    content = bytes((endpoint, message)) + payload
    content += crc16_x25(content).to_bytes(2, "little")
    return bytes((SLIP_END,)) + slip_escape(content) + bytes((SLIP_END,))


def iu891a_reported_mode(reply: Reply) -> int | str:
    """The link-mode code in a get-active-configuration reply (status byte, then link mode)."""
    problem = _status_verdict(reply)
    if problem is not None:
        return problem
    if len(reply.payload) < 2:
        return "the stick's configuration reply holds no link mode"
    return reply.payload[1]


def iu891a_reply_id(endpoint: int, request: int) -> int:
    """The `Reply.message` of the response to a request (its id is the request's plus one)."""
    return endpoint << 8 | (request + 1)


class Iu891aFramer(Framer):
    """iU891A SLIP stream to telegrams (09 20) and replies.

    A reply's `message` is `endpoint << 8 | message id` (the ids repeat across endpoints), and its
    `payload` is everything between the message id and the CRC as received: for responses that
    starts with the status byte. Empty frames (wake-up runs of C0) are ignored.
    """

    def __init__(self) -> None:
        self._raw = bytearray()  # escaped bytes since the last C0
        self._hunting = True  # waiting for a C0: at the start, and after an overlong frame
        self._reported = False  # the current hunt's skipped bytes were reported

    def feed(self, data: bytes, now: float) -> list[Event]:
        events: list[Event] = []
        start = 0
        while start < len(data):
            end = data.find(SLIP_END, start)
            chunk = data[start:] if end < 0 else data[start:end]
            if self._hunting:
                if chunk and not self._reported:
                    events.append(FrameError(ErrorReason.FRAMING, "bytes before the first C0"))
                    self._reported = True
            else:
                self._raw += chunk
                if len(self._raw) > IU891A_MAX_RAW:
                    events.append(
                        FrameError(ErrorReason.FRAMING, f"over {IU891A_MAX_RAW} bytes without C0")
                    )
                    self._raw.clear()
                    self._hunting = self._reported = True
            if end < 0:
                break
            if self._raw:
                events.append(self._decode(bytes(self._raw), now))
                self._raw.clear()
            self._hunting = self._reported = False
            start = end + 1
        return events

    def end(self, now: float) -> list[Event]:
        """A frame without its closing C0 at the end of the stream is reported, then forgotten."""
        pending = len(self._raw)
        self._raw.clear()
        self._hunting, self._reported = True, False
        if not pending:
            return []
        return [FrameError(ErrorReason.FRAMING, f"stream ended {pending} bytes into a frame")]

    @staticmethod
    def _decode(raw: bytes, now: float) -> Event:
        content = slip_unescape(raw)
        if content is None:
            return FrameError(ErrorReason.FRAMING, f"bad SLIP escape in {raw.hex()}")
        if len(content) < 4:
            return FrameError(ErrorReason.FRAMING, f"{raw.hex()}: too short for a SLIP frame")
        sent = int.from_bytes(content[-2:], "little")
        computed = crc16_x25(content[:-2])
        if sent != computed:
            return _checksum_error(f"SLIP {content[0]:02X} {content[1]:02X}", sent, computed)
        endpoint, message, payload = content[0], content[1], content[2:-2]
        if (endpoint, message) != (IU891A_GATEWAY, IU891A_RX_MESSAGE_IND):
            return Reply(endpoint << 8 | message, payload)
        wmbus = payload[IU891A_TELEGRAM_HEADER:]
        if len(wmbus) < MIN_FRAME:
            return FrameError(ErrorReason.TOO_SHORT, f"a {len(wmbus)}-byte telegram: {wmbus.hex()}")
        (rssi,) = struct.unpack_from("b", payload, IU891A_TELEGRAM_HEADER - 1)
        return Frame(wmbus, now, float(rssi))


class Iu891a(Dialect):
    """IMST iU891A-XL / iM891A-XL: SLIP over USB CDC at 115200; woken by C0s, then configured."""

    name = "iu891a"
    baudrate = 115200

    def framer(self) -> Framer:
        return Iu891aFramer()

    def session(self, mode: LinkMode) -> list[SessionStep]:
        code = IU891A_MODE_CODES[mode]
        options = IU891A_RX_INDICATION | IU891A_TX_INDICATION
        # link mode, option bits, UI option bits, LED flash time, recalibration period
        config = struct.pack("<BHHHI", code, options, 0, 0, 0)
        return [
            SessionStep("wake up", SLIP_WAKE_UP, lambda r: False, timeout=0),
            SessionStep(
                "device info",
                iu891a_command(IU891A_DEVICE_MANAGEMENT, IU891A_DEVICE_INFO),
                lambda r: (
                    r.message == iu891a_reply_id(IU891A_DEVICE_MANAGEMENT, IU891A_DEVICE_INFO)
                ),
                _status_verdict,
            ),
            SessionStep(
                f"set link mode {mode.value}",
                iu891a_command(IU891A_GATEWAY, IU891A_SET_CONFIG, config),
                lambda r: r.message == iu891a_reply_id(IU891A_GATEWAY, IU891A_SET_CONFIG),
                _status_verdict,
            ),
            SessionStep(
                "read the link mode back",
                iu891a_command(IU891A_GATEWAY, IU891A_GET_CONFIG),
                lambda r: r.message == iu891a_reply_id(IU891A_GATEWAY, IU891A_GET_CONFIG),
                _mode_verdict(IU891A_LINK_MODES, code, iu891a_reported_mode),
            ),
        ]
