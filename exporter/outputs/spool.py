"""The durable on-disk queue of the InfluxDB output: a reading counts as accepted once it is here.

Points are appended, one line-protocol line each, to numbered segment files of at most
`batch_size` points; a sealed segment is one write request. A segment is deleted only after the
server accepted it, moved to `rejected/` when the server refuses it as invalid, and the oldest
are dropped (counted) when the spool would exceed its size limit.

fsync policy: every append is written through to the operating system at once, so a crash of
the exporter loses nothing; the segment is fsynced at most once per `FSYNC_INTERVAL` and when
sealed, so a power cut can lose the readings of the last second.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

FSYNC_INTERVAL = 1.0
SUFFIX = ".lp"
REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Segment:
    """A sealed batch on disk: its file, how many points, and the timestamp of the first."""

    path: Path
    points: int
    size: int
    first_timestamp: int | None


def _first_timestamp(line: bytes) -> int | None:
    try:
        return int(line.rsplit(b" ", 1)[1])
    except (IndexError, ValueError):
        return None


class Spool:
    """Segments in one directory; thread-safe. Counts what it had to drop."""

    def __init__(self, directory: Path, *, max_bytes: int, batch_size: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        self.dropped = 0  # points dropped because the spool was full
        self._lock = threading.Lock()
        self._sealed: list[Segment] = []
        self._current: IO[bytes] | None = None
        self._current_path: Path | None = None
        self._current_points = 0
        self._current_size = 0
        self._current_first: int | None = None
        self._opened_at = 0.0
        self._synced_at = 0.0
        self._bytes = 0
        directory.mkdir(parents=True, exist_ok=True)
        (directory / REJECTED).mkdir(exist_ok=True)
        names = [*directory.glob(f"*{SUFFIX}"), *(directory / REJECTED).glob(f"*{SUFFIX}")]
        self._counter = max((int(p.stem) for p in names if p.stem.isdigit()), default=0)
        self._recover()

    def _recover(self) -> None:
        """Resume after a restart: every segment left is sealed, an unfinished last line cut."""
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                data = data[: data.rfind(b"\n") + 1]  # a write cut short by a crash
                path.write_bytes(data)
            if not data:
                path.unlink()
                continue
            lines = data.count(b"\n")
            self._sealed.append(
                Segment(path, lines, len(data), _first_timestamp(data.split(b"\n", 1)[0]))
            )
            self._bytes += len(data)

    def _next_path(self) -> Path:
        self._counter += 1
        return self.directory / f"{self._counter:012d}{SUFFIX}"

    def append(self, lines: list[str], timestamp: int) -> None:
        """Write points through to the OS (fsync at most once a second)."""
        data = "".join(f"{line}\n" for line in lines).encode()
        with self._lock:
            if self._current is None:
                self._current_path = self._next_path()
                self._current = self._current_path.open("ab")
                self._current_points = self._current_size = 0
                self._current_first = timestamp
                self._opened_at = time.monotonic()
            self._current.write(data)
            self._current.flush()
            self._current_points += len(lines)
            self._current_size += len(data)
            self._bytes += len(data)
            now = time.monotonic()
            if now - self._synced_at >= FSYNC_INTERVAL:
                os.fsync(self._current.fileno())
                self._synced_at = now
            if self._current_points >= self.batch_size:
                self._seal()
            self._enforce_limit()

    def _seal(self) -> None:
        if self._current is None or self._current_path is None:
            return
        self._current.flush()
        os.fsync(self._current.fileno())
        self._current.close()
        self._sealed.append(
            Segment(
                self._current_path, self._current_points, self._current_size, self._current_first
            )
        )
        self._current = None
        self._current_path = None

    def seal_if_older(self, seconds: float) -> None:
        """Seal the open segment once it has waited `seconds` (the flush interval)."""
        with self._lock:
            if self._current is not None and time.monotonic() - self._opened_at >= seconds:
                self._seal()

    def _enforce_limit(self) -> None:
        while self._bytes > self.max_bytes and self._sealed:
            oldest = self._sealed.pop(0)
            with contextlib.suppress(FileNotFoundError):
                oldest.path.unlink()
            self._bytes -= oldest.size
            self.dropped += oldest.points

    def oldest(self) -> Segment | None:
        with self._lock:
            return self._sealed[0] if self._sealed else None

    def read(self, segment: Segment) -> bytes:
        return segment.path.read_bytes()

    def remove(self, segment: Segment) -> None:
        """The server accepted the segment."""
        with self._lock:
            if segment in self._sealed:
                self._sealed.remove(segment)
                self._bytes -= segment.size
            with contextlib.suppress(FileNotFoundError):
                segment.path.unlink()

    def reject(self, segment: Segment) -> Path:
        """The server refused the segment as invalid: keep it aside for a human, never retry."""
        with self._lock:
            if segment in self._sealed:
                self._sealed.remove(segment)
                self._bytes -= segment.size
            target = self.directory / REJECTED / segment.path.name
            with contextlib.suppress(FileNotFoundError):
                segment.path.replace(target)
            return target

    def close(self) -> None:
        with self._lock:
            self._seal()

    @property
    def points(self) -> int:
        with self._lock:
            return sum(s.points for s in self._sealed) + (
                self._current_points if self._current is not None else 0
            )

    @property
    def size(self) -> int:
        with self._lock:
            return self._bytes

    @property
    def oldest_timestamp(self) -> int | None:
        with self._lock:
            if self._sealed:
                return self._sealed[0].first_timestamp
            return self._current_first if self._current is not None else None
