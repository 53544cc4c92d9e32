"""Calendar periods of every meter: today, yesterday, this and last week (from Monday), this and
last month, each as the difference of the meter's own registers, per tariff and in total, both
ways, and what it cost (docs/contracts.md, section 8).

Periods are calendar periods of the configured zone (Europe/Warsaw): a day is 23 or 25 hours
long when the clocks change. A period starts at the last reading before its boundary, which is
also where the period before it ends; the first reading ever starts the current periods. When
the meter was not heard across a boundary for longer than its `stale_after`, or was first heard
after it, the periods on both sides are marked partial.

Cost is counted like energy: running totals in PLN that grow with every reading by the energy
since the one before times the price of the reading's local day (`prices:`), so a period that
spans a price change is split at it and its cost is again a difference of two snapshots.

The calendar is fed from the state: the intake hands it each reading right after the state
accepted it (the meter's merged values), so it sees readings in the state's order and the
outputs get the running cost with the same reading (InfluxDB writes it). It survives restarts:
the snapshots of every configured meter live in one JSON file in the state directory
(calendar_file.py), replaced atomically soon after a boundary passes, every few minutes while
readings arrive, and at stop. It follows the configuration: a meter no longer configured is set
aside in a file of its own, never loaded, taken back if it returns and forgotten after
`forget_after` (40 days by default).
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ..amiplus import (
    KINDS,
    PERIODS,
    WARSAW,
    Field,
    Period,
    local_day,
    midnight,
    period_start,
    table,
)
from ..config import FORGET_AFTER, Prices
from ..plumbing import SetAside, write_atomically
from .calendar_file import Store

#: The local calendar's helpers live in `amiplus.clock` (settlement counts in it too); the
#: outputs still read them here.
__all__ = [
    "KINDS",
    "PERIODS",
    "Calendar",
    "Figure",
    "Period",
    "local_day",
    "midnight",
    "period_start",
]

log = logging.getLogger(__name__)

SAVE_EVERY = 300.0  # seconds between saves when only the latest readings or new meters changed
SAVE_SOON = 10.0  # seconds at least between saves when a meter crossed midnight
FLUSH_POLL = 1.0  # seconds between the flusher's looks at what changed
SEPARATOR = "/"  # in flat keys: "energy_imported_tariff_kwh/2", "energy/2"


def boundaries(day: date) -> set[date]:
    """The days on which the kept periods around `day` begin (and so end)."""
    return {period_start(p.kind, day, p.back) for p in PERIODS}


@functools.cache
def flat_key(stem: str, part: object) -> str:
    """`stem/part`, one string object for all meters and marks (they hold thousands)."""
    return sys.intern(f"{stem}{SEPARATOR}{part}")


def registers_of(values: Mapping[str, Any]) -> dict[str, float]:
    """The energy registers of a meter's values as flat keys: the total under the field's key,
    each tariff under `tariff_key/N`."""
    out: dict[str, float] = {}
    for row in table().energy:
        total = values.get(row.key)
        if total is not None:
            out[row.key] = float(total)
        for tariff, number in values.get(row.tariff_key, {}).items():
            out[flat_key(row.tariff_key, tariff)] = float(number)
    return out


def _tariffs(registers: Mapping[str, float], row: Field) -> dict[int, float]:
    prefix = row.tariff_key + SEPARATOR
    return {int(k[len(prefix) :]): v for k, v in registers.items() if k.startswith(prefix)}


@dataclass(slots=True)
class Mark:
    """A reading's registers and running cost: where periods begin and end."""

    at: float  # when it was received
    registers: dict[str, float]
    money: dict[str, float] = field(default_factory=dict)
    partial: bool = False  # the meter was not heard across the boundary (or first heard after)

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "registers": self.registers,
            "money": self.money,
            "partial": self.partial,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Mark:
        """A mark read from a file (keys as JSON gives them: one string object per key name
        in a file, so thousands of meters share them)."""
        return cls(
            float(data["at"]),
            {k: float(v) for k, v in data["registers"].items()},
            {k: float(v) for k, v in data.get("money", {}).items()},
            bool(data.get("partial", False)),
        )


@functools.lru_cache(maxsize=64)
def _day(text: str) -> date:
    """A mark's day from a file: the few days every meter's marks fall on, made once."""
    return date.fromisoformat(text)


@dataclass(slots=True)
class MeterCalendar:
    """One meter: its latest reading, the marks at the boundaries of the kept periods (by the
    local day they begin) and the tariff zone counting now."""

    latest: Mark | None = None
    marks: dict[date, Mark] = field(default_factory=dict)
    active_tariff: int | None = None
    silent_after: float = 600.0  # the state's stale_after for the meter: a longer gap is one
    revision: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "latest": self.latest.as_json() if self.latest else None,
            "marks": {day.isoformat(): mark.as_json() for day, mark in sorted(self.marks.items())},
            "active_tariff": self.active_tariff,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MeterCalendar:
        latest = data.get("latest")
        return cls(
            Mark.from_json(latest) if latest else None,
            {_day(k): Mark.from_json(v) for k, v in data.get("marks", {}).items()},
            data.get("active_tariff"),
        )


