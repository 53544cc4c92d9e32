"""What an hour's energy is worth: market prices per quarter-hour, the monthly RCEm, the fixed
price of the configuration, and the tariff prices of `prices:` (docs/prosumer.md, "Prices").

An hour's market price is the mean of its four quarter-hours (until October 2025 PSE published
one price per hour, which its API repeats in each quarter, so the mean is that price). For the
value of exported energy a negative price counts as 0, either per quarter before the mean
(`clip_first`) or for the hour's mean (`average_first`). A dynamic tariff pays the plain mean
plus its margin. A price that is not known gives None, never 0: the energy is unpriced.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from datetime import date

from ..config import ExportPrice, MarketPrices, NegativeQuarters, Prices, Settlement

DAY = 86400
QUARTER = 900
PER_DAY = DAY // QUARTER
NAN = math.nan


class PriceBook:
    """Every price the ledgers ask for. Quarter-hours are kept per UTC day in an array of 96
    prices (NaN where unknown): a year costs 280 KB and a look-up is two indexings."""

    def __init__(self, market: MarketPrices | None = None, tariffs: Prices | None = None) -> None:
        self._days: dict[int, array[float]] = {}
        self.market = market or MarketPrices()
        self.tariffs = tariffs or Prices()
        self.add(zip(self.market.quarters.starts, self.market.quarters.prices, strict=True))

    def add(self, quarters: Iterable[tuple[int, float]]) -> None:
        """Quarter-hour prices in PLN per MWh by their start (Unix time)."""
        for start, price in quarters:
            day, index = divmod(int(start), DAY)
            prices = self._days.get(day)
            if prices is None:
                prices = self._days[day] = array("d", [NAN]) * PER_DAY
            prices[index // QUARTER] = price

    def quarter(self, start: float) -> float | None:
        """A quarter-hour's price in PLN per MWh."""
        day, index = divmod(int(start), DAY)
        prices = self._days.get(day)
        price = NAN if prices is None else prices[index // QUARTER]
        return None if math.isnan(price) else price

    def quarters(self, hour_start: float) -> list[float] | None:
        """The four quarter-hour prices of an hour, when all are known."""
        prices = [self.quarter(hour_start + n * QUARTER) for n in range(4)]
        known = [price for price in prices if price is not None]
        return known if len(known) == 4 else None

    def market_hour(self, hour_start: float) -> float | None:
        """The hour's market price in PLN per MWh: the mean of its quarters."""
        prices = self.quarters(hour_start)
        return None if prices is None else sum(prices) / 4

    def export_rate(self, hour_start: float, month: str, rules: Settlement) -> float | None:
        """What a kWh of the hour's net export is worth in net-billing, PLN per kWh (>= 0)."""
        if rules.export_price is ExportPrice.FIXED:
            return rules.fixed_price
        if rules.export_price is ExportPrice.RCEM:
            monthly = self.market.monthly(month)
            return None if monthly is None else max(0.0, monthly) / 1000
        prices = self.quarters(hour_start)
        if prices is None:
            return None
        if rules.negative_quarters is NegativeQuarters.CLIP_FIRST:
            return sum(max(0.0, price) for price in prices) / 4 / 1000
        return max(0.0, sum(prices) / 4) / 1000

    def import_rate(self, hour_start: float, day: date, zone: int | None) -> float | None:
        """The energy part of what a kWh imported in the hour costs, PLN per kWh, from
        `prices:` (a meter without zones counts in zone 1)."""
        entry = self.tariffs.at(day)
        price = entry.tariff(zone or 1) if entry else None
        if price is None:
            return None
        market = self.market_hour(hour_start) if price.market else None
        return price.energy_at(None if market is None else market / 1000)

    def import_may_come(self, day: date, zone: int | None) -> bool:
        """Whether an unpriced import of `day` may get its price later: only a dynamic tariff's
        (the market price comes late); a day without a `prices:` entry stays unpriced, as the
        calendar counts it."""
        entry = self.tariffs.at(day)
        price = entry.tariff(zone or 1) if entry else None
        return price is not None and price.market

    def known_days(self) -> int:
        """How many UTC days hold at least one price (for the status)."""
        return len(self._days)
