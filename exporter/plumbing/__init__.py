"""Mechanisms without product meaning, used by every floor above: the standard library only."""

from .addresses import listening_family
from .backoff import Backoff
from .connections import Admission, ConnectionLimit
from .extras import MissingExtra, import_extra, missing_extra
from .statefile import read_state, write_atomically

__all__ = [
    "Admission",
    "Backoff",
    "ConnectionLimit",
    "MissingExtra",
    "import_extra",
    "listening_family",
    "missing_extra",
    "read_state",
    "write_atomically",
]
