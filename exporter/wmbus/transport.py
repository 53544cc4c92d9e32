"""Transport layer (EN 13757-7): the CI field, access number, status and configuration word
(docs/wmbus-frames.md, section 4)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import TruncatedError, UnsupportedError
from .link import LINK_HEADER_LENGTH, Address

CI_OFFSET = LINK_HEADER_LENGTH
BLOCK_SIZE = 16

#: CI values this decoder understands: the transport header length that follows the CI byte.
CI_HEADER_LENGTH: dict[int, int] = {
    0x78: 0,  # application data, no transport header
    0x7A: 4,  # short header: ACC STS CFG CFG
    0x72: 12,  # long header: ID(4) M(2) version type, then ACC STS CFG CFG
}

#: CI values met in wM-Bus traffic that this decoder does not implement, for a clear error.
CI_UNSUPPORTED: dict[int, str] = {
    0x8C: "an extended link layer (ELL, CI 0x8C)",
    0x8D: "an extended link layer with AES-CTR encryption (ELL, CI 0x8D)",
    0x8E: "an extended link layer (ELL, CI 0x8E)",
    0x8F: "an extended link layer (ELL, CI 0x8F)",
    0x90: "an authentication and fragmentation layer (AFL, CI 0x90, security mode 7)",
    0x5A: "a transport header addressed to the meter (CI 0x5A)",
    0x5B: "a transport header addressed to the meter (CI 0x5B)",
    0x7F: "manufacturer-specific application data (CI 0x7F)",
    0x71: "an alarm telegram (CI 0x71)",
    0x70: "an application error report (CI 0x70)",
}

#: Security modes of the configuration word (EN 13757-7 Table 18); 0 and 5 are implemented.
SECURITY_MODES: dict[int, str] = {
    0: "no encryption",
    1: "manufacturer-specific encryption",
    2: "DES-CBC with zero IV",
    3: "DES-CBC with IV",
    4: "reserved",
    5: "AES-128-CBC with IV",
    6: "reserved",
    7: "AES-128-CBC with zero IV and key derivation",
    8: "AES-128-CTR",
    9: "AES-128-GCM",
    10: "AES-128-CCM",
}

SECURITY_MODE_NONE = 0
SECURITY_MODE_AES_CBC_IV = 5


@dataclass(frozen=True, slots=True)
class Configuration:
    """The 16-bit configuration word of the short and long transport headers."""

    word: int

    @property
    def security_mode(self) -> int:
        return (self.word >> 8) & 0x1F

    @property
    def encrypted_blocks(self) -> int:
        """N: how many 16-byte blocks after the header are encrypted."""
        return (self.word >> 4) & 0x0F

    @property
    def bidirectional(self) -> bool:
        return bool(self.word & 0x8000)

    @property
    def accessible(self) -> bool:
        return bool(self.word & 0x4000)

    @property
    def synchronous(self) -> bool:
        return bool(self.word & 0x2000)

    @property
    def content_type(self) -> int:
        return (self.word >> 2) & 0x03

    @classmethod
    def for_mode5(cls, encrypted_blocks: int, *, synchronous: bool = False) -> Configuration:
        """The configuration word of a mode-5 telegram with N encrypted blocks."""
        return cls(
            (SECURITY_MODE_AES_CBC_IV << 8)
            | (encrypted_blocks << 4)
            | (0x2000 if synchronous else 0)
        )


@dataclass(frozen=True, slots=True)
class TransportHeader:
    """CI and the transport header after it; `address` is the meter identity of a long header."""

    ci: int
    access_number: int | None
    status: int | None
    configuration: Configuration
    payload_offset: int
    address: Address | None = None

    @property
    def encrypted_length(self) -> int:
        """Bytes of the payload that the configuration word declares encrypted."""
        if self.configuration.security_mode == SECURITY_MODE_NONE:
            return 0
        return BLOCK_SIZE * self.configuration.encrypted_blocks

    @property
    def required_length(self) -> int:
        """The shortest frame that holds this header and the whole encrypted area."""
        return self.payload_offset + self.encrypted_length


def announced_length(frame: bytes) -> int | None:
    """The length an encrypted frame must have by its transport header, read without building
    the header (normalisation asks this of every frame); None if unknown or not encrypted."""
    header_length = CI_HEADER_LENGTH.get(frame[CI_OFFSET]) if len(frame) > CI_OFFSET else None
    if not header_length:
        return None
    payload_offset = CI_OFFSET + 1 + header_length
    if len(frame) < payload_offset:
        return None
    configuration = Configuration(
        int.from_bytes(frame[payload_offset - 2 : payload_offset], "little")
    )
    if configuration.security_mode == SECURITY_MODE_NONE or not configuration.encrypted_blocks:
        return None
    return payload_offset + BLOCK_SIZE * configuration.encrypted_blocks


def parse_transport_header(frame: bytes) -> TransportHeader:
    """Read the CI byte and its header from a normalised frame."""
    if len(frame) <= CI_OFFSET:
        raise TruncatedError(
            f"The frame ends after {len(frame)} bytes, before its CI byte; "
            "the receiver cut the frame short."
        )
    ci = frame[CI_OFFSET]
    header_length = CI_HEADER_LENGTH.get(ci)
    if header_length is None:
        what = CI_UNSUPPORTED.get(ci, f"the transport layer CI 0x{ci:02X}")
        raise UnsupportedError(f"This telegram uses {what}, which this decoder does not support.")
    payload_offset = CI_OFFSET + 1 + header_length
    if len(frame) < payload_offset:
        raise TruncatedError(
            f"The frame ends after {len(frame)} bytes, inside its {header_length}-byte "
            "transport header; the receiver cut the frame short."
        )
    if header_length == 0:
        return TransportHeader(ci, None, None, Configuration(0), payload_offset)
    tail = frame[payload_offset - 4 : payload_offset]
    address = None
    if ci == 0x72:
        identity = frame[CI_OFFSET + 1 : CI_OFFSET + 9]  # ID(4) M(2) version type
        address = Address(
            manufacturer_code=int.from_bytes(identity[4:6], "little"),
            id_bytes=bytes(identity[0:4]),
            version=identity[6],
            device_type=identity[7],
        )
    return TransportHeader(
        ci=ci,
        access_number=tail[0],
        status=tail[1],
        configuration=Configuration(int.from_bytes(tail[2:4], "little")),
        payload_offset=payload_offset,
        address=address,
    )


def encode_transport_header(header: TransportHeader) -> bytes:
    """The CI byte and its header as sent (inverse of `parse_transport_header`)."""
    if header.ci == 0x78:
        return b"\x78"
    tail = bytes((header.access_number or 0, header.status or 0)) + (
        header.configuration.word.to_bytes(2, "little")
    )
    if header.ci == 0x72:
        if header.address is None:
            raise ValueError("a long transport header (CI 0x72) needs the meter address")
        a = header.address
        identity = (
            a.id_bytes
            + a.manufacturer_code.to_bytes(2, "little")
            + bytes((a.version, a.device_type))
        )
        return b"\x72" + identity + tail
    return bytes((header.ci,)) + tail
