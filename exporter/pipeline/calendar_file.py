"""The calendar's file in the state directory: every configured meter's marks in one JSON
document (`{"format": 2, "meters": {...}}`, docs/contracts.md section 8), replaced atomically.
The entries of meters no longer configured are set aside beside it (plumbing's `SetAside`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..plumbing import write_atomically

log = logging.getLogger(__name__)


class Store:
    """The calendar's file: the configured meters' marks in one JSON document, replaced
    atomically (plumbing's `write_atomically`: a file 0600 in a directory 0700). One file, not
    one per meter: a fleet's thousands of meters cost one write every few minutes and one read
    at start. A directory that cannot be written is reported once and the calendar carries on
    in memory."""

    FORMAT = 2

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / "calendar.json" if directory else None
        self._failing = False

    def load(self) -> dict[str, Any]:
        """Every meter's entry in the file, as JSON (none when there is no file or it is
        unreadable)."""
        if self.path is None:
            return {}
        try:
            document = json.loads(self.path.read_bytes())
            if document.get("format") != self.FORMAT:
                raise ValueError(f"format {document.get('format')!r}, not {self.FORMAT}")
            meters: dict[str, Any] = document["meters"]
            return dict(meters)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning(
                "calendar file %s not read (%s): the periods start again from now", self.path, error
            )
            return {}

    def save(self, meters: Mapping[str, dict[str, Any]]) -> bool:
        """Replace the file with these meters' calendars."""
        path = self.path
        if path is None:
            return True
        try:
            # dumps, not dump: json.dump streams through the pure-Python encoder (four times
            # slower; 20,000 meters took 2 s of CPU)
            text = json.dumps({"format": self.FORMAT, "meters": meters}, separators=(",", ":"))
            write_atomically(path, text.encode())
        except OSError as error:
            if not self._failing:
                log.warning(
                    "cannot keep calendar periods in %s (%s): they start again when the exporter "
                    "restarts; set state: directory: to a writable place",
                    path.parent,
                    error.strerror or error,
                )
            self._failing = True
            return False
        if self._failing:
            log.info("calendar periods are kept in %s again", path.parent)
        self._failing = False
        return True
