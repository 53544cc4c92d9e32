"""Market prices from PSE's data API: a day over several pages, the days the clocks change (92
and 100 quarter-hours), the failures (HTTP 500, no answer in time, an empty day, a refused
connection, an answer that is not the report), the schedule of what to ask when, and the
fetcher's thread with its cache, against a local stand-in for the API (tests/pse_api.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from exporter.settlement.fetcher import PriceCache, PriceFetcher, http_get
from exporter.settlement.pse import (
    DAY_BACKOFF,
    NETWORK_BACKOFF,
    FetchSchedule,
    PriceDataError,
    day_prices,
    parse_page,
    quarters_of,
)

from .conftest import free_port, wait_until
from .prosumer_model import WARSAW, local_time, quarter_price
from .pse_api import PseApi, started


@pytest.fixture
def api() -> Iterator[PseApi]:
    yield from started(page_size=40)


def get(url: str) -> bytes:
    return http_get(url, timeout=5)


@pytest.mark.parametrize(
    ("day", "count"), [(date(2025, 10, 20), 96), (date(2025, 3, 30), 92), (date(2025, 10, 26), 100)]
)
def test_a_business_date_over_its_pages(api: PseApi, day: date, count: int) -> None:
    api.add(day, lambda start: quarter_price(start) + 0.25)
    prices, complete = day_prices(api.url, day, WARSAW, get)
    assert complete and len(prices) == count
    assert sorted(prices) == quarters_of(day, WARSAW)  # read in UTC: no hour lost or doubled
    assert all(prices[start] == quarter_price(start) + 0.25 for start in prices)
    assert len(api.requests) == -(-count // 40)  # every page, asked of our own address
    assert all(path.startswith("/api/rce-pln?") for path in api.requests)


def test_the_repeated_autumn_hour_is_two_hours(api: PseApi) -> None:
    day = date(2025, 10, 26)
    api.add(day, lambda start: float(start // 3600 % 1000))
    prices, _ = day_prices(api.url, day, WARSAW, get)
    first, second = local_time(2025, 10, 26, 2), local_time(2025, 10, 26, 2) + 3600
    assert prices[int(first)] != prices[int(second)]  # 02:00 summer time, then winter time


def test_an_empty_day_is_not_complete(api: PseApi) -> None:
    day = date(2025, 11, 3)
    api.add(day, quarter_price)
    api.faults[day] = "empty"
    assert day_prices(api.url, day, WARSAW, get) == ({}, False)


def test_a_server_error_and_a_slow_answer_are_failures(api: PseApi) -> None:
    day = date(2025, 11, 3)
    api.add(day, quarter_price)
    api.faults[day] = "error"
    with pytest.raises(PriceDataError, match="HTTP 500"):
        day_prices(api.url, day, WARSAW, get)
    api.faults[day] = "slow"
    with pytest.raises(PriceDataError, match=r"no answer within 0\.5 s"):
        day_prices(api.url, day, WARSAW, lambda url: http_get(url, timeout=0.5))


@pytest.mark.integration
def test_nobody_listening_and_a_wrong_answer_are_failures() -> None:
    with pytest.raises(PriceDataError, match="cannot connect"):
        get(f"http://127.0.0.1:{free_port()}/api/rce-pln")
    with pytest.raises(PriceDataError, match="not JSON"):
        parse_page(b"<html>maintenance</html>")
    with pytest.raises(PriceDataError, match="no 'value' list"):
        parse_page(b'{"error": "too many requests"}')
    with pytest.raises(PriceDataError, match="dtime_utc"):
        parse_page(b'{"value": [{"rce_pln": 1.0, "period_utc": "22:30 - 22:45"}]}')
    with pytest.raises(PriceDataError, match="rce_pln"):
        parse_page(b'{"value": [{"dtime_utc": "2025-10-01 10:15:00", "rce_pln": null}]}')


def at(*parts: int) -> float:
    return local_time(*parts)


def test_the_schedule_asks_for_tomorrow_from_14_30_and_the_newest_first() -> None:
    schedule = FetchSchedule(date(2025, 10, 20), WARSAW, spacing=0)
    assert schedule.wanted(at(2025, 10, 22, 14, 29))[0] == date(2025, 10, 22)
    assert schedule.wanted(at(2025, 10, 22, 14, 30)) == [
        date(2025, 10, 23),
        date(2025, 10, 22),
        date(2025, 10, 21),
        date(2025, 10, 20),
    ]
    now = at(2025, 10, 22, 15)
    for day in schedule.wanted(now):
        assert schedule.next(now) == (day, now)
        schedule.answered(day, True, now)
    wanted, when = schedule.next(now)  # all there: nothing until tomorrow's publication
    assert wanted is None and when == at(2025, 10, 23, 14, 30)
    early = at(2025, 10, 23, 9)
    assert schedule.next(early) == (None, at(2025, 10, 23, 14, 30))


def within_jitter(delay: float, base: float) -> bool:
    """A backoff delay is its base +-20 %."""
    return 0.8 * base <= delay <= 1.2 * base


def test_the_schedule_waits_for_an_empty_day_and_backs_off_when_pse_fails() -> None:
    schedule = FetchSchedule(date(2025, 10, 20), WARSAW)
    now = at(2025, 10, 21, 15)
    assert schedule.next(now) == (date(2025, 10, 22), now)
    schedule.asked(now)
    schedule.answered(date(2025, 10, 22), False, now)  # not published yet: later
    assert schedule.next(now) == (date(2025, 10, 21), now + 1.0)  # the others go on, gently
    schedule.asked(now + 1)
    delays = [schedule.failed(now + 1) - (now + 1) for _ in range(12)]
    for attempt, delay in enumerate(delays):  # doubling, capped
        base = min(NETWORK_BACKOFF.cap, NETWORK_BACKOFF.first * 2**attempt)
        assert within_jitter(delay, base), (attempt, delay)
    paused = now + 1 + delays[-1]
    assert schedule.next(now + 2) == (date(2025, 10, 21), paused)
    schedule.answered(date(2025, 10, 21), True, paused)  # an answer ends the backoff
    assert paused > now + 1.2 * DAY_BACKOFF.first  # by now the empty day may be asked again
    assert schedule.next(paused + 5) == (date(2025, 10, 22), paused + 5)
    schedule.answered(date(2025, 10, 22), False, paused + 5)  # still empty: twice as long
    assert schedule.next(paused + 5) == (date(2025, 10, 20), paused + 5)
    schedule.answered(date(2025, 10, 20), True, paused + 5)
    day, when = schedule.next(paused + 5)
    assert day is None and within_jitter(when - (paused + 5), 2 * DAY_BACKOFF.first)


def test_the_schedule_starts_with_the_api(api: PseApi) -> None:
    schedule = FetchSchedule(date(2020, 1, 1), WARSAW)
    assert schedule.wanted(at(2024, 6, 15, 10))[-1] == date(2024, 6, 14)


def test_the_fetcher_keeps_what_it_fetched_across_a_restart(api: PseApi, tmp_path: Path) -> None:
    today = date(2025, 10, 27)
    for offset in range(-3, 1):
        api.add(today + timedelta(days=offset), quarter_price)
    api.faults[today + timedelta(days=1)] = "empty"  # tomorrow: not published yet
    base, started_at = at(2025, 10, 27, 15), time.monotonic()

    def clock() -> float:
        return base + time.monotonic() - started_at

    arrived: list[dict[int, float]] = []
    cache = PriceCache(tmp_path, WARSAW)
    fetcher = PriceFetcher(
        api.url, today - timedelta(days=3), WARSAW, cache, arrived.append, clock=clock, spacing=0
    )
    fetcher.start()
    try:
        assert wait_until(lambda: len(arrived) == 4, timeout=20)
        assert wait_until((tmp_path / "market_prices.json").exists, timeout=20)
    finally:
        fetcher.stop()
    assert sorted(len(day) for day in arrived) == [96, 96, 96, 100]  # the 26th: 25 hours
    assert fetcher.status()["days"] == 4 and fetcher.last_error is None
    asked = len(api.requests)
    again = PriceFetcher(api.url, today - timedelta(days=3), WARSAW, cache, arrived.append)
    assert sorted(again.schedule.complete) == [today + timedelta(days=n) for n in range(-3, 1)]
    assert dict(again.cached()) == {s: p for day in arrived for s, p in day.items()}
    wanted, when = again.schedule.next(clock())
    assert wanted == today + timedelta(days=1) and when == pytest.approx(clock(), abs=2)
    assert len(api.requests) == asked  # the restart asked nothing


def test_the_fetcher_reports_a_failing_pse_and_recovers(api: PseApi, tmp_path: Path) -> None:
    day = date(2025, 11, 3)
    api.add(day, quarter_price)
    api.faults[day] = "error"
    fetcher = PriceFetcher(api.url, day, WARSAW, PriceCache(tmp_path, WARSAW), lambda p: None)
    now = at(2025, 11, 3, 10)
    assert not fetcher.fetch(day, now)
    assert fetcher.status()["last_error"] == "HTTP 500 Internal Server Error"
    assert fetcher.status()["retry_at"] > now
    del api.faults[day]
    assert fetcher.fetch(day, now + 60) and fetcher.status()["last_error"] is None
    assert day in fetcher.schedule.complete
