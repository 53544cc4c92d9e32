"""State files that survive crashes: replaced whole or not at all.

A file is written to a temporary name beside it (mode 0600), flushed to the disk, renamed over
the old one, and the directory is flushed too, so after a power cut the file is either the old
or the new version, never half of one. Directories made for state are 0700 whatever the umask:
state may hold what a household would rather keep to itself.
"""

from __future__ import annotations

import os
from pathlib import Path


def _directory(path: Path) -> None:
    """Create `path` (and its parents) as 0700 when missing."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)  # mkdir's mode is narrowed by the umask, never widened


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8) atomically; raises `OSError` when it cannot."""
    _directory(path.parent)
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_state(path: Path) -> str | None:
    """The text of a state file, or None when there is none yet; raises `OSError` when it
    exists but cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
