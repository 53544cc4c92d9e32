"""Records and frames from values: the inverse of the decoder, for round trips and the simulator.

`encode_header` is the inverse of `parse_header` for what the VIF tables of `vif.py` can say: a
quantity at one of its exponents, backward flow (combinable VIFE 0x3C) and a phase (the 0x7C
extension), behind any DIB.
"""

from __future__ import annotations

import struct

from .frame import add_format_a_crcs, add_format_b_crcs
from .link import Address
from .records import (
    DATA_FIELDS,
    EXTENSION_BIT,
    IDLE_FILLER,
    MANUFACTURER_DATA_DIFS,
    Coding,
    DataInformation,
    Value,
    parse_header,
)
from .security import encrypt_mode5, iv_for
from .timepoint import TimePoint, encode_time_point
from .transport import BLOCK_SIZE, Configuration, TransportHeader, encode_transport_header
from .vif import (
    COMBINABLE,
    COMBINABLE_EXTENSION,
    COMBINABLE_EXTENSION_MARKER,
    EXTENSION_FB,
    EXTENSION_FD,
    PRIMARY,
    PRIMARY_FB,
    PRIMARY_FD,
    Combinable,
    Phase,
    Quantity,
    Table,
)

SND_NR = 0x44
_DATA_FIELD_CODES = {layout: code for code, layout in DATA_FIELDS.items()}

#: The VIF tables and the bytes that select them, in the order a quantity is looked up.
_VIF_TABLES: tuple[tuple[bytes, Table], ...] = (
    (b"", PRIMARY),
    (bytes((PRIMARY_FD | EXTENSION_BIT,)), EXTENSION_FD),
    (bytes((PRIMARY_FB | EXTENSION_BIT,)), EXTENSION_FB),
)
#: No VIB from a quantity alone: a reserved code says nothing, a plain-text unit needs its text.
_NOT_ENCODABLE = frozenset((Quantity.RESERVED, Quantity.PLAIN_TEXT))
_BACKWARD = next(code for code, meaning in COMBINABLE.items() if meaning is Combinable.BACKWARD)
_PHASES = {
    meaning: code for code, meaning in COMBINABLE_EXTENSION.items() if isinstance(meaning, Phase)
}


def _vif_codes() -> dict[tuple[Quantity, int, str], bytes]:
    """(quantity, exponent, unit) -> the VIF bytes (table selector and code) that say it; where
    several codes say the same (durations of one unit, access codes), the first one."""
    found: dict[tuple[Quantity, int, str], bytes] = {}
    for prefix, table in _VIF_TABLES:
        for code, entry in table.items():
            if entry.quantity not in _NOT_ENCODABLE:
                found.setdefault(
                    (entry.quantity, entry.exponent, entry.unit), prefix + bytes((code,))
                )
    return found


_VIF_CODES = _vif_codes()


def vif_exponents(quantity: Quantity) -> tuple[int, ...]:
    """The decimal exponents the VIF tables hold for `quantity`, ascending (empty: none)."""
    return tuple(sorted({e for q, e, _ in _VIF_CODES if q is quantity}))


def encode_vib(
    quantity: Quantity,
    exponent: int = 0,
    *,
    backward: bool = False,
    phase: Phase | None = None,
    unit: str | None = None,
) -> bytes:
    """The VIB for a quantity at a decimal exponent, of the backward flow and of a phase if
    asked; `unit` picks among codes of one exponent (m³/h or m³/min, seconds or days)."""
    found = [
        code
        for (q, e, u), code in _VIF_CODES.items()
        if q is quantity and e == exponent and unit in (None, u)
    ]
    if not found:
        held = ", ".join(map(str, vif_exponents(quantity))) or "none"
        in_unit = f" in {unit}" if unit is not None else ""
        raise ValueError(
            f"The VIF tables have no {quantity.value}{in_unit} with exponent {exponent} "
            f"(exponents they hold: {held})."
        )
    extensions = bytes((_BACKWARD,)) if backward else b""
    if phase is not None:
        extensions += bytes((COMBINABLE_EXTENSION_MARKER, _PHASES[phase]))
    if extensions and quantity is Quantity.MANUFACTURER_SPECIFIC:
        raise ValueError("A manufacturer-specific VIF takes no flow direction or phase.")
    vib = found[0] + extensions
    return bytes(b | EXTENSION_BIT for b in vib[:-1]) + vib[-1:]


def encode_header(
    info: DataInformation,
    quantity: Quantity,
    exponent: int = 0,
    *,
    backward: bool = False,
    phase: Phase | None = None,
    unit: str | None = None,
) -> bytes:
    """A record's DIB+VIB (its key as bytes): the inverse of `parse_header`."""
    return encode_dib(info) + encode_vib(
        quantity, exponent, backward=backward, phase=phase, unit=unit
    )


