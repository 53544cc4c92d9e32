"""Optional extras: a configuration that needs a library which is not installed says which extra
to install, in one plain line, and the rest of the exporter runs."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from exporter import daemon
from exporter.config import parse_config
from exporter.outputs import OUTPUTS
from exporter.plumbing import MissingExtra, import_extra, missing_extra

from .servers import simulated_config

#: This installation's pip, which the advice names (the package comes from a clone, not PyPI).
PIP = Path(sys.prefix) / "bin" / "pip"


def test_a_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "influxdb_client", None)  # as if not installed
    with pytest.raises(MissingExtra) as raised:
        import_extra("influxdb_client", "the InfluxDB output with api: v2")
    assert str(raised.value) == (
        "the InfluxDB output with api: v2 needs the 'influx' extra: in your clone of "
        f"amiplus-exporter, run {PIP} install '.[influx]'"
    )


def test_an_installed_extra_is_not_missing() -> None:
    assert missing_extra("paho.mqtt.client", "the mqtt output") is None
    assert import_extra("paho.mqtt.client", "the mqtt output").__name__ == "paho.mqtt.client"


def test_the_exporter_says_which_extra_an_output_lacks_and_runs_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "influxdb_client", None)
    text = simulated_config(
        2.0,
        f"influxdb:\n  url: http://127.0.0.1:9\n  bucket: b\n  spool: {tmp_path / 'spool'}\n"
        f"state:\n  directory: {tmp_path}\n",
    )
    exporter = daemon.Exporter(parse_config(text, base=tmp_path))
    with caplog.at_level(logging.ERROR, logger="exporter"):
        exporter.start()
    try:
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in errors] == [
            "output influxdb not started: the InfluxDB output with api: v2 needs the 'influx' "
            f"extra: in your clone of amiplus-exporter, run {PIP} install '.[influx]'"
        ]
        assert errors[0].exc_info is None  # plain words, no traceback
        assert exporter.receivers  # the receivers run regardless
    finally:
        exporter.stop()


def test_an_output_that_fails_by_a_bug_is_logged_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    def broken(section: object, state: object) -> None:
        raise ValueError("a bug")

    monkeypatch.setitem(OUTPUTS, "influxdb", broken)
    text = simulated_config(
        2.0, f"influxdb:\n  url: http://127.0.0.1:9\n  bucket: b\nstate:\n  directory: {tmp_path}\n"
    )
    exporter = daemon.Exporter(parse_config(text, base=tmp_path))
    with caplog.at_level(logging.ERROR, logger="exporter"):
        exporter.start()
    try:
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in errors] == ["output influxdb not started"]
        assert errors[0].exc_info is not None and "a bug" in str(errors[0].exc_info[1])
    finally:
        exporter.stop()
