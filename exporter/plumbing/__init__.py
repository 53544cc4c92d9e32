"""Mechanisms without product meaning, used by every floor above: the standard library only."""

from .addresses import listening_family, parse_listen
from .backoff import Backoff
from .connections import Admission, ConnectionLimit
from .extras import MissingExtra, import_extra, missing_extra
from .files import open_private, private_directory, read_state, write_atomically
from .ratelimit import Due, RateLimit, RateLimitedLog

__all__ = [
    "Admission",
    "Backoff",
    "ConnectionLimit",
    "Due",
    "MissingExtra",
    "RateLimit",
    "RateLimitedLog",
    "import_extra",
    "listening_family",
    "missing_extra",
    "open_private",
    "parse_listen",
    "private_directory",
    "read_state",
    "write_atomically",
]
