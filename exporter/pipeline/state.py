"""Per-meter state: the latest value of every field, register guards, staleness and failures.

One lock guards it all; receivers' threads update it, outputs take snapshots. Work per telegram
is a few dictionary operations, whatever the number of meters. Which values are registers comes
from the field table (`exporter/amiplus/fields.py`).
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..amiplus import REGISTER_DECREASED, RSSI, MeterReading, table
from ..config import MeterConfig
from ..wmbus import DecryptionError

REPLACED_AFTER = 3  # telegrams in a row below the old register value: the meter was replaced
INTERVALS_KEPT = 16
STALE_FACTOR = 5  # stale after five missed telegrams...
STALE_MIN, STALE_MAX, STALE_DEFAULT = 60.0, 3600.0, 600.0  # ...within sane bounds

#: A rejected register value: a total's key, or (tariff map key, tariff).
Rejected = str | tuple[str, int]


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


@dataclass(frozen=True, slots=True)
class Reception:
    """How a receiver last heard a meter (duplicates included): signal and time."""

    rssi_dbm: float | None
    at: float


@dataclass
class Failure:
    """The latest telegram of a meter that could not be decoded: its error code and facts."""

    code: str
    message: str
    at: float


@dataclass
class MeterState:
    """Everything known about one meter; changed only under `State`'s lock.

    `key` is the configured address; `meter_id` the ID as the telegrams print it (the same,
    or byte-reversed when eLicznik showed it reversed). `values` holds the latest value of
    every field the meter has sent, by field key. `revision` counts changes, so outputs can
    keep what they derived from an unchanged meter.
    """

    key: str
    meter_id: str
    name: str
    site: str = ""
    contracted_power: float | None = None  # watts, from the configuration
    manufacturer: str = ""
    version: int = 0
    values: dict[str, Any] = field(default_factory=dict)
    telegrams: int = 0
    first_telegram_at: float | None = None
    last_telegram_at: float | None = None
    receiver: str = ""  # the receiver of the latest telegram decoded
    receptions: dict[str, Reception] = field(default_factory=dict)  # by receiver, recent only
    decrypt_failures: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    last_failure: Failure | None = None
    key_variant: str | None = None
    intervals: deque[float] = field(default_factory=lambda: deque(maxlen=INTERVALS_KEPT))
    backwards: dict[str, tuple[float, int]] = field(default_factory=dict)
    revision: int = 0

    @property
    def rssi_dbm(self) -> float | None:
        rssi: float | None = self.values.get(RSSI)
        return rssi

    @property
    def best_receiver(self) -> str | None:
        """The receiver that hears the meter best: the strongest recent signal (the most
        recent of equals; a receiver that gives no signal figure ranks last)."""
        if not self.receptions:
            return None
        return max(
            self.receptions.items(),
            key=lambda item: (item[1].rssi_dbm is not None, item[1].rssi_dbm or 0.0, item[1].at),
        )[0]

    def snapshot(self) -> MeterState:
        """A copy that the caller may read without the lock."""
        return replace(
            self,
            values=copy_values(self.values),
            rejected=Counter(self.rejected),
            intervals=deque(self.intervals, maxlen=INTERVALS_KEPT),
            backwards=dict(self.backwards),
            receptions=dict(self.receptions),
        )


@dataclass(frozen=True, slots=True)
class Counts:
    """The exporter-wide counts: neighbours' telegrams, duplicates, undecodable frames."""

    unconfigured_telegrams: int
    duplicates: int
    undecodable: Mapping[str, int]  # failures from meters not configured, by error code


@dataclass(frozen=True, slots=True)
class Silence:
    """How long a meter has been silent against how long it may be: last telegram (None:
    never heard) and its `stale_after` in seconds."""

    key: str
    last_telegram_at: float | None
    stale_after: float


@dataclass(frozen=True, slots=True)
class Scraped:
    """A meter as a scrape sees it: its revision, whether it is stale, and whether either
    changed since the scraper rendered it (then the scraper asks for a `copy`)."""

    key: str
    meter_id: str
    revision: int
    stale: bool
    changed: bool


