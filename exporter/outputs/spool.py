"""The durable on-disk queue of the InfluxDB output: a reading counts as accepted once it is here.

Points are appended, one line-protocol line each, to numbered segment files of at most
`batch_size` points; a sealed segment is one write request. A segment is deleted only after the
server accepted it, moved to `rejected/` when the server refuses it as invalid, and the oldest
are dropped (counted) when the spool would exceed its size limit. Files are created 0600 and
directories 0700, whatever the umask (plumbing's private files).

fsync policy: every append is written through to the operating system at once, so a crash of
the exporter loses nothing; the segment is fsynced at most once per `FSYNC_INTERVAL` and when
sealed, so a power cut can lose the readings of the last second.

The disk may fill up, turn read-only or vanish while the exporter runs: then the spool drops
readings and counts them by reason (`disk_full`, `spool_error`), logs one line saying what to
do, and resumes by itself when the disk allows it again. Nothing here raises to the caller.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..amiplus import OUTPUT_ADVICE
from ..plumbing import open_private, private_directory

log = logging.getLogger(__name__)

FSYNC_INTERVAL = 1.0
REOPEN_EVERY = 1.0  # seconds between attempts to use a spool directory that failed
SUFFIX = ".lp"
REJECTED = "rejected"
MS_FROM = 10**11  # a timestamp below this is in seconds: a segment spooled before ms precision

#: Why readings were dropped on their way into the spool (what to do: amiplus.OUTPUT_ADVICE).
DISK_FULL, SPOOL_ERROR, SPOOL_FULL = "disk_full", "spool_error", "spool_full"
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def drop_reason(error: OSError) -> str:
    """The drop reason of a failed write: the disk is full, or anything else went wrong."""
    return DISK_FULL if error.errno in _DISK_FULL_ERRNOS else SPOOL_ERROR


@dataclass(frozen=True, slots=True)
class Segment:
    """A sealed batch on disk: its file, how many points, and the time of the first (seconds)."""

    path: Path
    points: int
    size: int
    first_timestamp: float | None


def _timestamp(line: bytes) -> int | None:
    try:
        return int(line.rsplit(b" ", 1)[1])
    except (IndexError, ValueError):
        return None


def _seconds(timestamp: int | None) -> float | None:
    """A line's timestamp in seconds, whichever precision it was spooled with."""
    if timestamp is None:
        return None
    return float(timestamp) if timestamp < MS_FROM else timestamp / 1000


def _to_milliseconds(line: bytes) -> bytes:
    head, _, stamp = line.rpartition(b" ")
    return head + b" " + str(int(stamp) * 1000).encode()


def clean(data: bytes) -> bytes:
    """A segment's points as they are sent: an unfinished last line (a crash) cut, lines of NULs
    or blanks (a file system's crash debris) dropped, and the second timestamps of segments
    spooled by older versions turned into milliseconds (every write uses precision ms)."""
    data = data[: data.rfind(b"\n") + 1]
    if b"\x00" in data or b"\n\n" in data or data.startswith(b"\n"):
        lines = [line for line in data.split(b"\n") if line.strip(b"\x00 \t\r")]
        data = b"".join(line + b"\n" for line in lines)
    first = _timestamp(data.split(b"\n", 1)[0])
    if first is not None and first < MS_FROM:
        data = b"".join(_to_milliseconds(line) + b"\n" for line in data.splitlines())
    return data


def unusable_entries(directory: Path) -> list[str]:
    """Entries of a spool directory that look like segments but cannot be used (a directory
    named `*.lp`, a file that cannot be read): each is skipped, with this warning."""
    found: list[str] = []
    try:
        entries = sorted(directory.glob(f"*{SUFFIX}"))
    except OSError:
        return found
    for path in entries:
        if not path.is_file():
            found.append(f"{path} is not a file; it is skipped (remove or rename it)")
        elif not os.access(path, os.R_OK):
            found.append(f"{path} cannot be read; it is skipped (fix its permissions)")
    return found


