"""Hourly balancing: a meter's total registers cut at every local clock hour.

The operator balances import against export per hour of the local clock (Europe/Warsaw; the
days the clocks change have 23 and 25 of them), across phases: only the hour's net counts
(docs/prosumer.md, "Hourly balancing"). An hour's energy is the register at its end minus at its
start, and the register at a boundary is the last reading before it (a reading right at the
boundary is the register there), as the calendar does for days. When the meter was not heard
across a boundary for longer than `silent_after`, the energy of that silence counts to the hour
of the reading after it, and the hours on both sides of every boundary it spans are partial.

`Balancer` is plain code: fed readings, it returns the hours they closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

HOUR = 3600.0
#: A silence longer than this is not walked hour by hour: the balancing starts again after it
#: (a year and a day; the hours between are simply missing).
LONGEST_GAP = 366 * 24 * HOUR
EPSILON = 1e-9  # kWh: registers below the last ones by more than this went back


def hour_start(at: float, zone: ZoneInfo) -> float:
    """When the local clock hour holding `at` began, as Unix time. Every offset of a zone with
    whole-hour (or half-hour) offsets keeps local hours 3600 s long."""
    offset = datetime.fromtimestamp(at, zone).utcoffset()
    seconds = offset.total_seconds() if offset is not None else 0.0
    return at - (at + seconds) % HOUR


@dataclass(frozen=True, slots=True)
class Registers:
    """A reading's total registers in kWh, and its import register per tariff zone."""

    at: float
    imported: float
    exported: float
    zones: Mapping[int, float] | None = None

    def as_json(self) -> list[Any]:
        zones = {str(k): v for k, v in self.zones.items()} if self.zones else None
        return [self.at, self.imported, self.exported, zones]

    @classmethod
    def from_json(cls, data: list[Any]) -> Registers:
        at, imported, exported, zones = data
        parsed = {int(k): float(v) for k, v in zones.items()} if zones else None
        return cls(float(at), float(imported), float(exported), parsed)


@dataclass(frozen=True, slots=True)
class Hour:
    """One local hour of one meter: the registers' differences over it, in kWh."""

    start: float  # Unix time
    imported: float
    exported: float
    partial: bool  # the meter was not heard across its start or end (or first heard in it)
    zone: int | None = None  # the import tariff zone that counted most in it

    @property
    def balanced_imported(self) -> float:
        return max(0.0, self.imported - self.exported)

    @property
    def balanced_exported(self) -> float:
        return max(0.0, self.exported - self.imported)


def _zone(start: Registers, end: Registers) -> int | None:
    """The tariff zone whose import register advanced most between two readings."""
    if not end.zones:
        return None
    before = start.zones or {}
    advanced = {zone: value - before.get(zone, value) for zone, value in end.zones.items()}
    zone, most = max(advanced.items(), key=lambda item: (item[1], -item[0]))
    return zone if most > 0 else None


class Balancer:
    """The open hour of one meter: where it started, and the latest reading."""

    __slots__ = ("end", "latest", "start", "start_partial", "zone")

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.latest: Registers | None = None
        self.start: Registers | None = None  # the register at the open hour's start
        self.start_partial = True
        self.end = 0.0  # when the open hour ends (Unix time)

    def feed(self, reading: Registers, silent_after: float) -> list[Hour]:
        """Take a reading (in time order; an older one is ignored); the hours it closed."""
        latest = self.latest
        if latest is None:
            self._begin(reading)
            return []
        if reading.at <= latest.at:  # a repeat, or out of order
            return []
        if self._went_back(latest, reading) or reading.at - latest.at > LONGEST_GAP:
            self._begin(reading)  # the open hour is lost: a replaced meter, or a year away
            return []
        if reading.at < self.end:  # the common case: the same hour
            self.latest = reading
            return []
        closed: list[Hour] = []
        gap = reading.at - latest.at > silent_after
        while self.end <= reading.at:
            exact = self.end == reading.at  # a reading right at the boundary is the register
            end = reading if exact else latest
            partial = not exact and gap
            closed.append(self._hour(end, partial))
            self.start, self.start_partial = end, partial
            self.end += HOUR
        self.latest = reading
        return closed

    def finish(self) -> Hour | None:
        """Close the open hour at the latest reading, partial (the end of a file of readings)."""
        if self.latest is None or self.start is None:
            return None
        hour = self._hour(self.latest, True)
        self.latest = self.start = None
        return hour

    def _hour(self, end: Registers, end_partial: bool) -> Hour:
        start = self.start
        assert start is not None
        return Hour(
            self.end - HOUR,
            round(end.imported - start.imported, 9),
            round(end.exported - start.exported, 9),
            self.start_partial or end_partial,
            _zone(start, end),
        )

    def _begin(self, reading: Registers) -> None:
        """Start again from `reading`: its hour is partial unless it lies on the boundary."""
        begins = hour_start(reading.at, self.zone)
        self.latest = self.start = reading
        self.start_partial = reading.at != begins
        self.end = begins + HOUR

    @staticmethod
    def _went_back(latest: Registers, reading: Registers) -> bool:
        """A register below the last one: a replaced meter; the balancing starts again."""
        return (
            reading.imported < latest.imported - EPSILON
            or reading.exported < latest.exported - EPSILON
        )

    def as_json(self) -> dict[str, Any] | None:
        if self.latest is None or self.start is None:
            return None
        return {
            "latest": self.latest.as_json(),
            "start": self.start.as_json(),
            "start_partial": self.start_partial,
            "end": self.end,
        }

    def restore(self, data: Mapping[str, Any] | None) -> None:
        if not data:
            return
        self.latest = Registers.from_json(data["latest"])
        self.start = Registers.from_json(data["start"])
        self.start_partial = bool(data["start_partial"])
        self.end = float(data["end"])
