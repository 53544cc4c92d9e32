"""The `settle` command: the live exporter's prosumer ledger over a file of readings, per Warsaw
calendar month (docs/contracts.md, section 1; docs/prosumer.md). A user checks an invoice with
it: the same balancing, prices, deposit and bank as the exporter."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from array import array
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO

from ..amiplus import CredentialsError, normalise_meter_id
from ..config import Config, ConfigError, PriceSource, Scheme, Settlement, load_config
from ..settlement import (
    FIRST_DAY,
    Ledger,
    PriceBook,
    PriceCache,
    PriceDataError,
    Totals,
    complete_days,
    day_prices,
    http_get,
)
from . import EXIT_OK, EXIT_USAGE, UsageError

COLUMNS = ("time", "energy_imported_kwh", "energy_exported_kwh")
SILENCE = 600.0  # seconds between readings across an hour's boundary that make it partial
FAILURES_BEFORE_GIVING_UP = 3  # PSE requests failing in a row: the rest is not asked
#: The figures of a month: the energies, then those of the scheme (the table shows these; the
#: JSON objects also carry the export value and the deposit credit, 0 in net-metering).
ENERGIES = (
    "imported_kwh",
    "exported_kwh",
    "balanced_imported_kwh",
    "balanced_exported_kwh",
)
BY_SCHEME = {
    Scheme.NET_BILLING: (
        "export_value_pln",
        "deposit_credit_pln",
        "unpriced_export_kwh",
        "import_energy_pln",
        "from_deposit_pln",
        "to_pay_pln",
        "unpriced_import_kwh",
        "refunded_pln",
        "lapsed_pln",
        "deposit_balance_pln",
    ),
    Scheme.NET_METERING: (
        "bank_credit_kwh",
        "from_bank_kwh",
        "billed_import_kwh",
        "bank_lapsed_kwh",
        "bank_balance_kwh",
    ),
}
ALWAYS = ("export_value_pln", "deposit_credit_pln")
SAID_AT_MOST = 5  # lines about registers that went back; then how many more
#: Short column titles of the table.
TITLES = {
    "imported_kwh": "import",
    "exported_kwh": "export",
    "balanced_imported_kwh": "bal.imp",
    "balanced_exported_kwh": "bal.exp",
    "export_value_pln": "value",
    "deposit_credit_pln": "credit",
    "bank_credit_kwh": "bank+",
    "unpriced_export_kwh": "unpr.exp",
    "import_energy_pln": "imp.cost",
    "from_deposit_pln": "from.dep",
    "to_pay_pln": "to.pay",
    "unpriced_import_kwh": "unpr.imp",
    "refunded_pln": "refund",
    "lapsed_pln": "lapsed",
    "deposit_balance_pln": "deposit",
    "from_bank_kwh": "bank-",
    "billed_import_kwh": "billed",
    "bank_lapsed_kwh": "lapsed",
    "bank_balance_kwh": "bank",
}

log = logging.getLogger(__name__)


class Readings:
    """A file's readings as three flat arrays (a year of minutes is 12 MB, not 70)."""

    def __init__(self) -> None:
        self.times: array[float] = array("d")
        self.imported: array[float] = array("d")
        self.exported: array[float] = array("d")
        self.lines: array[int] = array("q")  # each reading's line in the file

    def __len__(self) -> int:
        return len(self.times)


