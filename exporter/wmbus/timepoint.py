"""Date and time types of EN 13757-3 Annex A: G (date), F (date, time), I (with seconds), J (time).

The meter sends local wall-clock time; the flags are kept as sent (docs/wmbus-records.md,
section 3) and the zone is applied by the caller, which knows the meter's country.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TimeType(enum.Enum):
    G = "G"  # 2 bytes: date
    J = "J"  # 3 bytes: time of day
    F = "F"  # 4 bytes: date, hour and minute
    I = "I"  # 6 bytes: date and time with seconds  # noqa: E741


#: Integer data lengths that carry a time point under VIF 0x6C/0x6D.
TIME_TYPES_BY_LENGTH: dict[int, TimeType] = {
    2: TimeType.G,
    3: TimeType.J,
    4: TimeType.F,
    6: TimeType.I,
}


@dataclass(frozen=True, slots=True)
class TimePoint:
    """Wall-clock fields and flags of a date/time record; zero fields are "not given"."""

    type: TimeType
    year: int = 0
    month: int = 0
    day: int = 0
    hour: int = 0
    minute: int = 0
    second: int = 0
    invalid: bool = False
    summer_time: bool = False
    leap_year: bool = False
    day_of_week: int = 0  # 1 = Monday, 0 = not given
    week: int = 0  # ISO week, 0 = not given


def _year(low: int, high: int) -> int:
    return 2000 + (high << 3 | low)


def decode_time_point(data: bytes) -> TimePoint:
    """Decode types G, J, F and I by length; bits outside the documented fields are ignored."""
    kind = TIME_TYPES_BY_LENGTH[len(data)]
    if kind is TimeType.G:
        return TimePoint(
            kind,
            year=_year(data[0] >> 5, data[1] >> 4),
            month=data[1] & 0x0F,
            day=data[0] & 0x1F,
        )
    if kind is TimeType.J:
        return TimePoint(kind, hour=data[2] & 0x1F, minute=data[1] & 0x3F, second=data[0] & 0x3F)
    if kind is TimeType.F:
        return TimePoint(
            kind,
            year=_year(data[2] >> 5, data[3] >> 4),
            month=data[3] & 0x0F,
            day=data[2] & 0x1F,
            hour=data[1] & 0x1F,
            minute=data[0] & 0x3F,
            invalid=bool(data[0] & 0x80),
            summer_time=bool(data[1] & 0x80),
        )
    return TimePoint(
        kind,
        year=_year(data[3] >> 5, data[4] >> 4),
        month=data[4] & 0x0F,
        day=data[3] & 0x1F,
        hour=data[2] & 0x1F,
        minute=data[1] & 0x3F,
        second=data[0] & 0x3F,
        invalid=bool(data[1] & 0x80),
        summer_time=bool(data[0] & 0x40),
        leap_year=bool(data[0] & 0x80),
        day_of_week=data[2] >> 5,
        week=data[5] & 0x3F,
    )


def encode_time_point(point: TimePoint) -> bytes:
    """The bytes of a time point (inverse of `decode_time_point` for the fields it keeps)."""
    offset = point.year - 2000 if point.year else 0
    low, high = offset & 0x07, (offset >> 3) & 0x0F
    if point.type is TimeType.G:
        return bytes((low << 5 | point.day, high << 4 | point.month))
    if point.type is TimeType.J:
        return bytes((point.second, point.minute, point.hour))
    if point.type is TimeType.F:
        return bytes(
            (
                point.minute | (0x80 if point.invalid else 0),
                point.hour | (0x80 if point.summer_time else 0) | 0x20,  # hundred-year = 1
                low << 5 | point.day,
                high << 4 | point.month,
            )
        )
    return bytes(
        (
            point.second | (0x40 if point.summer_time else 0) | (0x80 if point.leap_year else 0),
            point.minute | (0x80 if point.invalid else 0),
            point.hour | point.day_of_week << 5,
            low << 5 | point.day,
            high << 4 | point.month,
            point.week,
        )
    )
