"""Prosumer settlement (docs/prosumer.md): hourly balancing, the net-billing deposit, the
net-metering bank and market prices, as plain code that the live exporter and the `settle`
command share. Only the price fetcher has a thread, thin around its plain schedule."""

from .fetcher import DayPrices, PriceCache, PriceFetcher, complete_days, http_get
from .figures import FigureTable, Scope, SettlementFigure, figure_table
from .hours import HOUR, Balancer, Hour, Registers, hour_start
from .ledger import Ledger, LedgerView, OpenHour, PeriodTotals, Totals
from .prices import PriceBook
from .pse import FIRST_DAY, PriceDataError, day_prices

__all__ = [
    "FIRST_DAY",
    "HOUR",
    "Balancer",
    "DayPrices",
    "FigureTable",
    "Hour",
    "Ledger",
    "LedgerView",
    "OpenHour",
    "PeriodTotals",
    "PriceBook",
    "PriceCache",
    "PriceDataError",
    "PriceFetcher",
    "Registers",
    "Scope",
    "SettlementFigure",
    "Totals",
    "complete_days",
    "day_prices",
    "figure_table",
    "hour_start",
    "http_get",
]
