"""Whether this user can keep files in a directory, found by looking only (nothing is created):
the one check of every directory the exporter writes."""

from __future__ import annotations

import os
from pathlib import Path


def directory_problem(path: Path) -> str | None:
    """What stops this user from writing in `path` (or creating it): a file in its place, a
    read-only disk, no permission; None when nothing does."""
    existing = path  # os.path.exists: False, not PermissionError, inside a directory not ours
    while not os.path.exists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError as error:
        return f"{existing} cannot be examined ({error.strerror})"
    if read_only:
        return f"{existing} is on a read-only file system"
    if not os.access(existing, os.W_OK | os.X_OK):
        made = "" if existing == path else f" to create {path} in it"
        return f"{existing} is not writable for this user (uid {os.getuid()}){made}"
    return None
