"""Capped exponential backoff: the one retry schedule of every receiver and output."""

from __future__ import annotations

import random
from dataclasses import dataclass

JITTER = 0.2  # each delay is spread by +-20 %, so clients that failed together retry apart


@dataclass(frozen=True, slots=True)
class Backoff:
    """`first`, then twice as long after each failure, at most `cap` seconds, +-20 % jitter.

    The caller counts its failed attempts and starts again from 0 after a good session (a
    receiver that delivered frames, a connection the broker accepted, a batch written)."""

    first: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt `attempt` + 1 (0 for the first retry)."""
        base = min(self.cap, self.first * 2.0 ** max(attempt, 0))
        return base * random.uniform(1 - JITTER, 1 + JITTER)
