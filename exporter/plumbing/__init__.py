"""Mechanisms without product meaning, used by every floor above: the standard library only."""

from .addresses import EVERY_INTERFACE, interface_addresses, listening_family
from .backoff import Backoff
from .connections import Admission, ConnectionLimit
from .extras import MissingExtra, import_extra, missing_extra
from .places import directory_problem
from .suggest import did_you_mean

__all__ = [
    "EVERY_INTERFACE",
    "Admission",
    "Backoff",
    "ConnectionLimit",
    "MissingExtra",
    "did_you_mean",
    "directory_problem",
    "import_extra",
    "interface_addresses",
    "listening_family",
    "missing_extra",
]
