"""Emulated Amber, CUL and Radiocrafts sticks on a pty (docs/receivers.md, sections 3-5 and 9).

Each answers the host's real commands with the real bytes and keeps its receive mode in
volatile memory: `mode` is None until the host sets it (a new instance is a re-plugged stick
that forgot it), and `telegram()` only passes a telegram on while the stick hears T1 (it
returns False when the telegram is dropped). Fault knobs: `silent` (never answers, never
changes mode) and `telegram_before_ack` (a telegram written just before every
acknowledgement, while the stick hears T1: the Amber failure of wmbusmeters issue #440).
"""

from __future__ import annotations

import time
from abc import abstractmethod

from exporter.receivers.amber import command, xor
from exporter.receivers.base import LinkMode
from exporter.wmbus.encoder import to_air

from .pty_device import PtyDevice


class _Stick(PtyDevice):
    """What the three emulators share: the volatile mode and the fault knobs."""

    def __init__(
        self,
        *,
        silent: bool = False,
        telegram_before_ack: bytes | None = None,
        mode: LinkMode | None = None,
    ) -> None:
        self.silent = silent
        self.telegram_before_ack = telegram_before_ack
        self.mode = mode
        super().__init__()

    @abstractmethod
    def telegram(self, frame: bytes) -> bool:
        """Emit a received canonical frame in the stick's format; False if it was dropped."""

    def hears(self) -> bool:
        """Whether telegrams reach the host now."""
        return self.mode is not None

    def acknowledge(self, reply: bytes) -> None:
        """Send an acknowledgement, after the fault knob's telegram if one is set."""
        if self.telegram_before_ack is not None:
            self.telegram(self.telegram_before_ack)
        self.send(reply)

    def emit(self, wire: bytes, *, byte_by_byte: bool, garbage_before: bytes) -> bool:
        if not self.hears():
            return False
        self.send(garbage_before + wire, byte_by_byte=byte_by_byte)
        return True


# --- Amber ----------------------------------------------------------------------------------------

# T2-Other and C2/T2-Other (docs/receivers.md, section 3)
_AMBER_MODES = {0x08: LinkMode.T1, 0x09: LinkMode.C1_T1}
_AMBER_NVM_SIZE = 128  # parameters 0-127
_AMBER_NVM_PER_REPLY = 0x78  # a real stick's reply to "from 0, up to 128" holds 120 parameters


class AmberEmulator(_Stick):
    """An AMB8465: set mode, NVM read, serial number, reset; output transparent or command.

    `transparent` may be switched while running, as other software switches real sticks. RSSI
    output is on. A command with a bad XOR gets no answer (assumed). Every mode byte is
    confirmed with status 0; only T2-Other (08) and C2/T2-Other (09) make it hear T1 meters.
    """

    SERIAL_NUMBER = bytes.fromhex("53005B0E")  # a real stick's FF 8B 04 53 00 5B 0E 76

    def __init__(
        self,
        *,
        transparent: bool = False,
        silent: bool = False,
        telegram_before_ack: bytes | None = None,
    ) -> None:
        self.transparent = transparent
        super().__init__(silent=silent, telegram_before_ack=telegram_before_ack)

    def nvm(self) -> bytes:
        """Parameters 0-127: output mode at 0x05, RSSI on at 0x45, stored mode S2 at 0x46."""
        parameters = bytearray(_AMBER_NVM_SIZE)
        parameters[0x05] = 0 if self.transparent else 1
        parameters[0x45] = 1
        parameters[0x46] = 0x03
        return bytes(parameters)

    def split_commands(self, buffer: bytearray) -> list[bytes]:
        commands: list[bytes] = []
        while True:
            start = buffer.find(0xFF)
            del buffer[: start if start >= 0 else len(buffer)]
            if len(buffer) < 3 or len(buffer) < buffer[2] + 4:
                return commands
            size = buffer[2] + 4
            commands.append(bytes(buffer[:size]))
            del buffer[:size]

    def handle(self, request: bytes) -> None:
        if self.silent or xor(request[:-1]) != request[-1]:
            return
        cmd, payload = request[1], request[3:-1]
        handlers = {0x04: self._set_mode, 0x05: self._reset, 0x0A: self._get, 0x0B: self._serial}
        handler = handlers.get(cmd)
        if handler is None:
            return
        self.acknowledge(command(cmd | 0x80, handler(payload)))
        if cmd == 0x05:
            self.mode = None  # back to the stored mode, S2: T1 meters are not heard

    def _set_mode(self, payload: bytes) -> bytes:
        self.mode = _AMBER_MODES.get(payload[0]) if payload else None
        return b"\x00"

    def _reset(self, payload: bytes) -> bytes:
        return b"\x00"

    def _get(self, payload: bytes) -> bytes:
        offset, count = (payload[0], payload[1]) if len(payload) >= 2 else (0, 0)
        values = self.nvm()[offset : offset + min(count, _AMBER_NVM_PER_REPLY)]
        return bytes((offset, len(values))) + values

    def _serial(self, payload: bytes) -> bytes:
        return self.SERIAL_NUMBER

    def telegram(
        self,
        frame: bytes,
        rssi_raw: int = 0xC8,
        *,
        byte_by_byte: bool = False,
        garbage_before: bytes = b"",
        corrupt: bool = False,
    ) -> bool:
        """The frame with its RSSI byte; `corrupt` breaks the XOR (command output only)."""
        body = frame[1:] + bytes((rssi_raw,))
        if self.transparent:
            if corrupt:
                raise ValueError("transparent output has no checksum to corrupt")
            wire = bytes((len(frame),)) + body  # L' = L + 1: the RSSI byte is counted
        else:
            wire = command(0x03, body)
            wire = wire[:-1] + bytes((wire[-1] ^ (0x5A if corrupt else 0),))
        return self.emit(wire, byte_by_byte=byte_by_byte, garbage_before=garbage_before)


