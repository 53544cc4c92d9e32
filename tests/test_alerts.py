"""Alerts delivered: deploy/alertmanager/alertmanager.yml checked by amtool, and the overvoltage
and high-power alerts carried from a meter to a webhook, firing and then resolved, by a real
exporter, Prometheus and Alertmanager (tests/alerting.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .alerting import ALERTMANAGER_CONFIG, HIGH_POWER, METER_ID, OVERVOLTAGE, deliver, pipeline
from .conftest import require

pytestmark = pytest.mark.integration  # amtool, Prometheus, Alertmanager, the exporter

#: The test's clock: the rules' minutes pass as seconds (their real durations: promtool).
TIME_SCALE = 60


def amtool(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("amtool", "prometheus-alertmanager"), "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_alertmanager_configuration_is_valid() -> None:
    done = amtool(ALERTMANAGER_CONFIG)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_example_receiver_is_valid_once_uncommented(tmp_path: Path) -> None:
    """The commented e-mail, webhook and ntfy examples, all uncommented at once."""
    text = ALERTMANAGER_CONFIG.read_text()
    uncommented = re.sub(r"^(\s+)# (\w+_configs:|  )", r"\1\2", text, flags=re.MULTILINE)
    for kind in ("email_configs", "webhook_configs"):
        assert f"\n    {kind}:" in uncommented, f"no {kind} example"
    assert "ntfy" in uncommented
    (tmp_path / "smtp-password").write_text("secret\n")
    config = tmp_path / "alertmanager.yml"
    config.write_text(uncommented.replace("/etc/alertmanager/", f"{tmp_path}/"))
    done = amtool(config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 receivers" in done.stdout


def test_overvoltage_and_high_power_reach_a_webhook_firing_then_resolved(tmp_path: Path) -> None:
    with pipeline(tmp_path, TIME_SCALE) as (radio, webhook, prometheus):
        delivery = deliver(radio, webhook, prometheus, settle=600 / TIME_SCALE, timeout=120)
    for status, notifications in (("firing", delivery.firing), ("resolved", delivery.resolved)):
        overvoltage = notifications[OVERVOLTAGE].alert(OVERVOLTAGE)
        power = notifications[HIGH_POWER].alert(HIGH_POWER)
        assert overvoltage and power
        assert overvoltage["status"] == power["status"] == status
        assert overvoltage["labels"] | {"job": "amiplus"} == overvoltage["labels"]
        assert (overvoltage["labels"]["meter_id"], overvoltage["labels"]["phase"]) == (
            METER_ID,
            "L1",
        )
        assert overvoltage["labels"]["severity"] == "warning"
        assert power["labels"]["severity"] == "critical"
        # The description's own query of the contracted power, answered by the real server.
        assert "contracted power of 14kW" in " ".join(power["annotations"]["description"].split())
        assert "253 V limit" in " ".join(overvoltage["annotations"]["description"].split())
