"""Market prices from PSE: the thin thread around `pse.FetchSchedule`, HTTP by urllib, and the
cache in the state directory (`market_prices.json`), so that a restart or an outage of PSE loses
nothing. `settle` uses the same cache and the same day request, without the thread."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .. import __version__
from ..plumbing import read_state, write_atomically
from .pse import (
    SPACING,
    FetchSchedule,
    PriceDataError,
    cache_days,
    cache_json,
    day_prices,
    quarters_of,
)

log = logging.getLogger(__name__)

TIMEOUT = 30.0  # seconds per request
MAX_BODY = 10 * 1024 * 1024  # bytes of one answer: a day is about 30 KB
SAVE_EVERY = 60.0  # seconds between cache saves while days keep coming
STOP_WAIT = 2.0  # seconds a stop waits for the thread
REPLAN = 300.0  # seconds at most between two looks at the schedule (the clock may jump)
CACHE_FILE = "market_prices.json"

#: One day's quarter-hour prices in PLN per MWh, by start (Unix time).
DayPrices = dict[int, float]


def http_get(url: str, timeout: float = TIMEOUT) -> bytes:
    """An answer's body; raises `PriceDataError` with the reason in plain words."""
    request = urllib.request.Request(
        url,
        headers={"Accept": "application/json", "User-Agent": f"amiplus-exporter/{__version__}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read(MAX_BODY + 1)
    except urllib.error.HTTPError as error:
        raise PriceDataError(f"HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise PriceDataError(f"cannot connect ({error.reason})") from None
    except TimeoutError:
        raise PriceDataError(f"no answer within {timeout:g} s") from None
    except OSError as error:
        raise PriceDataError(f"connection failed ({error.strerror or error})") from None
    if len(body) > MAX_BODY:
        raise PriceDataError(f"an answer larger than {MAX_BODY // 1024 // 1024} MB")
    return body


class PriceCache:
    """The fetched days, kept in the state directory (none: in memory only)."""

    def __init__(self, directory: Path | None, zone: ZoneInfo) -> None:
        self.path = directory / CACHE_FILE if directory else None
        self.zone = zone
        self._failing = False

    def load(self) -> dict[date, DayPrices]:
        if self.path is None:
            return {}
        try:
            text = read_state(self.path)
            return {} if text is None else cache_days(json.loads(text), self.zone)
        except (OSError, ValueError, TypeError, AttributeError) as error:
            log.warning("market price cache %s not read (%s): asking PSE again", self.path, error)
            return {}

    def save(self, days: dict[date, DayPrices]) -> None:
        if self.path is None:
            return
        try:
            write_atomically(self.path, json.dumps(cache_json(days, self.zone)).encode())
        except OSError as error:
            if not self._failing:
                log.warning(
                    "cannot keep market prices in %s (%s): they are asked again after a restart",
                    self.path.parent,
                    error.strerror or error,
                )
            self._failing = True
            return
        self._failing = False


def complete_days(days: dict[date, DayPrices], zone: ZoneInfo) -> list[date]:
    return [day for day, prices in days.items() if len(prices) == len(quarters_of(day, zone))]


class PriceFetcher:
    """Asks PSE for the days the schedule names, one at a time, in its own thread; hands every
    day's prices to `on_prices` and keeps them in the cache."""

    def __init__(
        self,
        base_url: str,
        since: date,
        zone: ZoneInfo,
        cache: PriceCache,
        on_prices: Callable[[DayPrices], None],
        *,
        timeout: float = TIMEOUT,
        clock: Callable[[], float] = time.time,
        spacing: float = SPACING,
    ) -> None:
        self.base_url = base_url
        self.zone = zone
        self.cache = cache
        self.on_prices = on_prices
        self.timeout = timeout
        self.clock = clock
        self.days = cache.load()
        self.schedule = FetchSchedule(since, zone, complete_days(self.days, zone), spacing=spacing)
        self.last_error: str | None = None
        self.last_answer_at: float | None = None
        self.retry_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsaved = False
        self._saved_at = 0.0

    def cached(self) -> Iterable[tuple[int, float]]:
        """Every cached quarter-hour price (for the price book at start)."""
        for prices in list(self.days.values()):  # the thread may add a day meanwhile
            yield from prices.items()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="market-prices", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop asking (a request under way is left to its daemon thread: a stop must not wait
        for PSE) and keep what was fetched."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT)
        if self._unsaved:
            self.cache.save(dict(self.days))  # a copy: the thread may still add a day

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self.clock()
            day, at = self.schedule.next(now)
            if self._unsaved and (day is None or at > now or now - self._saved_at >= SAVE_EVERY):
                self.cache.save(self.days)
                self._unsaved, self._saved_at = False, now
            if day is None or at > now:
                self._stop.wait(min(max(at - now, 0.05), REPLAN))
                continue
            self.fetch(day, now)

    def fetch(self, day: date, now: float) -> bool:
        """Ask for one day now; whether PSE answered (completely or not)."""
        self.schedule.asked(now)
        try:
            prices, complete = day_prices(
                self.base_url, day, self.zone, lambda url: http_get(url, self.timeout)
            )
        except PriceDataError as error:
            self.retry_at = self.schedule.failed(self.clock())
            if str(error) != self.last_error:
                log.warning(
                    "market prices for %s not fetched from %s: %s (asking again later)",
                    day,
                    self.base_url,
                    error,
                )
            self.last_error = str(error)
            return False
        if self.last_error is not None:
            log.info("market prices from %s again", self.base_url)
        self.last_error = self.retry_at = None
        self.last_answer_at = self.clock()
        self.schedule.answered(day, complete, self.last_answer_at)
        if prices:
            self.days[day] = prices
            self._unsaved = True
            self.on_prices(prices)
        if not complete:
            log.info("market prices for %s: %d quarter-hours so far", day, len(prices))
        return True

    def status(self) -> dict[str, Any]:
        """For the status page: where prices come from and how the fetching goes."""
        return {
            "source": "pse",
            "url": self.base_url,
            "days": len(self.schedule.complete),
            "last_answer_at": self.last_answer_at,
            "last_error": self.last_error,
            "retry_at": self.retry_at,
        }
