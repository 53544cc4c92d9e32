"""Mechanisms without product meaning, used by every floor above: the standard library only."""

from .addresses import EVERY_INTERFACE, interface_addresses, listening_family, parse_listen
from .backoff import Backoff
from .connections import Admission, ConnectionLimit
from .extras import MissingExtra, import_extra, missing_extra
from .files import open_private, private_directory, read_state, write_atomically
from .places import directory_problem
from .ratelimit import Due, RateLimit, RateLimitedLog
from .suggest import did_you_mean

__all__ = [
    "EVERY_INTERFACE",
    "Admission",
    "Backoff",
    "ConnectionLimit",
    "Due",
    "MissingExtra",
    "RateLimit",
    "RateLimitedLog",
    "did_you_mean",
    "directory_problem",
    "import_extra",
    "interface_addresses",
    "listening_family",
    "missing_extra",
    "open_private",
    "parse_listen",
    "private_directory",
    "read_state",
    "write_atomically",
]