@dataclass(frozen=True, slots=True)
class Cost:
    """What a period cost, from the difference of two running totals: per tariff zone the
    energy and distribution parts, the value of exported energy, and the kWh no price
    applied to."""

    zones: dict[int, tuple[float, float]]  # zone -> (energy, distribution) in PLN
    export: float
    unpriced_kwh: float

    @property
    def imported(self) -> float:
        return sum(energy + distribution for energy, distribution in self.zones.values())

    @property
    def net(self) -> float:
        return self.imported - self.export

    @classmethod
    def of(cls, money: Mapping[str, float], counted: Iterable[int] = ()) -> Cost:
        """The cost in `money`; zones in `counted` that cost nothing yet are there at zero, so
        a period's cost per zone exists from its start (not only once that zone advanced)."""
        zones: dict[int, tuple[float, float]] = dict.fromkeys(counted, (0.0, 0.0))
        for name, value in money.items():
            part, _, zone = name.partition(SEPARATOR)
            if zone:
                energy, distribution = zones.get(int(zone), (0.0, 0.0))
                zones[int(zone)] = (
                    (energy + value, distribution) if part == "energy" else (energy, value)
                )
        return cls(
            dict(sorted(zones.items())), money.get("export", 0.0), money.get("unpriced", 0.0)
        )


@dataclass(frozen=True, slots=True)
class Figure:
    """One period of one meter: register and cost differences between two marks."""

    period: Period
    start: date
    end: date
    begins_at: float
    ends_at: float
    current: bool
    partial: bool
    energy: dict[str, float]  # flat register keys -> kWh
    money: dict[str, float]  # flat money keys -> PLN (and unpriced kWh)

    @property
    def cost(self) -> Cost:
        """The period's cost, with every import tariff zone of the meter (zone 1 for a meter
        without zones, as pricing counts it)."""
        imported = table().imported
        zones = self.tariffs(imported) or ({1: 0.0} if imported.key in self.energy else {})
        return Cost.of(self.money, zones)

    def tariffs(self, row: Field) -> dict[int, float]:
        """kWh per tariff zone of a register (zones the meter never counted in are left out)."""
        return _tariffs(self.energy, row)


def _calendar_of(key: str, entry: Any) -> MeterCalendar:
    """A meter's calendar from its entry in a file; a damaged entry starts the periods again."""
    try:
        return MeterCalendar.from_json(entry)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        log.warning("meter %s: calendar entry not read (%s): its periods start again", key, error)
        return MeterCalendar()


