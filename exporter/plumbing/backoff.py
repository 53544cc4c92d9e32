"""Capped exponential backoff with jitter, for anything that retries a remote party."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """`first`, twice that, four times ... at most `cap` seconds, each within +-`jitter` (a
    fraction) so that many clients do not retry in step. The caller counts its attempts and
    starts again from 0 after a good session."""

    first: float = 1.0
    cap: float = 60.0
    jitter: float = 0.2

    def delay(
        self, attempt: int, uniform: Callable[[float, float], float] = random.uniform
    ) -> float:
        """Seconds to wait before retry number `attempt` (0 for the first retry)."""
        base = min(self.cap, self.first * 2.0 ** min(attempt, 64))
        return base * uniform(1.0 - self.jitter, 1.0 + self.jitter)