class Spool:
    """Segments in one directory; thread-safe. Counts what it had to drop, by reason."""

    def __init__(self, directory: Path, *, max_bytes: int, batch_size: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        self.dropped: Counter[str] = Counter()  # points given up, by reason
        self.problem: str | None = None  # what keeps readings out of the spool right now
        self._lock = threading.Lock()
        self._sealed: list[Segment] = []
        self._fd: int | None = None
        self._current_path: Path | None = None
        self._current_points = 0
        self._current_size = 0
        self._current_first: float | None = None
        self._opened_at = 0.0
        self._synced_at = 0.0
        self._bytes = 0
        self._counter = 0
        self._ready = False
        self._tried_at = 0.0
        self._leftovers: list[Path] = []  # delivered or dropped, but not deletable yet
        with self._lock:
            self._prepare()

    def _prepare(self) -> bool:
        """Create the directory and resume what it holds, once; False while the disk refuses."""
        if self._ready:
            return True
        self._tried_at = time.monotonic()
        try:
            private_directory(self.directory)
            self._recover()
        except OSError as error:
            self._report(drop_reason(error), error)
            return False
        self._ready = True
        return True

    def _recover(self) -> None:
        """Resume after a restart: every usable segment left is sealed, in order."""
        for warning in unusable_entries(self.directory):
            log.warning("InfluxDB spool: %s", warning)
        names = list(self.directory.glob(f"*{SUFFIX}"))
        with contextlib.suppress(OSError):
            names += (self.directory / REJECTED).glob("*")
        self._counter = max((int(p.stem) for p in names if p.stem.isdigit()), default=0)
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            if not path.is_file():
                continue
            try:
                data = clean(path.read_bytes())
            except OSError as error:
                log.warning("InfluxDB spool: %s cannot be read (%s); skipped", path, error)
                continue
            if not data:
                self._delete(path)
                continue
            first = _seconds(_timestamp(data.split(b"\n", 1)[0]))
            self._sealed.append(Segment(path, data.count(b"\n"), len(data), first))
            self._bytes += len(data)

    def append(self, lines: list[str], received_at: float) -> None:
        """Write points through to the OS (fsync at most once a second); never raises: a point
        that cannot be written is dropped and counted."""
        data = "".join(f"{line}\n" for line in lines).encode()
        with self._lock:
            if not self._ready and (
                time.monotonic() - self._tried_at < REOPEN_EVERY or not self._prepare()
            ):
                self.dropped[self.problem or SPOOL_ERROR] += len(lines)
                return
            try:
                if self._fd is None:
                    self._open_segment(received_at)
                self._write(data)
            except OSError as error:
                self._failed(error, len(lines))
                return
            self._current_points += len(lines)
            self._current_size += len(data)
            self._bytes += len(data)
            self._recovered()
            now = time.monotonic()
            if now - self._synced_at >= FSYNC_INTERVAL:
                self._sync()
                self._synced_at = now
            if self._current_points >= self.batch_size:
                self._seal()
            self._enforce_limit()

    def _open_segment(self, received_at: float) -> None:
        self._counter += 1
        path = self.directory / f"{self._counter:012d}{SUFFIX}"
        flags = os.O_WRONLY | os.O_APPEND
        try:
            fd = open_private(path, flags)
        except FileNotFoundError:  # the directory vanished: make it again, once
            private_directory(self.directory)
            fd = open_private(path, flags)
        self._fd, self._current_path = fd, path
        self._current_points = self._current_size = 0
        self._current_first = received_at
        self._opened_at = time.monotonic()

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        written = 0
        while written < len(data):
            written += os.write(self._fd, view[written:])

    def _failed(self, error: OSError, points: int) -> None:
        """A write failed: drop the points, leave the open segment whole, say it once."""
        reason = drop_reason(error)
        self.dropped[reason] += points
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._current_size)  # no half line left behind
            if self._current_points:
                self._seal()
            else:
                self._close_fd()
                if self._current_path is not None:
                    self._delete(self._current_path)
                self._current_path = None
        self._report(reason, error)

    def _report(self, reason: str, error: OSError) -> None:
        if self.problem == reason:
            return
        self.problem = reason
        log.error(
            "InfluxDB spool %s: %s; readings for InfluxDB are dropped and counted in "
            'amiplus_influxdb_points_dropped_total{reason="%s"}. %s',
            self.directory,
            error.strerror or error,
            reason,
            OUTPUT_ADVICE[f"influxdb:{reason}"].en,
        )

    def _recovered(self) -> None:
        if self.problem is None:
            return
        log.warning(
            "InfluxDB spool %s takes readings again (%d dropped while it could not)",
            self.directory,
            self.dropped[DISK_FULL] + self.dropped[SPOOL_ERROR],
        )
        self.problem = None

    def _sync(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):  # a power cut may lose the last second; no more
                os.fsync(self._fd)

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _seal(self) -> None:
        if self._fd is None or self._current_path is None:
            return
        self._sync()
        self._close_fd()
        self._sealed.append(
            Segment(
                self._current_path, self._current_points, self._current_size, self._current_first
            )
        )
        self._current_path = None

    def seal_if_older(self, seconds: float) -> None:
        """Seal the open segment once it has waited `seconds` (the flush interval)."""
        with self._lock:
            if self._fd is not None and time.monotonic() - self._opened_at >= seconds:
                self._seal()

    def _enforce_limit(self) -> None:
        while self._bytes > self.max_bytes and self._sealed:
            oldest = self._sealed.pop(0)
            self._delete(oldest.path)
            self._bytes -= oldest.size
            self.dropped[SPOOL_FULL] += oldest.points

    def _delete(self, path: Path) -> None:
        """Delete a file; one the disk will not let go is retried by `tidy`."""
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            if path not in self._leftovers:
                self._leftovers.append(path)
                log.warning(
                    "InfluxDB spool: cannot delete %s (%s); retrying later. Until then a "
                    "restart sends its points again, which changes nothing in InfluxDB.",
                    path,
                    error.strerror or error,
                )

    def tidy(self) -> None:
        """Retry deleting files the disk did not let go (the writer calls it now and then)."""
        with self._lock:
            leftovers, self._leftovers = self._leftovers, []
            for path in leftovers:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
                    continue
                self._leftovers.append(path)

    def oldest(self) -> Segment | None:
        with self._lock:
            return self._sealed[0] if self._sealed else None

    def read(self, segment: Segment) -> bytes | None:
        """The segment's points as they are sent; None when it cannot be read now (the
        writer retries later). A segment whose file is gone is dropped and counted."""
        try:
            return clean(segment.path.read_bytes())
        except FileNotFoundError:
            with self._lock:
                if self._forget(segment):
                    self.dropped[SPOOL_ERROR] += segment.points
                    log.error(
                        "InfluxDB spool: %s vanished; %d points lost", segment.path, segment.points
                    )
            return None
        except OSError as error:
            log.warning("InfluxDB spool: cannot read %s (%s)", segment.path, error)
            return None

    def _forget(self, segment: Segment) -> bool:
        if segment not in self._sealed:
            return False
        self._sealed.remove(segment)
        self._bytes -= segment.size
        return True

    def remove(self, segment: Segment) -> None:
        """The server accepted the segment."""
        with self._lock:
            self._forget(segment)
            self._delete(segment.path)

    def reject(self, segment: Segment) -> Path:
        """The server refused the segment as invalid: keep it aside for a human, never retry."""
        target = self.directory / REJECTED / segment.path.name
        with self._lock:
            self._forget(segment)
            try:
                private_directory(target.parent)
                segment.path.replace(target)
            except FileNotFoundError:
                pass
            except OSError as error:  # left in place: the next start sends and sets it aside
                log.warning("InfluxDB spool: cannot move %s aside (%s)", segment.path, error)
                return segment.path
            return target

    def close(self) -> None:
        with self._lock:
            self._seal()

    @property
    def points(self) -> int:
        with self._lock:
            return sum(s.points for s in self._sealed) + (
                self._current_points if self._fd is not None else 0
            )

    @property
    def size(self) -> int:
        with self._lock:
            return self._bytes

    @property
    def oldest_timestamp(self) -> float | None:
        """When the oldest waiting point was received (Unix seconds)."""
        with self._lock:
            if self._sealed:
                return self._sealed[0].first_timestamp
            return self._current_first if self._fd is not None else None
