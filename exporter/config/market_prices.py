"""The `market_prices:` section: where the market price of each quarter-hour comes from (PSE's
data API, or a CSV file) and the monthly prices (RCEm) for those settled by the month
(docs/contracts.md, section 3; docs/prosumer.md). A price file is read here, so that its bad rows
are problems with their lines like the rest of the configuration."""

from __future__ import annotations

import csv
import io
import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from ..wmbus import shown
from .reader import Problem, Reader

if TYPE_CHECKING:
    from yaml import Node


class PriceSource(StrEnum):
    PSE = "pse"  # PSE's public data API, report rce-pln
    FILE = "file"  # a CSV file: start,minutes,pln_per_mwh


DEFAULT_PSE_URL = "https://api.raporty.pse.pl/api"
QUARTER = 900  # seconds
COLUMNS = ("start", "minutes", "pln_per_mwh")
MWH_LIMIT = 100_000.0  # PLN per MWh either way: beyond it a price is a typo
_KEYS = ("source", "url", "file", "rcem")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True)
class QuarterSeries:
    """Prices per quarter-hour in PLN per MWh, by the quarter's start (Unix time), ascending:
    two flat arrays, so a year of quarters costs half a megabyte, not four."""

    starts: array[int] = field(default_factory=lambda: array("q"))
    prices: array[float] = field(default_factory=lambda: array("d"))

    def __len__(self) -> int:
        return len(self.starts)


@dataclass(frozen=True, slots=True)
class MarketPrices:
    """Where market prices come from, and the monthly prices given by hand."""

    source: PriceSource = PriceSource.PSE
    url: str = DEFAULT_PSE_URL  # PSE's API, or a mirror (tests use a local one)
    file: Path | None = None
    quarters: QuarterSeries = field(default_factory=QuarterSeries)  # from `file`
    rcem: tuple[tuple[str, float], ...] = ()  # "YYYY-MM" -> PLN per MWh

    def monthly(self, month: str) -> float | None:
        """RCEm of a month ("2026-10") in PLN per MWh, when given."""
        return next((price for name, price in self.rcem if name == month), None)


def market_prices_section(reader: Reader, node: Node) -> MarketPrices:
    where = "market_prices"
    fields = reader.mapping(node, where, _KEYS)
    source = reader.optional(fields, "source", _source(reader), where)
    url = reader.optional(fields, "url", reader.text, where)
    if url is not None and not re.match(r"^https?://[^/]+", url):
        reader.problem(fields["url"], f"{where} url must start with http:// or https://")
        url = None
    path = reader.optional(fields, "file", reader.path, where)
    quarters = QuarterSeries()
    if (source or PriceSource.PSE) is PriceSource.FILE:
        if path is None:
            reader.problem(fields.get("file", node), f"{where}: source file needs file: (a CSV)")
        else:
            quarters = _read_file(reader, fields["file"], path)
    elif path is not None:
        reader.problem(fields["file"], f"{where}: file is read with source: file only")
    rcem = _rcem(reader, fields["rcem"]) if "rcem" in fields else ()
    return MarketPrices(
        source or PriceSource.PSE, (url or DEFAULT_PSE_URL).rstrip("/"), path, quarters, rcem
    )


def _source(reader: Reader) -> Callable[[Node, str], PriceSource | None]:
    def convert(node: Node, where: str) -> PriceSource | None:
        choice = reader.choice(node, where, tuple(PriceSource))
        return None if choice is None else PriceSource(choice)

    return convert


def _rcem(reader: Reader, node: Node) -> tuple[tuple[str, float], ...]:
    if not isinstance(node, reader.yaml.MappingNode):
        reader.problem(
            node, 'market_prices rcem must map months to PLN per MWh: {"2026-10": 412.57}'
        )
        return ()
    months: dict[str, float] = {}
    for key_node, value_node in node.value:
        month = str(key_node.value).strip()
        if not _MONTH.match(month):
            reader.problem(
                key_node, f"market_prices rcem: {shown(month)} is not a month like 2026-10"
            )
            continue
        if month in months:
            reader.problem(key_node, f"market_prices rcem: {month} is given twice")
            continue
        price = reader.number(value_node, f"market_prices rcem {month}", 0, MWH_LIMIT)
        if price is not None:
            months[month] = price
    return tuple(sorted(months.items()))


def _read_file(reader: Reader, node: Node, path: Path) -> QuarterSeries:
    """The quarters of a price file; each bad row is a problem with the file's line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        reader.problem(node, f"market_prices file: cannot read {path}: {reason}")
        return QuarterSeries()
    quarters, problems = parse_price_file(text)
    reader.problems.extend(Problem(line, message, str(path)) for line, message in problems)
    return quarters


def parse_price_file(text: str) -> tuple[QuarterSeries, list[tuple[int, str]]]:
    """Prices from CSV text `start,minutes,pln_per_mwh` (a header, then a row per interval of
    15 to 60 minutes starting on a quarter-hour; the start in ISO 8601 with Z or an offset),
    spread over quarter-hours; and the problems as (line, message)."""
    lines = csv.reader(io.StringIO(text))
    problems: list[tuple[int, str]] = []
    header = next(lines, None)
    if header is None or [cell.strip().lower() for cell in header] != list(COLUMNS):
        return QuarterSeries(), [(1, f"the first line names the columns {','.join(COLUMNS)}")]
    prices: dict[int, float] = {}
    for cells in lines:
        line = lines.line_num
        if not any(cell.strip() for cell in cells) or cells[0].lstrip().startswith("#"):
            continue
        row = _row(cells)
        if isinstance(row, str):
            problems.append((line, row))
            continue
        start, minutes, price = row
        for quarter in range(start, start + minutes * 60, QUARTER):
            if quarter in prices:
                problems.append((line, f"the quarter-hour at {_utc(quarter)} has a price already"))
                break
            prices[quarter] = price
    ordered = sorted(prices)
    series = QuarterSeries(array("q", ordered), array("d", (prices[s] for s in ordered)))
    return series, problems


def _row(cells: list[str]) -> tuple[int, int, float] | str:
    """One row's start, minutes and price, or what is wrong with it."""
    if len(cells) != len(COLUMNS):
        return f"expected {len(COLUMNS)} values ({','.join(COLUMNS)}), found {len(cells)}"
    start_text, minutes_text, price_text = (cell.strip() for cell in cells)
    try:
        moment = datetime.fromisoformat(start_text.replace("Z", "+00:00"))
    except ValueError:
        return f"start {start_text!r} is not a time like 2025-10-01T00:00:00Z"
    if moment.tzinfo is None:
        return f"start {start_text!r} needs Z or an offset (+02:00): times are UTC-based"
    start = int(moment.timestamp())
    if start % QUARTER:
        return f"start {start_text!r} is not on a quarter-hour"
    if minutes_text not in ("15", "30", "45", "60"):
        return f"minutes must be 15, 30, 45 or 60, not {minutes_text!r}"
    try:
        price = float(price_text)
    except ValueError:
        return f"pln_per_mwh must be a number, not {price_text!r}"
    if not -MWH_LIMIT <= price <= MWH_LIMIT:
        return f"pln_per_mwh {price:g} is beyond {MWH_LIMIT:g} either way: PLN per MWh, not kWh?"
    return start, int(minutes_text), price


def _utc(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()
