"""PSE's public data API, report `rce-pln`, without I/O: the request of a business date, its
pages, the rows read in UTC, and when to ask for which day (docs/prosumer.md, "Market prices").

What we rely on (PSE's API v2 at https://api.raporty.pse.pl/api, OData style):

- `GET {base}/rce-pln?$filter=business_date eq 'YYYY-MM-DD'` answers JSON `{"value": [rows]}`,
  and `"nextLink"` when more rows follow; only its query is taken (PSE's links have been seen
  naming an internal http address), and asked of our own base URL.
- A row holds `rce_pln` (PLN per MWh, may be negative), `business_date`, and the interval in UTC:
  `dtime_utc` ("YYYY-MM-DD HH:MM:SS", the interval's **end**) and `period_utc` ("HH:MM - HH:MM").
  The local `dtime`/`period` are not read: the autumn day repeats an hour in them.
- A business date is a local (Europe/Warsaw) day: 96 quarter-hours, 92 on the last Sunday of
  March, 100 on the last Sunday of October. Until 30 September 2025 the price was hourly and the
  API repeats it in the hour's four quarters.
- The next day's prices are published in the early afternoon; we ask from 14:30 local time.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo

from ..amiplus import midnight
from ..plumbing import Backoff

REPORT = "rce-pln"
QUARTER = 900
PUBLISHED_AFTER = clock_time(14, 30)  # local time the next day's prices are asked for
FIRST_DAY = date(2024, 6, 14)  # the API's first business date
MAX_PAGES = 50  # pages of one day: a loop of links stops here
SPACING = 1.0  # seconds at least between two requests (a backfill of months is gentle)
NETWORK_BACKOFF = Backoff(first=10.0, cap=1800.0)  # PSE or the network failing
DAY_BACKOFF = Backoff(first=300.0, cap=6 * 3600.0)  # a day answered empty or incomplete


class PriceDataError(Exception):
    """PSE's answer cannot be used; the message says what was wrong, for the log."""


@dataclass(frozen=True, slots=True)
class Page:
    """One answer: quarter-hour prices by start (Unix time) and the query of the next page."""

    quarters: list[tuple[int, float]]
    next_query: str | None


def day_url(base: str, day: date) -> str:
    """The first request for a business date."""
    query = urllib.parse.urlencode({"$filter": f"business_date eq '{day.isoformat()}'"})
    return f"{base.rstrip('/')}/{REPORT}?{query}"


def next_url(base: str, query: str) -> str:
    return f"{base.rstrip('/')}/{REPORT}?{query}"


def quarters_of(day: date, zone: ZoneInfo) -> list[int]:
    """The starts of a business date's quarter-hours (92, 96 or 100 of them)."""
    begins, ends = int(midnight(day, zone)), int(midnight(day + timedelta(days=1), zone))
    return list(range(begins, ends, QUARTER))


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.strip().replace(" ", "T")).replace(tzinfo=UTC)


