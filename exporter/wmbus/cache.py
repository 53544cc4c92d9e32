"""Bounded caches of the core and of what is built on it, in one place so tests can reset them.

Meters repeat the same few record headers and layouts forever, so what was worked out once is
kept; the bound means garbage cannot grow a cache: when full it stops learning, nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Self, TypeVar

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


#: Every cache made, so that `clear_caches` reaches them all.
CACHES: list[BoundedCache[Any, Any]] = []


class BoundedCache(Generic[K, V]):
    """A dictionary that stops taking new keys at `limit`; every instance is in `CACHES`."""

    __slots__ = ("_data", "get", "limit", "name")

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self._data: dict[K, V] = {}
        self.get = self._data.get
        CACHES.append(self)

    def put(self, key: K, value: V) -> V:
        """Remember `value` under `key` while there is room; returns `value` either way."""
        if len(self._data) < self.limit:
            self._data[key] = value
        return value

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class TableViews(Generic[K, V]):
    """The views of a table (its rows, `K`) worked out once per table object by `build`: a test
    that swaps the rows and calls `clear_caches` gets views of the new rows everywhere."""

    def __init__(self, name: str, build: Callable[[K], V]) -> None:
        self._build = build
        self._views: BoundedCache[int, tuple[K, V]] = BoundedCache(name, 4)

    def of(self, rows: K) -> V:
        found = self._views.get(id(rows))
        if found is None or found[0] is not rows:
            found = self._views.put(id(rows), (rows, self._build(rows)))
        return found[1]


class Derives:
    """A table's views that its readers work out (`derived`), kept with the table so no reader
    copies or caches the table on its own."""

    def derived(self, build: Callable[[Self], T]) -> T:
        """`build(self)`, worked out once per table."""
        views: dict[Callable[[Self], Any], Any] = self.__dict__.setdefault("_derived", {})
        if build not in views:
            views[build] = build(self)
        found: T = views[build]
        return found


def clear_caches() -> None:
    """Forget everything learnt (tests that change a table call this)."""
    for cache in CACHES:
        cache.clear()
