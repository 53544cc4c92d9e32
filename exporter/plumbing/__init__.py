"""Mechanisms without product meaning, on the standard library only: capped backoff and atomic
state files. Every floor above may use them; they import nothing of the exporter."""

from .backoff import Backoff
from .statefile import read_state, write_atomically

__all__ = ["Backoff", "read_state", "write_atomically"]