# --- CUL ------------------------------------------------------------------------------------------

_CUL_ANSWERS = {b"V": b"V 1.67 nanoCUL868", b"brt": b"TMODE", b"brc": b"CMODE"}
_CUL_MODES = {b"brt": LinkMode.T1, b"brc": LinkMode.C1_T1}


class CulEmulator(_Stick):
    """A nanoCUL with wM-Bus culfw: ``V``, ``brt`` (T1), ``brc`` (C1+T1), silent ``X21``.

    Telegram lines carry the frame with its DLL CRCs; LQI and RSSI follow once ``X21`` arrived.
    """

    def __init__(self, *, silent: bool = False, telegram_before_ack: bytes | None = None) -> None:
        self.reporting = False  # X21: LQI and RSSI after every telegram
        super().__init__(silent=silent, telegram_before_ack=telegram_before_ack)

    def split_commands(self, buffer: bytearray) -> list[bytes]:
        commands: list[bytes] = []
        while (end := buffer.find(b"\n")) >= 0:
            commands.append(bytes(buffer[:end]).rstrip(b"\r"))
            del buffer[: end + 1]
        return commands

    def handle(self, line: bytes) -> None:
        if self.silent:
            return
        if line == b"X21":
            self.reporting = True
            return
        answer = _CUL_ANSWERS.get(line)
        if answer is None:
            return
        self.mode = _CUL_MODES.get(line, self.mode)
        self.acknowledge(answer + b"\r\n")

    def telegram(
        self,
        frame: bytes,
        rssi_raw: int = 0xD0,
        lqi: int = 0x2E,
        *,
        frame_format: str = "A",
        cut_at: int | None = None,
        split: bool = False,
        byte_by_byte: bool = False,
        garbage_before: bytes = b"",
        corrupt: bool = False,
    ) -> bool:
        """A ``b``/``bY`` line; format B only in C mode. `cut_at` keeps that many hex digits
        (a firmware buffer cutting the line; odd gives an odd length), `split` writes the line
        in two halves 50 ms apart, `corrupt` breaks the last DLL CRC."""
        if frame_format == "B" and self.mode is not LinkMode.C1_T1:
            return False
        air = to_air(frame, frame_format)
        if corrupt:
            air = air[:-1] + bytes((air[-1] ^ 0x01,))
        digits = air.hex().upper() + (f"{lqi:02X}{rssi_raw:02X}" if self.reporting else "")
        prefix = "bY" if frame_format == "B" else "b"
        line = (prefix + digits[:cut_at]).encode("ascii") + b"\r\n"
        if not split:
            return self.emit(line, byte_by_byte=byte_by_byte, garbage_before=garbage_before)
        half = len(line) // 2
        if not self.emit(line[:half], byte_by_byte=byte_by_byte, garbage_before=garbage_before):
            return False
        time.sleep(0.05)
        self.send(line[half:], byte_by_byte=byte_by_byte)
        return True


# --- Radiocrafts ----------------------------------------------------------------------------------


class Rc1180Emulator(_Stick):
    """An RC1180-MBUS with factory settings: always T1, RSSI byte on (RSSI_MODE = 1).

    ``00`` enters configuration mode (``>``), ``0`` then dumps the 256-byte memory and ``>``,
    ``X`` leaves it. In configuration mode no telegrams pass (assumed: the documentation lists a
    stray ``00`` among the failure modes).
    """

    def __init__(
        self,
        *,
        module_id: bytes = bytes.fromhex("78563412"),
        silent: bool = False,
        telegram_before_ack: bytes | None = None,
    ) -> None:
        self.configuring = False
        self.memory = bytearray(256)
        self.memory[0x03] = 0x01  # MBUS_MODE: T1
        self.memory[0x05] = 0x01  # RSSI_MODE: on
        self.memory[0x1B:0x1F] = module_id
        super().__init__(silent=silent, telegram_before_ack=telegram_before_ack, mode=LinkMode.T1)

    def hears(self) -> bool:
        return not self.configuring

    def split_commands(self, buffer: bytearray) -> list[bytes]:
        commands = [bytes((byte,)) for byte in buffer]
        buffer.clear()
        return commands

    def handle(self, byte: bytes) -> None:
        if self.silent:
            return
        if not self.configuring:
            if byte == b"\x00":
                self.acknowledge(b">")
                self.configuring = True
        elif byte == b"0":
            self.acknowledge(bytes(self.memory) + b">")
        elif byte == b"X":
            self.configuring = False

    def telegram(
        self,
        frame: bytes,
        rssi_raw: int = 0x8C,
        *,
        byte_by_byte: bool = False,
        garbage_before: bytes = b"",
        corrupt: bool = False,
    ) -> bool:
        """``L' C ... RSSI`` with L' = L + 1; the UART CRC is off, so nothing to corrupt."""
        if corrupt:
            raise ValueError("the RC1180's default output has no checksum to corrupt")
        wire = bytes((len(frame),)) + frame[1:] + bytes((rssi_raw,))
        return self.emit(wire, byte_by_byte=byte_by_byte, garbage_before=garbage_before)
