"""The `settlement:` section: how the operator settles a prosumer (docs/prosumer.md), given once
for every meter and again under a meter's entry, whose keys win (docs/contracts.md, section 3).

The rules themselves are counted in `exporter/settlement/`; here they are only read and checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ..wmbus import shown
from .reader import Reader

if TYPE_CHECKING:
    from yaml import Node


class Scheme(StrEnum):
    """How exported energy comes back: as money (net-billing) or as kWh (net-metering)."""

    NET_BILLING = "net-billing"
    NET_METERING = "net-metering"
    NONE = "none"


class ExportPrice(StrEnum):
    """What a kWh of net export is worth in net-billing."""

    RCE = "rce"  # the market price of each hour (PSE's RCE)
    RCEM = "rcem"  # the market price of the month (RCEm)
    FIXED = "fixed"  # a number given in the configuration


class NegativeQuarters(StrEnum):
    """Where a negative quarter-hour price becomes 0: before the hour's mean, or after it."""

    CLIP_FIRST = "clip_first"
    AVERAGE_FIRST = "average_first"


@dataclass(frozen=True, slots=True)
class Coefficient:
    """The deposit's coefficient from a local day on (until the next entry's day)."""

    start: date
    value: float


#: 1.23 for the value credited from 1 February 2025 (docs/prosumer.md, "The deposit").
DEFAULT_COEFFICIENTS = (Coefficient(date(2025, 2, 1), 1.23),)
SAY_SCHEME = (
    "say the scheme: net-billing (connected from April 2022), net-metering (before), or none"
)
HIGHEST_PRICE = 100.0  # PLN per kWh, as in prices:
KEYS = (
    "scheme",
    "since",
    "export_price",
    "coefficient",
    "refund_cap",
    "negative_quarters",
    "ratio",
    "window_days",
)
#: Keys that mean something for one scheme only.
ONLY_FOR = {
    "export_price": Scheme.NET_BILLING,
    "coefficient": Scheme.NET_BILLING,
    "refund_cap": Scheme.NET_BILLING,
    "negative_quarters": Scheme.NET_BILLING,
    "ratio": Scheme.NET_METERING,
    "window_days": Scheme.NET_METERING,
}


@dataclass(frozen=True, slots=True)
class Settlement:
    """One meter's settlement rules (scheme `none` is never kept: the meter is not settled)."""

    scheme: Scheme
    since: date | None = None  # the first local day the scheme applies; None: from the start
    export_price: ExportPrice = ExportPrice.RCE
    fixed_price: float = 0.0  # PLN per kWh, with export_price FIXED
    coefficients: tuple[Coefficient, ...] = DEFAULT_COEFFICIENTS
    refund_cap: float = 0.2
    negative_quarters: NegativeQuarters = NegativeQuarters.CLIP_FIRST
    ratio: float = 0.8
    window_days: int = 365

    def coefficient(self, day: date) -> float:
        """The deposit's coefficient on a local day (1 before the first entry)."""
        value = 1.0
        for entry in self.coefficients:
            if entry.start <= day:
                value = entry.value
        return value

    def describe(self) -> str:
        """A line for check-config."""
        since = f" since {self.since}" if self.since else ""
        if self.scheme is Scheme.NET_METERING:
            return (
                f"net-metering{since}: {self.ratio:g} kWh back per kWh fed in, "
                f"within {self.window_days} days"
            )
        price = (
            f"{self.fixed_price:g} PLN/kWh"
            if self.export_price is ExportPrice.FIXED
            else self.export_price.value.upper()
        )
        coefficients = ", ".join(f"{c.value:g} from {c.start}" for c in self.coefficients)
        return (
            f"net-billing{since}: export at {price}, coefficient {coefficients or '1'}, "
            f"refund cap {self.refund_cap:g}"
        )


#: What a `settlement:` mapping says: key -> (converted value, its node for messages); the value
#: is None when it was wrong (and the problem is said).
Entries = dict[str, tuple[Any, "Node"]]


def _date(reader: Reader, node: Node, where: str) -> date | None:
    text = reader.text(node, where)
    try:
        return None if text is None else date.fromisoformat(text)
    except ValueError:
        reader.problem(node, f"{where} must be a date like 2024-07-01, not {shown(text or '')}")
        return None


