"""The prosumer ledger against an independent brute-force computation (tests/prosumer_model.py)
over a synthetic 14 months: both DST changes, hours with both directions, price changes,
negative quarter-hours (both ways of clipping), restarts with and without a gap, gaps; and the
deposit's 12-month expiry and refund, the bank's window, RCEm, a dynamic tariff, late prices."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import date, datetime
from typing import Any

import pytest

from exporter.config import (
    Coefficient,
    ExportPrice,
    MarketPrices,
    NegativeQuarters,
    Scheme,
    Settlement,
)
from exporter.config.prices import PriceEntry, Prices, TariffPrice
from exporter.settlement import HOUR, Balancer, Ledger, PriceBook, Registers

from .prosumer_model import (
    WARSAW,
    ExpectedHour,
    Month,
    SyntheticMeter,
    expected_hours,
    hour_rate,
    local_time,
    net_billing,
    net_metering,
    quarter_price,
)

SILENT = 600.0
START = local_time(2025, 1, 1)
END = local_time(2026, 3, 2, 1, 0)
#: The exporter was down: across noon in May, and across the midnight that begins September.
GAPS = [
    (local_time(2025, 5, 10, 10, 20), local_time(2025, 5, 10, 13, 50)),
    (local_time(2025, 8, 31, 23, 10), local_time(2025, 9, 1, 0, 50)),
    (local_time(2026, 1, 20, 3, 0), local_time(2026, 1, 20, 5, 30)),
]
#: Restarts: the ledger is saved as JSON and read into a new one (the last one after a gap).
RESTARTS = [local_time(2025, 11, 15, 12, 0, second=5), local_time(2026, 1, 20, 5, 30)]
TARIFFS = Prices(
    (
        PriceEntry(date(2025, 1, 1), ((1, TariffPrice(0.02)),)),
        PriceEntry(date(2025, 7, 1), ((1, TariffPrice(0.03)),)),
    )
)
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def readings() -> list[tuple[float, float, float]]:
    """Every 4 minutes from midnight until July (readings right on the boundaries), then every
    5 minutes, 17 s past (none on a boundary), without the gaps."""
    meter = SyntheticMeter(START - 3600, 430)
    july = local_time(2025, 7, 1)
    return meter.readings(START, july, 240, GAPS) + meter.readings(july + 17, END, 300, GAPS)


@pytest.fixture(scope="module")
def hours(readings: list[tuple[float, float, float]]) -> list[ExpectedHour]:
    return expected_hours(readings, SILENT)


def market_book(tariffs: Prices = TARIFFS, market: MarketPrices | None = None) -> PriceBook:
    book = PriceBook(market, tariffs)
    book.add((int(q), quarter_price(q)) for q in range(int(START) - 7200, int(END) + 7200, 900))
    return book


def run(ledger: Ledger, readings: list[tuple[float, float, float]]) -> Ledger:
    """Feed the readings, restarting (a JSON round trip) at `RESTARTS`."""
    restarts = sorted(RESTARTS)
    for at, imported, exported in readings:
        if restarts and at >= restarts[0]:
            restarts.pop(0)
            saved = json.loads(json.dumps(ledger.as_json()))
            ledger = Ledger(ledger.rules, ledger.book, WARSAW, months_kept=None)
            ledger.restore(saved)
        ledger.feed(at, imported, exported, None, SILENT)
    return ledger


def assert_months(ledger: Ledger, expected: dict[str, Month], names: list[str]) -> None:
    """Every figure of every month; the balances at a month's end only for whole months (the
    model takes them at the month's end, the ledger at its last hour so far)."""
    assert sorted(ledger.months) == sorted(expected)
    last = max(expected)
    for month, wanted in expected.items():
        got = ledger.months[month]
        for name in names:
            if month == last and name.endswith(("_balance_pln", "_balance_kwh")):
                continue
            assert getattr(got, name) == pytest.approx(
                getattr(wanted, name), rel=TOLERANCE, abs=TOLERANCE
            ), f"{month} {name}"


def assert_total(ledger: Ledger, expected: dict[str, Month], names: list[str]) -> None:
    """The totals since the beginning (kept across the restarts) are the months' sums."""
    for name in names:
        if name.endswith(("_balance_pln", "_balance_kwh")):
            continue
        wanted = sum(getattr(month, name) for month in expected.values())
        got = getattr(ledger.total, name)
        assert got == pytest.approx(wanted, rel=TOLERANCE, abs=TOLERANCE), name


