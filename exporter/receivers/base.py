"""What every receiver dialect shares: the events a framer emits and the steps of a stick session.

Framers are sans-I/O: `feed(bytes, now)` in, events out, for any split of the byte stream. They
resynchronise after garbage, split reads and bad checksums, and never raise on input bytes.
Sessions describe the commands that put a stick into T1 after every open; the transport
(`receiver.py`) sends them, waits for the replies and retries.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass


class LinkMode(enum.Enum):
    """Radio modes a stick can be asked to receive. AMIplus meters send T1."""

    T1 = "T1"
    C1_T1 = "C1+T1"


class ErrorReason(enum.Enum):
    """Why bytes from a receiver did not become a frame (a metric label; docs/contracts.md, 4)."""

    CRC = "crc"  # a wM-Bus CRC failed, or the receiver flagged the frame as damaged
    CHECKSUM = "checksum"  # the serial framing's own check (FCS, XOR, SLIP CRC) failed
    FRAMING = "framing"  # bytes that fit no frame of the dialect; the framer resynchronised
    TOO_SHORT = "too_short"  # a frame too short to hold a wM-Bus header


@dataclass(frozen=True, slots=True)
class Frame:
    """A wM-Bus frame as the receiver delivered it (the core normalises it), and its metadata."""

    data: bytes
    received_at: float  # time.time() when its last byte arrived
    rssi_dbm: float | None = None
    link_mode: str | None = None  # "T1", "C1" when the receiver says


@dataclass(frozen=True, slots=True)
class FrameError:
    """Bytes dropped by a framer, and why; counted per receiver, never fatal."""

    reason: ErrorReason
    detail: str


@dataclass(frozen=True, slots=True)
class Reply:
    """A stick's answer to a command, for the session waiting for it."""

    message: int  # the dialect's message or command id (for ASCII dialects: 0)
    payload: bytes


Event = Frame | FrameError | Reply


class Framer(ABC):
    """Turns a receiver's byte stream into events; one instance per stream, state inside."""

    @abstractmethod
    def feed(self, data: bytes, now: float) -> list[Event]:
        """Consume bytes (any split); return the events they complete, in order."""

    def end(self, now: float) -> list[Event]:
        """The stream ended (a connection closed, a datagram is whole): finish what is pending."""
        return []


@dataclass(frozen=True, slots=True)
class SessionStep:
    """One command of a stick session and how to recognise and judge its reply."""

    description: str  # for logs and the down reason, e.g. "set link mode T1"
    command: bytes
    accepts: Callable[[Reply], bool]  # is this the reply to the command?
    verdict: Callable[[Reply], str | None] = lambda reply: None  # None: OK, else why not
    timeout: float = 5.0  # seconds to wait for the reply; 0: the stick sends none


class Dialect(ABC):
    """A receiver family: its serial settings, framer, and the session run after every open."""

    name: str
    baudrate: int = 115200

    @abstractmethod
    def framer(self) -> Framer:
        """A fresh framer (after every open: no stale partial data survives a reconnect)."""

    def session(self, mode: LinkMode) -> list[SessionStep]:
        """Commands that put the receiver into `mode` and read its configuration back."""
        return []
