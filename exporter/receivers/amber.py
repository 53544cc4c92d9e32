"""Amber / Würth AMB8465-M, AMB8665-M and Metis-II sticks (docs/receivers.md, section 3).

The stick prints received telegrams in one of two output formats, chosen in its NVM and often
left switched by other software, so one framer accepts both in the same stream:

- command mode: ``FF <cmd> <len> <payload> <XOR>``; cmd 0x03 is a telegram whose payload is
  ``C ... data RSSI``; a cmd with bit 0x80 confirms a host command;
- transparent mode: ``L' C M M A A A A V T CI ... RSSI``, no start byte, no checksum.

The stick has already checked and removed the DLL CRCs. Host commands always use the command
syntax, whatever the output mode. The headerless framing is shared with Radiocrafts modules
(`LengthPrefixedFramer`).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass

from ..wmbus import LINK_HEADER_LENGTH
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

START = 0xFF
CONFIRMATION = 0x80  # every reply is the request's cmd | 0x80
CMD_DATA_IND = 0x03  # a received telegram (command output mode)
CMD_SET_MODE_REQ = 0x04  # volatile receive mode
CMD_GET_REQ = 0x0A  # read NVM parameters
#: Receive-side mode bytes of CMD_SET_MODE_REQ: T2-Other hears T1 meters, C2/T2-Other C1+T1.
MODE_BYTES = {LinkMode.T1: 0x08, LinkMode.C1_T1: 0x09}
#: NVM parameter numbers (CMD_GET_REQ reply: offset, count, then one byte per parameter).
PARAM_UART_CMD_OUT = 0x05
PARAM_RSSI_ENABLE = 0x45
PARAM_MODE = 0x46

#: C fields a meter sends: SND-NR (0x44) and SND-IR (0x46); a headerless frame starts with one.
METER_C_FIELDS = frozenset({0x44, 0x46})
#: The smallest L of a frame with a header: C M M A A A A V T and the CI byte.
MIN_L = LINK_HEADER_LENGTH
#: An Amber stick writes a frame in one burst; bytes of a partial frame older than this are
#: stale (docs/receivers.md, section 3). Not a rule for the Radiocrafts modules.
STALE_AFTER = 2.0


def rssi_dbm(raw: int) -> float:
    """Amber RSSI byte to dBm: a signed byte in half dB, offset by 74 (docs/receivers.md, 8)."""
    return (raw - 256) / 2 - 74 if raw >= 128 else raw / 2 - 74


def xor(data: bytes) -> int:
    """The Amber command checksum: XOR of every byte (from the FF start byte on)."""
    return functools.reduce(int.__xor__, data, 0)


def command(cmd: int, payload: bytes = b"") -> bytes:
    """A command frame ``FF cmd len payload XOR``, as the host sends and the stick replies."""
    body = bytes((START, cmd, len(payload))) + payload
    return body + bytes((xor(body),))


GET_NVM = command(CMD_GET_REQ, bytes((0x00, 0x80)))  # parameters from offset 0, up to 128


@dataclass(frozen=True, slots=True)
class NvmSettings:
    """The stick's stored defaults in a CMD_GET_REQ reply; None where the dump does not reach.

    Worth logging: real sticks have been met in both output modes, with both RSSI settings and
    with a stored mode of S2, so a power-cycled stick hears nothing until the session sets T1.
    """

    command_output: bool | None  # UART_CMD_Out_Enable: telegrams come as FF 03 ... commands
    rssi_enabled: bool | None  # RSSI_Enable: an RSSI byte ends every telegram, counted in L'
    stored_mode: int | None  # the receive mode after a power cycle or reset (0x08 = T1)


def nvm_settings(reply: Reply) -> NvmSettings | None:
    """The settings in a CMD_GET_REQ reply (``offset count parameters...``); None otherwise."""
    if reply.message != CMD_GET_REQ | CONFIRMATION or len(reply.payload) < 2:
        return None
    offset, count = reply.payload[0], reply.payload[1]
    values = reply.payload[2 : 2 + count]

    def parameter(number: int) -> int | None:
        index = number - offset
        return values[index] if 0 <= index < len(values) else None

    output, rssi, mode = (parameter(n) for n in (PARAM_UART_CMD_OUT, PARAM_RSSI_ENABLE, PARAM_MODE))
    return NvmSettings(
        None if output is None else output != 0, None if rssi is None else rssi != 0, mode
    )


class Scan(enum.Enum):
    """What the bytes at the scan position say when they hold no complete event."""

    WAIT = "wait"  # a frame may start here: wait for more bytes
    SKIP = "skip"  # no frame starts here: skip one byte as garbage


class LengthPrefixedFramer(Framer):
    """Telegrams ``L' C M M A A A A V T CI data [RSSI]`` back to back, without start byte.

    Shared by Amber transparent output and Radiocrafts modules. With `rssi` on (the modules'
    RSSI setting), an RSSI byte ends every telegram and L' counts it (L' = L + 1); the framer
    rebuilds L. A telegram starts where L' can hold a header and C is 0x44 or 0x46; other bytes
    are skipped, one FRAMING error per run. Only L' marks where a telegram ends; with
    `stale_after` (the Amber's rule), a partial telegram is dropped when bytes resume more than
    that many seconds after its last byte, so that a false start found in noise cannot swallow
    the telegrams that follow. The buffer never holds more than one unfinished telegram (at
    most 256 bytes).
    """

    def __init__(
        self,
        to_dbm: Callable[[int], float],
        *,
        rssi: bool = True,
        stale_after: float | None = None,
    ) -> None:
        self.rssi = rssi
        self.stale_after = stale_after
        self._to_dbm = to_dbm
        self._buffer = bytearray()
        self._skipped = 0  # bytes of the current garbage run, reported when it ends
        self._last_byte_at = 0.0

    @property
    def _min_length(self) -> int:
        return MIN_L + self.rssi

    def feed(self, data: bytes, now: float) -> list[Event]:
        events: list[Event] = []
        if self.stale_after is not None and now - self._last_byte_at > self.stale_after:
            events += self._flush(f"nothing followed for {now - self._last_byte_at:.1f} s")
        if data:
            self._last_byte_at = now
        buffer = self._buffer
        buffer += data
        pos = 0
        while pos < len(buffer):
            found = self._match(buffer, pos, now)
            if found is Scan.WAIT:
                break
            if found is Scan.SKIP:
                self._skipped += 1
                pos += 1
                continue
            size, event = found
            events += self._end_garbage_run()
            events.append(event)
            pos += size
        del buffer[:pos]
        return events

    def end(self, now: float) -> list[Event]:
        return self._flush("the stream ended")

    def _match(self, buffer: bytearray, pos: int, now: float) -> tuple[int, Event] | Scan:
        """The event that starts at `pos` and the bytes it takes, or why there is none yet."""
        length = buffer[pos]
        if length < self._min_length:
            return Scan.SKIP
        if len(buffer) - pos < 2:
            return Scan.WAIT
        if buffer[pos + 1] not in METER_C_FIELDS:
            return Scan.SKIP
        if len(buffer) - pos < length + 1:
            return Scan.WAIT
        return length + 1, self._telegram(bytes(buffer[pos : pos + length + 1]), now)

    def _telegram(self, raw: bytes, now: float) -> Event:
        """A frame from ``L' C ... [RSSI]``, L' counting the RSSI byte when there is one."""
        if raw[0] < self._min_length:
            return FrameError(
                ErrorReason.TOO_SHORT,
                f"a telegram of {raw[0]} bytes after its length byte cannot hold a wM-Bus "
                f"header and CI (at least {self._min_length} "
                f"{'with' if self.rssi else 'without'} an RSSI byte)",
            )
        if not self.rssi:
            return Frame(raw, now)
        return Frame(bytes((raw[0] - 1,)) + raw[1:-1], now, self._to_dbm(raw[-1]))

    def _end_garbage_run(self) -> list[Event]:
        skipped, self._skipped = self._skipped, 0
        if not skipped:
            return []
        return [
            FrameError(
                ErrorReason.FRAMING,
                f"skipped {skipped} bytes that start no telegram or command "
                "(noise, or the port was opened in the middle of a frame)",
            )
        ]

    def _flush(self, why: str) -> list[Event]:
        """Report the pending garbage run and drop the unfinished frame."""
        events = self._end_garbage_run()
        if self._buffer:
            events.append(
                FrameError(
                    ErrorReason.FRAMING,
                    f"dropped {len(self._buffer)} bytes of an unfinished frame: {why}",
                )
            )
            self._buffer.clear()
        return events


def _is_stick_output(cmd: int) -> bool:
    """Whether a command frame with this cmd can come from the stick: a telegram or a reply."""
    return cmd == CMD_DATA_IND or bool(cmd & CONFIRMATION)


class AmberFramer(LengthPrefixedFramer):
    """Amber output in either format, also switched mid-stream (see the module docstring).

    `rssi` is the stick's RSSI_Enable as assumed until the stick says: it applies to both
    formats (in command mode `len` then counts the RSSI byte as L' does). A CMD_GET_REQ reply
    (the session reads it first) replaces the assumption with the stored setting, which the
    stick runs with unless the NVM was written since its last reset.

    A bad XOR drops the whole command as its `len` announced: a command's body after FF 03
    looks like a transparent telegram, so resynchronising one byte on would deliver the
    damaged telegram. FF followed by a cmd the stick can send always starts a command; a
    transparent L' of 0xFF (L = 254) is then misread, a length no AMIplus meter uses.
    """

    def __init__(self, *, rssi: bool = True) -> None:
        super().__init__(rssi_dbm, rssi=rssi, stale_after=STALE_AFTER)

    def _match(self, buffer: bytearray, pos: int, now: float) -> tuple[int, Event] | Scan:
        if buffer[pos] != START:
            return super()._match(buffer, pos, now)
        if len(buffer) - pos < 2:
            return Scan.WAIT
        if not _is_stick_output(buffer[pos + 1]):
            return super()._match(buffer, pos, now)
        if len(buffer) - pos < 3:
            return Scan.WAIT
        end = pos + 3 + buffer[pos + 2] + 1
        if len(buffer) < end:
            return Scan.WAIT
        return end - pos, self._command(bytes(buffer[pos:end]), now)

    def _command(self, wire: bytes, now: float) -> Event:
        cmd, sent, computed = wire[1], wire[-1], xor(wire[:-1])
        if sent != computed:
            return FrameError(
                ErrorReason.CHECKSUM,
                f"command 0x{cmd:02X}: XOR {sent:02X} on the wire, {computed:02X} computed; "
                f"{len(wire)} bytes dropped",
            )
        if cmd == CMD_DATA_IND:
            return self._telegram(wire[2:-1], now)  # len, C ... RSSI: shaped like L' C ... RSSI
        reply = Reply(cmd, wire[3:-1])
        settings = nvm_settings(reply)
        if settings is not None and settings.rssi_enabled is not None:
            self.rssi = settings.rssi_enabled
        return reply


def _replies_to(request: int) -> Callable[[Reply], bool]:
    return lambda reply: reply.message == request | CONFIRMATION


def _status_verdict(reply: Reply) -> str | None:
    """Confirmations carry one status byte; 0 means the command was carried out."""
    if reply.payload[:1] == b"\x00":
        return None
    status = reply.payload[:1].hex().upper() or "nothing"
    return f"the stick answered status {status} (00 means OK)"


class Amber(Dialect):
    """AMB8465-M / AMB8665-M / Metis-II at 9600 8N1 (the stick's default rate).

    The session reads the NVM (which tells the framer whether RSSI bytes come; `nvm_settings`
    turns the reply into loggable settings) and sets the receive mode with the volatile
    CMD_SET_MODE_REQ: writing the NVM can brick the stick if power fails meanwhile. The
    volatile mode cannot be read back, so its confirmation status is the only check.
    """

    name = "amber"
    baudrate = 9600

    def __init__(self, *, rssi: bool = True) -> None:
        self.rssi = rssi

    def framer(self) -> Framer:
        return AmberFramer(rssi=self.rssi)

    def session(self, mode: LinkMode) -> list[SessionStep]:
        return [
            SessionStep("read the NVM parameters", GET_NVM, accepts=_replies_to(CMD_GET_REQ)),
            SessionStep(
                f"set link mode {mode.value}",
                command(CMD_SET_MODE_REQ, bytes((MODE_BYTES[mode],))),
                accepts=_replies_to(CMD_SET_MODE_REQ),
                verdict=_status_verdict,
            ),
        ]
