"""Prosumer ledgers for the tests of the settlement's outputs: a file of market prices, and the
ledgers an exporter kept before a test began (`settlement.json`), made by the exporter's own
ledger from hand-made readings of a small household with PV."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.simulated import DEFAULT_FAMILY, SimulatedMeter
from exporter.config import Config, MarketPrices, Prices, Settlement
from exporter.config.market_prices import parse_price_file
from exporter.settlement import HOUR, Ledger, PriceBook, hour_start

from .prosumer_model import WARSAW

DAY = 86400.0
STEP = 900.0  # seconds between the hand-made readings
EXPORT_PER_STEP = 0.02  # kWh fed in per quarter-hour from 10:00 to 15:00 local time
IMPORT_PER_STEP = 0.0025  # kWh taken per quarter-hour otherwise


def price(at: float) -> float:
    """The market price of the hour holding `at`, PLN per MWh: dearer in the evening, negative
    at 13:00 (as on a sunny day), 300 + 10 per hour of the day otherwise."""
    hour = datetime.fromtimestamp(at, WARSAW).hour
    return -20.0 if hour == 13 else 300.0 + 10 * hour


def price_file(path: Path, start: float, end: float) -> Path:
    """A CSV of `market_prices: file:` with an hourly row from the hour holding `start` to
    `end`."""
    rows = ["start,minutes,pln_per_mwh"]
    at = hour_start(start, WARSAW)
    while at < end:
        rows.append(f"{datetime.fromtimestamp(at, WARSAW).isoformat()},60,{price(at)}")
        at += HOUR
    path.write_text("\n".join(rows) + "\n")
    return path


def book(prices: Path, tariffs: Prices | None = None) -> PriceBook:
    """The price book of a price file (and the tariffs' prices), as the exporter makes it."""
    series, problems = parse_price_file(prices.read_text())
    assert not problems, problems
    return PriceBook(MarketPrices(quarters=series), tariffs)


def fed(
    rules: Settlement, prices: PriceBook, start: float, end: float, last: tuple[float, float]
) -> Ledger:
    """A ledger fed a reading every quarter-hour from `start` to `end`, its registers (kWh)
    reaching `last` (where a simulated meter begins, say): PV export from 10:00 to 15:00, a
    little import otherwise."""
    steps = []
    at = start
    while at <= end:
        pv = 10 <= datetime.fromtimestamp(at, WARSAW).hour < 15
        steps.append((at, 0.0 if pv else IMPORT_PER_STEP, EXPORT_PER_STEP if pv else 0.0))
        at += STEP
    imported = last[0] - sum(step[1] for step in steps)
    exported = last[1] - sum(step[2] for step in steps)
    ledger = Ledger(rules, prices, WARSAW)
    for at, taken, fed_in in steps:
        imported, exported = imported + taken, exported + fed_in
        ledger.feed(at, imported, exported, {1: imported}, 3 * STEP)
    return ledger


def keep(directory: Path, ledgers: Mapping[str, Ledger]) -> Path:
    """The ledgers as the exporter keeps them in its state directory."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "settlement.json"
    meters: dict[str, Any] = {key: ledger.as_json() for key, ledger in ledgers.items()}
    path.write_text(json.dumps({"format": 1, "meters": meters}))
    return path


def simulated_registers() -> tuple[float, float]:
    """The total registers (kWh) a simulated meter starts from."""
    meter = SimulatedMeter(FAMILIES_BY_NAME[DEFAULT_FAMILY])
    return sum(meter.imported_wh.values()) / 1000, sum(meter.exported_wh.values()) / 1000


def kept_until_now(config: Config, prices: Path, days: float = 45) -> Path:
    """The ledgers of the configuration's settled meters as a restarted exporter finds them in
    its state directory: kept for `days` until a minute ago, up to the registers the simulator
    starts from."""
    assert config.state_directory is not None
    book_ = book(prices, config.prices)
    now = time.time()
    return keep(
        config.state_directory,
        {
            meter.meter_id: fed(
                meter.settlement, book_, now - days * DAY, now - 60, simulated_registers()
            )
            for meter in config.settled
            if meter.settlement is not None
        },
    )
