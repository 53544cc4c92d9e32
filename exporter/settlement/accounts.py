"""The two accounts a prosumer keeps with the operator (docs/prosumer.md):

- the net-billing **deposit** (depozyt prosumencki), in PLN: each month's credit is available
  from the first day of the next month, pays the energy part of import oldest credit first, and
  expires 12 months after it became available, when at most `refund_cap` of its original value
  is refunded and the rest lapses;
- the net-metering **bank**, in kWh: what an hour's net export earns (times the ratio) can be
  taken back by later net import, oldest first, until `window_days` after the day it was fed in.

Both are plain lists that serialise to JSON.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

MONTHS_VALID = 12


def month_of(day: date) -> str:
    """A local day's month as "YYYY-MM"."""
    return f"{day.year:04d}-{day.month:02d}"


def add_months(month: str, count: int) -> str:
    year, number = int(month[:4]), int(month[5:7])
    months = year * 12 + number - 1 + count
    return f"{months // 12:04d}-{months % 12 + 1:02d}"


@functools.lru_cache(maxsize=4096)
def month_start(month: str, zone: ZoneInfo) -> float:
    """When a local month begins, as Unix time."""
    return datetime(int(month[:4]), int(month[5:7]), 1, tzinfo=zone).timestamp()


@dataclass(slots=True)
class Credit:
    """One month's value in the deposit: the month the energy was fed in, what was credited
    (after the coefficient) and what is left of it."""

    month: str
    original: float
    remaining: float


@dataclass(frozen=True, slots=True)
class Expiry:
    """A credit that reached the end of its validity: what was refunded and what lapsed."""

    month: str
    at: float
    refunded: float
    lapsed: float


class Deposit:
    """The net-billing deposit of one meter, in PLN."""

    __slots__ = ("credits", "zone")

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.credits: list[Credit] = []  # by month, oldest first

    def available_from(self, month: str) -> float:
        """When a month's credit can pay: the start of the next month."""
        return month_start(add_months(month, 1), self.zone)

    def expires_at(self, month: str) -> float:
        return month_start(add_months(month, 1 + MONTHS_VALID), self.zone)

    def credit(self, month: str, amount: float) -> None:
        """Add value to a month's credit (made when first needed)."""
        for entry in reversed(self.credits):
            if entry.month == month:
                entry.original += amount
                entry.remaining += amount
                return
            if entry.month < month:
                break
        self.credits.append(Credit(month, amount, amount))
        self.credits.sort(key=lambda entry: entry.month)

    def take(self, amount: float, at: float) -> float:
        """Pay up to `amount` from the credits available at `at`, oldest first; how much."""
        taken = 0.0
        for entry in self.credits:
            if taken >= amount or self.available_from(entry.month) > at:
                break
            part = min(entry.remaining, amount - taken)
            entry.remaining -= part
            taken += part
        return taken

    def expire(self, at: float, refund_cap: float) -> list[Expiry]:
        """Close the credits whose validity ended by `at`."""
        ended: list[Expiry] = []
        while self.credits and self.expires_at(self.credits[0].month) <= at:
            entry = self.credits.pop(0)
            refunded = min(max(entry.remaining, 0.0), refund_cap * entry.original)
            lapsed = entry.remaining - refunded
            ended.append(Expiry(entry.month, self.expires_at(entry.month), refunded, lapsed))
        return ended

    def balance(self, at: float) -> float:
        """What can pay at `at`."""
        return sum(
            entry.remaining
            for entry in self.credits
            if self.available_from(entry.month) <= at < self.expires_at(entry.month)
        )

    def waiting(self, at: float) -> float:
        """Credited but not yet available (the months not yet over)."""
        return sum(e.remaining for e in self.credits if self.available_from(e.month) > at)

    def expiring(self, at: float, within: float) -> float:
        """What of the balance expires within `within` seconds of `at`."""
        return sum(
            entry.remaining
            for entry in self.credits
            if self.available_from(entry.month) <= at < self.expires_at(entry.month) <= at + within
        )

    def as_json(self) -> list[list[Any]]:
        return [[entry.month, entry.original, entry.remaining] for entry in self.credits]

    def restore(self, data: list[list[Any]]) -> None:
        credits = (Credit(str(m), float(original), float(left)) for m, original, left in data)
        self.credits = sorted(credits, key=lambda entry: entry.month)


class Bank:
    """The net-metering bank of one meter, in kWh, by the local day it was fed in."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[list[float]] = []  # [day ordinal, kWh], oldest first

    def add(self, day: date, kwh: float) -> None:
        ordinal = day.toordinal()
        if self.entries and self.entries[-1][0] == ordinal:
            self.entries[-1][1] += kwh
        else:
            self.entries.append([ordinal, kwh])

    def take(self, kwh: float) -> float:
        """Take up to `kwh`, oldest first; how much."""
        taken = 0.0
        while self.entries and taken < kwh:
            entry = self.entries[0]
            part = min(entry[1], kwh - taken)
            entry[1] -= part
            taken += part
            if entry[1] <= 1e-12:
                self.entries.pop(0)
        return taken

    def expire(self, day: date, window_days: int) -> float:
        """Drop what was fed in `window_days` or more before `day`; how many kWh lapsed."""
        limit = day.toordinal() - window_days
        lapsed = 0.0
        while self.entries and self.entries[0][0] <= limit:
            lapsed += self.entries.pop(0)[1]
        return lapsed

    def balance(self) -> float:
        return sum(kwh for _, kwh in self.entries)

    def expiring(self, day: date, window_days: int, within_days: int) -> float:
        """What expires within `within_days` days of `day`."""
        limit = (day + timedelta(days=within_days)).toordinal() - window_days
        return sum(kwh for ordinal, kwh in self.entries if ordinal <= limit)

    def as_json(self) -> list[list[float]]:
        return [[int(ordinal), kwh] for ordinal, kwh in self.entries]

    def restore(self, data: list[list[float]]) -> None:
        self.entries = [[int(ordinal), float(kwh)] for ordinal, kwh in data]
