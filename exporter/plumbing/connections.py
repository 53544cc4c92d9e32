"""The connection limit of every listener: at most so many open, and a new connection takes the
place of the one that has waited longest, so idle connections can never lock senders out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")  # what names a connection (its socket)
S = TypeVar("S")  # where a connection is (waiting, being answered, ...), the owner's to say


@dataclass(slots=True)
class _Open(Generic[S]):
    state: S
    since: float  # when it last changed state or spoke


@dataclass(frozen=True, slots=True)
class Admission(Generic[K]):
    """Whether a new connection may stay, and the one closed to make room for it."""

    admitted: bool
    replaced: K | None = None


class ConnectionLimit(Generic[K, S]):
    """At most `limit` open connections. When all are taken, a new one replaces the one that has
    waited longest among those that may give way (`may_give_way` of its state) and have been
    quiet for at least `replace_after` seconds; when none may, the new one is refused. The owner
    serialises the calls (one thread, or its own lock)."""

    def __init__(
        self,
        limit: int,
        *,
        may_give_way: Callable[[S], bool] = lambda state: True,
        replace_after: float = 0.0,
    ) -> None:
        self.limit = limit
        self.may_give_way = may_give_way
        self.replace_after = replace_after
        self._open: dict[K, _Open[S]] = {}

    def admit(self, key: K, state: S, now: float) -> Admission[K]:
        """Take a new connection if there is room or one may give way (the caller closes that
        one, and the new one when it is not admitted)."""
        replaced = None
        if len(self._open) >= self.limit:
            waiting = [
                (entry.since, other)
                for other, entry in self._open.items()
                if self.may_give_way(entry.state) and now - entry.since >= self.replace_after
            ]
            if not waiting:
                return Admission(False)
            _, replaced = min(waiting, key=lambda item: item[0])
            del self._open[replaced]
        self._open[key] = _Open(state, now)
        return Admission(True, replaced)

    def mark(self, key: K, state: S, now: float) -> None:
        """A connection changed state or spoke: it has waited since `now`."""
        entry = self._open.get(key)
        if entry is not None:
            entry.state, entry.since = state, now

    def remove(self, key: K) -> bool:
        """Forget a closed connection; False when it was not open (already replaced)."""
        return self._open.pop(key, None) is not None

    def waiting_longer(self, seconds: float, now: float, state: S | None = None) -> list[K]:
        """The connections (in `state`, if given) unchanged for more than `seconds`."""
        return [
            key
            for key, entry in self._open.items()
            if now - entry.since > seconds and (state is None or entry.state == state)
        ]

    def count(self, state: S) -> int:
        """How many connections are in `state`."""
        return sum(1 for entry in self._open.values() if entry.state == state)

    def __contains__(self, key: object) -> bool:
        return key in self._open

    def __len__(self) -> int:
        return len(self._open)

    def current(self) -> list[K]:
        """The open connections, as a list (they may be closed while it is walked)."""
        return list(self._open)
