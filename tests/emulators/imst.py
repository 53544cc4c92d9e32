"""Emulated IMST sticks on a pty: the iM871A (HCI) and the iU891A (SLIP); docs/receivers.md,
sections 2 and 9.

Both answer the host's real commands with the real bytes and keep the link mode in volatile
memory: `mode` (a LinkMode) is None until the host sets a mode that hears T1, and a new instance
is a re-plugged stick that forgot it; `telegram()` passes telegrams on only while `mode` is set.
Fault knobs: `silent` (deaf and mute: no answer, no mode change) and `telegram_before_ack` (a
telegram written just before every acknowledgement, while a mode is set).
"""

from __future__ import annotations

from collections.abc import Callable

from exporter.receivers.base import LinkMode
from exporter.receivers.imst import crc16_x25

from .pty_device import PtyDevice

# The Sensus frame of docs/receivers.md, introduction.
SENSUS = bytes.fromhex("1844AE4C4455223368077A55000000041389E20100023B0000")
# The Sensus frame with its ID bytes made C0 DB, for the iU891A's SLIP escaping.
ESCAPE_TEST_FRAME = bytes.fromhex("1844AE4CC0DB223368077A55000000041389E20100023B0000")

# --- iM871A ---------------------------------------------------------------------------------------

_HCI_TIMESTAMP, _HCI_RSSI, _HCI_FCS = 0x2, 0x4, 0x8
# Sizes of the configuration fields IIF1 and IIF2 select, in bit order (bit 0 first).
_IIF1_SIZES = (1, 1, 1, 2, 4, 1, 1, 1)  # device mode, link mode, C, manufacturer, ID, ver, type, ch
_IIF2_SIZES = (1,) * 8  # power, data rate, RX window, power saving, RSSI, timestamp, LED, RTC
_LINK_MODE, _AUTO_RSSI, _AUTO_TIMESTAMP = 1, 4, 5  # bit numbers in IIF1 / IIF2
_IM871A_MODES = {0x03: LinkMode.T1, 0x0A: LinkMode.C1_T1}  # link-mode codes that hear T1


def _hci(control: int, endpoint: int, message: int, payload: bytes, trailers: bytes = b"") -> bytes:
    """A stick-to-host HCI frame; the FCS (control bit 0x8) is appended when asked for."""
    body = bytes((control << 4 | endpoint, message, len(payload))) + payload + trailers
    fcs = crc16_x25(body).to_bytes(2, "little") if control & _HCI_FCS else b""
    return b"\xa5" + body + fcs


def _fields(
    flags: int, sizes: tuple[int, ...], data: bytes, at: int
) -> tuple[dict[int, bytes], int]:
    """The fields `flags` selects from `data[at:]`, by bit number, and the offset after them."""
    fields = {}
    for bit, size in enumerate(sizes):
        if flags >> bit & 1:
            fields[bit] = data[at : at + size]
            at += size
    return fields, at


class Im871aEmulator(PtyDevice):
    """An iM871A-USB: answers ping, device info, get config and set config (docs/receivers.md,
    section 2)."""

    def __init__(
        self,
        *,
        firmware: int = 0x13,
        nvm_link_mode: int = 0x00,
        silent: bool = False,
        telegram_before_ack: bytes | None = None,
    ) -> None:
        self.firmware = firmware  # 0x13 cannot do C1+T1 and stays silent when asked
        self.link_mode = nvm_link_mode  # the code get config reports; NVM until the host sets one
        self.silent = silent
        self.telegram_before_ack = telegram_before_ack
        self.mode: LinkMode | None = None  # set by the host's set config, if it hears T1
        self.auto_rssi = 0
        self.auto_timestamp = 0
        super().__init__()

    def split_commands(self, buffer: bytearray) -> list[bytes]:
        commands: list[bytes] = []
        while True:
            start = buffer.find(0xA5)
            del buffer[: start if start >= 0 else len(buffer)]
            if len(buffer) < 4:
                return commands
            control = buffer[1] >> 4
            size = 4 + buffer[3]
            size += (4 if control & _HCI_TIMESTAMP else 0) + (1 if control & _HCI_RSSI else 0)
            size += 2 if control & _HCI_FCS else 0
            if len(buffer) < size:
                return commands
            commands.append(bytes(buffer[:size]))
            del buffer[:size]

    def handle(self, command: bytes) -> None:
        if self.silent or command[1] & 0x0F != 1:
            return
        message, payload = command[2], command[4 : 4 + command[3]]
        replies = {0x01: self._ping, 0x03: self._set_config, 0x05: self._config, 0x0F: self._info}
        answer = replies.get(message)
        reply = answer(payload) if answer else None
        if reply is None:
            return
        if self.telegram_before_ack is not None:
            self.telegram(self.telegram_before_ack)
        self.send(_hci(_HCI_FCS, 1, message + 1, reply))

    def _ping(self, payload: bytes) -> bytes:
        return b""

    def _info(self, payload: bytes) -> bytes:
        # module type 0x33 (iM871A), device mode 0, firmware, HCI version 1, UID 00003AF1 LE
        return bytes((0x33, 0x00, self.firmware, 0x01)) + bytes.fromhex("F13A0000")

    def _config(self, payload: bytes) -> bytes:
        iif1 = bytes((0x00, self.link_mode, 0x44)) + bytes.fromhex("B325 78563412 01 00 01")
        iif2 = bytes((0x07, 0x02, 0x32, 0x00, self.auto_rssi, self.auto_timestamp, 0x00, 0x00))
        return b"\xff" + iif1 + b"\xff" + iif2

    def _set_config(self, payload: bytes) -> bytes | None:
        if len(payload) < 3:
            return None  # no NVM flag, IIF1 and IIF2: not a command this emulator knows
        iif1, at = _fields(payload[1], _IIF1_SIZES, payload, 2)
        iif2, _ = _fields(payload[at] if at < len(payload) else 0, _IIF2_SIZES, payload, at + 1)
        code = iif1.get(_LINK_MODE)
        if code and _IM871A_MODES.get(code[0]) is LinkMode.C1_T1 and self.firmware < 0x14:
            return None  # nobody documents what 0x13 answers: test the timeout path
        if code:
            self.link_mode = code[0]
            self.mode = _IM871A_MODES.get(code[0])
        self.auto_rssi = iif2.get(_AUTO_RSSI, bytes((self.auto_rssi,)))[0]
        self.auto_timestamp = iif2.get(_AUTO_TIMESTAMP, bytes((self.auto_timestamp,)))[0]
        return b""

    def telegram(
        self,
        frame: bytes,
        rssi_raw: int = 0x9A,
        *,
        timestamp: int | None = None,
        byte_by_byte: bool = False,
        garbage_before: bytes = b"",
        corrupt_fcs: bool = False,
    ) -> bool:
        """Emit a received telegram (endpoint 2, message 03) if a mode is set; True if sent.

        Trailers follow the configuration (auto RSSI, auto timestamp); `timestamp` forces one.
        """
        if self.mode is None:
            return False
        control = _HCI_FCS | (_HCI_RSSI if self.auto_rssi else 0)
        trailers = b""
        if timestamp is not None or self.auto_timestamp:
            control |= _HCI_TIMESTAMP
            trailers += (timestamp or 0).to_bytes(4, "little")
        if self.auto_rssi:
            trailers += bytes((rssi_raw,))
        wire = _hci(control, 2, 0x03, frame[1:], trailers)
        if corrupt_fcs:
            wire = wire[:-1] + bytes((wire[-1] ^ 0xFF,))
        self.send(garbage_before + wire, byte_by_byte=byte_by_byte)
        return True