def _row(row: Any) -> tuple[int, float]:
    """A row's quarter start (Unix time) and price: the interval's end less its length."""
    if not isinstance(row, dict):
        raise PriceDataError("a row is not an object")
    try:
        end = _utc(str(row["dtime_utc"]))
        first, _, last = str(row.get("period_utc", "")).partition("-")
        minutes = QUARTER // 60
        if last:
            length = _utc(f"2000-01-01 {last.strip()}") - _utc(f"2000-01-01 {first.strip()}")
            minutes = int(length.total_seconds() // 60) % (24 * 60) or 24 * 60
        price = row["rce_pln"]
        if isinstance(price, bool) or not isinstance(price, int | float | str):
            raise PriceDataError(f"rce_pln is {price!r}")
        return int(end.timestamp()) - minutes * 60, float(price)
    except (KeyError, ValueError) as error:
        message = f"a row without a readable dtime_utc, period_utc or rce_pln ({error})"
        raise PriceDataError(message) from None


def parse_page(body: bytes) -> Page:
    """Read one answer of the report; raises `PriceDataError`."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise PriceDataError(f"not JSON ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("value"), list):
        raise PriceDataError("no 'value' list in the answer")
    quarters: list[tuple[int, float]] = []
    for row in document["value"]:
        start, price = _row(row)
        if start % QUARTER:
            raise PriceDataError(f"an interval that does not start on a quarter-hour ({start})")
        quarters.append((start, price))
    link = document.get("nextLink") or document.get("@odata.nextLink")
    query = urllib.parse.urlsplit(str(link)).query if link else None
    return Page(quarters, query or None)


def day_prices(
    base: str, day: date, zone: ZoneInfo, get: Callable[[str], bytes]
) -> tuple[dict[int, float], bool]:
    """Every quarter-hour of a business date, following the pages (`get` fetches a URL and
    raises on failure); and whether the day is complete."""
    url = day_url(base, day)
    found: dict[int, float] = {}
    wanted = set(quarters_of(day, zone))
    for _ in range(MAX_PAGES):
        page = parse_page(get(url))
        before = len(found)
        found.update((start, price) for start, price in page.quarters if start in wanted)
        if page.next_query is None or len(found) == before:
            break
        url = next_url(base, page.next_query)
    return found, len(found) == len(wanted)


# --- the cache ------------------------------------------------------------------------------


def cache_json(days: Mapping[date, Mapping[int, float]], zone: ZoneInfo) -> dict[str, Any]:
    """Fetched days as `{"format": 1, "days": {"YYYY-MM-DD": [price or null, ...]}}`, one
    entry per quarter-hour from the day's local midnight."""
    out = {
        day.isoformat(): [prices.get(start) for start in quarters_of(day, zone)]
        for day, prices in sorted(days.items())
    }
    return {"format": 1, "days": out}


def cache_days(document: Any, zone: ZoneInfo) -> dict[date, dict[int, float]]:
    """The days of a cache document (an unknown format: none)."""
    if not isinstance(document, dict) or document.get("format") != 1:
        return {}
    days: dict[date, dict[int, float]] = {}
    for name, prices in document.get("days", {}).items():
        day = date.fromisoformat(name)
        starts = quarters_of(day, zone)
        days[day] = {s: float(p) for s, p in zip(starts, prices, strict=False) if p is not None}
    return days


# --- when to ask --------------------------------------------------------------------------------


class FetchSchedule:
    """Which business date to ask for next, and when: every day from `since` to today, and
    tomorrow from 14:30; the newest first; a day answered empty or incomplete is asked again
    later (its own backoff), a failing PSE or network delays everything (the network backoff).
    Plain code: the fetcher's thread asks `next` and reports back."""

    def __init__(
        self,
        since: date,
        zone: ZoneInfo,
        complete: Iterable[date] = (),
        spacing: float = SPACING,
    ) -> None:
        self.since = max(since, FIRST_DAY)
        self.zone = zone
        self.complete = set(complete)
        self.spacing = spacing
        self._tries: dict[date, int] = {}  # a day that came back empty or incomplete
        self._not_before: dict[date, float] = {}
        self._failures = 0
        self._paused_until = 0.0
        self._last_request = float("-inf")

    def wanted(self, now: float) -> list[date]:
        """The days that should be known by now, newest first."""
        local = datetime.fromtimestamp(now, self.zone)
        last = local.date() + timedelta(days=1 if local.time() >= PUBLISHED_AFTER else 0)
        days = []
        day = last
        while day >= self.since:
            days.append(day)
            day -= timedelta(days=1)
        return days

    def next(self, now: float) -> tuple[date | None, float]:
        """The day to ask for and from when (Unix time); None: nothing until then."""
        earliest = max(self._paused_until, self._last_request + self.spacing)
        waiting: list[float] = []
        for day in self.wanted(now):
            if day in self.complete:
                continue
            not_before = self._not_before.get(day, 0.0)
            if not_before <= now:
                return day, max(now, earliest)
            waiting.append(not_before)
        local = datetime.fromtimestamp(now, self.zone)
        publication = datetime.combine(local.date(), PUBLISHED_AFTER, self.zone).timestamp()
        if publication <= now:
            publication = datetime.combine(
                local.date() + timedelta(days=1), PUBLISHED_AFTER, self.zone
            ).timestamp()
        return None, max(min([*waiting, publication]), earliest)

    def asked(self, now: float) -> None:
        self._last_request = now

    def answered(self, day: date, complete: bool, now: float) -> None:
        """PSE answered for `day`: it is complete, or is asked again later."""
        self._failures, self._paused_until = 0, 0.0
        if complete:
            self.complete.add(day)
            self._tries.pop(day, None)
            self._not_before.pop(day, None)
            return
        tries = self._tries.get(day, 0)
        self._tries[day] = tries + 1
        self._not_before[day] = now + DAY_BACKOFF.delay(tries)

    def failed(self, now: float) -> float:
        """PSE or the network failed: nothing is asked for a while; returns until when."""
        self._paused_until = now + NETWORK_BACKOFF.delay(self._failures)
        self._failures += 1
        return self._paused_until
