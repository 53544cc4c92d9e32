"""Bounded caches of the core and of what is built on it, in one place so tests can reset them.

Meters repeat the same few record headers and layouts forever, so what was worked out once is
kept; the bound means garbage cannot grow a cache: when full it stops learning, nothing more.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


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


def clear_caches() -> None:
    """Forget everything learnt (tests that change a table call this)."""
    for cache in CACHES:
        cache.clear()
