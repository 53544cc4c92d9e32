"""Readings back to records: the inverse of `read_meter`, for simulated meters and round trips."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from ..wmbus import Value, encode_data, parse_header
from .clock import WARSAW, time_point
from .fields import Shape
from .reading import MeterReading, Slot, slot_for


def _field_value(reading: MeterReading, slot: Slot) -> float | datetime | str | None:
    """The reading's value for a slot: the inverse of `read_meter` for one record."""
    row = slot.field
    if row.shape is Shape.TARIFFS and slot.tariff:
        per_tariff: Mapping[int, float] = reading.values.get(row.tariff_key, {})
        return per_tariff.get(slot.tariff)
    if row.shape is Shape.PHASES and slot.phase is not None:
        per_phase: Mapping[str, float] = reading.values.get(row.key, {})
        return per_phase.get(slot.phase)
    value: float | datetime | str | None = reading.values.get(row.key)
    return value


def encode_reading(reading: MeterReading, keys: tuple[str, ...], zone: ZoneInfo = WARSAW) -> bytes:
    """The records of `keys` (DIB+VIB hex) carrying the reading's values. Unknown keys take
    their value from `reading.unknown`; a key without a value is an error, so layouts stay
    honest."""
    unknown = {u.key: u.value for u in reading.unknown}
    out = bytearray()
    for key in keys:
        header_bytes = bytes.fromhex(key)
        header = parse_header(header_bytes)
        slot = slot_for(header)
        value: Value
        if slot is None:
            if key not in unknown:
                raise ValueError(f"no value for the unknown record {key}")
            value = unknown[key]
        else:
            wanted = _field_value(reading, slot)
            if wanted is None:
                raise ValueError(f"the reading has no value for {key} ({slot.field.key})")
            if isinstance(wanted, datetime):
                value = time_point(wanted.astimezone(zone))
            elif isinstance(wanted, str):
                value = int(wanted)
            else:
                value = round(wanted * 10**-slot.exponent)
        out += header_bytes + encode_data(header.data, value)
    return bytes(out)
