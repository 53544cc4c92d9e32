"""Private files: state and spool files are created 0600 and their directories 0700, whatever
the umask (they tell when a household is at home), and a state file is replaced atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def private_directory(path: Path) -> None:
    """Create `path` 0700 if it is missing (missing parents get the usual modes, as with
    `mkdir -p`); a directory already there keeps its mode: the administrator chose it."""
    try:
        path.mkdir(mode=DIRECTORY_MODE)
    except FileExistsError:
        if not path.is_dir():
            raise
        return
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        private_directory(path)
        return
    os.chmod(path, DIRECTORY_MODE)  # the umask may have taken bits away


def open_private(path: Path, flags: int) -> int:
    """`os.open` of a file that is created 0600 whatever the umask (`flags` gets O_CREAT and
    O_CLOEXEC); the caller closes the descriptor."""
    descriptor = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(descriptor, FILE_MODE)
    except OSError:
        os.close(descriptor)
        raise
    return descriptor


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old file or the new, never half:
    a temporary file 0600 beside it, fsync, rename over `path`, fsync of the directory (which
    is created 0700 if missing). Raises `OSError`; a temporary file left over is removed."""
    private_directory(path.parent)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), FILE_MODE)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
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
