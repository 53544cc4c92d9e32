"""The `meters:` section: each meter's address (either byte order), key, name and contracted
power."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..amiplus import (
    CredentialsError,
    id_variants,
    normalise_meter_id,
    parse_key,
    parse_qr,
)
from ..wmbus import MeterKey, shown
from .reader import Reader, unfit_name
from .settlement import Entries, Settlement, resolve, settlement_entries

if TYPE_CHECKING:
    from yaml import Node

_METER = (
    "id",
    "key",
    "key_file",
    "qr",
    "qr_file",
    "name",
    "site",
    "contracted_power",
    "settlement",
)
#: Contracted power (moc umowna) in watts: households have 2-40 kW; below 1000 it was kW.
CONTRACTED_POWER = (1000.0, 1_000_000.0)


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """A meter to decode: its address (either byte order matches), key and display name."""

    name: str
    meter_id: str
    ids: frozenset[str]
    key: MeterKey = field(repr=False)
    recognised: str = ""  # what a QR text turned out to hold, for check-config
    site: str = ""  # where the meter is, for people (amiplus_meter_info's meter_site)
    contracted_power: float | None = None  # watts: the one place alerts and dashboards read
    settlement: Settlement | None = None  # prosumer rules (its own over settlement:'s), or none


def _name(reader: Reader, fields: dict[str, Node], key: str, where: str) -> str | None:
    """A name or site: text fit for InfluxDB tags and labels (`unfit_name`)."""
    value = reader.optional(fields, key, reader.text, where)
    wrong = unfit_name(value) if value is not None else None
    if wrong is not None:
        reader.problem(fields[key], f"{where} {key} {wrong}")
        return None
    return value


def _meter(reader: Reader, node: Node, number: int, common: Entries) -> MeterConfig | None:
    fields = reader.mapping(node, f"meter {number}", _METER)
    name = _name(reader, fields, "name", f"meter {number}")
    where = f"meter {shown(name)}" if name else f"meter {number}"
    contracted = _contracted_power(reader, fields.get("contracted_power"), where)
    own = (
        settlement_entries(reader, fields["settlement"], f"{where} settlement")
        if "settlement" in fields
        else {}
    )
    settlement = resolve(reader, f"{where} settlement", common, own, fields.get("settlement", node))
    key_node, key_text = reader.secret(fields, "key", where)
    qr_node, qr_text = reader.secret(fields, "qr", where)
    meter_id: str | None = None
    key: MeterKey | None = None
    ids: frozenset[str] = frozenset()
    recognised = ""
    if qr_text is not None:
        try:
            credentials = parse_qr(qr_text)
        except CredentialsError as error:
            reader.problem(qr_node, f"{where}: {error}")
            return None
        recognised = credentials.describe()
        meter_id, key, ids = credentials.address, credentials.key, credentials.meter_ids
    reported = False  # a problem with the id or key is already said; check the other anyway
    if "id" in fields:
        text = reader.text(fields["id"], f"{where} id")
        try:
            meter_id = None if text is None else normalise_meter_id(text)
        except CredentialsError as error:
            reader.problem(fields["id"], f"{where}: {error}")
        reported = meter_id is None
        ids = id_variants(meter_id) if meter_id else frozenset()
    if key_text is not None:
        if key is not None:
            reader.problem(key_node, f"{where}: the QR text already holds the key; remove key")
        try:
            key = parse_key(key_text)
        except CredentialsError as error:
            reader.problem(key_node, f"{where}: {error}")
            return None
    elif key_node is not None:
        return None  # the key's environment variable or file is missing: already reported
    if reported:
        return None
    if meter_id is None:
        reader.problem(
            qr_node or node,
            f"{where}: give the meter's id (eLicznik 'adres komunikacyjny', 8 digits)",
        )
        return None
    if key is None:
        reader.problem(
            qr_node or node,
            f"{where}: give its key (eLicznik 'Klucz szyfrujący'), key_file, or the QR text",
        )
        return None
    site = _name(reader, fields, "site", where) or ""
    return MeterConfig(
        name or meter_id,
        meter_id,
        ids,
        key,
        recognised,
        site=site,
        contracted_power=contracted,
        settlement=settlement,
    )


def _contracted_power(reader: Reader, node: Node | None, where: str) -> float | None:
    """The contracted power in watts (a number in kW is a problem that says so)."""
    if node is None:
        return None
    text = reader.text(node, f"{where} contracted_power")
    try:
        watts = float(text or "")
    except ValueError:
        reader.problem(
            node, f"{where} contracted_power must be watts, e.g. 14000, not {shown(text or '')}"
        )
        return None
    low, high = CONTRACTED_POWER
    if not low <= watts <= high:
        hint = f" ({watts:g} kW is {watts * 1000:g})" if 0 < watts < low else ""
        reader.problem(
            node,
            f"{where} contracted_power is in watts, between {low:g} and {high:g}{hint}",
        )
        return None
    return watts


def meters_section(
    reader: Reader, node: Node | None, common: Entries | None = None
) -> list[MeterConfig]:
    """The `meters:` list; `common` is what the `settlement:` section says for every meter."""
    if node is None:
        return []
    if not isinstance(node, reader.yaml.SequenceNode):
        reader.problem(node, "meters must be a list (lines starting with '- ')")
        return []
    meters: list[MeterConfig] = []
    owner: dict[str, tuple[int, str]] = {}  # an address in either byte order -> entry, its words
    for number, item in enumerate(node.value, start=1):
        meter = _meter(reader, item, number, common or {})
        if meter is None:
            continue
        clash = next((owner[i] for i in sorted(meter.ids) if i in owner), None)
        if clash is not None:
            other, about = clash
            reader.problem(
                item,
                f"meter {number}: the address {meter.meter_id} (either byte order) is already "
                f"meter {other}'s ({about}); give each meter once, with its own key",
            )
            continue
        named = f"{shown(meter.name)}, " if meter.name != meter.meter_id else ""
        owner.update(dict.fromkeys(meter.ids, (number, f"{named}{reader.place(item)}")))
        meters.append(meter)
    return meters
