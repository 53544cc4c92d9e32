"""A stand-in for PSE's public data API (https://api.raporty.pse.pl/api), report `rce-pln`, on
127.0.0.1 with a free port: the real one cannot be reached from the tests.

It answers as PSE's API v2 does (docs/prosumer.md, "Market prices"): `GET /api/rce-pln` with
`$filter=business_date eq 'YYYY-MM-DD'` gives `{"value": [rows]}`, a page at a time with a
`nextLink` to the rest, the link naming an address of PSE's own network (as links from the real
API have been seen to). A row holds `dtime` and `period` (local time; the repeated autumn hour
reads `02a`), `rce_pln`, `dtime_utc` (the quarter's end, UTC) and `period_utc`,
`business_date`, `publication_ts` and `publication_ts_utc`. A business date has 96 quarter-hours,
92 and 100 on the days the clocks change.

A day can also answer empty (not published yet), with HTTP 500, or only after a delay.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .prosumer_model import WARSAW, local_time

INTERNAL = "http://10.17.0.4:8080/api/rce-pln"  # what PSE's nextLink names: not reachable


def rows(day: date, price: Callable[[int], float]) -> list[dict[str, Any]]:
    """A business date's rows as PSE writes them."""
    begins = int(local_time(day.year, day.month, day.day))
    following = day + timedelta(days=1)
    ends = int(local_time(following.year, following.month, following.day))
    out = []
    for start in range(begins, ends, 900):
        end = start + 900
        local_start = datetime.fromtimestamp(start, WARSAW)
        local_end = datetime.fromtimestamp(end, WARSAW)
        hour = f"{local_end.hour:02d}a" if local_end.fold else f"{local_end.hour:02d}"
        utc_start, utc_end = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
        published = datetime.fromtimestamp(begins - 9 * 3600, UTC)
        out.append(
            {
                "dtime": f"{local_end:%Y-%m-%d} {hour}:{local_end:%M:%S}",
                "period": f"{local_start:%H:%M} - {local_end:%H:%M}",
                "rce_pln": price(start),
                "dtime_utc": f"{utc_end:%Y-%m-%d %H:%M:%S}",
                "period_utc": f"{utc_start:%H:%M} - {utc_end:%H:%M}",
                "business_date": day.isoformat(),
                "publication_ts": f"{published.astimezone(WARSAW):%Y-%m-%d %H:%M:%S}.631",
                "publication_ts_utc": f"{published:%Y-%m-%d %H:%M:%S}.631000",
            }
        )
    return out


class PseApi:
    """The server: `days` maps a business date to its rows; `faults` a date to "empty",
    "error" (HTTP 500) or "slow" (answers after `slow_seconds`)."""

    def __init__(self, page_size: int = 40) -> None:
        self.page_size = page_size
        self.days: dict[date, list[dict[str, Any]]] = {}
        self.faults: dict[date, str] = {}
        self.slow_seconds = 2.0
        self.requests: list[str] = []
        self.release = threading.Event()  # ends a slow answer's wait at once
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.requests.append(self.path)
                status, body = api.answer(self.path)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def add(self, day: date, price: Callable[[int], float]) -> None:
        self.days[day] = rows(day, price)

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        parts = urllib.parse.urlsplit(path)
        if parts.path != "/api/rce-pln":
            return 404, {"error": "no such report"}
        query = urllib.parse.parse_qs(parts.query)
        wanted = query.get("$filter", [""])[0]
        prefix = "business_date eq '"
        if not wanted.startswith(prefix) or not wanted.endswith("'"):
            return 400, {"error": f"unsupported filter {wanted!r}"}
        day = date.fromisoformat(wanted[len(prefix) : -1])
        fault = self.faults.get(day)
        if fault == "error":
            return 500, {"error": "internal error"}
        if fault == "slow":
            self.release.wait(self.slow_seconds)
        found = [] if fault == "empty" else self.days.get(day, [])
        skip = int(query.get("$skip", ["0"])[0])
        page: dict[str, Any] = {"value": found[skip : skip + self.page_size]}
        if skip + self.page_size < len(found):
            rest = urllib.parse.urlencode({"$filter": wanted, "$skip": skip + self.page_size})
            page["nextLink"] = f"{INTERNAL}?{rest}"
        return 200, page

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def started(page_size: int = 40) -> Iterator[PseApi]:
    """A server for a fixture: yields it, stops it."""
    api = PseApi(page_size)
    try:
        yield api
    finally:
        api.stop()
