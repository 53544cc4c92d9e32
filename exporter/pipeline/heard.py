"""Every meter heard on the air, by ID: how a user finds their own meter among the neighbours'."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from ..amiplus import reversed_meter_id
from ..receivers import Frame
from ..wmbus import DEVICE_TYPES, Peek, WMBusError, peek


@dataclass(frozen=True, slots=True)
class HeardMeter:
    """What the link and transport headers of a meter's latest telegram say."""

    meter_id: str
    manufacturer: str
    version: int
    device_type: int
    encrypted: bool
    rssi_dbm: float | None
    count: int
    first_seen: float
    last_seen: float
    receiver: str

    @property
    def device_type_name(self) -> str:
        return DEVICE_TYPES.get(self.device_type, f"type 0x{self.device_type:02X}")


def peek_or_none(data: bytes) -> Peek | None:
    """What a frame's headers say, or None when not even the link header can be read."""
    try:
        return peek(data)
    except WMBusError:
        return None


class HeardMeters:
    """Meters by ID, thread-safe and bounded: past `limit`, the longest silent is forgotten."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.unreadable = 0  # frames whose header could not be read
        self._meters: dict[str, HeardMeter] = {}
        self._lock = threading.Lock()

    def hear(self, receiver: str, frame: Frame, peeked: Peek | None) -> HeardMeter | None:
        """Record one frame and what its headers say (None: unreadable); returns the meter's
        updated entry."""
        with self._lock:
            if peeked is None:
                self.unreadable += 1
                return None
            address, encrypted = peeked.address, peeked.encrypted
            meter_id, manufacturer = address.meter_id, address.manufacturer
            version, device_type = address.version, address.device_type
            known = self._meters.pop(meter_id, None)
            if known is None:
                if len(self._meters) >= self.limit:
                    del self._meters[next(iter(self._meters))]  # the longest silent
                entry = HeardMeter(
                    meter_id,
                    manufacturer,
                    version,
                    device_type,
                    encrypted,
                    frame.rssi_dbm,
                    1,
                    frame.received_at,
                    frame.received_at,
                    receiver,
                )
            else:
                entry = replace(
                    known,
                    manufacturer=manufacturer,
                    version=version,
                    device_type=device_type,
                    encrypted=encrypted,
                    rssi_dbm=frame.rssi_dbm if frame.rssi_dbm is not None else known.rssi_dbm,
                    count=known.count + 1,
                    last_seen=frame.received_at,
                    receiver=receiver,
                )
            self._meters[meter_id] = entry  # re-inserted: the dict runs oldest to newest
            return entry

    def snapshot(self) -> list[HeardMeter]:
        """Every meter, the most recently heard first."""
        with self._lock:
            return list(reversed(self._meters.values()))


def configured_match(meter_id: str, configured: frozenset[str]) -> str:
    """'configured', a hint that a configured ID is this one byte-reversed, or ''."""
    if meter_id in configured:
        return "configured"
    if reversed_meter_id(meter_id) in configured:
        return (
            f"configured as {reversed_meter_id(meter_id)}: the same ID byte-reversed "
            "(both orders work)"
        )
    return ""
