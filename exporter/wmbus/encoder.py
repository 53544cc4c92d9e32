"""Records and frames from values: the inverse of the decoder, for round trips and the simulator."""

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

SND_NR = 0x44
_DATA_FIELD_CODES = {layout: code for code, layout in DATA_FIELDS.items()}


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
