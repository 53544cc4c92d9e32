"""Optional extras: libraries only some configurations need, imported when one does."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PACKAGE = "amiplus-exporter"
#: The extra of `pyproject.toml` that installs each optional module.
EXTRAS = {"influxdb_client": "influx", "paho.mqtt.client": "mqtt"}


class MissingExtra(ImportError):
    """An optional library is not installed; the message says which extra installs it."""


def _advice(module: str, needed_for: str) -> str:
    """Which extra, and the pip of this installation to run in the clone it came from (the
    package is installed from a clone: no package index has it)."""
    extra = EXTRAS[module]
    pip = Path(sys.prefix) / "bin" / "pip"
    return (
        f"{needed_for} needs the {extra!r} extra: in your clone of {PACKAGE}, run "
        f"{pip} install '.[{extra}]'"
    )


def import_extra(module: str, needed_for: str) -> ModuleType:
    """`module`, or `MissingExtra` saying what `needed_for` (e.g. "the mqtt output") lacks."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(_advice(module, needed_for)) from None


def missing_extra(module: str, needed_for: str) -> str | None:
    """What to install when `module` is absent (None: it is there), without importing it."""
    top = module.partition(".")[0]
    if importlib.util.find_spec(top) is None:
        return _advice(module, needed_for)
    return None
