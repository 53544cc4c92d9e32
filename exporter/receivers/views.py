"""What a receiver did, as metrics and the status page show it: one view of the receiver itself
and, for a receiver that hears through several gateways (the ESP32 boards behind an MQTT broker),
one view per gateway, named `<receiver>/<gateway>`, so a user sees which board hears a meter.

The gateways' views are bounded: at most `MAX_GATEWAYS`; a new gateway takes the view of the one
silent longest if that one has been silent for `GIVES_WAY_AFTER`, else it is refused and its
frames count under the receiver itself (a flood of made-up names cannot grow the memory).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace

from ..amiplus import RECEIVER_STARTING
from ..plumbing import ConnectionLimit

MAX_GATEWAYS = 64
GIVES_WAY_AFTER = 3600.0  # seconds a gateway is silent before a new one may take its view
#: A gateway's name: 1-64 characters, none of them a control character.
GATEWAY_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")


@dataclass
class ReceiverStats:
    """What one receiver (or one of its gateways) did, for metrics and the status page."""

    name: str
    description: str
    frames: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    last_frame_at: float | None = None
    up: bool = False
    down_reason: str | None = "starting"
    closed_connections: Counter[str] | None = None  # a listener's closed senders, by reason
    down_code: str | None = RECEIVER_STARTING  # the kind of `down_reason`, for advice
    description_pl: str = ""  # the source in Polish, where its description has English words
    dropped: int | None = None  # messages shed for want of room (sources that shed a flood)
    gateways_refused: int | None = None  # messages of gateways that got no view of their own

    def copy(self) -> ReceiverStats:
        closed = self.closed_connections
        return replace(
            self,
            errors=Counter(self.errors),
            closed_connections=None if closed is None else Counter(closed),
        )


class Views:
    """A receiver's own view and its gateways'; the receiver serialises the calls (its lock)."""

    def __init__(self, base: ReceiverStats, limit: int = MAX_GATEWAYS) -> None:
        self.base = base
        self._gateways: dict[str, ReceiverStats] = {}
        self._limit: ConnectionLimit[str, None] = ConnectionLimit(
            limit, replace_after=GIVES_WAY_AFTER
        )

    def of(self, gateway: str | None, now: float) -> ReceiverStats:
        """The view that counts a frame or an error from `gateway` (None: the receiver's own) at
        monotonic time `now`."""
        if gateway is None:
            return self.base
        view = self._gateways.get(gateway)
        if view is not None:
            self._limit.mark(gateway, None, now)
            return view
        named = GATEWAY_NAME.fullmatch(gateway) is not None
        admission = self._limit.admit(gateway, None, now) if named else None
        if admission is None or not admission.admitted:
            self.base.gateways_refused = (self.base.gateways_refused or 0) + 1
            return self.base
        if admission.replaced is not None:
            del self._gateways[admission.replaced]
        base = self.base
        view = ReceiverStats(
            f"{base.name}/{gateway}",
            f"gateway {gateway} via {base.description}",
            description_pl=f"bramka {gateway} przez {base.description_pl or base.description}",
        )
        self._gateways[gateway] = view
        return view

    def snapshot(self) -> list[ReceiverStats]:
        """Copies of every view, the receiver's first; a gateway's view shares the receiver's
        connection: up, why down, reconnects."""
        base = self.base.copy()
        return [
            base,
            *(
                replace(
                    view.copy(),
                    up=base.up,
                    down_reason=base.down_reason,
                    down_code=base.down_code,
                    reconnects=base.reconnects,
                )
                for view in self._gateways.values()
            ),
        ]
