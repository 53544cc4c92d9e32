"""Configuration: every problem listed at once with its line, secrets from files and ${ENV}."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from exporter.config import ConfigError, parse_config
from exporter.receivers.base import LinkMode

from .servers import CONSOLE_SCRIPT

KEY = "FBA95687613B73604C320A16AA8892EA"
GOOD = f"""
meters:
  - id: "30584551"
    key: "{KEY}"
    name: home
receivers:
  - type: im871a
    device: /dev/serial/by-id/usb-IMST_iM871A-if00-port0
"""


def problems(text: str, env: dict[str, str] | None = None, base: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "amiplus.yml", env or {}, base)
    return [p.format("amiplus.yml") for p in caught.value.problems]


def test_a_good_configuration() -> None:
    config = parse_config(GOOD, env={})
    (meter,) = config.meters
    assert (meter.name, meter.meter_id) == ("home", "30584551")
    assert meter.ids == {"30584551", "51455830"}  # either byte order
    assert config.meter_for("51455830") is meter
    assert meter.key.candidates[0].key == bytes.fromhex(KEY)
    (receiver,) = config.receivers
    assert (receiver.type, receiver.mode, receiver.label) == ("im871a", LinkMode.T1, "im871a")
    assert config.web.listen == ":9264" and config.influxdb is None
    assert KEY not in repr(config)


def test_every_problem_at_once_with_lines_and_did_you_mean() -> None:
    text = """
meters:
  - id: "1234567"
    key: "00112233"
  - id: "30584551"
    kye: "x"
receivers:
  - type: im871a
    devise: /dev/ttyUSB0
  - type: carrier-pigeon
webb:
  listen: ":9264"
timezone: Europe/Atlantis
"""
    found = problems(text)
    assert found == [
        "amiplus.yml:3: meter 1: A meter address has 8 digits, like 12345678 (eLicznik: "
        "'adres komunikacyjny'); '1234567' is not one.",
        "amiplus.yml:4: meter 1: A key is 32 hexadecimal digits (0-9, A-F) or a 16-character "
        "text; the value given has 8 characters after removing spaces and dashes. The key is the "
        "32 hexadecimal digits that eLicznik shows as 'Klucz szyfrujący' (tab Licznik / HAN, "
        "after 'Aktywuj HAN'), or the text of its QR code.",
        "amiplus.yml:5: meter 2: give its key (eLicznik 'Klucz szyfrujący'), key_file, or the QR "
        "text",
        "amiplus.yml:6: meter 2: unknown key 'kye'; did you mean 'key'?",
        "amiplus.yml:8: receiver 1: the im871a receiver needs a device",
        "amiplus.yml:9: receiver 1: unknown key 'devise'; did you mean 'device'?",
        "amiplus.yml:10: receiver 2 type must be one of im871a, iu891a, amber, cul, rc1180, "
        "lines, mqtt, replay, simulator, not 'carrier-pigeon'",
        "amiplus.yml:11: the configuration: unknown key 'webb'; did you mean 'web'?",
        "amiplus.yml:13: timezone: unknown zone 'Europe/Atlantis', e.g. Europe/Warsaw",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("meters: [\n", "amiplus.yml:2: not valid YAML"),
        ("", "the file is empty"),
        ("meters: []\n", "no receivers: add at least one"),
        (GOOD.replace(KEY, "nothex"), "A key is 32 hexadecimal digits"),
        (GOOD + "  - type: lines\n", "a lines receiver needs command, listen, connect or stdin"),
        (GOOD + "  - type: lines\n    listen: http://x:1\n", "must look like udp://0.0.0.0:9011"),
        (GOOD + "  - type: replay\n    realtime: maybe\n", "realtime must be true or false"),
        (
            GOOD + "  - type: cul\n    device: /dev/ttyACM0\n    command: ls\n",
            "a cul receiver takes no 'command'",
        ),
        (
            GOOD + "  - type: im871a\n    device: /dev/ttyUSB1\n",
            "two receivers are called 'im871a'",
        ),
        (
            GOOD + "  - type: im871a\n    device: /dev/x\n    name: b\n    mode: S1\n",
            "mode must be one of t1, c1+t1",
        ),
        (GOOD + "state:\n  stale_after: -5\n", "stale_after must be between 1 and 604800"),
        (
            GOOD + "state:\n  forget_after_days: 0\n",
            "amiplus.yml:10: state forget_after_days must be between 1 and 3660, not 0",
        ),
        (
            GOOD + "prometheus:\n  periods: sometimes\n",
            "amiplus.yml:10: prometheus periods must be true or false, not 'sometimes'",
        ),
        (
            GOOD + "prometheus:\n  period: false\n",
            "amiplus.yml:10: prometheus: unknown key 'period'; did you mean 'periods'?",
        ),
        (GOOD + "log:\n  level: chatty\n", "log level must be one of debug, info, warning, error"),
        (GOOD + "influxdb:\n  url: ftp://x\n", "influxdb url must start with http:// or https://"),
        (GOOD + "influxdb:\n  url: http://x:8086\n", "api v2 needs a bucket"),
        (
            GOOD.replace(
                "    name: home", '    name: home\n  - id: "51455830"\n    key: "' + KEY + '"'
            ),
            "meter 2: the address 51455830 (either byte order) is already meter 1's ('home', "
            "line 3)",
        ),
        (
            'meters:\n  - qr: "hello;world"\nreceivers:\n  - type: simulator\n',
            "Field 1 of the QR text",
        ),
    ],
)
def test_each_kind_of_problem(text: str, message: str) -> None:
    assert any(message in p for p in problems(text)), problems(text)


def test_what_prometheus_shows_and_how_long_unconfigured_meters_are_kept() -> None:
    default = parse_config(GOOD, env={})
    assert default.prometheus.periods and default.forget_after == 40 * 86400
    text = GOOD + "prometheus:\n  periods: false\nstate:\n  forget_after_days: 1.5\n"
    config = parse_config(text, env={})
    assert not config.prometheus.periods and config.forget_after == 1.5 * 86400


@pytest.mark.parametrize(
    "qr",
    [
        f"30584551;{KEY};30584551",
        f"{KEY};30584551",
        f"30584551;30584551;{KEY}",
        f"klucz={KEY}; adres=30584551",
    ],
)
def test_meters_by_qr_text_in_any_field_order(qr: str) -> None:
    config = parse_config(f'meters:\n  - qr: "{qr}"\nreceivers:\n  - type: simulator\n', env={})
    (meter,) = config.meters
    assert meter.meter_id == "30584551" and meter.key.candidates[0].key == bytes.fromhex(KEY)
    assert "address 30584551" in meter.recognised and KEY not in meter.recognised


def test_environment_and_secret_files(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(KEY + "\n")
    text = """
