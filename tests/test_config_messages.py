"""What configuration checks and logs say (issue 14, items 11-14): a meter given twice, nothing
that looks like a key echoed, a wrong key logged once and then summarised, and fingerprints
called fingerprints. Through the real `check-config` and exporter processes where it shows."""

from __future__ import annotations

import logging
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exporter.amiplus.credentials import CredentialsError, parse_key, parse_qr
from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.simulated import SimulatedMeter
from exporter.config import parse_config
from exporter.pipeline import intake
from exporter.pipeline.intake import Intake
from exporter.pipeline.state import State
from exporter.receivers.base import Frame
from exporter.wmbus import MeterKey

from .conftest import wait_until
from .servers import CONSOLE_SCRIPT, SIMULATED_KEY, Start

KEY = "8F3A5C7E9B1D2F4A6C8E0A2B4D6F8A1C"  # a key as eLicznik shows one (not the simulator's)
FINGERPRINT = MeterKey.parse(KEY).fingerprint


def check_config(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "amiplus.yml"
    path.write_text(text)
    return subprocess.run(
        [str(CONSOLE_SCRIPT), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


RECEIVER = "receivers:\n  - type: simulator\n"
MINIMAL = f'meters:\n  - id: "12345678"\n    key: "{SIMULATED_KEY}"\n{RECEIVER}'
SPACED = f'"{KEY[:16]} {KEY[16:]}"'  # the key, with a space no host or topic may hold


@pytest.mark.integration
@pytest.mark.parametrize("second", ["12345678", "78563412"], ids=["same", "byte-reversed"])
def test_the_same_meter_twice_without_names_is_an_error_naming_both(
    tmp_path: Path, second: str
) -> None:
    checked = check_config(
        tmp_path,
        f"""meters:
  - id: "12345678"
    key: "{SIMULATED_KEY}"
  - id: "{second}"
    key: "{KEY}"
{RECEIVER}""",
    )
    assert checked.returncode == 2, checked
    assert (
        f"amiplus.yml:4: meter 2: the address {second} (either byte order) is already "
        "meter 1's (line 2); give each meter once, with its own key" in checked.stderr
    ), checked.stderr


@pytest.mark.parametrize(
    "text",
    [
        f'meters:\n  - id: "12345678"\n    {KEY}: home\n{RECEIVER}',
        f'meters:\n  - id: "12345678"\n    key: "{SIMULATED_KEY}"\n    name: home\n'
        f"{RECEIVER}state:\n  dedupe_window: {KEY}\n",
        f'meters:\n  - id: "{KEY}"\n    key: "{SIMULATED_KEY}"\n{RECEIVER}',
        f'meters:\n  - id: "12345678"\n    key: "{SIMULATED_KEY}"\n{RECEIVER}'
        f"log:\n  level: {KEY}\n",
        f'meters:\n  - id: "12345678"\n    key: "{SIMULATED_KEY}"\n{RECEIVER}'
        f"influxdb:\n  url: {KEY}\n  api: v1\n  database: x\n",
        f'meters:\n  - id: "12345678"\n    key: "{SIMULATED_KEY}"\n'
        f"receivers:\n  - type: simulator\n    interval: {KEY}\n",
        f'meters:\n  - id: "12345678"\n    key: "{SIMULATED_KEY}"\n'
        f"    contracted_power: {KEY}\n{RECEIVER}",
        f"{MINIMAL}mqtt:\n  host: {SPACED}\n",
        f"{MINIMAL}mqtt:\n  host: x\n  base_topic: {SPACED}\n",
        f"{MINIMAL}mqtt:\n  host: x\n  client_id: {SPACED}\n",
        f"{MINIMAL}web:\n  listen: {KEY}\n",
    ],
    ids=[
        "mapping key",
        "number",
        "meter id",
        "choice",
        "url",
        "receiver option",
        "contracted power",
        "mqtt host",
        "mqtt base topic",
        "mqtt client id",
        "web listen",
    ],
)
@pytest.mark.integration
def test_nothing_that_looks_like_a_key_is_echoed(tmp_path: Path, text: str) -> None:
    checked = check_config(tmp_path, text)
    assert checked.returncode == 2, checked
    output = checked.stdout + checked.stderr
    assert KEY not in output and KEY[:8] not in output and KEY[-8:] not in output, output
    assert f"looks like a key, fingerprint {FINGERPRINT}" in output, output


@pytest.mark.integration
def test_a_sixteen_character_text_key_as_a_mapping_key_is_not_echoed(tmp_path: Path) -> None:
    text_key = "Zb9#kT2$wQ7!mP4&"
    checked = check_config(tmp_path, f'meters:\n  - id: "12345678"\n    {text_key}: x\n')
    assert checked.returncode == 2 and text_key not in checked.stderr, checked.stderr
    assert MeterKey.parse(text_key).fingerprint in checked.stderr


@pytest.mark.integration
def test_an_ordinary_typo_is_still_shown(tmp_path: Path) -> None:
    checked = check_config(
        tmp_path, f'meters:\n  - id: "12345678"\n    key: "{KEY}"\n    nmae: x\n{RECEIVER}'
    )
    assert "unknown key 'nmae'; did you mean 'name'?" in checked.stderr, checked.stderr


@pytest.mark.integration
def test_every_fingerprint_is_called_a_fingerprint(tmp_path: Path) -> None:
    qr = f"12345678;00123456;{KEY}"
    checked = check_config(
        tmp_path,
        f'meters:\n  - id: "87654321"\n    key: "{KEY}"\n    name: home\n'
        f'  - qr: "{qr}"\n    name: garage\n{RECEIVER}',
    )
    assert checked.returncode == 0, checked
    assert f"meter home: address 87654321, key with fingerprint {FINGERPRINT}\n" in checked.stdout
    assert (
        f"meter garage: address 12345678, key with fingerprint {FINGERPRINT} (the QR text "
        f"holds: address 12345678, factory number 00123456, key with fingerprint {FINGERPRINT})"
        in checked.stdout
    ), checked.stdout
    assert parse_qr(qr).describe().endswith(f"key with fingerprint {FINGERPRINT}")
    assert "…" not in checked.stdout


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (KEY[:-1] + "G", "must be hexadecimal digits (0-9, A-F)"),
        (KEY[:-2] + "G", "holds characters other than hexadecimal digits, and 31 characters"),
        (KEY[:-2], "has 30 characters"),
    ],
)
def test_a_wrong_key_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(CredentialsError) as raised:
        parse_key(text)
    assert says in str(raised.value) and text not in str(raised.value)


# --- 13. a wrong key: the first warning, then a summary every 15 minutes ----------------------


def test_a_wrong_key_is_logged_once_while_every_failure_counts(start_exporter: Start) -> None:
    wrong = "F0" * 16
    exporter = start_exporter(
        f"""meters:
  - id: "12345678"
    key: "{wrong}"
    name: home
receivers:
  - type: simulator
    interval: 0.05
"""
    )
    assert wait_until(lambda: exporter.status()["meters"][0]["decrypt_failures"] >= 40, 30)
    warnings = [
        line for line in exporter.log().splitlines() if "WARNING" in line and "meter home:" in line
    ]
    assert len(warnings) == 1, warnings
    assert "does not decrypt" in warnings[0]
    metrics = exporter.get("/metrics")[1].decode()
    failures = next(
        line for line in metrics.splitlines() if line.startswith("amiplus_meter_decrypt_failures")
    )
    assert float(failures.rsplit(" ", 1)[1]) >= 40


def test_the_summary_comes_every_15_minutes_while_the_failure_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = parse_config(
        f'meters:\n  - id: "12345678"\n    key: "{"F0" * 16}"\n    name: home\n{RECEIVER}'
    )
    now = [0.0]
    taken = Intake(config, State(600.0), clock=lambda: now[0])
    meter = SimulatedMeter(FAMILIES_BY_NAME["otus"], meter_id="12345678")
    start = datetime(2026, 7, 1, 12, tzinfo=UTC)

    def telegrams(count: int, every: float) -> None:
        for _ in range(count):
            moment = start + timedelta(seconds=now[0])
            taken.on_frame("radio", Frame(meter.telegram(moment)[0], moment.timestamp()))
            now[0] += every

    with caplog.at_level(logging.WARNING, logger="exporter"):
        telegrams(100, 5.0)  # 500 s: one warning
        assert len(caplog.records) == 1
        telegrams(100, 5.0)  # past 900 s: a summary of the ones in between
        assert len(caplog.records) == 2
        assert "(and 179 more telegrams failed the same way in the last 15 minutes" in (
            caplog.records[1].getMessage()
        )
        now[0] += 2 * intake.REPEAT_SUMMARY  # quiet for half an hour, then it starts again:
        telegrams(2, 5.0)  # the next line tells of the 19 not told yet, the one after waits
        assert len(caplog.records) == 3
        assert "(and 19 more telegrams failed the same way in the last 32 minutes" in (
            caplog.records[2].getMessage()
        )
    (state,) = taken.state.snapshot()
    assert state.decrypt_failures == 202


# --- the web section: check-config refuses what the exporter would refuse --------------------


@pytest.mark.parametrize(
    ("web", "says"),
    [
        ("  listen: localhost\n", "web listen 'localhost': a listen address ends in :PORT"),
        ("  listen: ':99999'\n", "the port 99999 is out of range"),
        ("  config_file: missing.yml\n", "web config_file: cannot read the web config"),
        ("  config_file: web.yml\n", "is not a whole bcrypt hash"),
        ("  allowed_hosts: [http://x]\n", "'http://x' is not a host name"),
    ],
)
@pytest.mark.integration
def test_check_config_checks_the_web_section(tmp_path: Path, web: str, says: str) -> None:
    (tmp_path / "web.yml").write_text("basic_auth_users:\n  family: $2b$10$short\n")
    checked = check_config(tmp_path, f"{MINIMAL}web:\n{web}")
    assert checked.returncode == 2, checked
    assert says in checked.stderr, checked.stderr
    exporter = subprocess.run(
        [str(CONSOLE_SCRIPT), "--config", str(tmp_path / "amiplus.yml")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert exporter.returncode == 2, exporter  # what check-config refuses, the exporter does


@pytest.mark.integration
def test_check_config_says_what_the_web_section_sets_up(tmp_path: Path) -> None:
    import bcrypt

    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=10)).decode()
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  family: '{hashed}'\n")
    (tmp_path / "web.yml").chmod(0o600)
    checked = check_config(
        tmp_path,
        f"{MINIMAL}web:\n  listen: 127.0.0.1:9264\n  config_file: web.yml\n"
        "  allowed_hosts: [amiplus.lan]\n",
    )
    assert checked.returncode == 0, checked
    assert (
        "  web: listen 127.0.0.1:9264, basic auth (1 users), also answers to amiplus.lan\n"
        in checked.stdout
    ), checked.stdout


# --- names that cannot be written where they go -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ('"home\\nmeasurement"', "holds a control character (U+000A) at character 5"),
        ('"tab\\there"', "holds a control character (U+0009) at character 4"),
        ('"C:\\\\meters"', "holds a backslash at character 3"),
    ],
)
@pytest.mark.integration
def test_a_name_influxdb_cannot_hold_is_a_problem(tmp_path: Path, name: str, says: str) -> None:
    checked = check_config(
        tmp_path, f'meters:\n  - id: "12345678"\n    key: "{KEY}"\n    name: {name}\n{RECEIVER}'
    )
    assert checked.returncode == 2 and f"meter 1 name {says}" in checked.stderr, checked.stderr


@pytest.mark.integration
def test_a_name_with_a_line_break_in_a_meters_file_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "meters.csv").write_text(f'id,key,name\n12345678,{KEY},"home\nx"\n')
    checked = check_config(tmp_path, f"meters_file: meters.csv\n{RECEIVER}")
    assert checked.returncode == 2, checked
    assert "meters.csv:3: the name holds a control character (U+000A)" in checked.stderr