def encode_dib(info: DataInformation) -> bytes:
    """DIF and as many DIFEs as the storage number, tariff and sub-unit need."""
    if info.coding is Coding.VARIABLE:
        data_field = 0xD
    else:
        data_field = _DATA_FIELD_CODES[(info.coding, info.length)]
    dif = data_field | info.function.value << 4 | (info.storage_number & 1) << 6
    storage, tariff, subunit = info.storage_number >> 1, info.tariff, info.subunit
    difes = bytearray()
    while storage or tariff or subunit:
        difes.append((storage & 0x0F) | (tariff & 0x03) << 4 | (subunit & 1) << 6)
        storage, tariff, subunit = storage >> 4, tariff >> 2, subunit >> 1
    if not difes:
        return bytes((dif,))
    marked = [b | EXTENSION_BIT for b in difes[:-1]] + [difes[-1]]
    return bytes((dif | EXTENSION_BIT, *marked))


def encode_bcd(value: int | None, length: int) -> bytes:
    """BCD of `length` bytes, least significant first; None gives all-F "no value"."""
    if value is None:
        return b"\xff" * length
    digits = f"{value:0{2 * length}d}" if value >= 0 else "f" + f"{-value:0{2 * length - 1}d}"
    if len(digits) != 2 * length:
        raise ValueError(f"{value} does not fit in {2 * length} BCD digits")
    return bytes.fromhex(digits)[::-1]


def encode_data(info: DataInformation, value: Value) -> bytes:
    """The data bytes of a record whose DIB is `info`."""
    coding, length = info.coding, info.length
    if coding in (Coding.NONE, Coding.SELECTION):
        return b""
    if isinstance(value, TimePoint):
        return encode_time_point(value)
    if coding is Coding.BCD:
        if not (value is None or isinstance(value, int)):
            raise TypeError(f"a BCD record holds an integer, not {value!r}")
        return encode_bcd(value, length)
    if coding is Coding.INTEGER and isinstance(value, int):
        return value.to_bytes(length, "little", signed=True)
    if coding is Coding.REAL and isinstance(value, int | float):
        return struct.pack("<f", value)
    if coding is Coding.VARIABLE and isinstance(value, str):
        text = value.encode("latin-1")[::-1]
        return bytes((len(text),)) + text
    if coding is Coding.MANUFACTURER and isinstance(value, bytes):
        return value
    raise TypeError(f"cannot encode {value!r} as {coding.value}")


def encode_record(header: bytes, value: Value) -> bytes:
    """One record from its raw DIB+VIB bytes (its key) and the unscaled value.

    The DIFs 0x0F and 0x1F take `value` as the manufacturer data that ends the records.
    """
    if header[0] in MANUFACTURER_DATA_DIFS and len(header) == 1 and isinstance(value, bytes):
        return header + value
    return header + encode_data(parse_header(header).data, value)


def pad_payload(records: bytes) -> bytes:
    """2F2F check bytes, the records, then 2F filler up to a whole number of AES blocks."""
    payload = b"\x2f\x2f" + records
    return payload + bytes((IDLE_FILLER,)) * (-len(payload) % BLOCK_SIZE)


def encode_frame(
    address: Address,
    records: bytes,
    *,
    access_number: int,
    key: bytes | None,
    status: int = 0,
    control: int = SND_NR,
    iv_manufacturer: int | None = None,
) -> bytes:
    """A canonical mode-5 frame (CI 0x7A) around `records`; clear but mode-5 if `key` is None.

    `iv_manufacturer` builds the IV with another M-field, as Sanxing meters do.
    """
    payload = pad_payload(records)
    blocks = len(payload) // BLOCK_SIZE
    if blocks > 0x0F:
        raise ValueError(f"{len(payload)} bytes of records exceed the 15 blocks of mode 5")
    transport = TransportHeader(
        ci=0x7A,
        access_number=access_number,
        status=status,
        configuration=Configuration.for_mode5(blocks),
        payload_offset=15,
    )
    if key is not None:
        payload = encrypt_mode5(key, iv_for(address, access_number, iv_manufacturer), payload)
    body = bytes((control,)) + address.encode() + encode_transport_header(transport) + payload
    return bytes((len(body),)) + body


def to_air(frame: bytes, frame_format: str = "A") -> bytes:
    """The frame with block CRCs as sent on air: format A (T1) or B (C1)."""
    return add_format_a_crcs(frame) if frame_format == "A" else add_format_b_crcs(frame)
