"""Sans-I/O Wireless M-Bus core: bytes in, typed telegrams or `WMBusError` out.

Imports only the standard library and `cryptography`.
"""

from .cache import BoundedCache, Derives, TableViews
from .encoder import encode_data, encode_frame, encode_header, vif_exponents
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
from .frame import format_a_length, strip_format_a, strip_format_b
from .link import DEVICE_TYPES, LINK_HEADER_LENGTH, Address, LinkHeader, manufacturer_code
from .records import (
    Coding,
    DataInformation,
    Function,
    InvalidValue,
    Record,
    RecordHeader,
    Value,
    parse_header,
)
from .security import KeyVariant, MeterKey, shown
from .telegram import KeyLookup, Peek, Telegram, decode, peek
from .timepoint import TimePoint, TimeType
from .transport import TransportHeader
from .vif import Combinable, Phase, Quantity

__all__ = [
    "DEVICE_TYPES",
    "LINK_HEADER_LENGTH",
    "Address",
    "BoundedCache",
    "CRCError",
    "Coding",
    "Combinable",
    "DataInformation",
    "DecryptionError",
    "Derives",
    "Function",
    "InvalidValue",
    "KeyFormatError",
    "KeyLookup",
    "KeyVariant",
    "LinkHeader",
    "MalformedError",
    "MeterKey",
    "NoKeyError",
    "Peek",
    "Phase",
    "Quantity",
    "Record",
    "RecordHeader",
    "TableViews",
    "Telegram",
    "TimePoint",
    "TimeType",
    "TransportHeader",
    "TruncatedError",
    "UnsupportedError",
    "Value",
    "WMBusError",
    "decode",
    "encode_data",
    "encode_frame",
    "encode_header",
    "format_a_length",
    "manufacturer_code",
    "parse_header",
    "peek",
    "shown",
    "strip_format_a",
    "strip_format_b",
    "vif_exponents",
]
