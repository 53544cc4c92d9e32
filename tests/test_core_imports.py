"""The protocol core is sans-I/O: it imports only the standard library and cryptography."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import exporter.wmbus

PROBE = """
import json, sys
before = set(sys.modules)
import exporter.wmbus, exporter.wmbus.encoder, exporter.amiplus.reading, exporter.amiplus.families
import exporter.receivers.lines, exporter.amiplus.credentials
print(json.dumps(sorted(set(sys.modules) - before)))
"""


@pytest.mark.integration
def test_core_imports_only_stdlib_and_cryptography() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(done.stdout)
    top_level = {name.partition(".")[0] for name in loaded}
    allowed = {"exporter", "cryptography", "_cffi_backend", "_openssl", "_rust"}  # and its bindings
    foreign = {
        name
        for name in top_level - set(sys.stdlib_module_names) - allowed
        if not name.startswith("_sysconfigdata")  # the standard library's build data
    }
    assert foreign == set(), f"the core pulled in {sorted(foreign)}"
    for io_library in ("serial", "prometheus_client", "influxdb_client", "yaml"):
        assert io_library not in top_level
    assert "cryptography" in top_level


def test_the_core_is_product_neutral() -> None:
    """Advice for AMIplus users lives in exporter/amiplus/explain.py, not in the protocol core."""
    core = Path(exporter.wmbus.__file__).parent
    for path in sorted(core.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        found = re.findall(r"(?i)\b(tauron|elicznik|amiplus|klucz|HAN)\b", text)
        assert not found, f"{path.name} mentions {found}"
