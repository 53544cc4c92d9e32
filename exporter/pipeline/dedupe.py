"""Duplicate suppression: the same frame heard by two receivers, or repeated, is passed on once."""

from __future__ import annotations

import hashlib

DIGEST_SIZE = 16  # bytes of BLAKE2b per frame: no two frames share one, nor can be made to


class Deduplicator:
    """Remembers frames for `window` seconds; memory is bounded by `limit` frames, each kept as
    a digest (a frame that is no telegram may be long, and a sender may send many).

    A repeat does not extend the window, so a frame that really is sent again later (an
    unchanged reading from a meter with a constant access number) is not suppressed forever.
    """

    def __init__(self, window: float = 5.0, limit: int = 100_000) -> None:
        self.window = window
        self.limit = limit
        self._seen: dict[bytes, float] = {}  # digest -> when; insertion order is time order

    def first(self, frame: bytes, now: float) -> bool:
        """True when `frame` was not seen in the last `window` seconds (and remember it)."""
        seen = self._seen
        horizon = now - self.window
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] > horizon and len(seen) < self.limit:
                break
            del seen[oldest]
        digest = hashlib.blake2b(frame, digest_size=DIGEST_SIZE).digest()
        if digest in seen:
            return False
        seen[digest] = now
        return True

    def __len__(self) -> int:
        return len(self._seen)
