"""What eLicznik gives a user: the meter's wM-Bus address, its factory number and the AES key.

Addresses are accepted in either byte order (eLicznik has shown some reversed; see
docs/amiplus-meters.md, section 6), and the QR code text is read field by field in any order.
Messages never contain the key itself.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from ..wmbus import KeyFormatError, MeterKey, shown
from .explain import ELICZNIK_KEY

ADDRESS_DIGITS = 8

#: Labels a QR field may carry ("label=value" or "label: value"), lower-case, without accents.
_LABELS = {
    "key": "key",
    "klucz": "key",
    "klucz szyfrujacy": "key",
    "aes": "key",
    "address": "address",
    "adres": "address",
    "adres komunikacyjny": "address",
    "adres do komunikacji": "address",
    "id": "address",
    "factory number": "factory_number",
    "numer fabryczny": "factory_number",
    "nr fabryczny": "factory_number",
    "serial": "factory_number",
    "numer": "factory_number",
}
_ACCENTS = str.maketrans("ąćęłńóśźż", "acelnoszz")
_HEX_DIGITS = frozenset(string.hexdigits)


class CredentialsError(ValueError):
    """An address, key or QR text that cannot be read; the message says what to do."""


def normalise_meter_id(text: str) -> str:
    """An address as printed (8 hex digits, upper case); spaces and a 0x prefix are dropped."""
    compact = "".join(text.split()).upper()
    if compact.startswith("0X"):
        compact = compact[2:]
    if len(compact) != ADDRESS_DIGITS or not _HEX_DIGITS.issuperset(compact):
        raise CredentialsError(
            f"A meter address has {ADDRESS_DIGITS} digits, like 12345678 (eLicznik: "
            f"'adres komunikacyjny'); {shown(text)} is not one."
        )
    return compact


def parse_key(text: str) -> MeterKey:
    """A key as the user wrote it; a wrong one is explained in eLicznik's words."""
    try:
        return MeterKey.parse(text)
    except KeyFormatError as error:
        raise CredentialsError(f"{error} {ELICZNIK_KEY.en}") from None


def reversed_meter_id(meter_id: str) -> str:
    """The same address with its bytes in the opposite order (12345678 -> 78563412)."""
    return "".join(reversed([meter_id[i : i + 2] for i in range(0, len(meter_id), 2)]))


def id_variants(meter_id: str) -> frozenset[str]:
    """Both byte orders of an address; a telegram matches if its ID is either of them."""
    normal = normalise_meter_id(meter_id)
    return frozenset((normal, reversed_meter_id(normal)))


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a QR code (or the equivalent typed values) says about one meter."""

    key: MeterKey | None
    address: str | None
    factory_number: str | None

    @property
    def meter_ids(self) -> frozenset[str]:
        """IDs a telegram from this meter may carry: address or factory number, either order."""
        ids: set[str] = set()
        for number in (self.address, self.factory_number):
            if number is not None and len(number) == ADDRESS_DIGITS:
                ids |= id_variants(number)
        return frozenset(ids)

    def describe(self) -> str:
        """What was recognised, for the user to check (the key only as its fingerprint)."""
        parts = []
        if self.address:
            parts.append(f"address {self.address}")
        if self.factory_number:
            parts.append(f"factory number {self.factory_number}")
        if self.key:
            parts.append(f"key with fingerprint {self.key.fingerprint}")
        return ", ".join(parts) or "nothing"


def _label(field: str) -> tuple[str | None, str]:
    for separator in ("=", ":"):
        name, found, value = field.partition(separator)
        if found:
            label = _LABELS.get(" ".join(name.lower().translate(_ACCENTS).split()))
            if label:
                return label, value.strip()
    return None, field


def parse_qr(text: str) -> Credentials:
    """Read the eLicznik QR text: fields separated by ';' in any order, optionally labelled.

    Unlabelled, a 32-hex-digit (or 16-character) field is the key, the first 8-digit number the
    address and any other number the factory number.
    """
    key: MeterKey | None = None
    numbers: list[tuple[str | None, str]] = []
    fields = [f.strip() for f in text.split(";")]
    for position, raw_field in enumerate(fields, start=1):
        if not raw_field:
            continue
        label, value = _label(raw_field)
        compact = "".join(value.split())
        if label in (None, "address", "factory_number") and compact.isdigit():
            numbers.append((label, compact))
            continue
        if label == "address":
            numbers.append((label, normalise_meter_id(value)))
            continue
        if label in (None, "key") and key is None:
            try:
                key = MeterKey.parse(value)
                continue
            except KeyFormatError:
                if label == "key":
                    raise CredentialsError(
                        f"Field {position} of the QR text is labelled as the key but is not "
                        "32 hex digits or a 16-character text."
                    ) from None
        raise CredentialsError(
            f"Field {position} of the QR text ({len(value)} characters) is neither the "
            f"address ({ADDRESS_DIGITS} digits), a factory number nor the key (32 hex digits). "
            "Copy the whole text of the QR code; fields are separated by ';'."
        )
    address = next((n for label, n in numbers if label == "address"), None)
    if address is None:
        address = next(
            (n for label, n in numbers if label is None and len(n) == ADDRESS_DIGITS), None
        )
    factory = next((n for label, n in numbers if n != address), None)
    if address is None and key is None:
        raise CredentialsError(
            "The QR text holds neither a meter address nor a key; fields are separated by ';'."
        )
    return Credentials(key=key, address=address, factory_number=factory)