class Calendar:
    """The calendar periods of every meter, by configured address."""

    def __init__(
        self,
        zone: ZoneInfo = WARSAW,
        prices: Prices | None = None,
        directory: Path | None = None,
        clock: Any = time.time,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        market: Callable[[float], float | None] = lambda at: None,
    ) -> None:
        self.zone = zone
        self.prices = prices or Prices()
        self.market = market  # a dynamic tariff's base: the market price at a time, PLN per kWh
        self.store = Store(directory)
        self.aside = (
            None
            if directory is None
            else SetAside(
                directory / "calendar.unconfigured.jsonl",
                FORGET_AFTER,
                "the meters no longer configured",
                write_atomically,
                clock,
            )
        )
        self.clock = clock
        self._monotonic = monotonic  # when to save: seconds since the last save
        self.lock = threading.Lock()
        self._files = threading.Lock()  # one writer of the state files at a time, in order
        self._meters: dict[str, MeterCalendar] = {}
        self._unplaced: dict[str, Any] = {}  # entries to set aside that the disk refused
        self._loaded = False
        self._saved_at = monotonic()
        self._changed = False  # a reading since the last save
        self._marks_changed = False  # a mark since the last save: save soon
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Save what changed in the background until `stop`."""
        self._thread = threading.Thread(target=self._flusher, name="calendar", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush(everything=True)

    def _flusher(self) -> None:
        while not self._stop.wait(FLUSH_POLL):
            self.flush()
            if self.aside is not None:
                with self._files:
                    self.aside.expire()

    def flush(self, everything: bool = False) -> None:
        """Save when a meter crossed midnight (at most every `SAVE_SOON` seconds), when a
        reading came `SAVE_EVERY` seconds after the last save, and at stop (`everything`)."""
        with self._files:
            self._save(everything)

    def _save(self, everything: bool) -> None:
        """`flush` while holding `_files`, so that saves reach the disk in the order they were
        made."""
        now = self._monotonic()
        with self.lock:
            waited = now - self._saved_at
            due = (self._marks_changed and waited >= SAVE_SOON) or (
                self._changed and (everything or waited >= SAVE_EVERY)
            )
            if not due:
                return
            document = {meter: calendar.as_json() for meter, calendar in self._meters.items()}
            document.update(self._unplaced)
            self._changed = self._marks_changed = False
            self._saved_at = now
        self.store.save(document)

    def meter(self, key: str) -> MeterCalendar:
        """A meter's calendar (created on first use)."""
        calendar = self._meters.get(key)
        if calendar is None:
            calendar = self._meters[key] = MeterCalendar()
        return calendar

    def reconfigure(
        self,
        zone: ZoneInfo,
        prices: Prices,
        keys: Iterable[str],
        forget_after: float = FORGET_AFTER,
    ) -> None:
        """Take a configuration (at start and on reload): the zone, the prices, and the
        configured meters, whose calendars are loaded (from the file, or from those set aside)
        so their periods show before they are heard. Meters no longer configured are set aside
        in their own file, never loaded, and forgotten `forget_after` seconds later."""
        kept = set(keys)
        with self._files:
            with self.lock:
                self.zone, self.prices = zone, prices
                leaving = {key: self._meters.pop(key).as_json() for key in set(self._meters) - kept}
                stored = self._unplaced  # from the last time, or the file the first time
                if not self._loaded:
                    self._loaded, stored = True, self.store.load()
                for key, entry in stored.items():
                    if key in kept:
                        self._meters[key] = _calendar_of(key, entry)
                    else:
                        leaving[key] = entry
                coming = kept - set(self._meters)
            back = self._set_aside(leaving, coming, forget_after)
            if back or leaving:
                self._save(everything=True)
            if self.aside is not None:
                self.aside.drop(back)

    def _set_aside(
        self, leaving: dict[str, Any], coming: set[str], forget_after: float
    ) -> list[str]:
        """Set the leaving meters' entries aside and take the coming ones' back (while holding
        `_files`); the meters taken back. Entries the disk would not take stay in the calendar's
        own file until it does."""
        taken: dict[str, Any] = {}
        refused: dict[str, Any] = {}
        if self.aside is not None:
            taken, refused = self.aside.exchange(leaving, coming, forget_after)
        with self.lock:
            self._unplaced = refused
            back = [key for key in taken if key not in self._meters]  # none heard meanwhile
            for key in back:
                self._meters[key] = _calendar_of(key, taken[key])
            for key in coming:
                self.meter(key)
            self._changed |= bool(back or leaving)
        return back

    @property
    def priced(self) -> bool:
        """Whether any prices are configured."""
        with self.lock:
            return bool(self.prices.entries)

    # --- readings ---------------------------------------------------------------------------

    def record(
        self, key: str, values: Mapping[str, Any], at: float, silent_after: float = 600.0
    ) -> dict[str, float]:
        """Take a meter's merged values after an accepted reading; returns its running cost
        (PLN per money key, empty while no price applies)."""
        registers = registers_of(values)
        with self.lock:
            calendar = self.meter(key)
            calendar.silent_after = silent_after
            latest = calendar.latest
            if not registers or (latest is not None and at < latest.at):
                return dict(latest.money) if latest else {}  # nothing to count, or out of order
            if latest is not None and any(
                registers[k] < v - 1e-9 for k, v in latest.registers.items() if k in registers
            ):
                log.info("meter %s: registers went back (a new meter?): periods start again", key)
                calendar.marks.clear()
                latest = calendar.latest = None
            day = local_day(at, self.zone)
            if latest is None:
                money: dict[str, float] = {}
                for start in {period_start(kind, day) for kind in KINDS}:
                    calendar.marks[start] = Mark(at, registers, {}, partial=True)
            else:
                money = self._priced(calendar, latest, registers, at)
                gap = at - latest.at > silent_after
            reading = Mark(at, registers, money)
            if latest is not None:
                for start in boundaries(day):
                    boundary = midnight(start, self.zone)
                    if start not in calendar.marks and latest.at < boundary <= at:
                        # a reading right at the boundary is the register there
                        before = reading if boundary == at else latest
                        calendar.marks[start] = Mark(before.at, before.registers, before.money, gap)
            calendar.latest = reading
            kept = boundaries(day)
            for start in [start for start in calendar.marks if start not in kept]:
                del calendar.marks[start]
            calendar.revision += 1
            self._changed = True
            # a midnight's marks are what a crash must not lose (the day would start again,
            # partial); a new meter's periods are partial anyway, and a stop saves them
            self._marks_changed |= latest is not None and local_day(latest.at, self.zone) != day
            return dict(money)

    def _day_ending(self, at: float) -> date:
        """The local day the energy up to `at` counts to: a reading right at midnight closes
        the day before (as it does for the periods)."""
        day = local_day(at, self.zone)
        return day - timedelta(days=1) if midnight(day, self.zone) == at else day

    def _priced(
        self, calendar: MeterCalendar, latest: Mark, registers: dict[str, float], at: float
    ) -> dict[str, float]:
        """The running cost after the energy since `latest`, at the prices of the day it
        counts to (a dynamic tariff: of the market at `at`); also notes the tariff zone whose
        register advanced."""
        money = dict(latest.money)
        entry = self.prices.at(self._day_ending(at))
        imports, exports = table().imported, table().exported
        old_zones = _tariffs(latest.registers, imports)
        new_zones = _tariffs(registers, imports)
        if not new_zones and imports.key in registers:  # no zones: all of it counts as zone 1
            new_zones = {1: registers[imports.key]}
            old_zones = {1: latest.registers.get(imports.key, registers[imports.key])}
        advanced: dict[int, float] = {}
        for zone, value in new_zones.items():
            used = value - old_zones.get(zone, value)
            if used <= 0:
                continue
            advanced[zone] = used
            price = entry.tariff(zone) if entry else None
            energy = price.energy_at(self.market(at) if price.market else None) if price else None
            if price is None or energy is None:
                money["unpriced"] = money.get("unpriced", 0.0) + used
                continue
            for part, rate in (("energy", energy), ("distribution", price.distribution)):
                name = flat_key(part, zone)
                money[name] = money.get(name, 0.0) + used * rate
        exported = registers.get(exports.key, 0.0) - latest.registers.get(
            exports.key, registers.get(exports.key, 0.0)
        )
        if exported > 0:
            if entry is None or entry.export is None:
                money["unpriced"] = money.get("unpriced", 0.0) + exported
            else:
                money["export"] = money.get("export", 0.0) + exported * entry.export
        for zone, value in _tariffs(registers, exports).items():
            if value > _tariffs(latest.registers, exports).get(zone, value):
                advanced.setdefault(zone, 0.0)
        if advanced:
            switched = [z for z in advanced if z != calendar.active_tariff]
            if len(advanced) == 1 or not switched:
                calendar.active_tariff = next(iter(advanced))
            else:  # the zone changed between two readings: the new one counts now
                calendar.active_tariff = max(switched, key=lambda z: advanced[z])
        return money

    # --- periods ------------------------------------------------------------------------------

    def active_tariff(self, key: str) -> int | None:
        with self.lock:
            calendar = self._meters.get(key)
            return calendar.active_tariff if calendar else None

    def revisions(self) -> dict[str, int]:
        """Every meter's revision: it changes whenever the meter's periods may have."""
        with self.lock:
            return {key: calendar.revision for key, calendar in self._meters.items()}

    def figures(self, key: str, now: float | None = None) -> list[Figure]:
        """The kept periods of a meter that can be told, as of `now`."""
        now = self.clock() if now is None else now
        with self.lock:
            calendar = self._meters.get(key)
            if calendar is None or calendar.latest is None:
                return []
            return list(self._figures(calendar, now))

    def _figures(self, calendar: MeterCalendar, now: float) -> Iterator[Figure]:
        today = local_day(now, self.zone)
        for period in PERIODS:
            start = period_start(period.kind, today, period.back)
            end = period_start(period.kind, today, period.back - 1)
            first = self._mark(calendar, start, now)
            current = period.back == 0
            last = calendar.latest if current else self._mark(calendar, end, now)
            if first is None or last is None or (not current and first.at >= last.at):
                continue  # not heard before the period ended
            energy = {
                k: round(v - first.registers[k], 6)
                for k, v in last.registers.items()
                if k in first.registers and v > 0  # zones the meter never counted in: left out
            }
            money = {
                k: round(v - first.money.get(k, 0.0), 6)
                for k, v in last.money.items()
                if v != first.money.get(k, 0.0)
            }
            yield Figure(
                period,
                start,
                end,
                midnight(start, self.zone),
                midnight(end, self.zone),
                current,
                first.partial or (not current and last.partial),
                energy,
                money,
            )

    def _mark(self, calendar: MeterCalendar, day: date, now: float) -> Mark | None:
        """Where a period beginning on `day` starts: its mark, or the latest reading when no
        reading came after the boundary yet (partial once the meter is silent too long)."""
        mark = calendar.marks.get(day)
        if mark is not None:
            return mark
        latest = calendar.latest
        if latest is None or latest.at >= midnight(day, self.zone):
            return None
        silent = now - latest.at > calendar.silent_after
        return Mark(latest.at, latest.registers, latest.money, silent)
