"""Mechanisms without product meaning, used by every floor above: the standard library only."""

from .addresses import listening_family
from .backoff import Backoff
from .extras import MissingExtra, import_extra, missing_extra

__all__ = ["Backoff", "MissingExtra", "import_extra", "listening_family", "missing_extra"]
