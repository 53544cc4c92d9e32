"""Mechanisms without product meaning, used by every floor above: the standard library only."""

from .backoff import Backoff

__all__ = [
    "Backoff",
]
