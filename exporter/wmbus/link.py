"""Data link layer (EN 13757-4): the 10-byte header L C M A of every wM-Bus frame
(docs/wmbus-frames.md, section 1)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .errors import TruncatedError

LINK_HEADER_LENGTH = 10

#: Device type byte of the A-field (EN 13757-3 Table 3), the ones a user of this tool may meet.
DEVICE_TYPES: dict[int, str] = {
    0x00: "other",
    0x02: "electricity",
    0x03: "gas",
    0x04: "heat",
    0x06: "warm water",
    0x07: "water",
    0x08: "heat cost allocator",
    0x0A: "cooling (outlet)",
    0x0B: "cooling (inlet)",
    0x0C: "heat (inlet)",
    0x0D: "combined heat/cooling",
    0x15: "hot water",
    0x16: "cold water",
    0x1A: "smoke detector",
    0x25: "communication controller",
    0x31: "OMS MUC",
    0x32: "OMS unidirectional repeater",
    0x33: "OMS bidirectional repeater",
    0x36: "radio converter (system side)",
    0x37: "radio converter (meter side)",
}


@functools.lru_cache(maxsize=1024)
def manufacturer_letters(code: int) -> str:
    """Three letters of an M-field value; bit 15 is masked (Sanxing sends 0xAE0C for KPL)."""
    code &= 0x7FFF
    return "".join(chr(((code >> shift) & 0x1F) + 64) for shift in (10, 5, 0))


def manufacturer_code(letters: str) -> int:
    """The M-field value of three upper-case letters (inverse of `manufacturer_letters`)."""
    if len(letters) != 3 or not all("A" <= c <= "Z" for c in letters):
        raise ValueError(f"a manufacturer is three letters A-Z, not {letters!r}")
    first, second, third = (ord(c) - 64 for c in letters)
    return (first << 10) | (second << 5) | third


@dataclass(frozen=True, slots=True)
class Address:
    """A meter's identity: manufacturer, ID, version and device type, as sent."""

    manufacturer_code: int
    id_bytes: bytes
    version: int
    device_type: int

    @property
    def manufacturer(self) -> str:
        return manufacturer_letters(self.manufacturer_code)

    @property
    def meter_id(self) -> str:
        """The ID as printed on the meter: the BCD bytes reversed."""
        return self.id_bytes[::-1].hex().upper()

    @property
    def device_type_name(self) -> str:
        return DEVICE_TYPES.get(self.device_type, f"type 0x{self.device_type:02X}")

    def iv_prefix(self, manufacturer_code: int | None = None) -> bytes:
        """The first 8 IV bytes of security mode 5: M (as sent, or another M) then A."""
        code = self.manufacturer_code if manufacturer_code is None else manufacturer_code
        return code.to_bytes(2, "little") + self.id_bytes + bytes((self.version, self.device_type))

    def encode(self) -> bytes:
        """The 8 bytes M M A A A A V T as they appear on air."""
        return self.iv_prefix()

    @classmethod
    def decode(cls, data: bytes) -> Address:
        """Parse the 8 bytes M M A A A A V T."""
        return cls(
            manufacturer_code=int.from_bytes(data[0:2], "little"),
            id_bytes=bytes(data[2:6]),
            version=data[6],
            device_type=data[7],
        )


@dataclass(frozen=True, slots=True)
class LinkHeader:
    """L, C and the address of a normalised frame."""

    length: int
    control: int
    address: Address


def parse_link_header(frame: bytes) -> LinkHeader:
    """Read the first 10 bytes of a frame."""
    if len(frame) < LINK_HEADER_LENGTH:
        raise TruncatedError(
            f"A wM-Bus frame starts with a {LINK_HEADER_LENGTH}-byte header, "
            f"but only {len(frame)} bytes arrived; the receiver cut the frame short."
        )
    return LinkHeader(length=frame[0], control=frame[1], address=Address.decode(frame[2:10]))
