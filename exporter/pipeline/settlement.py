"""The prosumer ledgers of the configured meters with `settlement:` (docs/prosumer.md): fed by
the intake right after the calendar, kept in the state directory, priced by the market prices
that the fetcher brings (or a file gives).

The ledgers are plain code (`exporter/settlement/`); this owner holds them under its lock, saves
them to `<state directory>/settlement.json` (one file for every meter, replaced atomically:
within a minute of an hour closing, every 5 minutes while readings arrive, and at stop), and
runs the price fetcher. Meters without `settlement:` never reach it. It follows the
configuration as the calendar does: the ledger of a meter no longer settled is set aside in
`settlement.unconfigured.jsonl` (plumbing's `SetAside`), never loaded, taken back if the meter
returns and forgotten after `state: forget_after_days`.

Outputs get a meter's figures (`view`) with the reading that changed them: `record` returns
them when an hour closed, and with a meter's first reading after the start, a reload, prices
that valued waiting hours, or `resend` (outputs that started again); otherwise it returns None,
so a reading costs what it did before the outputs showed anything.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from ..amiplus import table
from ..config import Config, ExportPrice, PriceSource, Scheme, Settlement
from ..plumbing import SetAside, read_state, write_atomically
from ..settlement import (
    DayPrices,
    Ledger,
    LedgerView,
    PriceBook,
    PriceCache,
    PriceFetcher,
    hour_start,
)

log = logging.getLogger(__name__)

STATE_FILE = "settlement.json"
ASIDE_FILE = "settlement.unconfigured.jsonl"  # the ledgers of meters no longer settled
FORMAT = 1
SAVE_SOON = 60.0  # seconds at least between saves when an hour closed
SAVE_EVERY = 300.0  # seconds between saves while only the open hours moved
FLUSH_POLL = 1.0


def fetch_since(config: Config, today: date) -> date | None:
    """The first day market prices are wanted for, or None when nothing is priced at the
    market (no RCE, no dynamic tariff) or they come from a file."""
    market = config.market_prices
    if market is None or market.source is not PriceSource.PSE:
        return None
    rules = [m.settlement for m in config.settled if m.settlement is not None]
    if config.settlement is not None:
        rules.append(config.settlement)
    starts = [
        rule.since or today
        for rule in rules
        if rule.scheme is Scheme.NET_BILLING and rule.export_price is ExportPrice.RCE
    ]
    starts += [entry.start for entry in config.prices.entries if entry.market]
    return min(starts) if starts else None


class Settlements:
    """Every settled meter's ledger, by configured address."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self._zone = config.timezone
        directory = config.state_directory
        self._path = directory / STATE_FILE if directory else None
        self._aside = (
            None
            if directory is None
            else SetAside(
                directory / ASIDE_FILE,
                config.forget_after,
                "the meters no longer settled",
                write_atomically,
                clock,
            )
        )
        self._files = threading.Lock()  # one writer of the state files at a time, in order
        self._book = PriceBook()  # made by _configure
        self._ledgers: dict[str, Ledger] = {}
        self._unplaced: dict[str, Any] | None = None  # the file's, until the first configuration
        self._fetcher: PriceFetcher | None = None
        self._fetcher_key: tuple[Any, ...] | None = None
        self._changed = self._hour_closed = False
        self._owed: set[str] = set()  # meters whose figures the outputs are owed
        self._saved_at = time.monotonic()
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._follow(config)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._flusher, name="settlement", daemon=True)
        self._thread.start()
        if self._fetcher is not None:
            self._fetcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._fetcher is not None:
            self._fetcher.stop()
        self.flush(everything=True)

    def reconfigure(self, config: Config) -> None:
        """A new configuration: rules, prices, meters kept or set aside, the fetcher."""
        previous = self._fetcher
        self._follow(config)
        if previous is not None and previous is not self._fetcher:
            previous.stop()
        if self._thread is not None and self._fetcher is not None and self._fetcher is not previous:
            self._fetcher.start()

    def _follow(self, config: Config) -> None:
        """Take a configuration: the prices and the fetcher, the ledgers of the settled meters
        (kept, read from the file the first time, or taken back from those set aside), the
        others set aside; saved at once when meters left or came back."""
        wanted = {m.meter_id: m.settlement for m in config.settled if m.settlement is not None}
        with self._files:
            with self.lock:
                self._configure(config)
                leaving = {
                    m: self._ledgers.pop(m).as_json() for m in set(self._ledgers) - set(wanted)
                }
                stored = self._load() if self._unplaced is None else self._unplaced
                leaving.update((m, entry) for m, entry in stored.items() if m not in wanted)
                coming = set(wanted) - set(self._ledgers) - set(stored)
                taken: dict[str, Any] = {}
                self._unplaced = {}
                if self._aside is not None:
                    taken, self._unplaced = self._aside.exchange(
                        leaving, coming, config.forget_after
                    )
                for meter, rules in wanted.items():
                    ledger = self._ledgers.get(meter)
                    if ledger is None:
                        saved = stored.get(meter) or taken.get(meter)
                        ledger = self._ledgers[meter] = self._restored(meter, rules, saved)
                    ledger.rules, ledger.book = rules, self._book
                    ledger.reprice()
                self._owed = set(self._ledgers)
                self._changed = True
            if taken or leaving:
                self._save(everything=True)
            if self._aside is not None:
                self._aside.drop(list(taken))

    def _configure(self, config: Config) -> None:
        """Prices and the fetcher (under the lock)."""
        today = datetime.fromtimestamp(self.clock(), self._zone).date()
        since = fetch_since(config, today)
        market = config.market_prices
        key = None if since is None or market is None else (market.url, since, self._zone)
        if key != self._fetcher_key:
            self._fetcher_key, self._fetcher = key, None
            if since is not None and market is not None:
                cache = PriceCache(config.state_directory, self._zone)
                self._fetcher = PriceFetcher(
                    market.url, since, self._zone, cache, self.prices_arrived
                )
        self._book = PriceBook(market, config.prices)
        if self._fetcher is not None:
            self._book.add(self._fetcher.cached())

    def _restored(self, meter: str, rules: Settlement, saved: Any) -> Ledger:
        """A meter's ledger as a file kept it (a new one when there is none, or it cannot
        be read)."""
        ledger = Ledger(rules, self._book, self._zone)
        try:
            ledger.restore(saved or {})
        except (KeyError, TypeError, ValueError, IndexError) as error:
            log.warning(
                "meter %s: its prosumer ledger not read (%s): it starts again", meter, error
            )
            ledger = Ledger(rules, self._book, self._zone)
        return ledger

    def prices_arrived(self, prices: DayPrices) -> None:
        """A day of market prices from the fetcher: hours that waited for them are valued."""
        with self.lock:
            self._book.add(prices.items())
            for key, ledger in self._ledgers.items():
                if ledger.reprice():
                    self._changed = self._hour_closed = True
                    self._owed.add(key)

    def resend(self) -> None:
        """Hand every settled meter's figures on with its next reading (outputs started)."""
        with self.lock:
            self._owed = set(self._ledgers)

    # --- readings -------------------------------------------------------------------------------

    def record(
        self, key: str, values: Mapping[str, Any], at: float, silent_after: float = 600.0
    ) -> LedgerView | None:
        """A settled meter's merged values after a reading that carried its energy registers;
        the meter's figures as of the reading when they are owed to the outputs (an hour
        closed, see above), else None."""
        energy = table()
        imported = values.get(energy.imported.key)
        if imported is None:
            return None
        exported = values.get(energy.exported.key, 0.0)
        zones = values.get(energy.imported.tariff_key)
        with self.lock:
            ledger = self._ledgers.get(key)
            if ledger is None:
                return None
            self._changed = True
            if ledger.feed(at, imported, exported, zones, silent_after):
                self._hour_closed = True
            elif key not in self._owed:
                return None
            self._owed.discard(key)
            return ledger.view(at)

    # --- what outputs read ----------------------------------------------------------------------

    def view(self, key: str, now: float | None = None) -> LedgerView | None:
        """A settled meter's ledger as of `now` (None: not settled)."""
        with self.lock:
            ledger = self._ledgers.get(key)
            return None if ledger is None else ledger.view(self.clock() if now is None else now)

    def keys(self) -> list[str]:
        """The settled meters' addresses, sorted."""
        with self.lock:
            return sorted(self._ledgers)

    def market_price(self, at: float) -> float | None:
        """The market price of the hour holding `at`, PLN per kWh (a dynamic tariff's base)."""
        with self.lock:
            price = self._book.market_hour(hour_start(at, self._zone))
        return None if price is None else price / 1000

    def status(self) -> dict[str, Any] | None:
        """Where market prices come from and how their fetching goes (None: not fetched)."""
        fetcher = self._fetcher
        return None if fetcher is None else fetcher.status()

    # --- the file -------------------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        if self._path is None:
            return {}
        try:
            text = read_state(self._path)
            document: dict[str, Any] = json.loads(text) if text else {"format": FORMAT}
            if document.get("format") != FORMAT:
                raise ValueError(f"format {document.get('format')!r}, not {FORMAT}")
            return dict(document.get("meters", {}))
        except (OSError, ValueError, TypeError, AttributeError) as error:
            log.warning(
                "settlement file %s not read (%s): the ledgers start again", self._path, error
            )
            return {}

    def _flusher(self) -> None:
        while not self._stop.wait(FLUSH_POLL):
            self.flush()
            if self._aside is not None:
                with self._files:
                    self._aside.expire()

    def flush(self, everything: bool = False) -> None:
        """Save when an hour closed (at most every `SAVE_SOON` seconds), when readings came
        `SAVE_EVERY` seconds after the last save, and at stop (`everything`)."""
        with self._files:
            self._save(everything)

    def _save(self, everything: bool) -> None:
        """`flush` while holding `_files`, so that saves reach the disk in the order they were
        made."""
        now = time.monotonic()
        with self.lock:
            waited = now - self._saved_at
            due = (self._hour_closed and waited >= SAVE_SOON) or (
                self._changed and (everything or waited >= SAVE_EVERY)
            )
            if not due or self._path is None:
                return
            if not self._ledgers and not self._unplaced and not os.path.exists(self._path):
                return  # nothing settled, nothing kept: no file
            meters = {key: ledger.as_json() for key, ledger in self._ledgers.items()}
            meters.update(self._unplaced or {})  # what the disk would not set aside
            self._changed = self._hour_closed = False
            self._saved_at = now
        try:
            document = {"format": FORMAT, "meters": meters}
            write_atomically(self._path, json.dumps(document).encode())
        except OSError as error:
            if not self._failing:
                log.warning(
                    "cannot keep the prosumer ledgers in %s (%s): they start again when the "
                    "exporter restarts; set state: directory: to a writable place",
                    self._path.parent,
                    error.strerror or error,
                )
            self._failing = True
            return
        if self._failing:
            log.info("prosumer ledgers are kept in %s again", self._path.parent)
        self._failing = False
