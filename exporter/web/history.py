"""A compact ring of a meter's recent values, for the status page's charts.

Doubles in fixed arrays (NaN for "no value"): about 12 KB per meter for an hour at 15-second
steps, whatever the number of telegrams, so thousands of meters stay affordable.
"""

from __future__ import annotations

import math
from array import array


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

    def columns(self) -> list[list[float | None]]:
        """Every field, oldest point first, None where there was no value."""
        start = (self._next - self._count) % self.capacity
        order = [(start + n) % self.capacity for n in range(self._count)]
        return [[None if math.isnan(c[i]) else c[i] for i in order] for c in self._columns]

    def copy(self) -> History:
        twin = History(len(self._columns), self.capacity, self.step)
        twin._columns = [array("d", column) for column in self._columns]
        twin._next, twin._count = self._next, self._count
        return twin