def _export_price(reader: Reader, node: Node, where: str) -> tuple[ExportPrice, float] | None:
    text = reader.text(node, where)
    if text is None:
        return None
    if text.lower() in (ExportPrice.RCE, ExportPrice.RCEM):
        return ExportPrice(text.lower()), 0.0
    price = reader.number(node, where, 0, HIGHEST_PRICE) if _is_number(text) else None
    if price is None:
        if not _is_number(text):
            reader.problem(
                node, f"{where} must be rce, rcem or a price in PLN per kWh, not {shown(text)}"
            )
        return None
    return ExportPrice.FIXED, price


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _coefficients(reader: Reader, node: Node, where: str) -> tuple[Coefficient, ...] | None:
    """`coefficient:` as a list of {from, value}, or one number that always applies."""
    if isinstance(node, reader.yaml.ScalarNode):
        value = reader.number(node, where, 0, 10)
        return None if value is None else (Coefficient(date.min, value),)
    if not isinstance(node, reader.yaml.SequenceNode):
        reader.problem(node, f"{where} must be a list like [{{from: 2025-02-01, value: 1.23}}]")
        return None
    entries: list[Coefficient] = []
    seen: set[date] = set()
    for number, item in enumerate(node.value, start=1):
        place = f"{where}[{number}]"
        fields = reader.mapping(item, place, ("from", "value"))
        if "from" not in fields or "value" not in fields:
            reader.problem(item, f"{place}: give from: (a date) and value: (e.g. 1.23)")
            continue
        start = _date(reader, fields["from"], f"{place} from")
        value = reader.number(fields["value"], f"{place} value", 0, 10)
        if start in seen:
            reader.problem(item, f"{place}: another entry starts on {start} too")
        elif start is not None and value is not None:
            seen.add(start)
            entries.append(Coefficient(start, value))
    return tuple(sorted(entries, key=lambda entry: entry.start))


def _convert(reader: Reader, key: str, node: Node, where: str) -> Any:
    """One key's value, or None when it is wrong (the problem is recorded)."""
    place = f"{where} {key}"
    if key == "scheme":
        scheme = reader.choice(node, place, tuple(Scheme))
        return None if scheme is None else Scheme(scheme)
    if key == "since":
        return _date(reader, node, place)
    if key == "export_price":
        return _export_price(reader, node, place)
    if key == "coefficient":
        return _coefficients(reader, node, place)
    if key == "negative_quarters":
        choice = reader.choice(node, place, tuple(NegativeQuarters))
        return None if choice is None else NegativeQuarters(choice)
    if key == "window_days":
        days = reader.number(node, place, 1, 3650)
        if days is not None and days != int(days):
            reader.problem(node, f"{place} must be a whole number of days")
            return None
        return None if days is None else int(days)
    low = 0.01 if key == "ratio" else 0.0
    return reader.number(node, place, low, 1)  # ratio, refund_cap


def settlement_entries(reader: Reader, node: Node, where: str) -> Entries:
    """Every key of one `settlement:` mapping, converted and checked on its own."""
    fields = reader.mapping(node, where, KEYS)
    entries: Entries = {}
    for key, value_node in fields.items():
        entries[key] = (_convert(reader, key, value_node, where), value_node)
    return entries


def resolve(
    reader: Reader, where: str, common: Entries, own: Entries, node: Node
) -> Settlement | None:
    """A meter's rules: its own keys over the common `settlement:` section's; None when the
    scheme is `none` (or neither says anything)."""
    if not common and not own:
        return None
    merged = {**common, **own}
    if "scheme" not in merged:
        if not own:
            return None  # only the common section, which lacks it: already said there
        reader.problem(node, f"{where}: {SAY_SCHEME}")
        return None
    scheme: Scheme | None = merged["scheme"][0]
    if scheme is None or scheme is Scheme.NONE:
        return None  # a wrong scheme is said where it is
    for key, (_, key_node) in own.items():
        wanted = ONLY_FOR.get(key)
        if wanted is not None and wanted is not scheme:
            reader.problem(key_node, f"{where}: {key} applies to {wanted} only, not {scheme}")
    if any(value is None for value, _ in merged.values()):
        return None  # a wrong value is said where it is
    options: dict[str, Any] = {
        key: value for key, (value, _) in merged.items() if key != "export_price"
    }
    if "coefficient" in options:
        options["coefficients"] = options.pop("coefficient")
    if "export_price" in merged:
        options["export_price"], options["fixed_price"] = merged["export_price"][0]
    return Settlement(**options)


def common_settlement(reader: Reader, node: Node) -> tuple[Entries, Settlement | None]:
    """The `settlement:` section: its entries (what meters inherit) and the rules it gives on
    its own (what `settle` uses without --meter)."""
    entries = settlement_entries(reader, node, "settlement")
    if "scheme" not in entries:
        reader.problem(node, f"settlement: {SAY_SCHEME}")
        return entries, None
    return entries, resolve(reader, "settlement", {}, entries, node)
