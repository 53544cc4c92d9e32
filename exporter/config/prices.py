"""The `prices:` section: what a kWh costs, per tariff zone, from a date on (docs/contracts.md,
section 3). Each entry applies from its `from:` date (local midnight) until the next entry's,
so two entries can only collide by sharing a date. Cost itself is counted in
`pipeline/calendar.py`."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from ..amiplus import TARIFFS
from .reader import Reader

if TYPE_CHECKING:
    from yaml import Node

_ENTRY = ("from", "tariffs", "export")
_TARIFF = ("energy", "distribution", "margin")
MARKET = "market"  # `energy: market`: a dynamic tariff, the market price of each hour
HIGHEST = 100.0  # PLN per kWh: anything above is a typo (grosze for złote, a missing point)


@dataclass(frozen=True, slots=True)
class TariffPrice:
    """PLN per kWh of one tariff zone: the energy (sprzedaż) and the variable distribution.
    A dynamic tariff (`market`) prices the energy at each hour's market price plus `margin`."""

    energy: float
    distribution: float = 0.0
    market: bool = False
    margin: float = 0.0

    @property
    def total(self) -> float:
        """Energy and distribution together (a dynamic tariff: without the market price)."""
        return self.energy + self.distribution + self.margin

    def energy_at(self, market_price: float | None) -> float | None:
        """The energy price in PLN per kWh, given the hour's market price in PLN per kWh
        (None: unknown, so a dynamic tariff's energy is unpriced)."""
        if not self.market:
            return self.energy
        return None if market_price is None else market_price + self.margin


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """The prices from `start` (a local date) until the next entry's start."""

    start: date
    tariffs: tuple[tuple[int, TariffPrice], ...]
    export: float | None = None  # PLN per exported kWh (net-billing); None: not priced

    def tariff(self, number: int) -> TariffPrice | None:
        return next((price for tariff, price in self.tariffs if tariff == number), None)

    @property
    def market(self) -> bool:
        """Whether a zone of this entry follows the market price (a dynamic tariff)."""
        return any(price.market for _, price in self.tariffs)


@dataclass(frozen=True, slots=True)
class Prices:
    """Every entry, oldest first."""

    entries: tuple[PriceEntry, ...] = ()

    @property
    def market(self) -> bool:
        """Whether any entry follows the market price, so market prices must be fetched."""
        return any(entry.market for entry in self.entries)

    def at(self, day: date) -> PriceEntry | None:
        """The entry that applies on a local day (None before the first)."""
        where = bisect.bisect_right([entry.start for entry in self.entries], day)
        return self.entries[where - 1] if where else None


def _price(reader: Reader, node: Node, where: str) -> float | None:
    return reader.number(node, where, 0, HIGHEST)


def _zones(reader: Reader, node: Node, where: str) -> list[tuple[int, Node]]:
    """The tariff zones of an entry by number; a zone the meters do not have is a problem."""
    if not isinstance(node, reader.yaml.MappingNode):
        reader.problem(node, f"{where} must be a mapping of tariff zones (1, 2, ...) to prices")
        return []
    out: dict[int, Node] = {}
    for key_node, value_node in node.value:
        name = str(key_node.value).strip()
        number = int(name) if name.isdigit() else None
        if number is None or number not in TARIFFS:
            reader.problem(
                key_node,
                f"{where}: unknown tariff zone {name!r}; the meters count in zones "
                f"{TARIFFS[0]}-{TARIFFS[-1]} (G11: 1; G12: 1 day, 2 night)",
            )
        elif number in out:
            reader.problem(key_node, f"{where}: tariff zone {number} is given twice")
        else:
            out[number] = value_node
    return sorted(out.items())


def _tariff(reader: Reader, node: Node, place: str) -> TariffPrice | None:
    """One zone's prices: `energy` a price, or `market` with an optional `margin`."""
    prices = reader.mapping(node, place, _TARIFF)
    if "energy" not in prices:
        reader.problem(node, f"{place}: give its energy price in PLN per kWh (or market)")
        return None
    distribution = (
        _price(reader, prices["distribution"], f"{place} distribution")
        if "distribution" in prices
        else 0.0
    )
    energy_text = reader.text(prices["energy"], f"{place} energy")
    if energy_text is None:
        return None
    if energy_text.lower() == MARKET:
        margin = (
            reader.number(prices["margin"], f"{place} margin", -HIGHEST, HIGHEST)
            if "margin" in prices
            else 0.0
        )
        if distribution is None or margin is None:
            return None
        return TariffPrice(0.0, distribution, market=True, margin=margin)
    if "margin" in prices:
        reader.problem(prices["margin"], f"{place}: margin goes with energy: market only")
    energy = _price(reader, prices["energy"], f"{place} energy")
    return None if energy is None or distribution is None else TariffPrice(energy, distribution)


def _entry(reader: Reader, node: Node, number: int) -> PriceEntry | None:
    where = f"prices[{number}]"
    fields = reader.mapping(node, where, _ENTRY)
    start: date | None = None
    if "from" not in fields:
        reader.problem(node, f"{where}: give the date it applies from, e.g. from: 2026-01-01")
    else:
        text = reader.text(fields["from"], f"{where} from")
        try:
            start = None if text is None else date.fromisoformat(text)
        except ValueError:
            reader.problem(fields["from"], f"{where} from must be a date like 2026-01-01")
    tariffs: list[tuple[int, TariffPrice]] = []
    if "tariffs" not in fields:
        reader.problem(
            node, f'{where}: give the tariffs\' prices, e.g. tariffs: {{"1": {{energy: 0.62}}}}'
        )
    else:
        for name, zone in _zones(reader, fields["tariffs"], f"{where} tariffs"):
            place = f"{where} tariff {name}"
            price = _tariff(reader, zone, place)
            if price is not None:
                tariffs.append((name, price))
    export = _price(reader, fields["export"], f"{where} export") if "export" in fields else None
    if start is None:
        return None
    return PriceEntry(start, tuple(sorted(tariffs)), export)


def prices_section(reader: Reader, node: Node) -> Prices:
    """The `prices:` list: every entry checked, dates unique."""
    if not isinstance(node, reader.yaml.SequenceNode):
        reader.problem(node, "prices must be a list of entries, each with from: and tariffs:")
        return Prices()
    entries: list[PriceEntry] = []
    seen: dict[date, int] = {}
    for number, item in enumerate(node.value, start=1):
        entry = _entry(reader, item, number)
        if entry is None:
            continue
        if entry.start in seen:
            reader.problem(
                item,
                f"prices[{number}] applies from {entry.start}, as prices[{seen[entry.start]}] "
                "does: each entry applies until the next one's date, so give each its own date",
            )
            continue
        seen[entry.start] = number
        entries.append(entry)
    return Prices(tuple(sorted(entries, key=lambda entry: entry.start)))
