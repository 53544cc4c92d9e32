"""Prosumer settlement (docs/prosumer.md): hourly balancing, the net-billing deposit, the
net-metering bank and market prices, as plain code that the live exporter and the `settle`
command share. Only the price fetcher has a thread, thin around its plain schedule."""

from .hours import HOUR, Balancer, Hour, Registers, hour_start
from .ledger import Ledger, LedgerView, OpenHour, PeriodTotals, Totals
from .prices import PriceBook

__all__ = [
    "HOUR",
    "Balancer",
    "Hour",
    "Ledger",
    "LedgerView",
    "OpenHour",
    "PeriodTotals",
    "PriceBook",
    "Registers",
    "Totals",
    "hour_start",
]