meters:
  - id: "${METER_ID}"
    key_file: key
    name: ${NAME:-home}
receivers:
  - type: simulator
influxdb:
  url: http://localhost:8086
  bucket: amiplus
  token: ${INFLUX_TOKEN}
"""
    config = parse_config(text, env={"METER_ID": "30584551", "INFLUX_TOKEN": "tok"}, base=tmp_path)
    assert config.meters[0].name == "home" and config.meters[0].meter_id == "30584551"
    assert config.meters[0].key.candidates[0].key == bytes.fromhex(KEY)
    assert config.influxdb is not None and config.influxdb.token == "tok"
    found = problems(text, {"METER_ID": "30584551"}, tmp_path)
    assert found == [
        "amiplus.yml:11: influxdb token: the environment variable INFLUX_TOKEN is not set"
    ]
    missing = problems(
        text.replace("key_file: key", "key_file: nope"),
        {"METER_ID": "1", "INFLUX_TOKEN": "t"},
        tmp_path,
    )
    assert any("cannot read key_file" in p and "nope" in p for p in missing)
    both = problems(GOOD.replace("    name: home", "    name: home\n    key_file: key"))
    assert any("give either key or key_file, not both" in p for p in both)


@pytest.mark.integration
def test_check_config_command_lists_everything_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("meters:\n  - id: '1'\nreceivers:\n  - type: lines\nwebb: {}\n")
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[-1] == "3 problem(s) found."
    assert all(line.startswith(f"{bad}:") for line in lines[:-1])
    good = tmp_path / "good.yml"
    good.write_text(GOOD)
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "check-config", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "meter home: address 30584551" in done.stdout and KEY not in done.stdout


@pytest.mark.integration
def test_the_daemon_refuses_a_bad_configuration_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("receivers:\n  - type: simulator\n    interval: fast\n")
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "--config", str(bad), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "interval must be a number, not 'fast'" in done.stderr
    assert "nothing started" in done.stderr


def test_simulated_meters_with_their_own_keys() -> None:
    other = "F0" * 16
    config = parse_config(
        f"receivers:\n  - type: simulator\n    meters: 2\n    keys: ['{KEY}', '{other}']\n", env={}
    )
    assert config.receivers[0].keys == (bytes.fromhex(KEY), bytes.fromhex(other))
    found = problems("receivers:\n  - type: simulator\n    keys: [abc]\n")
    assert any("each simulator key is 32 hex digits" in p for p in found)
    assert all("abc" not in p for p in found)


def test_meters_from_csv_files(tmp_path: Path) -> None:
    (tmp_path / "block-a.csv").write_text(
        "# the staircase A meters\n"
        "id,key,name,site\n"
        f"12345678,{KEY},flat 1,block A\n"
        f"12345679,{KEY.lower()},,block A\n"
        "\n"
    )
    (tmp_path / "block-b.csv").write_text(f"site,key,id\nblock B,{KEY},12345680\n")
    text = GOOD + "meters_file: [block-a.csv, block-b.csv]\n"
    config = parse_config(text, env={}, base=tmp_path)
    by_id = {m.meter_id: m for m in config.meters}
    assert set(by_id) == {"30584551", "12345678", "12345679", "12345680"}
    assert (by_id["12345678"].name, by_id["12345678"].site) == ("flat 1", "block A")
    assert by_id["12345679"].name == "12345679"  # no name: the address
    assert by_id["12345680"].site == "block B"
    assert config.meter_for("78563412") is by_id["12345678"]  # either byte order


def test_every_bad_csv_row_is_listed_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "meters.csv").write_text(
        "id,key,name\n"
        f"12345678,{KEY},ok\n"
        f"1234567,{KEY},short id\n"
        "12345679,00112233,short key\n"
        f"12345678,{KEY},again\n"
        f"30584551,{KEY},also in the YAML file\n"
        f"123456XY,{'Z' * 32},both bad\n"
    )
    found = problems(GOOD + "meters_file: meters.csv\n", base=tmp_path)
    csv_file = tmp_path / "meters.csv"
    assert [p for p in found if p.startswith(str(csv_file))] == [
        f"{csv_file}:3: A meter address has 8 digits, like 12345678 (eLicznik: "
        "'adres komunikacyjny'); '1234567' is not one.",
        f"{csv_file}:4: A key is 32 hexadecimal digits (0-9, A-F) or a 16-character text; the "
        "value given has 8 characters after removing spaces and dashes. The key is the 32 "
        "hexadecimal digits that eLicznik shows as 'Klucz szyfrujący' (tab Licznik / HAN, after "
        "'Aktywuj HAN'), or the text of its QR code.",
        f"{csv_file}:5: the address 12345678 is already on line 2",
        f"{csv_file}:7: A meter address has 8 digits, like 12345678 (eLicznik: "
        "'adres komunikacyjny'); '123456XY' is not one.",
        f"{csv_file}:7: A key of 32 characters must be hexadecimal digits (0-9, A-F); the value "
        "given holds other characters. The key is the 32 hexadecimal digits that eLicznik shows "
        "as 'Klucz szyfrujący' (tab Licznik / HAN, after 'Aktywuj HAN'), or the text of its QR "
        "code.",
    ]
    assert (
        "amiplus.yml: meters_file: the address 30584551 (either byte order) is already meter "
        "'home''s; give each meter once, with its own key"
    ) in found
    assert not any("Z" * 32 in p or KEY in p for p in found)  # keys are never echoed


def test_a_csv_file_without_the_right_header_or_missing(tmp_path: Path) -> None:
    (tmp_path / "meters.csv").write_text(f"address,key\n12345678,{KEY}\n")
    found = problems(GOOD + "meters_file: [meters.csv, missing.csv]\n", base=tmp_path)
    header = (
        f"{tmp_path / 'meters.csv'}:1: the header names the columns id, key, name, site (id "
        "and key required); missing: id; unknown: address"
    )
    assert header in found
    assert any("meters_file: cannot read" in p and "missing.csv" in p for p in found)


def test_every_output_section_builds_an_output() -> None:
    """A new output is a section reader in config and a builder in outputs, nothing else."""
    from exporter.config import OUTPUT_SECTIONS
    from exporter.outputs import OUTPUTS

    assert list(OUTPUT_SECTIONS) == list(OUTPUTS)
