"""Which code a benchmark figure belongs to: the git commit and a digest of the sources."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import exporter

REPO = Path(__file__).resolve().parents[2]


def _git(*arguments: str) -> str:
    try:
        done = subprocess.run(
            ["git", *arguments], check=False, capture_output=True, text=True, cwd=REPO
        )
    except OSError:
        return ""
    return done.stdout


def source_state() -> str:
    """The git commit and a digest of the exporter's sources, to tie figures to the code."""
    package = Path(exporter.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    head = _git("rev-parse", "--short", "HEAD").strip()
    changed = _git("status", "--porcelain", "--", "exporter").splitlines()
    state = f"git {head or '?'}"
    if changed:
        state += f" + {len(changed)} uncommitted file(s) under exporter/"
    return f"{state}; sha256 of exporter/**/*.py {digest.hexdigest()[:12]}"