ENERGIES = [
    "hours",
    "partial_hours",
    "imported_kwh",
    "exported_kwh",
    "balanced_imported_kwh",
    "balanced_exported_kwh",
]
MONEY = [
    "export_value_pln",
    "deposit_credit_pln",
    "import_energy_pln",
    "from_deposit_pln",
    "refunded_pln",
    "lapsed_pln",
    "deposit_balance_pln",
]
BANK = ["bank_credit_kwh", "from_bank_kwh", "bank_lapsed_kwh", "bank_balance_kwh"]


def test_the_model_has_what_the_year_should_test(hours: list[ExpectedHour]) -> None:
    """The synthetic year holds what the comparisons are about (else they prove little)."""
    by_day: dict[date, int] = {}
    for hour in hours:
        by_day[hour.day] = by_day.get(hour.day, 0) + 1
    assert by_day[date(2025, 3, 30)] == 23 and by_day[date(2025, 10, 26)] == 25
    both_ways = [h for h in hours if h.imported > 0.05 and h.exported > 0.05]
    assert len(both_ways) > 500  # hours with import and export, balanced against each other
    negative = [h for h in hours if min(quarter_price(h.start + n * 900) for n in range(4)) < 0]
    mixed = [h for h in negative if hour_rate(h.start, True) != hour_rate(h.start, False)]
    assert mixed and all(h.balanced_exported > 0 for h in mixed[:10])
    assert sum(h.partial for h in hours) >= 8  # the gaps, the first hour


@pytest.mark.parametrize("negative", list(NegativeQuarters))
def test_net_billing_over_a_year_matches_the_brute_force(
    readings: list[tuple[float, float, float]],
    hours: list[ExpectedHour],
    negative: NegativeQuarters,
) -> None:
    rules = Settlement(Scheme.NET_BILLING, negative_quarters=negative)
    ledger = run(Ledger(rules, market_book(), WARSAW, months_kept=None), readings)
    clip_first = negative is NegativeQuarters.CLIP_FIRST
    expected = net_billing(
        hours,
        lambda hour: hour_rate(hour.start, clip_first),
        lambda hour: 0.02 if hour.day < date(2025, 7, 1) else 0.03,
        lambda day: 1.23 if day >= date(2025, 2, 1) else 1.0,
        refund_cap=0.2,
    )
    assert_months(ledger, expected, ENERGIES + MONEY)
    assert_total(ledger, expected, ENERGIES + MONEY)
    assert sum(month.refunded_pln for month in expected.values()) > 10  # credits expired:
    assert sum(month.lapsed_pln for month in expected.values()) > 10  # refunded up to the cap
    assert ledger.months["2025-03"].hours == 743 and ledger.months["2025-10"].hours == 745
    assert not ledger.pending


def test_net_metering_over_a_year_matches_the_brute_force(
    readings: list[tuple[float, float, float]], hours: list[ExpectedHour]
) -> None:
    rules = Settlement(Scheme.NET_METERING, ratio=1.0, window_days=7)  # a week: lapses happen
    ledger = run(Ledger(rules, market_book(), WARSAW, months_kept=None), readings)
    expected = net_metering(hours, 1.0, 7)
    assert_months(ledger, expected, ENERGIES + BANK)
    assert_total(ledger, expected, ENERGIES + BANK)
    assert sum(month.bank_lapsed_kwh for month in expected.values()) > 0


