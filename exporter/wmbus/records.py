"""EN 13757-3 data records: DIB (DIF, DIFEs), VIB (VIF, VIFEs) and the data that follows.

`parse_records` walks a clear application payload and returns typed records keyed by their raw
DIB+VIB hex, the most reliable handle for meter-specific meaning (docs/wmbus-records.md, section 4).
"""

from __future__ import annotations

import enum
import operator
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, overload

from .cache import BoundedCache
from .errors import MalformedError
from .timepoint import TIME_TYPES_BY_LENGTH, TimePoint, decode_time_point
from .vif import (
    COMBINABLE,
    COMBINABLE_EXTENSION,
    COMBINABLE_EXTENSION_MARKER,
    COMBINABLE_MANUFACTURER,
    COMBINABLE_SCALE_FIRST,
    COMBINABLE_SCALE_LAST,
    COMBINABLE_THOUSAND,
    EXTENSION_FB,
    EXTENSION_FD,
    PRIMARY,
    PRIMARY_FB,
    PRIMARY_FD,
    PRIMARY_MANUFACTURER,
    PRIMARY_PLAIN_TEXT,
    Combinable,
    Phase,
    Quantity,
    VifEntry,
)

IDLE_FILLER = 0x2F
EXTENSION_BIT = 0x80
MAX_DIFES = 10  # EN 13757-3 allows at most 10 DIFEs and 10 VIFEs
MAX_VIFES = 10


class Function(enum.Enum):
    """DIF bits 5..4."""

    INSTANTANEOUS = 0
    MAXIMUM = 1
    MINIMUM = 2
    ERROR_STATE = 3


class Coding(enum.Enum):
    """How the data field is coded (DIF bits 3..0)."""

    NONE = "no data"
    INTEGER = "binary integer"
    REAL = "32-bit real"
    BCD = "BCD"
    VARIABLE = "variable length"
    SELECTION = "selection for readout"
    MANUFACTURER = "manufacturer-specific data"


#: DIF data field -> (coding, data length in bytes; -1 for variable length).
DATA_FIELDS: dict[int, tuple[Coding, int]] = {
    0x0: (Coding.NONE, 0),
    0x1: (Coding.INTEGER, 1),
    0x2: (Coding.INTEGER, 2),
    0x3: (Coding.INTEGER, 3),
    0x4: (Coding.INTEGER, 4),
    0x5: (Coding.REAL, 4),
    0x6: (Coding.INTEGER, 6),
    0x7: (Coding.INTEGER, 8),
    0x8: (Coding.SELECTION, 0),
    0x9: (Coding.BCD, 1),
    0xA: (Coding.BCD, 2),
    0xB: (Coding.BCD, 3),
    0xC: (Coding.BCD, 4),
    0xD: (Coding.VARIABLE, -1),
    0xE: (Coding.BCD, 6),
}

#: Special DIFs (data field 0xF) that end the records: the rest is manufacturer data.
MANUFACTURER_DATA_DIFS = frozenset((0x0F, 0x1F))
GLOBAL_READOUT_DIF = 0x7F


@dataclass(frozen=True, slots=True)
class DataInformation:
    """What the DIB says: coding and length, function, storage number, tariff, sub-unit."""

    coding: Coding
    length: int
    function: Function = Function.INSTANTANEOUS
    storage_number: int = 0
    tariff: int = 0
    subunit: int = 0


@dataclass(frozen=True, slots=True)
class ValueInformation:
    """What the VIB says: quantity, base unit, decimal exponent and the combinable qualifiers."""

    quantity: Quantity
    unit: str = ""
    exponent: int = 0
    combinables: frozenset[Combinable] = frozenset()
    phase: Phase | None = None
    manufacturer_specific: bool = False
    plain_text_unit: str | None = None


@dataclass(frozen=True, slots=True)
class InvalidValue:
    """Data that cannot be the value its DIF announces (a BCD digit above 9): the record is
    kept with its data and why, and the rest of the payload is read as usual."""

    data: bytes
    reason: str


Value = int | float | str | bytes | TimePoint | InvalidValue | None


@dataclass(frozen=True, slots=True, eq=False)
class RecordHeader:
    """A parsed DIB+VIB; `key` is their raw bytes in upper-case hex, e.g. ``8E10833C``.

    Compared by identity, which is cheap to hash: the header cache hands out one object per
    distinct DIB+VIB, so layouts of the same shape share the same headers.
    """

    key: str
    data: DataInformation
    value: ValueInformation
    decode: Callable[[bytes], Value]


