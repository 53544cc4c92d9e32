"""Mechanisms without product meaning, used by every floor above: the standard library only."""

from .addresses import EVERY_INTERFACE, interface_addresses, listening_family, parse_listen
from .backoff import Backoff
from .connections import Admission, ConnectionLimit
from .extras import MissingExtra, import_extra, missing_extra
from .files import open_private, private_directory, read_state, write_atomically
from .memory import collector_paused, give_back_memory, limit_malloc_arenas
from .places import directory_problem
from .ratelimit import Due, RateLimit, RateLimitedLog
from .setaside import SetAside
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
    "SetAside",
    "collector_paused",
    "did_you_mean",
    "directory_problem",
    "give_back_memory",
    "import_extra",
    "interface_addresses",
    "limit_malloc_arenas",
    "listening_family",
    "missing_extra",
    "open_private",
    "parse_listen",
    "private_directory",
    "read_state",
    "write_atomically",
]
