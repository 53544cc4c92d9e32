"""Entries of a state file that the configuration no longer names, set aside for a while.

A state file (the calendar's, say) keeps one entry per configured thing. When a thing leaves
the configuration its entry moves to a file of its own beside it, one JSON line per entry with
the time it was set aside (`{"key": ..., "since": ..., "entry": ...}`); it is read back only if
the thing returns, and dropped `keep_for` seconds after it was set aside, with one log line
saying how many. So the running state and the file rewritten every few minutes hold only what
the configuration needs, and something commented out for a day comes back as it was.

The owner keeps its own file whole and in order: it sets entries aside (`put`) before it saves
its file without them (and keeps them in its file while `put` fails), takes them back (`take`)
and drops them here (`drop`) only after it saved its file with them. An entry in both files is
the owner's (the newer). One thread at a time uses a `SetAside`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RETRY = 3600.0  # seconds before a rewrite the disk refused is tried again by `expire`
_DECODER = json.JSONDecoder()
_KEY = b'{"key":'  # how every line begins: the key and the time come first, the entry last


def _line(key: str, since: float, entry: Any) -> bytes:
    head = json.dumps({"key": key, "since": since}, separators=(",", ":"))[:-1]
    return f'{head},"entry":{json.dumps(entry, separators=(",", ":"))}}}\n'.encode()


def _head(line: bytes) -> tuple[str, float] | None:
    """The key and time of a line, read without its entry (None: not a line of ours)."""
    if not line.startswith(_KEY):
        return None
    try:
        text = line.decode()
        key, end = _DECODER.raw_decode(text, len(_KEY))
        since, _ = _DECODER.raw_decode(text, text.index(":", end) + 1)
    except ValueError:
        return None
    if not isinstance(key, str) or not isinstance(since, int | float):
        return None
    return key, float(since)


class SetAside:
    """The entries set aside from one state file, in `path`; `write(path, data)` replaces a
    file atomically (the owner's writer) and raises `OSError` when it cannot."""

    def __init__(
        self,
        path: Path,
        keep_for: float,
        what: str,
        write: Callable[[Path, bytes], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.keep_for = keep_for
        self.what = what  # whose entries, for the log: "the meters no longer configured"
        self._write = write
        self._clock = clock
        self._due = -math.inf  # when the oldest entry expires: look at the file once first
        self._failing = False

    def put(self, entries: Mapping[str, Any]) -> bool:
        """Set these entries aside now (an entry already aside is replaced); False when the
        disk refused (the owner keeps them)."""
        if not entries:
            return True
        now = self._clock()
        return self._rewrite({key: (now, _line(key, now, entry)) for key, entry in entries.items()})

    def exchange(
        self, leaving: Mapping[str, Any], coming: Collection[str], keep_for: float
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """What an owner does on a new configuration: set the leaving entries aside, to be kept
        `keep_for` seconds from now on, and take the coming ones' back. Returns the entries taken
        back (dropped here only by `drop`) and the leaving ones the disk refused (the owner keeps
        them in its own file, and offers them again next time)."""
        self.keep_for = keep_for
        refused = {} if self.put(leaving) else dict(leaving)
        return (self.take(coming) if coming else {}), refused

    def take(self, keys: Collection[str]) -> dict[str, Any]:
        """The entries of these keys that are set aside; they stay here until `drop`."""
        wanted = set(keys)
        try:
            entries = self._entries(wanted)
        except OSError as error:
            self._report(error)
            return {}
        return {key: json.loads(line)["entry"] for key, (_, line) in entries.items() if line}

    def drop(self, keys: Collection[str]) -> None:
        """Forget the entries of these keys (their owner saved them in its own file)."""
        if keys:
            self._rewrite({}, set(keys))

    def expire(self) -> None:
        """Drop the entries set aside longer than `keep_for` (cheap until one is due)."""
        if self._clock() >= self._due:
            self._rewrite({})

    def _entries(self, lines_of: Collection[str] = ()) -> dict[str, tuple[float, bytes]]:
        """Every entry in the file by key (a later line of a key wins): the time it was set
        aside, and its line for the keys in `lines_of` (else b""). Read line by line, so that
        a fleet's file is never held whole only to learn when its entries expire. Raises
        `OSError` when the file is there but cannot be read."""
        out: dict[str, tuple[float, bytes]] = {}
        damaged = 0
        try:
            file = self.path.open("rb")
        except FileNotFoundError:
            return out
        with file:
            for line in file:
                head = _head(line)
                if head is None:
                    damaged += bool(line.strip())
                    continue
                key, since = head
                kept = line if line.endswith(b"\n") else line + b"\n"
                out[key] = (since, kept if key in lines_of else b"")
        if damaged:
            log.warning("%s: %d damaged lines skipped", self.path, damaged)
        return out

    def _report(self, error: OSError) -> None:
        if not self._failing:
            log.warning(
                "cannot keep the entries of %s in %s (%s)",
                self.what,
                self.path,
                error.strerror or error,
            )
        self._failing = True

    def _rewrite(
        self, added: dict[str, tuple[float, bytes]], removed: Collection[str] = ()
    ) -> bool:
        """The file with `added`, without `removed` and without what expired; False when the
        disk refused."""
        now = self._clock()
        try:
            heads = self._entries()  # first the times only: most often nothing changes
            expired = {key for key, (since, _) in heads.items() if since < now - self.keep_for}
            dropped = set(removed)
            changed = bool(expired or added or heads.keys() & dropped)
            staying = heads.keys() - expired - dropped - added.keys()
            added = {key: entry for key, entry in added.items() if key not in dropped}
            sinces = [heads[key][0] for key in staying]
            sinces += [since for since, _ in added.values()]
            self._due = min(sinces, default=math.inf) + self.keep_for
            if not changed:
                return True
            entries = self._entries(staying) if staying else {}
            entries = {key: entry for key, entry in entries.items() if key in staying}
            entries.update(added)
            if entries:
                self._write(self.path, b"".join(line for _, line in entries.values()))
            else:
                self.path.unlink(missing_ok=True)
        except OSError as error:
            self._due = now + RETRY
            self._report(error)
            return False
        self._failing = False
        if expired:
            log.info(
                "%s: forgot %d of %s (set aside more than %g days ago)",
                self.path.name,
                len(expired),
                self.what,
                self.keep_for / 86400,
            )
        return True