class Record(NamedTuple):
    """One data record: its header, raw data bytes and decoded value (unscaled).

    A named tuple rather than a frozen dataclass: one is built per record on the hot path.
    """

    header: RecordHeader
    raw: bytes
    value: Value

    @property
    def key(self) -> str:
        return self.header.key

    @property
    def scaled(self) -> float | None:
        """The value in the VIF's base unit (Wh, W, V, ...), or None if it is not a number."""
        value = self.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        exponent = self.header.value.exponent
        return value / 10**-exponent if exponent < 0 else float(value * 10**exponent)


BAD_BCD = "a BCD digit above 9: the record is damaged"


def decode_bcd(data: bytes) -> int | InvalidValue | None:
    """BCD, least significant byte first; a leading F nibble is a minus sign; all F: no value;
    a digit above 9 anywhere else makes the record invalid (not the telegram)."""
    digits = data[::-1].hex()
    try:
        if digits[0] == "f":
            if digits.count("f") == len(digits):
                return None
            return -int(digits[1:])
        return int(digits)
    except ValueError:
        return InvalidValue(data, BAD_BCD)


def _decode_integer(data: bytes) -> int:
    return int.from_bytes(data, "little", signed=True)


def _decode_real(data: bytes) -> float:
    value: float = struct.unpack("<f", data)[0]
    return value


def _decode_nothing(data: bytes) -> None:
    return None


def _decode_time(data: bytes) -> TimePoint:
    return decode_time_point(data)


def _decode_variable(data: bytes) -> Value:
    """Variable-length data (DIF data field 0xD): the LVAR byte, then the data it announces."""
    lvar, body = data[0], data[1:]
    if lvar < 0xC0:
        return body[::-1].decode("latin-1")
    if lvar < 0xE0:
        value = decode_bcd(body) if body else 0
        return -value if lvar >= 0xD0 and isinstance(value, int) else value
    return int.from_bytes(body, "little", signed=True) if body else 0


_LONG_BINARY = {0xF5: 48, 0xF6: 64}  # LVAR codes of long binary numbers


def variable_length(lvar: int) -> int:
    """Bytes of data announced by an LVAR byte (EN 13757-3 Table 5)."""
    if lvar < 0xC0:
        return lvar
    if lvar < 0xF0:
        return lvar & 0x0F
    if lvar <= 0xF4:
        return 4 * (lvar - 0xEC)
    if lvar in _LONG_BINARY:
        return _LONG_BINARY[lvar]
    raise MalformedError(
        f"The variable-length byte 0x{lvar:02X} is reserved in EN 13757-3; "
        "the record cannot be read."
    )


_DECODERS: dict[Coding, Callable[[bytes], Value]] = {
    Coding.NONE: _decode_nothing,
    Coding.SELECTION: _decode_nothing,
    Coding.INTEGER: _decode_integer,
    Coding.REAL: _decode_real,
    Coding.BCD: decode_bcd,
    Coding.VARIABLE: _decode_variable,
}


def parse_dib(dib: bytes) -> DataInformation:
    """DIF plus DIFEs: storage number, tariff and sub-unit bits gathered in order."""
    dif = dib[0]
    coding, length = DATA_FIELDS[dif & 0x0F]
    storage = (dif >> 6) & 0x01
    tariff = subunit = 0
    for n, dife in enumerate(dib[1:]):
        storage |= (dife & 0x0F) << (1 + 4 * n)
        tariff |= ((dife >> 4) & 0x03) << (2 * n)
        subunit |= ((dife >> 6) & 0x01) << n
    return DataInformation(coding, length, Function((dif >> 4) & 0x03), storage, tariff, subunit)


def parse_vib(vib: bytes) -> ValueInformation:
    """VIF plus VIFEs, with the FB/FD tables, combinable codes and the 0x7C phase extension."""
    vif = vib[0] & 0x7F
    pos = 1
    plain_text: str | None = None
    manufacturer = vif == PRIMARY_MANUFACTURER
    entry: VifEntry
    if vif in (PRIMARY_FB, PRIMARY_FD):
        if len(vib) < 2:
            raise MalformedError(
                f"The VIF 0x{vib[0]:02X} announces an extension table but no code follows."
            )
        table = EXTENSION_FB if vif == PRIMARY_FB else EXTENSION_FD
        entry = table[vib[1] & 0x7F]
        pos = 2
    elif vif == PRIMARY_PLAIN_TEXT:
        size = vib[1]
        plain_text = vib[2 : 2 + size][::-1].decode("latin-1")
        entry = PRIMARY[vif]
        pos = 2 + size
    else:
        entry = PRIMARY[vif]
    exponent = entry.exponent
    combinables: set[Combinable] = set()
    phase: Phase | None = None
    codes = iter(vib[pos:])
    for byte in codes:
        if manufacturer:
            break
        code = byte & 0x7F
        if COMBINABLE_SCALE_FIRST <= code <= COMBINABLE_SCALE_LAST:
            exponent += code - COMBINABLE_SCALE_FIRST - 6
        elif code == COMBINABLE_THOUSAND:
            exponent += 3
        elif code == COMBINABLE_MANUFACTURER:
            manufacturer = True
        elif code == COMBINABLE_EXTENSION_MARKER:
            meaning = COMBINABLE_EXTENSION.get(next(codes, 0) & 0x7F, Combinable.RESERVED)
            if isinstance(meaning, Phase):
                phase = meaning
            else:
                combinables.add(meaning)
        else:
            combinables.add(COMBINABLE.get(code, Combinable.RESERVED))
    return ValueInformation(
        entry.quantity,
        entry.unit,
        exponent,
        frozenset(combinables),
        phase,
        manufacturer,
        plain_text,
    )


