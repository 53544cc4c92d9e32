"""Rate-limited log lines: the first of a kind at once, then at most one per interval saying how
many were held back, so a fault that repeats a thousand times a second costs a line a minute."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Due:
    """A line to write now: how many of its kind were held back since the last one, and how
    many seconds ago that was (0 for the first)."""

    held_back: int
    seconds: float

    def suffix(self) -> str:
        """` (and N more like it in the last M minutes)`, or nothing for a first line."""
        if not self.held_back:
            return ""
        seconds = self.seconds
        span = f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:.0f} s"
        return f" (and {self.held_back} more like it in the last {span})"


@dataclass(slots=True)
class _Last:
    at: float
    held_back: int = 0


class RateLimit:
    """Says which occurrences of an event deserve a log line: the first of each key, then the
    first after `interval` seconds have passed since the last line. The caller keeps the keys
    few (a reason, a meter and an error code), never one per sender. Thread-safe."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[Hashable, _Last] = {}
        self._lock = threading.Lock()

    def due(self, key: Hashable = None) -> Due | None:
        """A `Due` when this occurrence is to be logged, None when it is only counted."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is None:
                self._last[key] = _Last(now)
                return Due(0, 0.0)
            if now - last.at < self.interval:
                last.held_back += 1
                return None
            self._last[key] = _Last(now)
            return Due(last.held_back, now - last.at)


class RateLimitedLog:
    """Log lines of one kind through `logger` at `level`, rate-limited per key; a line after
    some were held back ends with how many."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.level = level
        self.limit = RateLimit(interval, clock)

    def __call__(self, message: str, *args: object, key: Hashable = None) -> None:
        due = self.limit.due(key)
        if due is not None:
            self.logger.log(self.level, message + "%s", *args, due.suffix())
