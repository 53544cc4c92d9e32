"""Radiocrafts RC1180-MBUS (RC11xx-MBUS3) modules (docs/receivers.md, section 5).

With the default DATA_INTERFACE = 0 the module writes each telegram as
``L' C M M A A A A V T CI data [RSSI]`` with its DLL CRCs removed, back to back with no start
byte: the headerless framing of Amber's transparent output (`LengthPrefixedFramer`), with
RSSI in -r/2 dBm.
"""

from __future__ import annotations

from .amber import LengthPrefixedFramer
from .base import Dialect, Framer


def rssi_dbm(raw: int) -> float:
    """Radiocrafts RSSI byte to dBm: P = -r / 2 (docs/receivers.md, section 8)."""
    return -raw / 2


class Rc1180Framer(LengthPrefixedFramer):
    """RC1180 telegrams; `rssi` is the module's RSSI_MODE (factory value 1: L' counts it).

    Only telegrams: the session never enters configuration mode (see `Rc1180`), so a stray
    ``>`` prompt is skipped like any other byte that starts no telegram. The Amber's rule that
    drops a telegram whose bytes pause for 2 s is not applied: nothing says the module writes a
    telegram in one burst, and a serial-to-network bridge may pause in the middle of one.
    """

    def __init__(self, *, rssi: bool = True) -> None:
        super().__init__(rssi_dbm, rssi=rssi)


class Rc1180(Dialect):
    """RC1180-MBUS at 19200 8N1. Its session sends nothing, on purpose.

    T1 (MBUS_MODE 0x01) is the module's factory default and wmbusmeters never changes it.
    Checking it would mean configuration mode: ``00`` to enter, ``0`` for a 256-byte memory
    dump with no framing or checksum (which the framer could only tell from telegrams by
    knowing the session's state), ``X`` to leave. A session cut off between ``00`` and ``X``
    (a timeout, an unplug) would leave the module deaf to meters. Sending nothing is the
    safer way: a module configured otherwise shows as a receiver that hears nothing.
    """

    name = "rc1180"
    baudrate = 19200

    def __init__(self, *, rssi: bool = True) -> None:
        self.rssi = rssi

    def framer(self) -> Framer:
        return Rc1180Framer(rssi=self.rssi)
