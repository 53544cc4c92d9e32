"""Sans-I/O Wireless M-Bus core: bytes in, typed telegrams or `WMBusError` out.

Imports only the standard library and `cryptography`.
"""

from .errors import (
    CRCError,
    DecryptionError,
    KeyFormatError,
    MalformedError,
    NoKeyError,
    TruncatedError,
    UnsupportedError,
    WMBusError,
)
from .link import Address, LinkHeader
from .records import Record
from .security import KeyVariant, MeterKey
from .telegram import KeyLookup, Peek, Telegram, decode, peek
from .transport import TransportHeader

__all__ = [
    "Address",
    "CRCError",
    "DecryptionError",
    "KeyFormatError",
    "KeyLookup",
    "KeyVariant",
    "LinkHeader",
    "MalformedError",
    "MeterKey",
    "NoKeyError",
    "Peek",
    "Record",
    "Telegram",
    "TransportHeader",
    "TruncatedError",
    "UnsupportedError",
    "WMBusError",
    "decode",
    "peek",
]