def read_readings(path: Path) -> tuple[Readings, list[str]]:
    """The readings of a CSV file `time,energy_imported_kwh,energy_exported_kwh` (a header
    naming them in any order, other columns ignored; times ISO 8601 with an offset), and every
    problem as `FILE:LINE: message`."""
    readings, problems = Readings(), []
    try:
        file = path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        return readings, [f"{path}: cannot read it: {error.strerror}"]
    with file:
        lines = csv.reader(file)
        header = [cell.strip().lower() for cell in next(lines, [])]
        missing = [column for column in COLUMNS if column not in header]
        if missing:
            found = ",".join(header) or "nothing"
            return readings, [f"{path}:1: the header names {','.join(COLUMNS)}; found {found}"]
        places = [header.index(column) for column in COLUMNS]
        try:
            for cells in lines:
                if not cells or not "".join(cells).strip():
                    continue
                problem = _row(readings, cells, places, lines.line_num)
                if problem:
                    problems.append(f"{path}:{lines.line_num}: {problem}")
        except (csv.Error, UnicodeDecodeError) as error:
            problems.append(f"{path}:{lines.line_num}: not a CSV line ({error})")
    if not readings and not problems:
        problems.append(f"{path}: no readings after the header")
    return readings, problems


def _row(readings: Readings, cells: list[str], places: list[int], line: int) -> str | None:
    """Append one row's reading; what is wrong with it, if anything."""
    if len(cells) <= max(places):
        return f"expected at least {max(places) + 1} values, found {len(cells)}"
    text, imported_text, exported_text = (cells[place].strip() for place in places)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return f"time {text!r} is not ISO 8601 like 2026-07-01T12:00:00+02:00"
    if moment.tzinfo is None:
        return f"time {text!r} needs an offset (+02:00, or Z for UTC)"
    try:
        imported, exported = float(imported_text), float(exported_text)
    except ValueError:
        return f"energies must be numbers (kWh), not {imported_text!r} and {exported_text!r}"
    if not (imported >= 0 and exported >= 0):
        return "energies must be meter registers: numbers of kWh, not negative"
    readings.times.append(moment.timestamp())
    readings.imported.append(imported)
    readings.exported.append(exported)
    readings.lines.append(line)
    return None


def _config(args: argparse.Namespace) -> Config:
    path: Path | None = getattr(args, "config", None)
    if path is None:
        raise UsageError(
            "give --config FILE with a settlement: section (scheme, prices); see README.md, "
            "'Prosument / prosumer'"
        )
    return load_config(path)


def rules_for(config: Config, meter: str | None) -> Settlement:
    """The rules to settle by: the meter's (--meter), or the settlement: section's, or those
    of the only settled meter."""
    if meter is not None:
        try:
            found = config.meter_for(normalise_meter_id(meter))
        except CredentialsError:
            found = None
        found = found or next((m for m in config.meters if m.name == meter), None)
        if found is None:
            raise UsageError(f"no meter {meter!r} in {config.source} (give its id or name)")
        if found.settlement is None:
            raise UsageError(f"meter {found.name} has no settlement (scheme none)")
        return found.settlement
    if config.settlement is not None:
        return config.settlement
    settled = config.settled
    if len(settled) == 1 and settled[0].settlement is not None:
        return settled[0].settlement
    if settled:
        names = ", ".join(meter.name for meter in settled)
        raise UsageError(f"several meters are settled ({names}): say which with --meter")
    raise UsageError(f"{config.source} has no settlement: section; see README.md")


def _prices(config: Config, rules: Settlement, first: date, last: date) -> PriceBook:
    """The prices for the days of the readings: the file's, or PSE's (the exporter's cache in
    the state directory, then PSE for the days it lacks)."""
    book = PriceBook(config.market_prices, config.prices)
    market = config.market_prices
    if market is None or market.source is not PriceSource.PSE:
        return book
    cache = PriceCache(config.state_directory, config.timezone)
    days = cache.load()
    for prices in days.values():
        book.add(prices.items())
    have = set(complete_days(days, config.timezone))
    start = max(first, FIRST_DAY, rules.since or first)
    wanted = [start + timedelta(n) for n in range((last - start).days + 1)]
    missing = [day for day in wanted if day not in have]
    if not missing:
        return book
    print(f"asking {market.url} for the market prices of {len(missing)} days", file=sys.stderr)
    failures = fetched = 0
    for day in missing:
        try:
            prices, _ = day_prices(market.url, day, config.timezone, http_get)
        except PriceDataError as error:
            failures += 1
            print(f"  {day}: {error}", file=sys.stderr)
            if failures >= FAILURES_BEFORE_GIVING_UP:
                print("  giving up: their hours stay unpriced", file=sys.stderr)
                break
            continue
        failures = 0
        fetched += 1
        days[day] = prices
        book.add(prices.items())
    if fetched:
        cache.save(days)
    return book