def copy_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of field values whose maps (tariffs, phases) are copies too."""
    return {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}


class State:
    """All meters, the receivers' duplicate count and the unconfigured-telegram count."""

    def __init__(self, stale_after_seconds: float | None = None) -> None:
        self.stale_after_seconds = stale_after_seconds
        self._lock = threading.Lock()
        self._meters: dict[str, MeterState] = {}
        self._unconfigured_telegrams = 0
        self._duplicates = 0
        self._undecodable = Counter[str]()  # failures from meters not configured, by code

    # --- what the configuration says ----------------------------------------------------------

    def reconfigure(self, stale_after: float | None, meters: Iterable[MeterConfig]) -> None:
        """Take a configuration (at start and on reload): `stale_after`, each meter's name,
        site and contracted power; meters no longer configured are forgotten."""
        with self._lock:
            self.stale_after_seconds = stale_after
            kept = set()
            for config in meters:
                kept.add(config.meter_id)
                state = self._meter(config.meter_id, config.name)
                if (state.site, state.contracted_power) != (config.site, config.contracted_power):
                    state.site, state.contracted_power = config.site, config.contracted_power
                    state.revision += 1
            for key in set(self._meters) - kept:
                del self._meters[key]

    def _meter(self, key: str, name: str) -> MeterState:
        """The state of a configured meter (created on first use; renamed on reload)."""
        state = self._meters.get(key)
        if state is None:
            state = self._meters[key] = MeterState(key, key, name)
        if state.name != name:
            state.name = name
            state.revision += 1
        return state

    def record(
        self, key: str, name: str, reading: MeterReading, received_at: float, receiver: str
    ) -> tuple[MeterReading, dict[str, Any]]:
        """Merge a decoded reading; registers that step back are rejected (and counted) unless
        the lower value persists, which means the meter was replaced. Returns the reading as
        accepted (rejected registers removed) and a copy of the meter's merged values."""
        with self._lock:
            state = self._meter(key, name)
            state.revision += 1
            state.meter_id = reading.meter_id
            rejected = self._guard(state, reading)
            if state.last_telegram_at is not None and received_at > state.last_telegram_at:
                state.intervals.append(received_at - state.last_telegram_at)
            state.telegrams += 1
            state.first_telegram_at = state.first_telegram_at or received_at
            state.last_telegram_at = received_at
            state.manufacturer, state.version = reading.manufacturer, reading.version
            state.receiver = receiver
            self._heard(state, receiver, reading.rssi_dbm, received_at)
            state.key_variant = reading.key_variant
            state.last_failure = None
            accepted = _without(reading, rejected) if rejected else reading
            _merge(state.values, accepted.values)
            return accepted, copy_values(state.values)

    @staticmethod
    def _guard(state: MeterState, reading: MeterReading) -> set[Rejected]:
        """The register values of `reading` below what the meter said before."""
        rejected: set[Rejected] = set()
        for row in table().registers:
            candidates: list[tuple[Rejected, str, float | None, float | None]] = [
                (row.key, row.key, reading.values.get(row.key), state.values.get(row.key))
            ]
            if row.tariff_key:
                known = state.values.get(row.tariff_key, {})
                for tariff, value in reading.values.get(row.tariff_key, {}).items():
                    candidates.append(
                        (
                            (row.tariff_key, tariff),
                            f"{row.tariff_key}[{tariff}]",
                            value,
                            known.get(tariff),
                        )
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
                    state.rejected[REGISTER_DECREASED] += 1
                else:
                    state.backwards.pop(label, None)  # it persists: a new meter, accept it
        return rejected

    def heard_again(
        self, key: str, name: str, receiver: str, rssi_dbm: float | None, at: float
    ) -> None:
        """A duplicate of a telegram already decoded: only how this receiver heard it."""
        with self._lock:
            self._heard(self._meter(key, name), receiver, rssi_dbm, at)

    def _heard(self, state: MeterState, receiver: str, rssi_dbm: float | None, at: float) -> None:
        """Remember the reception and forget receivers silent for longer than the meter may be."""
        state.revision += 1
        state.receptions[receiver] = Reception(rssi_dbm, at)
        horizon = at - self.stale_after_for(state)
        for name in [n for n, r in state.receptions.items() if r.at < horizon]:
            del state.receptions[name]

    def record_failure(self, key: str, name: str, code: str, message: str, at: float) -> None:
        with self._lock:
            state = self._meter(key, name)
            state.revision += 1
            if code == DecryptionError.code:
                state.decrypt_failures += 1
            else:
                state.rejected[code] += 1
            state.last_failure = Failure(code, message, at)

    # --- counts of frames that are no meter's reading -------------------------------------

    def count_duplicate(self) -> None:
        with self._lock:
            self._duplicates += 1

    def count_unconfigured(self) -> None:
        with self._lock:
            self._unconfigured_telegrams += 1

    def count_undecodable(self, code: str) -> None:
        with self._lock:
            self._undecodable[code] += 1

    # --- what readers see -----------------------------------------------------------------

    def counts(self) -> Counts:
        with self._lock:
            return Counts(self._unconfigured_telegrams, self._duplicates, dict(self._undecodable))

    def snapshot(self) -> list[MeterState]:
        """A copy of every meter, to read without the lock."""
        with self._lock:
            return [meter.snapshot() for meter in self._meters.values()]

    def keys(self) -> set[str]:
        """The configured meters' addresses."""
        with self._lock:
            return set(self._meters)

    def meter_ids(self, keys: Iterable[str]) -> dict[str, str]:
        """The ID the telegrams print (the `meter_id` label) of each of these configured
        meters."""
        with self._lock:
            return {key: meter.meter_id for key in keys if (meter := self._meters.get(key))}

    def silences(self) -> list[Silence]:
        """Every meter's last telegram and how long it may be silent."""
        with self._lock:
            return [
                Silence(key, meter.last_telegram_at, self.stale_after_for(meter))
                for key, meter in self._meters.items()
            ]

    def scrape(self, now: float, rendered: Mapping[str, tuple[int, bool]]) -> list[Scraped]:
        """Every meter in `meter_id` order, marked changed when its revision or staleness is
        not what `rendered` says the scraper already holds: a scrape copies (`copy`) only what
        changed, one meter at a time, so 20,000 copies never exist at once."""
        with self._lock:
            out = []
            for meter in sorted(self._meters.values(), key=lambda m: m.meter_id):
                last = meter.last_telegram_at
                stale = last is None or now - last > self.stale_after_for(meter)
                changed = rendered.get(meter.key) != (meter.revision, stale)
                out.append(Scraped(meter.key, meter.meter_id, meter.revision, stale, changed))
            return out

    def copy(self, key: str) -> MeterState | None:
        """A copy of one meter, to read without the lock (None: no longer configured)."""
        with self._lock:
            meter = self._meters.get(key)
            return None if meter is None else meter.snapshot()

    def stale_after_for(self, meter: MeterState) -> float:
        return stale_after(meter.intervals, self.stale_after_seconds)

    def silent_after(self, key: str) -> float:
        """A configured meter's `stale_after` (how long a silence is a gap)."""
        with self._lock:
            meter = self._meters.get(key)
            intervals = meter.intervals if meter else deque[float]()
            return stale_after(intervals, self.stale_after_seconds)


def _merge(values: dict[str, Any], update: Mapping[str, Any]) -> None:
    """A reading's values over the meter's: maps (tariffs, phases) entry by entry, so meters
    that alternate record sets (Apator Otus) show everything. A total sent again drops a
    'derived' flag it no longer deserves."""
    for row in table().rows:
        if row.derived_key and row.key in update and not update.get(row.derived_key):
            values.pop(row.derived_key, None)
    for key, value in update.items():
        if isinstance(value, dict):
            values.setdefault(key, {}).update(value)
        else:
            values[key] = value


def _without(reading: MeterReading, rejected: set[Rejected]) -> MeterReading:
    """The reading without its rejected register values."""
    values = copy_values(reading.values)
    for item in rejected:
        if isinstance(item, tuple):
            key, tariff = item
            values[key].pop(tariff, None)
            if not values[key]:
                del values[key]
        else:
            values.pop(item, None)
            row = table().by_key.get(item)
            if row is not None and row.derived_key:
                values.pop(row.derived_key, None)
    return replace(reading, values=values)