def test_prices_that_come_late_value_the_hours_that_waited(
    readings: list[tuple[float, float, float]], hours: list[ExpectedHour]
) -> None:
    """A day without market prices is unpriced (not valued at 0) until they arrive."""
    missing = (local_time(2025, 6, 15), local_time(2025, 6, 16))
    book = PriceBook(None, TARIFFS)
    book.add(
        (q, quarter_price(q))
        for q in range(int(START) - 7200, int(END) + 7200, 900)
        if not missing[0] <= q < missing[1]
    )
    ledger = Ledger(Settlement(Scheme.NET_BILLING), book, WARSAW, months_kept=None)
    before = [r for r in readings if r[0] < local_time(2025, 6, 20)]
    for at, imported, exported in before:
        ledger.feed(at, imported, exported, None, SILENT)
    june = ledger.months["2025-06"]
    waiting = [h for h in hours if missing[0] <= h.start < missing[1]]
    assert june.unpriced_export_kwh == pytest.approx(sum(h.balanced_exported for h in waiting))
    assert june.unpriced_export_kwh > 1
    assert len(ledger.pending) == len([h for h in waiting if h.balanced_exported > 0])
    view = ledger.view(local_time(2025, 6, 20))
    assert view.unpriced_export_kwh == pytest.approx(june.unpriced_export_kwh)
    book.add((q, quarter_price(q)) for q in range(int(missing[0]), int(missing[1]), 900))
    assert ledger.reprice() and not ledger.pending and june.unpriced_export_kwh == pytest.approx(0)
    for at, imported, exported in readings[len(before) :]:
        ledger.feed(at, imported, exported, None, SILENT)
    expected = net_billing(
        hours,
        lambda hour: hour_rate(hour.start, True),
        lambda hour: 0.02 if hour.day < date(2025, 7, 1) else 0.03,
        lambda day: 1.23 if day >= date(2025, 2, 1) else 1.0,
        refund_cap=0.2,
    )
    assert_months(ledger, expected, MONEY)


class Feed:
    """Hand-made readings: whole kWh at chosen hours, one reading at every hour's start."""

    def __init__(self, ledger: Ledger, start: float) -> None:
        self.ledger = ledger
        self.at = start
        self.imported = 100.0
        self.exported = 10.0
        ledger.feed(self.at, self.imported, self.exported, None, 86400)

    def until(self, end: float, imported: float = 0.0, exported: float = 0.0) -> None:
        """Advance hour by hour to `end`; the first hour carries the given energies."""
        self.imported += imported
        self.exported += exported
        while self.at < end:
            self.at += HOUR
            self.ledger.feed(self.at, self.imported, self.exported, None, 86400)


@pytest.mark.parametrize(("cap", "refunded"), [(0.2, 10.0), (0.3, 15.0)])
def test_a_deposit_credit_expires_after_12_months_with_at_most_its_cap_refunded(
    cap: float, refunded: float
) -> None:
    rules = Settlement(
        Scheme.NET_BILLING,
        export_price=ExportPrice.FIXED,
        fixed_price=0.5,
        coefficients=(Coefficient(date.min, 1.0),),
        refund_cap=cap,
    )
    ledger = Ledger(
        rules,
        PriceBook(None, Prices((PriceEntry(date(2025, 1, 1), ((1, TariffPrice(1.0)),)),))),
        WARSAW,
    )
    feed = Feed(ledger, local_time(2025, 7, 10, 12))
    feed.until(local_time(2025, 7, 20, 9), exported=100)  # July: 50 PLN, from 1 August
    feed.until(local_time(2025, 9, 5, 9), imported=10)  # the July credit cannot pay July
    assert ledger.months["2025-07"].from_deposit_pln == 0
    assert ledger.months["2025-07"].to_pay_pln == pytest.approx(10)
    feed.until(local_time(2026, 7, 5), imported=5)  # September: paid from July's 50
    assert ledger.months["2025-09"].from_deposit_pln == pytest.approx(5)
    view = ledger.view(local_time(2026, 7, 5))
    assert view.deposit_pln == pytest.approx(45) and view.deposit_expiring_pln == pytest.approx(45)
    assert ledger.view(local_time(2026, 6, 1)).deposit_expiring_pln == 0  # not within 30 days
    feed.until(local_time(2026, 8, 1, 2))
    august = ledger.months["2026-08"]
    assert august.refunded_pln == pytest.approx(refunded)
    assert august.lapsed_pln == pytest.approx(45 - refunded)
    assert ledger.view(local_time(2026, 8, 1, 2)).deposit_pln == 0


def test_a_bank_entry_can_be_taken_back_within_its_window_only() -> None:
    rules = Settlement(Scheme.NET_METERING, ratio=0.8, window_days=365)
    ledger = Ledger(rules, PriceBook(), WARSAW)
    feed = Feed(ledger, local_time(2025, 6, 1, 12))
    feed.until(local_time(2026, 5, 15), exported=10)  # 8 kWh in the bank
    view = ledger.view(local_time(2026, 5, 15))
    assert view.bank_kwh == pytest.approx(8) and view.bank_expiring_kwh == pytest.approx(8)
    feed.until(local_time(2026, 5, 31, 23), imported=3)  # taken back: 5 kWh left
    assert ledger.months["2026-05"].from_bank_kwh == pytest.approx(3)
    assert ledger.months["2026-05"].billed_import_kwh == pytest.approx(0)
    feed.until(local_time(2026, 6, 1, 12), imported=4)  # 23:00 on the 31st: still within
    feed.until(local_time(2026, 6, 2), imported=10)  # 365 days later: lapsed at midnight
    may, june = ledger.months["2026-05"], ledger.months["2026-06"]
    assert may.from_bank_kwh == pytest.approx(7)
    assert june.bank_lapsed_kwh == pytest.approx(1) and june.from_bank_kwh == 0
    assert june.billed_import_kwh == pytest.approx(10) and june.bank_balance_kwh == 0


