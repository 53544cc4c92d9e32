"""Per-meter state: the latest value of every field, guards, staleness, failures, heard meters.

One lock guards it all; receivers' threads update it, outputs take snapshots. Work per telegram
is a few dictionary operations, whatever the number of meters.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..amiplus.reading import MAP_FIELDS, NUMBER_FIELDS, WARSAW, MeterReading
from ..web.history import History

#: Register fields guarded against going backwards: (total attribute, per-tariff attribute).
REGISTERS = (
    ("energy_imported_kwh", "energy_imported_tariff_kwh"),
    ("energy_exported_kwh", "energy_exported_tariff_kwh"),
    ("reactive_energy_imported_kvarh", None),
    ("reactive_energy_exported_kvarh", None),
)
REPLACED_AFTER = 3  # telegrams in a row below the old register value: the meter was replaced
#: Fields copied from each reading when present; absent ones keep their last value, so meters
#: that alternate record sets (Apator Otus) show everything.
MERGED = (
    "meter_time",
    "serial_number",
    *NUMBER_FIELDS,
    "energy_imported_derived",
    "energy_exported_derived",
)
MERGED_MAPS = MAP_FIELDS
INTERVALS_KEPT = 16
DAY_REGISTERS = ("energy_imported_kwh", "energy_exported_kwh")
HISTORY_STEP = 15.0  # seconds: at most one history point per step and meter...
HISTORY_POINTS = 240  # ...and one hour of them, for the status page's charts
#: What the history keeps: time, power both ways, voltage per phase.
HISTORY_FIELDS = ("t", "import_w", "export_w", "L1", "L2", "L3")
STALE_FACTOR = 5  # stale after five missed telegrams...
STALE_MIN, STALE_MAX, STALE_DEFAULT = 60.0, 3600.0, 600.0  # ...within sane bounds


def stale_after(intervals: deque[float], configured: float | None) -> float:
    """How long a meter may be silent before its measurements are dropped: the configured
    value, or five times its median telegram interval, between 1 minute and 1 hour (10
    minutes until two telegrams have shown the interval)."""
    if configured is not None:
        return configured
    if not intervals:
        return STALE_DEFAULT
    ordered = sorted(intervals)
    median = ordered[len(ordered) // 2]  # the upper median: no statistics import for this
    return min(STALE_MAX, max(STALE_MIN, STALE_FACTOR * median))


@dataclass
class Failure:
    """The latest telegram of a meter that could not be decoded, in words a user can act on."""

    code: str
    message: str
    at: float


@dataclass
class MeterState:
    """Everything known about one meter; changed only under `State`'s lock.

    `key` is the configured address; `meter_id` the ID as the telegrams print it (the same,
    or byte-reversed when eLicznik showed it reversed). `revision` counts changes, so outputs
    can keep what they derived from an unchanged meter.
    """

    key: str
    meter_id: str
    name: str
    manufacturer: str = ""
    version: int = 0
    values: dict[str, Any] = field(default_factory=dict)
    telegrams: int = 0
    first_telegram_at: float | None = None
    last_telegram_at: float | None = None
    rssi_dbm: float | None = None
    receiver: str = ""
    decrypt_failures: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    last_failure: Failure | None = None
    key_variant: str | None = None
    intervals: deque[float] = field(default_factory=lambda: deque(maxlen=INTERVALS_KEPT))
    backwards: dict[str, tuple[float, int]] = field(default_factory=dict)
    revision: int = 0
    history: History = field(
        default_factory=lambda: History(len(HISTORY_FIELDS), HISTORY_POINTS, HISTORY_STEP)
    )
    day: date | None = None  # the local day `day_start` belongs to
    day_start: dict[str, float] = field(default_factory=dict)  # registers when the day began

    def snapshot(self) -> MeterState:
        """A copy that the caller may read without the lock."""
        return MeterState(
            self.key,
            self.meter_id,
            self.name,
            self.manufacturer,
            self.version,
            {k: dict(v) if isinstance(v, dict) else v for k, v in self.values.items()},
            self.telegrams,
            self.first_telegram_at,
            self.last_telegram_at,
            self.rssi_dbm,
            self.receiver,
            self.decrypt_failures,
            Counter(self.rejected),
            self.last_failure,
            self.key_variant,
            deque(self.intervals, maxlen=INTERVALS_KEPT),
            revision=self.revision,
            history=self.history.copy(),
            day=self.day,
            day_start=dict(self.day_start),
        )

    def today(self) -> dict[str, float]:
        """Energy of the current local day, from register differences (kWh)."""
        return {
            name: round(self.values[name] - start, 3)
            for name, start in self.day_start.items()
            if name in self.values
        }


class State:
    """All meters, the receivers' duplicate count and the unconfigured-telegram count."""

    def __init__(self, stale_after_seconds: float | None = None, zone: ZoneInfo = WARSAW) -> None:
        self.stale_after_seconds = stale_after_seconds
        self.zone = zone
        self.lock = threading.Lock()
        self.meters: dict[str, MeterState] = {}
        self.unconfigured_telegrams = 0
        self.duplicates = 0
        self.undecodable = Counter[str]()  # failures from meters not configured, by code

    def meter(self, key: str, name: str) -> MeterState:
        """The state of a configured meter (created on first use; renamed on reload)."""
        state = self.meters.get(key)
        if state is None:
            state = self.meters[key] = MeterState(key, key, name)
        if state.name != name:
            state.name = name
            state.revision += 1
        return state

    def forget_except(self, meter_ids: set[str]) -> None:
        """Drop meters no longer configured (after a reload)."""
        with self.lock:
            for meter_id in set(self.meters) - meter_ids:
                del self.meters[meter_id]

    def record(
        self, key: str, name: str, reading: MeterReading, received_at: float, receiver: str
    ) -> MeterReading:
        """Merge a decoded reading; registers that step back are rejected (and counted) unless
        the lower value persists, which means the meter was replaced. Returns the reading as
        accepted (rejected registers removed)."""
        with self.lock:
            state = self.meter(key, name)
            state.revision += 1
            state.meter_id = reading.meter_id
            rejected = self._guard(state, reading)
            if state.last_telegram_at is not None and received_at > state.last_telegram_at:
                state.intervals.append(received_at - state.last_telegram_at)
            state.telegrams += 1
            state.first_telegram_at = state.first_telegram_at or received_at
            state.last_telegram_at = received_at
            state.manufacturer, state.version = reading.manufacturer, reading.version
            state.rssi_dbm = reading.rssi_dbm if reading.rssi_dbm is not None else state.rssi_dbm
            state.receiver = receiver
            state.key_variant = reading.key_variant
            state.last_failure = None
            values = state.values
            before = {name: values.get(name) for name in DAY_REGISTERS}
            for attribute in MERGED:
                value = getattr(reading, attribute)
                if value is not None and value is not False and attribute not in rejected:
                    values[attribute] = value
            for attribute in MERGED_MAPS:
                update = getattr(reading, attribute)
                if update:
                    kept = {k: v for k, v in update.items() if (attribute, k) not in rejected}
                    values.setdefault(attribute, {}).update(kept)
            self._remember(state, received_at, before)
            if rejected:
                return _without(reading, rejected)
            return reading

    def _remember(self, state: MeterState, received_at: float, before: dict[str, Any]) -> None:
        """The history point and the day's starting registers, after a merge."""
        values = state.values
        volts = values.get("voltage_v", {})
        state.history.add(
            (
                received_at,
                values.get("power_imported_w"),
                values.get("power_exported_w"),
                volts.get("L1"),
                volts.get("L2"),
                volts.get("L3"),
            )
        )
        day = datetime.fromtimestamp(received_at, self.zone).date()
        if state.day != day:
            # The registers at the end of the previous day start the new one; on the first
            # day heard, the first registers.
            start = before if state.day is not None else values
            state.day = day
            state.day_start = {n: start[n] for n in DAY_REGISTERS if start.get(n) is not None}

    @staticmethod
    def _guard(state: MeterState, reading: MeterReading) -> set[Any]:
        """The register values of `reading` below what the meter said before."""
        rejected: set[Any] = set()
        for total, per_tariff in REGISTERS:
            candidates: list[tuple[Any, str, float, float | None]] = [
                (total, total, getattr(reading, total), state.values.get(total))
            ]
            if per_tariff:
                known = state.values.get(per_tariff, {})
                for tariff, value in getattr(reading, per_tariff).items():
                    candidates.append(
                        ((per_tariff, tariff), f"{per_tariff}[{tariff}]", value, known.get(tariff))
                    )
            for key, label, new, old in candidates:
                if new is None or old is None or new >= old:
                    state.backwards.pop(label, None)
                    continue
                seen_value, times = state.backwards.get(label, (new, 0))
                times = times + 1 if new >= seen_value else 1
                state.backwards[label] = (new, times)
                if times < REPLACED_AFTER:
                    rejected.add(key)
                    state.rejected["register_decreased"] += 1
                else:
                    state.backwards.pop(label, None)  # it persists: a new meter, accept it
        return rejected

    def record_failure(self, key: str, name: str, code: str, message: str, at: float) -> None:
        with self.lock:
            state = self.meter(key, name)
            state.revision += 1
            if code == "decryption_failed":
                state.decrypt_failures += 1
            else:
                state.rejected[code] += 1
            state.last_failure = Failure(code, message, at)

    def snapshot(self) -> list[MeterState]:
        with self.lock:
            return [meter.snapshot() for meter in self.meters.values()]

    def stale_after_for(self, meter: MeterState) -> float:
        return stale_after(meter.intervals, self.stale_after_seconds)


def _without(reading: MeterReading, rejected: set[Any]) -> MeterReading:
    """The reading without its rejected register values."""
    changes: dict[str, Any] = {}
    for key in rejected:
        if isinstance(key, tuple):
            name, tariff = key
            current = changes.get(name, getattr(reading, name))
            changes[name] = {t: v for t, v in current.items() if t != tariff}
        else:
            changes[key] = None
            derived = key.replace("_kwh", "_derived")
            if hasattr(reading, derived):
                changes[derived] = False
    return replace(reading, **changes)
