"""The meter's clock: its date/time records as aware times in the meter's zone (Europe/Warsaw).

The zone's rules give the offset; the summer-time flag, or for makers that never set it the
receive time, only decides which of the two repeated autumn hours is meant
(docs/amiplus-meters.md, section 5).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from ..wmbus import TimePoint, TimeType

WARSAW = ZoneInfo("Europe/Warsaw")

#: Makers whose clocks set the summer-time flag reliably; for the others a clear flag says
#: nothing, and the repeated autumn hour is resolved with the receive time.
SUMMER_FLAG_MANUFACTURERS = frozenset({"APA", "DEV", "EGM", "KPL"})


@functools.lru_cache(maxsize=1024)
def _repeated_hour(zone: ZoneInfo, year: int, month: int, day: int, hour: int) -> bool:
    """Whether this wall-clock hour happens twice (clocks go back; on the hour in Europe)."""
    moment = datetime(year, month, day, hour, 30, tzinfo=zone)
    return moment.utcoffset() != moment.replace(fold=1).utcoffset()


def local_time(
    point: TimePoint,
    manufacturer: str,
    zone: ZoneInfo = WARSAW,
    received_at: datetime | None = None,
) -> datetime | None:
    """A meter's wall-clock time as an aware datetime; None if the fields are not a date.

    The zone rules give the offset; the summer-time flag (or, for makers that never set it,
    the receive time) only decides which of the two repeated autumn hours is meant.
    """
    try:
        first = datetime(
            point.year,
            point.month,
            point.day,
            point.hour,
            point.minute,
            point.second,
            tzinfo=zone,
        )
    except ValueError:
        return None
    if not _repeated_hour(zone, point.year, point.month, point.day, point.hour):
        return first
    second = first.replace(fold=1)
    if point.summer_time:
        return first
    if manufacturer in SUMMER_FLAG_MANUFACTURERS:
        return second
    if received_at is not None:
        return min((first, second), key=lambda t: abs(t - received_at))
    return first


def time_point_text(point: TimePoint, manufacturer: str, zone: ZoneInfo = WARSAW) -> str:
    """A date/time record as text: ISO 8601 with the zone's offset where it has a date."""
    if point.type is TimeType.G:
        return f"{point.year:04d}-{point.month:02d}-{point.day:02d}"
    if point.type is TimeType.J:
        return f"{point.hour:02d}:{point.minute:02d}:{point.second:02d}"
    moment = local_time(point, manufacturer, zone)
    if moment is None:
        return (
            f"{point.year:04d}-{point.month:02d}-{point.day:02d}T"
            f"{point.hour:02d}:{point.minute:02d}:{point.second:02d}"
        )
    return moment.isoformat()


def time_point(moment: datetime) -> TimePoint:
    """A type I time point as AMIplus meters send it (summer-time flag set in summer)."""
    return TimePoint(
        TimeType.I,
        year=moment.year,
        month=moment.month,
        day=moment.day,
        hour=moment.hour,
        minute=moment.minute,
        second=moment.second,
        summer_time=bool(moment.dst()),
    )


@dataclass(frozen=True, slots=True)
class Period:
    """One period the calendar keeps: its name in the API, its kind (the `period` label of the
    metrics) and how many periods of that kind back it is (0: the current one)."""

    name: str
    kind: str
    back: int


PERIODS: tuple[Period, ...] = (
    Period("today", "day", 0),
    Period("yesterday", "day", 1),
    Period("this_week", "week", 0),
    Period("last_week", "week", 1),
    Period("this_month", "month", 0),
    Period("last_month", "month", 1),
)
KINDS = ("day", "week", "month")


def period_start(kind: str, day: date, back: int = 0) -> date:
    """The first local day of the period of `kind` that is `back` periods before the one
    holding `day` (negative: after it)."""
    if kind == "day":
        return day - timedelta(days=back)
    if kind == "week":
        return day - timedelta(days=day.weekday() + 7 * back)
    months = day.year * 12 + day.month - 1 - back
    return date(months // 12, months % 12 + 1, 1)


def midnight(day: date, zone: ZoneInfo) -> float:
    """When a local day begins, as Unix time (its length follows the zone's rules)."""
    return datetime.combine(day, clock_time(), zone).timestamp()


def local_day(moment: float, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(moment, zone).date()