def test_rcem_values_a_month_once_its_price_is_given() -> None:
    rules = Settlement(Scheme.NET_BILLING, export_price=ExportPrice.RCEM)
    ledger = Ledger(rules, PriceBook(MarketPrices(rcem=(("2025-05", 250.0),))), WARSAW)
    feed = Feed(ledger, local_time(2025, 5, 31, 20))
    feed.until(local_time(2025, 6, 2), exported=4)  # May: priced at once
    feed.until(local_time(2025, 7, 1, 1), exported=6)  # June: RCEm not known yet
    assert ledger.months["2025-05"].export_value_pln == pytest.approx(1.0)
    assert ledger.months["2025-06"].unpriced_export_kwh == pytest.approx(6)
    assert ledger.months["2025-06"].export_value_pln == 0
    ledger.book = PriceBook(MarketPrices(rcem=(("2025-05", 250.0), ("2025-06", -20.0))))
    assert ledger.reprice()  # a negative monthly price counts as 0
    june = ledger.months["2025-06"]
    assert june.unpriced_export_kwh == 0 and june.export_value_pln == 0


def test_a_dynamic_tariff_pays_the_hour_s_market_price_plus_the_margin() -> None:
    tariffs = Prices(
        (PriceEntry(date(2025, 1, 1), ((1, TariffPrice(0.0, 0.3, market=True, margin=0.05)),)),)
    )
    book = PriceBook(None, tariffs)
    start = local_time(2025, 11, 3, 18)
    book.add([(int(start), 400.0), (int(start) + 900, 500.0), (int(start) + 1800, -100.0)])
    ledger = Ledger(Settlement(Scheme.NET_BILLING), book, WARSAW)
    feed = Feed(ledger, start)
    feed.until(start + 2 * HOUR, imported=2)
    november = ledger.months["2025-11"]
    assert november.unpriced_import_kwh == pytest.approx(2)  # one quarter-hour is missing
    book.add([(int(start) + 2700, 600.0)])
    assert ledger.reprice()
    assert november.import_energy_pln == pytest.approx(2 * (0.35 + 0.05))  # mean 350 PLN/MWh


def test_hours_before_since_are_not_settled() -> None:
    rules = Settlement(Scheme.NET_METERING, since=date(2025, 6, 2))
    ledger = Ledger(rules, PriceBook(), WARSAW)
    feed = Feed(ledger, local_time(2025, 6, 1, 22))
    feed.until(local_time(2025, 6, 2, 1), exported=5)
    feed.until(local_time(2025, 6, 2, 3), exported=5)
    june = ledger.months["2025-06"]
    assert june.hours == 3 and june.bank_credit_kwh == pytest.approx(4)  # from midnight only


def test_the_view_holds_the_periods_and_the_open_hour() -> None:
    book = PriceBook()
    start = local_time(2025, 10, 25, 12)
    book.add((q, 200.0) for q in range(int(start), int(start) + 3 * 86400, 900))
    ledger = Ledger(Settlement(Scheme.NET_BILLING), book, WARSAW)
    feed = Feed(ledger, start)
    feed.until(local_time(2025, 10, 27, 10), exported=3)
    ledger.feed(feed.at + 1200, feed.imported + 0.5, feed.exported + 1.5)
    view = ledger.view(feed.at + 1200)
    periods = {p.period.name: p for p in view.periods}
    assert periods["yesterday"].start == date(2025, 10, 26)
    assert periods["yesterday"].totals.hours == 25 and not periods["yesterday"].partial
    assert periods["today"].totals.hours == 10 and not periods["today"].partial
    assert periods["this_month"].partial  # first heard on the 25th
    assert periods["this_week"].totals.balanced_exported_kwh == 0  # Monday: nothing yet
    assert view.hour is not None and view.hour.start == local_time(2025, 10, 27, 10)
    assert view.hour.balanced_exported_kwh == pytest.approx(1.0)
    assert view.hour.export_rate == pytest.approx(0.2) and view.hour.market_price == 200
    assert view.deposit_waiting_pln == pytest.approx(3 * 0.2 * 1.23)