# --- iU891A ---------------------------------------------------------------------------------------

_END = b"\xc0"
_IU891A_MODES = {2: LinkMode.T1, 3: LinkMode.C1_T1}  # link-mode codes that hear T1


def _slip(content: bytes, *, corrupt_crc: bool = False) -> bytes:
    """C0, the content with its X-25 CRC, escaped (DB first, then C0), C0."""
    crc = crc16_x25(content) ^ (0xFFFF if corrupt_crc else 0)
    escaped = (content + crc.to_bytes(2, "little")).replace(b"\xdb", b"\xdb\xdd")
    return _END + escaped.replace(b"\xc0", b"\xdb\xdc") + _END


class Iu891aEmulator(PtyDevice):
    """An iU891A-XL: wakes on C0s, answers device info, wM-Bus address and configuration."""

    HEADER = bytes.fromhex("9F436D38000002")  # time/counter and flags of a documented telegram

    def __init__(
        self,
        *,
        nvm_link_mode: int = 0,
        silent: bool = False,
        telegram_before_ack: bytes | None = None,
    ) -> None:
        self.silent = silent
        self.telegram_before_ack = telegram_before_ack
        self.mode: LinkMode | None = None  # set by the host's set configuration, if it hears T1
        # link mode, option bits (RX + TX indication), UI options, LED flash time, recalibration
        self.configuration = bytes((nvm_link_mode,)) + bytes.fromhex("06000000000000000000")
        super().__init__()

    def split_commands(self, buffer: bytearray) -> list[bytes]:
        """Every C0-delimited frame; empty ones (the wake-up C0s) are not commands."""
        commands: list[bytes] = []
        while (end := buffer.find(0xC0)) >= 0:
            content = bytes(buffer[:end])
            del buffer[: end + 1]
            if content:
                commands.append(_END + content + _END)
        return commands

    def handle(self, command: bytes) -> None:
        content = command[1:-1].replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")
        if self.silent or crc16_x25(content[:-2]).to_bytes(2, "little") != content[-2:]:
            return
        request, payload = content[:2], content[2:-2]
        replies: dict[bytes, Callable[[], bytes | None]] = {
            b"\x01\x03": lambda: bytes.fromhex("6E78563412000000"),  # iU891A, UID 12345678
            b"\x09\x81": lambda: bytes.fromhex("B325123456780131"),  # wM-Bus address
            b"\x09\x01": lambda: self.configuration,
            b"\x09\x03": lambda: self._set_configuration(payload),
        }
        answer = replies.get(request)
        if answer is None:
            return
        reply = answer()
        if reply is None:
            return
        if self.telegram_before_ack is not None:
            self.telegram(self.telegram_before_ack)
        self.send(_slip(bytes((request[0], request[1] + 1, 0x00)) + reply))  # status 0: OK

    def _set_configuration(self, payload: bytes) -> bytes | None:
        if not payload:
            return None  # no link mode: not a command this emulator knows
        self.configuration = payload
        self.mode = _IU891A_MODES.get(payload[0])
        return b""

    def telegram(
        self,
        frame: bytes,
        rssi_raw: int = 0xE7,
        *,
        byte_by_byte: bool = False,
        garbage_before: bytes = b"",
        corrupt_fcs: bool = False,
    ) -> bool:
        """Emit a received telegram (09 20: header, signed dBm RSSI, frame) if a mode is set."""
        if self.mode is None:
            return False
        wire = _slip(
            b"\x09\x20" + self.HEADER + bytes((rssi_raw,)) + frame, corrupt_crc=corrupt_fcs
        )
        self.send(garbage_before + wire, byte_by_byte=byte_by_byte)
        return True
