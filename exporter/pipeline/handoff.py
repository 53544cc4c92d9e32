"""The output interface: where accepted readings go besides Prometheus (which reads the state at
scrape time). An output is started once, handed every accepted reading, asked for its status
and its own metrics, and stopped; a fault of one output never reaches the receivers or another.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..amiplus import MeterReading
from ..config import Scheme
from ..settlement import LedgerView

if TYPE_CHECKING:
    from prometheus_client import Metric


@dataclass(frozen=True, slots=True)
class MeterUpdate:
    """One accepted reading and what the meter's state holds after it."""

    meter_id: str  # the configured address (the state's key)
    name: str
    reading: MeterReading  # as accepted: registers that stepped back are removed
    values: Mapping[str, Any]  # the meter's latest value of every field, merged (a copy)
    received_at: float
    receiver: str
    #: The meter's running cost in PLN after this reading, by money key ("energy/1",
    #: "distribution/1", "export"; pipeline/calendar.py): empty while no price applies.
    cost: Mapping[str, float] = field(default_factory=dict)
    contracted_power: float | None = None  # watts, from the meter's configuration
    #: The meter's prosumer scheme from its configuration (None: not settled), and its
    #: settlement figures as of this reading when they changed (an hour closed; see
    #: `Settlements.record`), else None: outputs keep the latest they were given.
    scheme: Scheme | None = None
    settlement: LedgerView | None = None


class Output(ABC):
    """One destination of readings, built from one configuration section."""

    #: Its key in `/api/status` and the name in logs (also the configuration section's name).
    name: str

    def start(self) -> None:  # noqa: B027 (a hook: most outputs need nothing here)
        """Begin work (threads, connections); called once before the first `submit`."""

    @abstractmethod
    def submit(self, update: MeterUpdate) -> None:
        """Take a reading, from a receiver's thread: quick, and never waiting on a network."""

    def meters_changed(self, meters: Mapping[str, str]) -> None:  # noqa: B027 (a hook)
        """The configured meters (address -> name) after a reload; forget the others."""

    def stop(self) -> None:  # noqa: B027 (a hook)
        """Finish within a few seconds; keep what is not delivered where the next start finds
        it."""

    def status(self) -> dict[str, Any] | None:
        """What the status page shows about this output (None: nothing)."""
        return None

    def collect(self) -> Iterable[Metric]:
        """The output's own Prometheus metric families, at scrape time."""
        return ()
