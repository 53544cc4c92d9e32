"""One meter's prosumer ledger: readings in, hours balanced, money and kWh settled.

The live exporter and the `settle` command share it: `feed` takes a reading's total registers,
the balancer cuts them into local hours, and each closed hour is settled by the meter's scheme
(docs/prosumer.md):

- **net-billing**: the hour's net export times its price (RCE, RCEm or a fixed price) is the
  month's export value; times the coefficient of the day it is credited to the deposit, which
  can pay from the next month on. The hour's net import times the energy price of `prices:`
  (a dynamic tariff: the market price plus the margin) is paid from the deposit, oldest credit
  first; what the deposit cannot pay is left to pay.
- **net-metering**: the hour's net export times the ratio goes into the bank in kWh; net import
  takes from it, oldest first; what it cannot cover is billed.

A price that is not known yet leaves the hour's energy unpriced (never valued at 0): the hour
waits in `pending` and `reprice` values it when the price arrives (PSE late, RCEm after the
month, a dynamic tariff's market price), for up to `PENDING_KEPT` seconds. Import on a day
without a `prices:` entry stays unpriced (as the calendar counts it). Totals are kept per local
day (for the calendar periods), per month, and since the ledger began (`total`: totals that only
grow, what Home Assistant's Energy dashboard and counters need); the state serialises to JSON.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..amiplus import PERIODS, WARSAW, Period, midnight, period_start
from ..config import Scheme, Settlement
from .accounts import Bank, Deposit, month_of
from .hours import HOUR, Balancer, Hour, Registers
from .prices import PriceBook

DAYS_KEPT = 70  # local days of totals: the calendar periods go back at most 62
MONTHS_KEPT = 25  # months of totals in the live ledger (settle keeps every month)
PENDING_KEPT = 400 * 86400.0  # seconds an unpriced hour waits for its price
DEFAULT_SILENCE = 600.0  # seconds without a reading across a boundary that make hours partial


@dataclass(slots=True)
class Totals:
    """What a period (a day, a month) adds up to. Energies in kWh, money in PLN."""

    hours: int = 0
    partial_hours: int = 0
    imported_kwh: float = 0.0  # the registers' differences, before balancing
    exported_kwh: float = 0.0
    balanced_imported_kwh: float = 0.0  # per hour: max(0, import - export)
    balanced_exported_kwh: float = 0.0
    export_value_pln: float = 0.0  # net-billing: net export x price, before the coefficient
    deposit_credit_pln: float = 0.0  # ... after it: what goes into the deposit
    unpriced_export_kwh: float = 0.0  # net export whose price is not known (yet)
    import_energy_pln: float = 0.0  # net import x the energy price
    from_deposit_pln: float = 0.0  # ... of it paid from the deposit
    unpriced_import_kwh: float = 0.0  # net import whose energy price is not known (yet)
    refunded_pln: float = 0.0  # deposit credits that expired: refunded
    lapsed_pln: float = 0.0  # ... and lapsed
    bank_credit_kwh: float = 0.0  # net-metering: net export x ratio, into the bank
    from_bank_kwh: float = 0.0  # net import covered by the bank
    bank_lapsed_kwh: float = 0.0  # bank entries that expired
    deposit_balance_pln: float = 0.0  # at the end of the last hour counted
    bank_balance_kwh: float = 0.0

    @property
    def to_pay_pln(self) -> float:
        """The energy part of net import the deposit did not pay."""
        return self.import_energy_pln - self.from_deposit_pln

    @property
    def billed_import_kwh(self) -> float:
        """Net import the bank did not cover."""
        return self.balanced_imported_kwh - self.from_bank_kwh

    def add(self, other: Totals) -> None:
        """Add another period's figures (balances are taken from the later one)."""
        for name in _ADDED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.deposit_balance_pln = other.deposit_balance_pln
        self.bank_balance_kwh = other.bank_balance_kwh

    def as_json(self) -> dict[str, float]:
        """The non-zero figures, so that a later version's new figures read as 0."""
        return {name: getattr(self, name) for name in _NAMES if getattr(self, name)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Totals:
        known = {name: data[name] for name in _NAMES if name in data}
        return cls(**known)


_NAMES = tuple(f.name for f in fields(Totals))
_ADDED = tuple(
    name for name in _NAMES if not name.endswith("_balance_pln") and name != "bank_balance_kwh"
)


@dataclass(slots=True)
class Pending:
    """An hour whose price was not known when it closed: what still needs one."""

    zone: int | None
    export_kwh: float = 0.0
    import_kwh: float = 0.0


@dataclass(frozen=True, slots=True)
class PeriodTotals:
    """A calendar period of the ledger: `PERIODS`' name and kind, its first day, its figures."""

    period: Period
    start: date
    totals: Totals
    current: bool
    partial: bool


@dataclass(frozen=True, slots=True)
class OpenHour:
    """The hour counting now, so far."""

    start: float
    imported_kwh: float
    exported_kwh: float
    export_rate: float | None  # PLN per kWh of net export in this hour (net-billing)
    market_price: float | None  # PLN per MWh: the hour's market price

    @property
    def balanced_imported_kwh(self) -> float:
        return max(0.0, self.imported_kwh - self.exported_kwh)

    @property
    def balanced_exported_kwh(self) -> float:
        return max(0.0, self.exported_kwh - self.imported_kwh)


@dataclass(frozen=True, slots=True)
class LedgerView:
    """What an output shows of a ledger at a moment. Outputs read it through the figure table
    (`figures.py`): a figure of the ledger now is an attribute of the view, a figure of a
    calendar period an attribute of its `Totals`."""

    scheme: Scheme
    periods: tuple[PeriodTotals, ...]
    hour: OpenHour | None  # the hour holding the moment, once a reading came in it
    deposit_pln: float  # net-billing: what can pay now
    deposit_waiting_pln: float  # credited for months not over yet: can pay from the next month
    deposit_expiring_pln: float  # of `deposit_pln`, what expires within `within` seconds
    bank_kwh: float  # net-metering
    bank_expiring_kwh: float
    unpriced_export_kwh: float  # waiting for a price
    unpriced_import_kwh: float
    latest_at: float | None  # the latest reading
    total: Totals  # every hour settled since the ledger began (a copy)

    @property
    def balanced_imported_total_kwh(self) -> float:
        return self.total.balanced_imported_kwh

    @property
    def balanced_exported_total_kwh(self) -> float:
        return self.total.balanced_exported_kwh

    @property
    def hour_balanced_imported_kwh(self) -> float | None:
        return None if self.hour is None else self.hour.balanced_imported_kwh

    @property
    def hour_balanced_exported_kwh(self) -> float | None:
        return None if self.hour is None else self.hour.balanced_exported_kwh

    @property
    def export_price_pln_per_kwh(self) -> float | None:
        return None if self.hour is None else self.hour.export_rate

    @property
    def market_price_pln_per_kwh(self) -> float | None:
        price = None if self.hour is None else self.hour.market_price
        return None if price is None else price / 1000


class Ledger:
    """One meter's balancing and settlement (`rules`), priced by `book`."""

    def __init__(
        self,
        rules: Settlement,
        book: PriceBook,
        zone: ZoneInfo = WARSAW,
        *,
        months_kept: int | None = MONTHS_KEPT,
    ) -> None:
        self.rules = rules
        self.book = book
        self.zone = zone
        self.months_kept = months_kept
        self.balancer = Balancer(zone)
        self.deposit = Deposit(zone)
        self.bank = Bank()
        self.days: dict[date, Totals] = {}
        self.months: dict[str, Totals] = {}
        self.total = Totals()  # since the ledger began: never pruned
        self.pending: dict[float, Pending] = {}  # by the hour's start

    # --- readings -----------------------------------------------------------------------------

    def feed(
        self,
        at: float,
        imported: float,
        exported: float,
        zones: Mapping[int, float] | None = None,
        silent_after: float = DEFAULT_SILENCE,
    ) -> bool:
        """Take a reading's total registers (kWh) and its import register per tariff zone;
        whether it closed an hour."""
        hours = self.balancer.feed(Registers(at, imported, exported, zones), silent_after)
        for hour in hours:
            self.settle(hour)
        return bool(hours)

    def finish(self) -> None:
        """Settle the open hour as it stands (partial): the end of a file of readings."""
        hour = self.balancer.finish()
        if hour is not None:
            self.settle(hour)

    def settle(self, hour: Hour) -> None:
        """Count one closed hour."""
        day = datetime.fromtimestamp(hour.start, self.zone).date()
        if self.rules.since is not None and day < self.rules.since:
            return
        month = month_of(day)
        self._prune(day)
        counted = [
            self.days.setdefault(day, Totals()),
            self.months.setdefault(month, Totals()),
            self.total,
        ]
        self._expire(hour.start, day, counted)
        for totals in counted:
            totals.hours += 1
            totals.partial_hours += hour.partial
            totals.imported_kwh += hour.imported
            totals.exported_kwh += hour.exported
            totals.balanced_imported_kwh += hour.balanced_imported
            totals.balanced_exported_kwh += hour.balanced_exported
        if self.rules.scheme is Scheme.NET_METERING:
            self._bank(hour, day, counted)
        else:
            waiting = Pending(hour.zone)
            exported, imported = hour.balanced_exported, hour.balanced_imported
            if exported and not self._credit(hour.start, day, month, exported):
                waiting.export_kwh = exported
            unpriced = 0.0
            if imported and not self._pay(hour.start, day, hour.zone, imported):
                unpriced = imported
                if self.book.import_may_come(day, hour.zone):
                    waiting.import_kwh = imported
            for totals in counted:
                totals.unpriced_export_kwh += waiting.export_kwh
                totals.unpriced_import_kwh += unpriced
            if waiting.export_kwh or waiting.import_kwh:
                self.pending[hour.start] = waiting
        self._balances(hour.start + HOUR, counted)

    def _bank(self, hour: Hour, day: date, counted: list[Totals]) -> None:
        into = hour.balanced_exported * self.rules.ratio
        if into:
            self.bank.add(day, into)
        taken = self.bank.take(hour.balanced_imported) if hour.balanced_imported else 0.0
        for totals in counted:
            totals.bank_credit_kwh += into
            totals.from_bank_kwh += taken

    def _credit(self, start: float, day: date, month: str, kwh: float) -> bool:
        """Value an hour's net export and credit it to its month in the deposit; False when
        its price is not known."""
        rate = self.book.export_rate(start, month, self.rules)
        if rate is None:
            return False
        value = kwh * rate
        credit = value * self.rules.coefficient(day)
        self.deposit.credit(month, credit)
        for totals in self._totals(day, month):
            totals.export_value_pln += value
            totals.deposit_credit_pln += credit
        return True

    def _pay(self, start: float, day: date, zone: int | None, kwh: float) -> bool:
        """Price an hour's net import and pay its energy part from the deposit; False when
        its energy price is not known."""
        rate = self.book.import_rate(start, day, zone)
        if rate is None:
            return False
        cost = kwh * rate
        paid = self.deposit.take(cost, start) if cost > 0 else 0.0
        for totals in self._totals(day, month_of(day)):
            totals.import_energy_pln += cost
            totals.from_deposit_pln += paid
        return True

    def _expire(self, at: float, day: date, counted: list[Totals]) -> None:
        """Close what reached the end of its validity by `at`, into the period of `at`."""
        if self.rules.scheme is Scheme.NET_METERING:
            lapsed = self.bank.expire(day, self.rules.window_days)
            for totals in counted:
                totals.bank_lapsed_kwh += lapsed
            return
        for expiry in self.deposit.expire(at, self.rules.refund_cap):
            for totals in counted:
                totals.refunded_pln += expiry.refunded
                totals.lapsed_pln += expiry.lapsed

    def _balances(self, at: float, counted: list[Totals]) -> None:
        deposit, bank = self.deposit.balance(at), self.bank.balance()
        for totals in counted:
            totals.deposit_balance_pln, totals.bank_balance_kwh = deposit, bank

    def _totals(self, day: date, month: str) -> list[Totals]:
        """The totals an hour of `day` counts in: its day and month while they are kept, and
        the total since the beginning."""
        kept = (self.days.get(day), self.months.get(month))
        return [*(t for t in kept if t is not None), self.total]

    def _prune(self, day: date) -> None:
        """Forget days (and, live, months) too old for any period; unpriced hours too old to
        wait for a price stay counted as unpriced."""
        if day in self.days:
            return
        oldest = day - timedelta(days=DAYS_KEPT)
        for old in [d for d in self.days if d < oldest]:
            del self.days[old]
        if self.months_kept is not None:
            for month in sorted(self.months)[: -self.months_kept]:
                del self.months[month]
        limit = midnight(day, self.zone) - PENDING_KEPT
        for start in [s for s in self.pending if s < limit]:
            del self.pending[start]

    # --- late prices --------------------------------------------------------------------------

    def reprice(self) -> bool:
        """Value the hours whose price has arrived since they closed; whether any was."""
        changed = False
        for start, waiting in list(self.pending.items()):
            day = datetime.fromtimestamp(start, self.zone).date()
            month = month_of(day)
            counted = self._totals(day, month)
            if waiting.export_kwh and self._credit(start, day, month, waiting.export_kwh):
                for totals in counted:
                    totals.unpriced_export_kwh -= waiting.export_kwh
                waiting.export_kwh, changed = 0.0, True
            if waiting.import_kwh and self._pay(start, day, waiting.zone, waiting.import_kwh):
                for totals in counted:
                    totals.unpriced_import_kwh -= waiting.import_kwh
                waiting.import_kwh, changed = 0.0, True
            if not (waiting.export_kwh or waiting.import_kwh):
                del self.pending[start]
        return changed

    # --- what outputs read --------------------------------------------------------------------

    def view(self, now: float, within: float = 30 * 86400.0) -> LedgerView:
        """The ledger as of `now`: the calendar periods, the open hour, the balances and what
        of them expires within `within` seconds."""
        today = datetime.fromtimestamp(now, self.zone).date()
        latest = self.balancer.latest
        return LedgerView(
            self.rules.scheme,
            tuple(self._periods(today)),
            self._open_hour(now),
            self.deposit.balance(now),
            self.deposit.waiting(now),
            self.deposit.expiring(now, within),
            self.bank.balance(),
            self.bank.expiring(today, self.rules.window_days, round(within / 86400)),
            sum(waiting.export_kwh for waiting in self.pending.values()),
            sum(waiting.import_kwh for waiting in self.pending.values()),
            latest.at if latest else None,
            replace(self.total),
        )

    def _periods(self, today: date) -> Iterator[PeriodTotals]:
        counted_until = self.balancer.end - HOUR if self.balancer.latest else None
        for period in PERIODS:
            start = period_start(period.kind, today, period.back)
            end = period_start(period.kind, today, period.back - 1)
            if period.kind == "month":
                found = self.months.get(month_of(start))
                totals = None if found is None else replace(found)
            else:
                days = [self.days[d] for d in sorted(self.days) if start <= d < end]
                totals = Totals() if days else None
                for day in days:
                    assert totals is not None
                    totals.add(day)
            if totals is None:
                continue
            begins, ends = midnight(start, self.zone), midnight(end, self.zone)
            if counted_until is not None:
                ends = min(ends, counted_until)
            expected = round((ends - begins) / HOUR)
            partial = bool(totals.partial_hours) or totals.hours < expected
            yield PeriodTotals(period, start, totals, period.back == 0, partial)

    def _open_hour(self, now: float) -> OpenHour | None:
        """The hour counting at `now`, so far (None when no reading came in it yet)."""
        start, latest = self.balancer.start, self.balancer.latest
        if start is None or latest is None:
            return None
        begins = self.balancer.end - HOUR
        if not begins <= now < self.balancer.end:
            return None
        month = month_of(datetime.fromtimestamp(begins, self.zone).date())
        rate = (
            self.book.export_rate(begins, month, self.rules)
            if self.rules.scheme is Scheme.NET_BILLING
            else None
        )
        return OpenHour(
            begins,
            latest.imported - start.imported,
            latest.exported - start.exported,
            rate,
            self.book.market_hour(begins),
        )

    # --- state ----------------------------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        return {
            "balancer": self.balancer.as_json(),
            "deposit": self.deposit.as_json(),
            "bank": self.bank.as_json(),
            "days": {day.isoformat(): totals.as_json() for day, totals in self.days.items()},
            "months": {month: totals.as_json() for month, totals in self.months.items()},
            "total": self.total.as_json(),
            "pending": [
                [start, waiting.zone, waiting.export_kwh, waiting.import_kwh]
                for start, waiting in self.pending.items()
            ],
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Take the state `as_json` gave (of this or an earlier version)."""
        self.balancer.restore(data.get("balancer"))
        self.deposit.restore(data.get("deposit", []))
        self.bank.restore(data.get("bank", []))
        self.days = {
            date.fromisoformat(day): Totals.from_json(totals)
            for day, totals in data.get("days", {}).items()
        }
        self.months = {
            str(month): Totals.from_json(totals) for month, totals in data.get("months", {}).items()
        }
        self.total = Totals.from_json(data["total"]) if "total" in data else Totals()
        if "total" not in data:  # kept before the total was: what the months hold
            for month in sorted(self.months):
                self.total.add(self.months[month])
        self.pending = {
            float(start): Pending(None if zone is None else int(zone), float(exp), float(imp))
            for start, zone, exp, imp in data.get("pending", [])
        }