def _names(scheme: Scheme, for_json: bool) -> tuple[str, ...]:
    extra = BY_SCHEME[scheme]
    return (*ENERGIES, *(name for name in ALWAYS if for_json and name not in extra), *extra)


def _figures(totals: Totals, names: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in names:
        value = float(getattr(totals, name))
        out[name] = round(value, 2 if name.endswith("_pln") else 3)
    out["hours"] = totals.hours
    out["partial_hours"] = totals.partial_hours
    return out


def _table(months: dict[str, Totals], scheme: Scheme, stdout: TextIO) -> None:
    names = (*_names(scheme, for_json=False), "partial_hours")
    titles = ["month", *(TITLES.get(name, "partial h") for name in names)]
    stdout.write("  ".join(f"{title:>9}" for title in titles) + "\n")
    for month, totals in sorted(months.items()):
        figures = _figures(totals, names[:-1])
        cells = [f"{figures[name]:>9.{0 if name == 'partial_hours' else 2}f}" for name in names]
        stdout.write("  ".join([f"{month:>9}", *cells]) + "\n")


def _ledger(readings: Readings, order: Iterable[int], ledger: Ledger, path: Path) -> Ledger:
    """Feed the readings in time order; a register that goes back is said (balancing starts
    again there, as in the exporter: a replaced meter)."""
    times, imported, exported = readings.times, readings.imported, readings.exported
    before: int | None = None
    went_back = 0
    for index in order:
        if before is not None and (
            imported[index] < imported[before] or exported[index] < exported[before]
        ):
            went_back += 1
            if went_back <= SAID_AT_MOST:
                print(
                    f"{path}:{readings.lines[index]}: the registers went back from line "
                    f"{readings.lines[before]} (a replaced meter?): balancing starts again here",
                    file=sys.stderr,
                )
        ledger.feed(times[index], imported[index], exported[index], None, SILENCE)
        before = index
    if went_back > SAID_AT_MOST:
        print(f"{path}: ... and {went_back - SAID_AT_MOST} more such lines", file=sys.stderr)
    ledger.finish()
    return ledger


def _problems(lines: list[str], then: str) -> int:
    for line in lines:
        print(line, file=sys.stderr)
    print(f"{len(lines)} problem(s) found{then}.", file=sys.stderr)
    return EXIT_USAGE


def run_settle(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    try:
        config = _config(args)
    except ConfigError as error:
        return _problems([p.format(error.source) for p in error.problems], "")
    rules = rules_for(config, args.meter)
    readings, problems = read_readings(args.readings)
    if problems:
        return _problems(problems, "; nothing settled")
    times = readings.times
    ordered = all(times[n] <= times[n + 1] for n in range(len(times) - 1))
    order = range(len(times)) if ordered else sorted(range(len(times)), key=times.__getitem__)
    zone = config.timezone
    first = datetime.fromtimestamp(readings.times[order[0]], zone).date()
    last = datetime.fromtimestamp(readings.times[order[-1]], zone).date()
    book = _prices(config, rules, first, last)
    ledger = _ledger(readings, order, Ledger(rules, book, zone, months_kept=None), args.readings)
    if args.json:
        for month, totals in sorted(ledger.months.items()):
            figures = _figures(totals, _names(rules.scheme, for_json=True))
            stdout.write(json.dumps({"month": month, **figures}) + "\n")
    else:
        _table(ledger.months, rules.scheme, stdout)
    return EXIT_OK