def test_the_total_only_grows_and_a_ledger_kept_without_it_starts_from_its_months() -> None:
    ledger = Ledger(Settlement(Scheme.NET_METERING), PriceBook(), WARSAW)
    feed = Feed(ledger, local_time(2025, 5, 31, 22))
    feed.until(local_time(2025, 6, 1, 2), exported=3)
    feed.until(local_time(2025, 6, 1, 4), imported=1)
    assert ledger.total.balanced_exported_kwh == pytest.approx(3)
    assert ledger.total.balanced_imported_kwh == pytest.approx(1)
    assert ledger.total.hours == 6
    view = ledger.view(feed.at)
    assert view.balanced_exported_total_kwh == pytest.approx(3) and view.total.hours == 6
    saved = ledger.as_json()
    del saved["total"]  # as phase A kept it
    again = Ledger(ledger.rules, ledger.book, WARSAW)
    again.restore(json.loads(json.dumps(saved)))
    assert again.total.as_json() == ledger.total.as_json()


def test_the_view_has_no_open_hour_once_that_hour_is_over() -> None:
    ledger = Ledger(Settlement(Scheme.NET_METERING), PriceBook(), WARSAW)
    feed = Feed(ledger, local_time(2025, 6, 1, 10))
    ledger.feed(feed.at + 600, feed.imported, feed.exported + 0.5)
    assert ledger.view(feed.at + 900).hour_balanced_exported_kwh == pytest.approx(0.5)
    later = ledger.view(feed.at + HOUR)  # 11:00: no reading in the new hour yet
    assert later.hour is None and later.hour_balanced_exported_kwh is None


def registers(at: float, imported: float, exported: float = 0.0) -> Registers:
    return Registers(at, imported, exported)


def test_a_reading_right_at_the_boundary_is_the_register_there() -> None:
    balancer = Balancer(WARSAW)
    start = local_time(2025, 4, 1, 10)
    assert balancer.feed(registers(start, 1.0), SILENT) == []
    assert balancer.feed(registers(start + 1800, 1.5), SILENT) == []
    (hour,) = balancer.feed(registers(start + HOUR, 2.0), SILENT)
    assert hour.start == start and hour.imported == pytest.approx(1.0) and not hour.partial
    (hour,) = balancer.feed(registers(start + 2 * HOUR + 60, 3.1), SILENT)
    assert hour.imported == pytest.approx(0.0) and hour.partial  # silent 61 minutes across
    assert balancer.feed(registers(start + 2 * HOUR, 2.5), SILENT) == []  # older: ignored
    assert balancer.feed(registers(start + 2 * HOUR + 120, 0.5), SILENT) == []  # went back:
    (hour,) = balancer.feed(registers(start + 3 * HOUR + 60, 1.5), SILENT)  # a new meter
    assert hour.partial and hour.imported == 0  # from its first reading, silent across 13:00
    assert balancer.feed(registers(start + 3 * HOUR + 1800, 2.0), SILENT) == []
    (hour,) = balancer.feed(registers(start + 4 * HOUR, 2.5), SILENT)
    assert hour.partial and hour.imported == pytest.approx(2.0)  # from 12:02 on


def test_totals_read_back_what_a_later_version_added() -> None:
    """A figure unknown to this version is ignored, a missing one reads 0: upgrades keep the
    ledger."""
    ledger = Ledger(Settlement(Scheme.NET_BILLING), PriceBook(), WARSAW)
    saved: dict[str, Any] = {
        "months": {"2025-01": {"hours": 3, "imported_kwh": 1.5, "future_figure": 7}},
        "deposit": [["2024-12", 10.0, 4.0]],
    }
    ledger.restore(saved)
    assert ledger.months["2025-01"].hours == 3 and ledger.months["2025-01"].exported_kwh == 0
    assert ledger.deposit.balance(local_time(2025, 1, 5)) == 4.0
    names = {f.name for f in fields(type(ledger.months["2025-01"]))}
    assert "future_figure" not in names
    assert datetime.fromtimestamp(ledger.deposit.expires_at("2024-12"), WARSAW) == datetime(
        2026, 1, 1, tzinfo=WARSAW
    )
