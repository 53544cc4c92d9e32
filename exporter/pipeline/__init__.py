"""From frames to state: duplicates, meters heard on the air, and the per-meter state."""

from .calendar import (
    PERIODS,
    Calendar,
    Cost,
    Figure,
    local_day,
    midnight,
    period_start,
)
from .handoff import MeterUpdate, Output
from .heard import HeardMeter, HeardMeters, configured_match, peek_or_none
from .intake import Intake
from .settlement import Settlements
from .state import MeterState, State

__all__ = [
    "PERIODS",
    "Calendar",
    "Cost",
    "Figure",
    "HeardMeter",
    "HeardMeters",
    "Intake",
    "MeterState",
    "MeterUpdate",
    "Output",
    "Settlements",
    "State",
    "configured_match",
    "local_day",
    "midnight",
    "peek_or_none",
    "period_start",
]
