"""The decode pipeline: receiver bytes to a `Telegram` with typed records, or a `WMBusError`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import MalformedError, UnsupportedError, WMBusError
from .frame import best_effort_strip, normalise
from .link import Address, LinkHeader, parse_link_header
from .records import Records, read_records
from .security import CHECK_BYTES, KeyVariant, MeterKey, mode5_plaintexts
from .transport import (
    SECURITY_MODE_AES_CBC_IV,
    SECURITY_MODE_NONE,
    SECURITY_MODES,
    TransportHeader,
    parse_transport_header,
)

#: Either one key for every telegram, or a lookup from the meter's address to its key.
KeyLookup = Callable[[Address], MeterKey | None]


@dataclass(frozen=True, slots=True)
class Telegram:
    """A decoded telegram: headers, records in order, and how the payload was read."""

    frame: bytes
    link: LinkHeader
    transport: TransportHeader
    records: Records
    #: Decrypted with the key given. False for security mode 0 and for a mode-5 area that
    #: arrived already in clear (it starts 2F2F): such a telegram decodes without any key, so
    #: it proves nothing about the key; what to make of it is the caller's policy.
    encrypted: bool
    key_variant: KeyVariant | None
    ignored_bytes: int  # bytes after the encrypted area (e.g. an old rtl_433 CRC): not parsed

    @property
    def address(self) -> Address:
        """The meter's identity: the long transport header's if present, else the link's."""
        return self.transport.address or self.link.address


@dataclass(frozen=True, slots=True)
class Peek:
    """What the headers of a frame say, read without decrypting: the canonical frame, the link
    header, and the transport header when it can be read (`transport_error` otherwise)."""

    frame: bytes
    link: LinkHeader
    transport: TransportHeader | None
    transport_error: WMBusError | None = None

    @property
    def address(self) -> Address:
        return (self.transport.address if self.transport else None) or self.link.address

    @property
    def encrypted(self) -> bool:
        """Whether the payload is encrypted (a mode-5 area not already in clear)."""
        transport = self.transport
        if transport is None or transport.configuration.security_mode == SECURITY_MODE_NONE:
            return False
        start = transport.payload_offset
        return self.frame[start : start + len(CHECK_BYTES)] != CHECK_BYTES


def _context(raw: bytes) -> tuple[LinkHeader | None, TransportHeader | None]:
    """Whatever headers can be read from a frame that failed, to name the meter in the error."""
    frame = best_effort_strip(raw)
    try:
        link = parse_link_header(frame)
    except WMBusError:
        return None, None
    try:
        return link, parse_transport_header(frame)
    except WMBusError:
        return link, None


def peek(raw: bytes) -> Peek:
    """Normalise a frame as a receiver handed it over and read its headers; raises only
    `WMBusError` (with the headers that could be read) when not even the link header can."""
    try:
        frame = normalise(raw)
    except WMBusError as error:
        raise error.with_context(*_context(raw)) from None
    link = parse_link_header(frame)
    try:
        return Peek(frame, link, parse_transport_header(frame))
    except WMBusError as error:
        return Peek(frame, link, None, error.with_context(link, None))


def decode(raw: bytes | Peek, keys: MeterKey | KeyLookup | None = None) -> Telegram:
    """Decode one frame (as a receiver handed it over, or already peeked at); raises only
    `WMBusError`."""
    peeked = raw if isinstance(raw, Peek) else peek(raw)
    if peeked.transport is None:
        assert peeked.transport_error is not None
        raise peeked.transport_error
    try:
        return _decode_payload(peeked.frame, peeked.link, peeked.transport, keys)
    except WMBusError as error:
        raise error.with_context(peeked.link, peeked.transport) from None


def _decode_payload(
    frame: bytes,
    link: LinkHeader,
    transport: TransportHeader,
    keys: MeterKey | KeyLookup | None,
) -> Telegram:
    mode = transport.configuration.security_mode
    start = transport.payload_offset
    if mode == SECURITY_MODE_NONE or (
        mode == SECURITY_MODE_AES_CBC_IV and not transport.encrypted_length
    ):
        records = read_records(frame, start)
        return Telegram(frame, link, transport, records, False, None, 0)
    if mode != SECURITY_MODE_AES_CBC_IV:
        name = SECURITY_MODES.get(mode, "reserved")
        raise UnsupportedError(
            f"This telegram uses security mode {mode} ({name}); only mode 5 (AES-128-CBC) "
            "and unencrypted telegrams are supported.",
        )
    address = transport.address or link.address
    key = keys(address) if callable(keys) else keys
    failure: MalformedError | None = None
    flawed: Telegram | None = None  # records that parse, one of them invalid
    for decrypted in mode5_plaintexts(frame, address, transport, key):
        try:
            records = read_records(decrypted.plaintext)
        except MalformedError as error:
            failure = failure or error  # a wrong key that passed the check by chance
            continue
        telegram = Telegram(
            frame,
            link,
            transport,
            records,
            decrypted.variant is not None,
            decrypted.variant,
            len(frame) - transport.required_length,
        )
        if not records.invalid:
            return telegram
        flawed = flawed or telegram  # another key candidate may read it cleanly
    if flawed is not None:
        return flawed
    assert failure is not None  # mode5_plaintexts yields at least once or raises
    raise failure