def _value_decoder(data: DataInformation, value: ValueInformation) -> Callable[[bytes], Value]:
    if (
        value.quantity in (Quantity.DATE, Quantity.DATE_TIME)
        and data.coding is Coding.INTEGER
        and data.length in TIME_TYPES_BY_LENGTH
    ):
        return _decode_time
    return _DECODERS[data.coding]


def parse_header(header: bytes) -> RecordHeader:
    """Interpret the raw DIB+VIB bytes of one record (found by `header_end`)."""
    dib_length = 1
    while header[dib_length - 1] & EXTENSION_BIT:
        dib_length += 1
    data = parse_dib(header[:dib_length])
    value = parse_vib(header[dib_length:])
    return RecordHeader(header.hex().upper(), data, value, _value_decoder(data, value))


def header_end(payload: bytes, pos: int, end: int) -> int:
    """Index just past the DIB+VIB that starts at `pos`; the structure decides, not tables."""
    start = pos
    while payload[pos] & EXTENSION_BIT:
        pos += 1
        if pos >= end:
            raise _runs_past_end(start, "its DIF extensions")
        if pos - start > MAX_DIFES:
            raise _too_many(start, "DIF")
    pos += 1
    if pos >= end:
        raise _runs_past_end(start, "its VIF")
    more = payload[pos] & EXTENSION_BIT
    if payload[pos] & 0x7F == PRIMARY_PLAIN_TEXT:
        if pos + 1 >= end:
            raise _runs_past_end(start, "its plain-text unit")
        pos += 1 + payload[pos + 1]  # the length byte and the text
        if pos >= end:
            raise _runs_past_end(start, "its plain-text unit")
    extensions = 0
    while more:
        pos += 1
        extensions += 1
        if pos >= end:
            raise _runs_past_end(start, "its VIF extensions")
        if extensions > MAX_VIFES:
            raise _too_many(start, "VIF")
        more = payload[pos] & EXTENSION_BIT
    return pos + 1


def _too_many(start: int, part: str) -> MalformedError:
    return MalformedError(
        f"The record at byte {start} of the payload has more {part} extensions than the "
        f"{MAX_DIFES} EN 13757-3 allows: the telegram is damaged or was decrypted with a wrong key."
    )


def _runs_past_end(start: int, part: str) -> MalformedError:
    return MalformedError(
        f"The record at byte {start} of the payload runs past the end inside {part}: "
        "the telegram is damaged or was decrypted with a wrong key."
    )


#: Parsed headers by their raw bytes: meters repeat the same few dozen headers forever.
HEADERS: BoundedCache[bytes, RecordHeader] = BoundedCache("record headers", 4096)


def _learn(raw: bytes) -> RecordHeader:
    return HEADERS.put(raw, parse_header(raw))


_MANUFACTURER_HEADERS = {
    dif: RecordHeader(
        f"{dif:02X}",
        DataInformation(Coding.MANUFACTURER, -1),
        ValueInformation(Quantity.MANUFACTURER_SPECIFIC, manufacturer_specific=True),
        bytes,
    )
    for dif in MANUFACTURER_DATA_DIFS
}


@dataclass(frozen=True, slots=True)
class Records(Sequence[Record]):
    """The records of one payload, stored by column: built per telegram, so kept cheap."""

    headers: tuple[RecordHeader, ...]
    raws: tuple[bytes, ...]
    values: tuple[Value, ...]

    def __len__(self) -> int:
        return len(self.headers)

    @overload
    def __getitem__(self, index: int) -> Record: ...
    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...
    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        if isinstance(index, slice):
            return list(self)[index]
        return Record(self.headers[index], self.raws[index], self.values[index])

    def __iter__(self) -> Iterator[Record]:
        return map(Record, self.headers, self.raws, self.values)

    @property
    def invalid(self) -> bool:
        """Whether a record's data could not be its value (`InvalidValue`)."""
        return InvalidValue in map(type, self.values)


