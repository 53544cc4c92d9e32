"""An independent computation of the prosumer rules for the tests, written apart from
`exporter/settlement/` and sharing no code with it: brute force, simple enough to check by
reading (docs/prosumer.md states the rules it follows).

- A synthetic meter draws and feeds in by the minute; its registers are the running sums.
- Local hours are found by walking the minutes and grouping them by the wall clock (date, hour
  and the fold of the repeated autumn hour), not by arithmetic on Unix time.
- The register at a boundary is the last reading at or before it, found by bisection.
- The deposit is kept month by month: a month's credit is available from the next month, every
  month's import is paid oldest credit first, credits expire at the start of the 13th month.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

WARSAW = ZoneInfo("Europe/Warsaw")
Reading = tuple[float, float, float]  # time, imported kWh, exported kWh


def local_time(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, second: int = 0
) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=WARSAW).timestamp()


def import_kw(minute: int) -> float:
    """A household: 0.4 kW, with a 2 kW appliance on for 13 minutes in every 78."""
    return 0.4 + (2.0 if (minute // 13) % 6 == 0 else 0.0)


def export_kw(minute: int) -> float:
    """Solar panels from 7 to 17 (UTC), stronger in summer, with clouds every 7 minutes in 5."""
    moment = datetime.fromtimestamp(minute * 60, WARSAW)
    hour = (minute % 1440) / 60
    if not 7 <= hour < 17:
        return 0.0
    season = 0.4 + 0.6 * math.sin(math.pi * (moment.timetuple().tm_yday - 80) / 365) ** 2
    cloud = 0.15 if (minute // 7) % 5 == 0 else 1.0
    return 4.0 * season * math.sin(math.pi * (hour - 7) / 10) * cloud


class SyntheticMeter:
    """Registers by the minute from `start` (Unix time, on a minute) for `days`."""

    def __init__(self, start: float, days: int) -> None:
        self.first = int(start // 60)
        self.imported = [0.0]
        self.exported = [0.0]
        for minute in range(self.first, self.first + days * 1440):
            self.imported.append(self.imported[-1] + import_kw(minute) / 60)
            self.exported.append(self.exported[-1] + export_kw(minute) / 60)

    def registers(self, at: float) -> tuple[float, float]:
        """The registers at `at`, as a meter shows them (watt-hours)."""
        offset = at / 60 - self.first
        whole = int(offset)
        part = offset - whole
        imported = self.imported[whole] + part * import_kw(self.first + whole) / 60
        exported = self.exported[whole] + part * export_kw(self.first + whole) / 60
        return round(1000 + imported, 3), round(50 + exported, 3)

    def readings(
        self, start: float, end: float, every: float, skip: Iterable[tuple[float, float]] = ()
    ) -> list[Reading]:
        """A reading every `every` seconds from `start` until before `end`, none within the
        `skip` spans (the exporter was down)."""
        out: list[Reading] = []
        skipped = list(skip)
        at = start
        while at < end:
            if not any(begin <= at < stop for begin, stop in skipped):
                out.append((at, *self.registers(at)))
            at += every
        return out


def local_hours(start: float, end: float) -> list[float]:
    """The starts of the local clock hours between two times, from the wall clock."""
    starts: list[float] = []
    seen: set[tuple[date, int, int]] = set()
    minute = int(start // 60) * 60
    while minute < end:
        local = datetime.fromtimestamp(minute, WARSAW)
        key = (local.date(), local.hour, local.fold)
        if key not in seen:
            seen.add(key)
            if local.minute == 0:
                starts.append(float(minute))
        minute += 60
    return starts


@dataclass
class ExpectedHour:
    start: float
    imported: float
    exported: float
    partial: bool

    @property
    def balanced_imported(self) -> float:
        return max(0.0, self.imported - self.exported)

    @property
    def balanced_exported(self) -> float:
        return max(0.0, self.exported - self.imported)

    @property
    def day(self) -> date:
        return datetime.fromtimestamp(self.start, WARSAW).date()

    @property
    def month(self) -> str:
        return self.day.isoformat()[:7]


def expected_hours(readings: list[Reading], silent: float) -> list[ExpectedHour]:
    """Every hour that the readings close: from the first reading's hour to the last boundary
    a reading reached."""
    times = [reading[0] for reading in readings]
    boundaries = local_hours(times[0] - 3600, times[-1] + 1)
    boundaries = [b for b in boundaries if b + 3600 > times[0]]  # from the first reading's hour

    def at_boundary(b: float) -> tuple[Reading, bool]:
        """The register at a boundary, and whether a silence across it makes it uncertain."""
        index = bisect.bisect_right(times, b) - 1
        if index < 0:  # the first reading came after this boundary: the meter starts there
            return readings[0], True
        if times[index] == b:
            return readings[index], False
        after = times[index + 1] if index + 1 < len(times) else math.inf
        return readings[index], after - times[index] > silent

    hours = []
    for start, end in itertools.pairwise(boundaries):
        if end > times[-1]:
            break
        (_, i0, e0), partial_start = at_boundary(start)
        (_, i1, e1), partial_end = at_boundary(end)
        hours.append(ExpectedHour(start, i1 - i0, e1 - e0, partial_start or partial_end))
    return hours


def quarter_price(start: float) -> float:
    """PLN per MWh of a quarter-hour: a daily wave, negative at some middays (April to October);
    October 2025 one price per hour (PSE's API repeats it in the four quarters)."""
    if start < local_time(2025, 10, 1):
        start -= start % 3600
    hour = (start % 86400) / 3600
    price = 420 + 180 * math.sin(2 * math.pi * (hour - 7) / 24) + (start // 900) % 4 * 9
    month = datetime.fromtimestamp(start, WARSAW).month
    if 4 <= month <= 10 and 10 <= hour < 13 and (start // 900) % 3 != 0:
        price = -35.0 - (start // 900) % 5 * 20
    return round(price, 2)


def hour_rate(start: float, clip_first: bool) -> float:
    """PLN per kWh of an hour's net export: the mean of its quarters, negatives as 0."""
    quarters = [quarter_price(start + n * 900) for n in range(4)]
    if clip_first:
        return sum(max(0.0, q) for q in quarters) / 4 / 1000
    return max(0.0, sum(quarters) / 4) / 1000


@dataclass
class Month:
    hours: int = 0
    partial_hours: int = 0
    imported_kwh: float = 0.0
    exported_kwh: float = 0.0
    balanced_imported_kwh: float = 0.0
    balanced_exported_kwh: float = 0.0
    export_value_pln: float = 0.0
    deposit_credit_pln: float = 0.0
    import_energy_pln: float = 0.0
    from_deposit_pln: float = 0.0
    refunded_pln: float = 0.0
    lapsed_pln: float = 0.0
    deposit_balance_pln: float = 0.0
    bank_credit_kwh: float = 0.0
    from_bank_kwh: float = 0.0
    bank_lapsed_kwh: float = 0.0
    bank_balance_kwh: float = 0.0


def months_of(hours: list[ExpectedHour]) -> dict[str, Month]:
    """The energies of every month."""
    months: dict[str, Month] = defaultdict(Month)
    for hour in hours:
        month = months[hour.month]
        month.hours += 1
        month.partial_hours += hour.partial
        month.imported_kwh += hour.imported
        month.exported_kwh += hour.exported
        month.balanced_imported_kwh += hour.balanced_imported
        month.balanced_exported_kwh += hour.balanced_exported
    return dict(months)


def next_month(month: str, count: int = 1) -> str:
    year, number = int(month[:4]), int(month[5:])
    index = year * 12 + number - 1 + count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@dataclass
class Credit:
    month: str
    original: float
    remaining: float = field(init=False)

    def __post_init__(self) -> None:
        self.remaining = self.original


def net_billing(
    hours: list[ExpectedHour],
    rate: Callable[[ExpectedHour], float],
    import_price: Callable[[ExpectedHour], float],
    coefficient: Callable[[date], float],
    refund_cap: float,
) -> dict[str, Month]:
    """Net-billing month by month. Within a month no credit becomes available and none
    expires (both happen at month starts), so paying a month's import at once, oldest credit
    first, is the same as paying it hour by hour."""
    months = months_of(hours)
    for hour in hours:
        month = months[hour.month]
        value = hour.balanced_exported * rate(hour)
        month.export_value_pln += value
        month.deposit_credit_pln += value * coefficient(hour.day)
        month.import_energy_pln += hour.balanced_imported * import_price(hour)
    credits: list[Credit] = []
    for name in sorted(months):
        month = months[name]
        for credit in [c for c in credits if next_month(c.month, 13) <= name]:
            refunded = min(credit.remaining, refund_cap * credit.original)
            month.refunded_pln += refunded
            month.lapsed_pln += credit.remaining - refunded
            credits.remove(credit)
        to_pay = month.import_energy_pln
        for credit in credits:
            taken = min(credit.remaining, to_pay)
            credit.remaining -= taken
            to_pay -= taken
            month.from_deposit_pln += taken
        credits.append(Credit(name, month.deposit_credit_pln))
        following = next_month(name)
        month.deposit_balance_pln = sum(
            c.remaining for c in credits if next_month(c.month, 13) > following
        )
    return months


@dataclass
class BankEntry:
    day: date
    kwh: float


def net_metering(hours: list[ExpectedHour], ratio: float, window_days: int) -> dict[str, Month]:
    """Net-metering hour by hour: the hour's net export times the ratio goes in under its day;
    net import takes oldest first what was fed in less than `window_days` days before."""
    months = months_of(hours)
    bank: list[BankEntry] = []
    for hour in hours:
        month = months[hour.month]
        for entry in [e for e in bank if hour.day >= e.day + timedelta(days=window_days)]:
            month.bank_lapsed_kwh += entry.kwh
            bank.remove(entry)
        if hour.balanced_exported:
            bank.append(BankEntry(hour.day, hour.balanced_exported * ratio))
            month.bank_credit_kwh += hour.balanced_exported * ratio
        wanted = hour.balanced_imported
        for entry in bank:
            taken = min(entry.kwh, wanted)
            entry.kwh -= taken
            wanted -= taken
            month.from_bank_kwh += taken
        bank = [entry for entry in bank if entry.kwh > 1e-12]
        month.bank_balance_kwh = sum(entry.kwh for entry in bank)
    return months
