"""Where the exporter keeps its state (the calendar periods, the InfluxDB spool), and whether
this user can write there: looked at (never created) when the configuration is read, so the
exporter says it at start and `check-config` warns, each pointing at the line to change."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..amiplus import SPOOL_UNWRITABLE, STATE_UNWRITABLE
from ..plumbing import directory_problem
from .reader import Reader

if TYPE_CHECKING:
    from yaml import Node

NAME = "amiplus-exporter"
#: root's state directory, and the one systemd's StateDirectory= and the image name.
SYSTEM_STATE_DIRECTORY = Path("/var/lib") / NAME


def default_state_directory(env: Mapping[str, str]) -> Path:
    """$STATE_DIRECTORY (systemd's StateDirectory=, the container image), else
    /var/lib/amiplus-exporter for root, else $XDG_STATE_HOME/amiplus-exporter or
    ~/.local/state/amiplus-exporter: a place this user can write."""
    given = env.get("STATE_DIRECTORY", "").split(":")[0]
    if given:
        return Path(given)
    if os.geteuid() == 0:
        return SYSTEM_STATE_DIRECTORY
    xdg = env.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / NAME
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "state" / NAME


def default_spool(env: Mapping[str, str] = os.environ) -> Path:
    """The InfluxDB spool unless `influxdb: spool:` says otherwise."""
    return default_state_directory(env) / "spool"


#: What an unwritable directory costs, and the key that moves it, by advice code.
_CONSEQUENCE = {
    STATE_UNWRITABLE: (
        "state directory",
        "the calendar periods would start again with every start",
        "state: directory:",
    ),
    SPOOL_UNWRITABLE: (
        "influxdb spool",
        "readings for InfluxDB would be dropped",
        "influxdb: spool:",
    ),
}


def check_directory(reader: Reader, node: Node | None, path: Path, code: str) -> None:
    """Warn, at the line of `node`, when this user cannot write `path`: what it costs and
    what to do, in one line."""
    problem = directory_problem(path)
    if problem is None:
        return
    what, cost, key = _CONSEQUENCE[code]
    reader.warn(
        node,
        f"{what} {path}: {problem}, so {cost}; make it writable for this user or set {key} to "
        "a directory that is",
        code,
        str(path),
    )