@dataclass(frozen=True, slots=True, eq=False)
class Layout:
    """Where the records of one payload shape lie; a meter repeats its shape in every telegram.

    The skeleton is every byte that is not record data (DIBs, VIBs, filler, LVAR bytes): a
    payload with the same skeleton has exactly these records at these places, so it is read
    without walking it again.
    """

    headers: tuple[RecordHeader, ...]
    spans: tuple[tuple[int, int], ...]  # data start and end of each record
    decoders: tuple[Callable[[bytes], Value], ...]
    skeleton_of: Callable[[bytes], object]  # a tuple of bytes, or one byte for one position
    skeleton: object

    @classmethod
    def of(
        cls, payload: bytes, entries: list[tuple[RecordHeader, int, int]], positions: list[int]
    ) -> Layout:
        skeleton_of = operator.itemgetter(*positions)
        return cls(
            tuple(header for header, _, _ in entries),
            tuple((start, end) for _, start, end in entries),
            tuple(header.decode for header, _, _ in entries),
            skeleton_of,
            skeleton_of(payload),
        )

    def read(self, payload: bytes) -> Records:
        """Decode the data of a payload whose skeleton matches."""
        raws = tuple([payload[start:end] for start, end in self.spans])
        return Records(self.headers, raws, tuple(map(operator.call, self.decoders, raws)))


#: Layouts by (start, stop, first record header): a few payload shapes per first header.
LAYOUTS: BoundedCache[tuple[int, int, bytes], list[Layout]] = BoundedCache("layouts", 1024)
LAYOUTS_PER_KEY = 8


def _walk(
    payload: bytes, start: int, stop: int
) -> tuple[list[tuple[RecordHeader, int, int]], list[int]]:
    """Find every record: (header, data start, data end) and the positions of the skeleton."""
    entries: list[tuple[RecordHeader, int, int]] = []
    skeleton: list[int] = []
    known = HEADERS.get
    pos = start
    while pos < stop:
        dif = payload[pos]
        if dif in (IDLE_FILLER, GLOBAL_READOUT_DIF):
            skeleton.append(pos)
            pos += 1
            continue
        if dif in MANUFACTURER_DATA_DIFS:
            skeleton.append(pos)
            entries.append((_MANUFACTURER_HEADERS[dif], pos + 1, stop))
            break
        if dif & 0x0F == 0x0F:
            raise MalformedError(
                f"Byte {pos} of the payload (0x{dif:02X}) is a reserved DIF: the record "
                "cannot be read. The telegram is damaged or was decrypted with a wrong key."
            )
        data_start = header_end(payload, pos, stop)
        raw_header = payload[pos:data_start]
        header = known(raw_header) or _learn(raw_header)
        skeleton.extend(range(pos, data_start))
        length = header.data.length
        if length < 0:
            if data_start >= stop:
                raise _runs_past_end(pos, "its variable-length byte")
            skeleton.append(data_start)
            length = 1 + variable_length(payload[data_start])
        data_end = data_start + length
        if data_end > stop:
            raise MalformedError(
                f"The record {header.key} at byte {pos} of the payload needs {length} data "
                f"bytes but only {stop - data_start} remain: the telegram is damaged or was "
                "decrypted with a wrong key."
            )
        entries.append((header, data_start, data_end))
        pos = data_end
    return entries, skeleton


def _layout_key(payload: bytes, start: int, stop: int) -> tuple[int, int, bytes] | None:
    """The first record's header bytes (after filler) with the bounds, or None if unreadable."""
    pos = start
    while pos < stop and payload[pos] == IDLE_FILLER:
        pos += 1
    if pos >= stop or payload[pos] & 0x0F == 0x0F:
        return (start, stop, payload[pos : pos + 1])
    try:
        return (start, stop, payload[pos : header_end(payload, pos, stop)])
    except MalformedError:
        return None


def read_records(payload: bytes, start: int = 0, end: int | None = None) -> Records:
    """Every record of a clear payload from `start` to `end`; 0x2F idle filler is skipped."""
    stop = len(payload) if end is None else min(end, len(payload))
    key = _layout_key(payload, start, stop)
    candidates = (LAYOUTS.get(key) or ()) if key is not None else ()
    for layout in candidates:
        if layout.skeleton_of(payload) == layout.skeleton:
            return layout.read(payload)
    entries, positions = _walk(payload, start, stop)
    if not positions:
        return Records((), (), ())
    layout = Layout.of(payload, entries, positions)
    if key is not None and len(candidates) < LAYOUTS_PER_KEY:
        known = LAYOUTS.get(key)
        if known is None:
            LAYOUTS.put(key, [layout])
        else:
            known.append(layout)
    return layout.read(payload)


def parse_records(payload: bytes, start: int = 0, end: int | None = None) -> list[Record]:
    """`read_records` as a list of `Record`."""
    return list(read_records(payload, start, end))
