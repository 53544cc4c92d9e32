"""The status page's charts: a compact ring of a meter's recent power and voltages, and a day of
its power, for the first `CHART_METERS` meters heard.

Doubles in fixed arrays (NaN for "no value"): about 12 KB per meter for an hour at 15-second
steps, whatever the number of telegrams, and 7 KB more for the 24-hour chart of 5-minute
averages. A household has a meter or two; a fleet's thousands of meters get no charts beyond
the first 16 (their figures are in Prometheus), so memory per meter stays small. It is fed
like an output, with every accepted reading.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Mapping

from ..pipeline import MeterUpdate, Output

HISTORY_STEP = 15.0  # seconds: at most one point per step and meter...
HISTORY_POINTS = 240  # ...and one hour of them
#: What the history keeps: time, power both ways, voltage per phase.
HISTORY_FIELDS = ("t", "import_w", "export_w", "L1", "L2", "L3")
DAY_STEP = 300.0  # seconds: the 24-hour chart holds the average power of each 5 minutes...
DAY_POINTS = 288  # ...for a day...
CHART_METERS = 16  # the first meters heard have charts; the others none
#: What the day history keeps: the start of each step and the average power both ways.
DAY_FIELDS = ("t", "import_w", "export_w")


class History:
    """The last `capacity` points, at most one per `step` seconds (the latest of each step)."""

    __slots__ = ("_columns", "_count", "_next", "capacity", "step")

    def __init__(self, fields: int, capacity: int, step: float) -> None:
        self.capacity = capacity
        self.step = step
        self._columns = [array("d", [math.nan]) * capacity for _ in range(fields)]
        self._next = 0  # where the next point goes
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, point: tuple[float | None, ...]) -> None:
        """Add a point (its first value is the time in seconds)."""
        last = (self._next - 1) % self.capacity
        if self._count and self._columns[0][last] // self.step == (point[0] or 0) // self.step:
            slot = last  # the same step: keep the latest
        else:
            slot = self._next
            self._next = (self._next + 1) % self.capacity
            self._count = min(self._count + 1, self.capacity)
        for column, value in zip(self._columns, point, strict=True):
            column[slot] = math.nan if value is None else value

    def latest(self) -> list[float]:
        """The latest point's values (NaN for none)."""
        last = (self._next - 1) % self.capacity
        return [column[last] for column in self._columns]

    def columns(self) -> list[list[float | None]]:
        """Every field, oldest point first, None where there was no value."""
        start = (self._next - self._count) % self.capacity
        order = [(start + n) % self.capacity for n in range(self._count)]
        return [[None if math.isnan(c[i]) else c[i] for i in order] for c in self._columns]


class Averages:
    """The average of each `step` seconds over the last `capacity` steps (time: the step's
    start), NaN where a value never came."""

    __slots__ = ("_counts", "_history", "_sums")

    def __init__(self, fields: int, capacity: int, step: float) -> None:
        self._history = History(fields, capacity, step)
        self._sums = [0.0] * (fields - 1)
        self._counts = [0] * (fields - 1)

    def add(self, at: float, values: tuple[float | None, ...]) -> None:
        step = self._history.step
        start = at // step * step
        columns = self._history.latest()
        if not len(self._history) or columns[0] != start:
            self._sums = [0.0] * len(values)
            self._counts = [0] * len(values)
        for n, value in enumerate(values):
            if value is not None:
                self._sums[n] += value
                self._counts[n] += 1
        self._history.add(
            (start, *(s / c if c else None for s, c in zip(self._sums, self._counts, strict=True)))
        )

    def columns(self) -> list[list[float | None]]:
        return self._history.columns()


class PageHistory(Output):
    """The recent history of every meter, by configured address."""

    name = "history"

    def __init__(self) -> None:
        self._meters: dict[str, History] = {}
        self._days: dict[str, Averages] = {}
        self._lock = threading.Lock()

    def submit(self, update: MeterUpdate) -> None:
        values = update.values
        volts = values.get("voltage_v", {})
        point = (
            update.received_at,
            values.get("power_imported_w"),
            values.get("power_exported_w"),
            volts.get("L1"),
            volts.get("L2"),
            volts.get("L3"),
        )
        with self._lock:
            history = self._meters.get(update.meter_id)
            if history is None:
                if len(self._meters) >= CHART_METERS:
                    return
                history = History(len(HISTORY_FIELDS), HISTORY_POINTS, HISTORY_STEP)
                self._meters[update.meter_id] = history
                self._days[update.meter_id] = Averages(len(DAY_FIELDS), DAY_POINTS, DAY_STEP)
            history.add(point)
            self._days[update.meter_id].add(update.received_at, point[1:3])

    def meters_changed(self, meters: Mapping[str, str]) -> None:
        with self._lock:
            for meter_id in self._meters.keys() - meters.keys():
                del self._meters[meter_id]
            for meter_id in self._days.keys() - meters.keys():
                del self._days[meter_id]

    def columns(self, meter_id: str) -> dict[str, list[float | None]] | None:
        """A meter's last hour by column, oldest first (None: not one of the first
        `CHART_METERS` meters heard)."""
        with self._lock:
            history = self._meters.get(meter_id)
            columns = history.columns() if history else None
        return None if columns is None else dict(zip(HISTORY_FIELDS, columns, strict=True))

    def day_columns(self, meter_id: str) -> dict[str, list[float | None]] | None:
        """A meter's last 24 hours of power, oldest first (None: not one of the first
        `CHART_METERS` meters heard)."""
        with self._lock:
            day = self._days.get(meter_id)
            columns = day.columns() if day else None
        return None if columns is None else dict(zip(DAY_FIELDS, columns, strict=True))
