"""deploy/Dockerfile built by a real Docker engine (Debian's docker.io) on a stand-in base image
(tests/docker_engine.py), and the image run: its health check, its port, its user, its signals,
its spool volume, a stick emulator's tty, the compose files' check-config, and the README's
Docker block in order on an image tag the engine never built.
"""

from __future__ import annotations

import datetime
import os
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import exporter
from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.simulated import SimulatedMeter
from exporter.cli import build_parser

from .conftest import free_port, http_get, require, wait_until
from .docker_engine import DOCKERFILE, ROOT, Container, DockerEngine, build_image, run
from .emulators.imst import Im871aEmulator
from .ordinary_user import fresh_clone
from .servers import SIMULATED_KEY, InfluxDB
from .test_readme_walk import blocks, commands
from .test_release import image_build_args

TAG = "amiplus-exporter:test"
STATE = "/var/lib/amiplus-exporter"
CONFIG = "/etc/amiplus-exporter/amiplus.yml"
UID, DIALOUT = 10001, 20  # the image's user; Debian's dialout group, as in the image


@pytest.fixture(scope="module")
def image(engine: DockerEngine) -> str:
    """The image of deploy/Dockerfile (the exporter's, its default target) with the labels
    `make image` gives it."""
    build_image(engine, TAG, *(f"--build-arg={k}={v}" for k, v in image_build_args().items()))
    return TAG


def metrics(port: int) -> str:
    status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert status == 200
    return body.decode()


def sample(text: str, family: str, **labels: str) -> float | None:
    """The value of the first sample of `family` that has these labels, or None."""
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        name, _, rest = series.partition("{")
        if name == family and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            return float(value)
    return None


def config_directory(tmp_path: Path, text: str, **files: str) -> Path:
    """A directory for -v ...:/etc/amiplus-exporter, readable by the image's user."""
    directory = tmp_path / "etc"
    directory.mkdir(mode=0o755, parents=True)
    (directory / "amiplus.yml").write_text(text)
    for name, content in files.items():
        (directory / name).write_text(content)
    for path in (directory, *directory.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return directory


def meter_config(meters: dict[str, str], receivers: str, extra: str = "") -> str:
    listed = "".join(
        f'  - id: "{meter_id}"\n    key: "{SIMULATED_KEY}"\n    name: {name}\n'
        for meter_id, name in meters.items()
    )
    return f"meters:\n{listed}receivers:\n{receivers}{extra}"


def test_the_image_promises(engine: DockerEngine, image: str) -> None:
    """What users and orchestrators read from the image: user, volume, port, environment,
    labels, and a command line the exporter accepts."""
    config: dict[str, Any] = engine.inspect(image)["Config"]
    assert config["User"] == str(UID)  # numeric: Kubernetes' runAsNonRoot can check it
    assert config["Volumes"] == {STATE: {}} and config["WorkingDir"] == STATE
    assert config["ExposedPorts"] == {"9264/tcp": {}}
    env = dict(item.split("=", 1) for item in config["Env"])
    expected = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "MALLOC_ARENA_MAX": "2"}
    assert {key: env.get(key) for key in expected} == expected
    assert "AMIPLUS_CONFIG" not in env, "without a configuration it runs the simulator"
    labels = {
        name.removeprefix("org.opencontainers.image."): value
        for name, value in config["Labels"].items()
    }
    for label in ("title", "description", "licenses", "version", "revision", "base.name"):
        assert labels.get(label), label
    built = image_build_args()
    assert (labels["version"], labels["revision"]) == (exporter.__version__, built["REVISION"])
    assert labels["source"] == built["SOURCE"]  # the origin's address; none in a bare clone
    assert config["Entrypoint"] == ["amiplus-exporter"]
    arguments = build_parser().parse_args(config["Cmd"])
    assert (arguments.command, arguments.listen) == (None, ":9264")
    read_license = (
        "import importlib.metadata as m; print(m.distribution('amiplus-exporter')"
        ".read_text('licenses/LICENSE'))"
    )
    shipped = engine.docker("run", "--rm", "--entrypoint=python", image, "-c", read_license)
    assert shipped.stdout.strip() == (ROOT / "LICENSE").read_text().strip()


# --- the simulated meter in the image's default setup ----------------------------------------


@pytest.fixture(scope="module")
def simulated(engine: DockerEngine, image: str) -> Iterator[Container]:
    """The image as `docker run -p ... image` starts it: no configuration, the simulator, the
    Dockerfile's own HEALTHCHECK timings."""
    with run(engine, "--publish=127.0.0.1::9264", image) as container:
        yield container


def test_metrics_are_served_on_the_published_port(simulated: Container) -> None:
    port = simulated.port()

    def exporting() -> bool:
        simulated.running()
        text = metrics(port)
        return "amiplus_meter_info{" in text and "amiplus_energy_imported_joules_total{" in text

    assert wait_until(exporting, 60, every=0.5), simulated.logs()
    status, page = http_get(f"http://127.0.0.1:{port}/")  # the page's template is in the image
    assert status == 200 and b"<html" in page.lower()


def test_the_process_runs_as_uid_10001_in_dialout(
    engine: DockerEngine, simulated: Container
) -> None:
    assert wait_until(simulated.running, 30)
    status = Path(f"/proc/{simulated.state()['Pid']}/status").read_text()
    ids = {
        key: line.split()[1:]
        for line in status.splitlines()
        for key in ("Uid:", "Gid:", "Groups:")
        if line.startswith(key)
    }
    assert ids["Uid:"] == [str(UID)] * 4, status
    assert ids["Gid:"] == [str(UID)] * 4, status
    assert str(DIALOUT) in ids["Groups:"], status
    group = engine.docker("exec", simulated.name, "getent", "group", "dialout").stdout
    assert group.split(":")[2] == str(DIALOUT), group


# --- signals and configuration ----------------------------------------------------------------


def test_sighup_reloads_a_changed_configuration(
    engine: DockerEngine, image: str, tmp_path: Path
) -> None:
    receivers = "  - type: simulator\n    interval: 1\n"
    etc = config_directory(tmp_path, meter_config({"12345678": "home"}, receivers))
    with run(
        engine,
        "--publish=127.0.0.1::9264",
        f"--volume={etc}:/etc/amiplus-exporter:ro",
        f"--env=AMIPLUS_CONFIG={CONFIG}",
        image,
    ) as container:
        port = container.port()

        def named(name: str) -> Callable[[], bool]:
            return lambda: (
                container.running()
                and (
                    sample(metrics(port), "amiplus_meter_info", meter_id="12345678", name=name) == 1
                )
            )

        assert wait_until(named("home"), 60, every=0.5), container.logs()
        # The exporter also reloads a file whose modification time changed: keep it, so that
        # only the signal can make it read the new text.
        path = etc / "amiplus.yml"
        before = path.stat()
        path.write_text(meter_config({"12345678": "attic"}, receivers))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        engine.docker("kill", "--signal=HUP", container.name)
        assert wait_until(named("attic"), 30, every=0.5), container.logs()
        assert "configuration reloaded" in container.logs()


class HangingServer:
    """An "InfluxDB" that accepts connections and never answers."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.socket.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        self.socket.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def volume(engine: DockerEngine) -> Iterator[str]:
    name = f"amiplus-test-spool-{uuid.uuid4().hex[:12]}"
    engine.docker("volume", "create", name)
    yield name
    engine.docker("volume", "rm", "--force", name, check=False)


def test_the_spool_volume_keeps_readings_across_a_new_container(
    engine: DockerEngine, image: str, volume: str, tmp_path: Path
) -> None:
    """A first container spools readings while InfluxDB hangs, stops within Docker's 10 s and
    is removed; a second one on the same volume sends every reading once InfluxDB is back."""
    meters = {f"2026000{n}": f"flat{n}" for n in range(1, 4)}
    simulated = [SimulatedMeter(FAMILIES_BY_NAME["apa-v2-2025"], meter_id=m) for m in meters]
    sent: list[tuple[str, int, float]] = []
    lines = []
    # Each meter twice, 1.5 s apart: InfluxDB keeps one point per series and second.
    for offset in (0.0, 1.5):
        now = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset)
        for meter in simulated:
            frame, reading = meter.telegram(now)
            assert reading.meter_time is not None and reading.get("energy_imported_kwh") is not None
            clock = int(reading.meter_time.timestamp())
            sent.append((meter.meter_id, clock, reading.get("energy_imported_kwh")))
            lines.append(f"telegram=|{frame.hex().upper()}|+{offset}")
    hanging = HangingServer()
    influx = InfluxDB(tmp_path / "influxdb")
    influx.query('CREATE DATABASE "amiplus"')
    influx.stop()  # down until the second container runs

    def exporter(url: str, receivers: str, name: str) -> tuple[str, ...]:
        influxdb = (
            f"influxdb:\n  url: {url}\n  api: v1\n  database: amiplus\n"
            f"  spool: {STATE}/spool\n  flush_interval: 1\n"
        )
        etc = config_directory(
            tmp_path / name,
            meter_config(meters, receivers, influxdb),
            **{"replay.txt": "\n".join(lines)},
        )
        return (
            "--network=host",
            f"--volume={volume}:{STATE}",
            f"--volume={etc}:/etc/amiplus-exporter:ro",
            f"--env=AMIPLUS_CONFIG={CONFIG}",
            image,
            f"--listen=127.0.0.1:{free_port()}",
        )

    def spooled(container: Container, port: int, points: int) -> Callable[[], bool]:
        return lambda: (
            container.running()
            and (sample(metrics(port), "amiplus_influxdb_spool_points") == points)
        )

    try:
        replay = (
            "  - type: replay\n    file: /etc/amiplus-exporter/replay.txt\n    realtime: true\n"
        )
        arguments = exporter(f"http://127.0.0.1:{hanging.port}", replay, "first")
        port = int(arguments[-1].rpartition(":")[2])
        with run(engine, *arguments) as first:
            assert wait_until(spooled(first, port, len(sent)), 60, every=0.5), first.logs()
            assert wait_until(lambda: hanging.connections, 30), first.logs()
            seconds, code = first.stop()
            assert code == 0, f"docker stop took {seconds:.1f} s, exit {code}:\n{first.logs()}"
        idle = f"  - type: lines\n    listen: udp://127.0.0.1:{free_port()}\n"
        arguments = exporter(influx.url, idle, "second")
        port = int(arguments[-1].rpartition(":")[2])
        with run(engine, *arguments) as second:
            assert wait_until(spooled(second, port, len(sent)), 60, every=0.5), second.logs()
            influx.start()
            assert wait_until(spooled(second, port, 0), 90, every=0.5), second.logs()
            seconds, code = second.stop()
            assert code == 0, f"docker stop took {seconds:.1f} s, exit {code}:\n{second.logs()}"
        arrived = sorted(
            (p["meter_id"], int(p["meter_clock"]), p["energy_imported_kwh"])
            for p in influx.points("amiplus")
        )
    finally:
        hanging.close()
        influx.stop()
    assert arrived == sorted(sent)


def test_a_stick_on_a_tty_is_read_inside(engine: DockerEngine, image: str, tmp_path: Path) -> None:
    """The emulated iM871A's tty as /dev/ttyUSB0, opened by the image's user through dialout.

    Bind-mounted, not `--device`: the kernel opens a pseudo-terminal's slave only through its
    own devpts (a node that `--device` makes elsewhere answers EIO), and Docker's default
    device rules already allow ptys. A USB stick goes in with `--device` (compose `devices:`).
    """
    stick = Im871aEmulator()
    try:
        # As udev leaves a USB serial port: group dialout, read and write for the group.
        os.chown(stick.path, 0, DIALOUT)
        os.chmod(stick.path, 0o660)
        receivers = "  - type: im871a\n    device: /dev/ttyUSB0\n"
        etc = config_directory(tmp_path, meter_config({"20240001": "flat"}, receivers))
        with run(
            engine,
            "--publish=127.0.0.1::9264",
            f"--volume={stick.path}:/dev/ttyUSB0",
            f"--volume={etc}:/etc/amiplus-exporter:ro",
            f"--env=AMIPLUS_CONFIG={CONFIG}",
            image,
        ) as container:
            port = container.port()

            def up() -> bool:
                text = metrics(port)
                return container.running() and sample(text, "amiplus_receiver_up") == 1

            assert wait_until(up, 60, every=0.5) and stick.mode, container.logs()
            meter = SimulatedMeter(FAMILIES_BY_NAME["otus"], meter_id="20240001")
            sent: list[float | None] = []

            def power() -> float | None:
                return sample(metrics(port), "amiplus_power_imported_watts", meter_id="20240001")

            def heard() -> bool:  # a telegram every half second until one has been read
                frame, reading = meter.telegram(datetime.datetime.now(datetime.UTC))
                assert stick.telegram(frame)
                sent.append(reading.get("power_imported_w"))
                return power() is not None

            assert wait_until(heard, 30, every=0.5), container.logs()
            assert power() in sent
    finally:
        stick.close()


# --- compose ----------------------------------------------------------------------------------


def test_compose_check_config_needs_no_stick(
    engine: DockerEngine, image: str, tmp_path: Path
) -> None:
    """`docker compose run --rm check-config` while the stick of `devices:` is not there."""
    compose = require("docker-compose", "docker-compose")
    deploy = ROOT / "deploy"
    shutil.copy(deploy / "docker-compose.yml", tmp_path)
    shutil.copy(deploy / "amiplus.example.yml", tmp_path / "amiplus.yml")
    (tmp_path / "amiplus.yml").chmod(0o644)
    devices = yaml.safe_load((deploy / "docker-compose.yml").read_text())["services"][
        "amiplus-exporter"
    ]["devices"]
    assert not any(Path(device.split(":")[0]).exists() for device in devices)
    project = ["--project-name", f"amiplus-test-{uuid.uuid4().hex[:8]}"]
    env = {**engine.env, "AMIPLUS_IMAGE": image, "GRAFANA_ADMIN_PASSWORD": "unused-here"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [compose, *project, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    try:
        done = run("run", "--rm", "check-config")
    finally:
        run("down", "--remove-orphans")  # `run --rm` leaves the project's network behind
    assert done.returncode == 0, done.stdout + done.stderr
    assert "amiplus.yml: OK" in done.stdout, done.stdout


def compose_client(engine: DockerEngine) -> str:
    """`docker compose` where the engine's client has Compose v2, else Debian's docker-compose
    1.29, which the README says to write instead."""
    v2 = engine.docker("compose", "version", check=False)
    return (
        f"{engine.client} compose"
        if v2.returncode == 0
        else require("docker-compose", "docker-compose")
    )


def test_the_readme_docker_block_works_in_order_where_the_image_was_never_built(
    engine: DockerEngine, image: str, tmp_path: Path
) -> None:
    """The README's Docker block, read from README.md and run in order on a fresh clone, with
    an image tag this engine has never built (the build cache of `image` may serve)."""
    clone = fresh_clone(tmp_path / "clone")
    tag = f"amiplus-exporter:readme-{uuid.uuid4().hex[:8]}"
    env = {
        **engine.env,
        "AMIPLUS_IMAGE": tag,
        "COMPOSE_PROJECT_NAME": f"amiplus-readme-{uuid.uuid4().hex[:8]}",
        # Debian's client and the classic builder, as `image` was built (its cache serves)
        "PATH": f"{Path(engine.client).parent}:/usr/bin:/bin:/usr/sbin:/sbin",
        "DOCKER_BUILDKIT": "0",
        "COMPOSE_DOCKER_CLI_BUILD": "0",
    }
    compose = compose_client(engine)
    engine.docker("rmi", "--force", tag, check=False)
    assert not engine.exists(tag)
    block = next(b for b in blocks() if b.section == "Docker" and b.language == "sh")
    steps = commands(block)
    assert steps[-1] == "docker compose up -d", steps
    cwd = clone

    def shell(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-c", command.replace("docker compose", compose)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    try:
        for command in steps[:-1]:
            if command.startswith("cd "):
                cwd = cwd / command[3:]
                continue
            done = shell(command)
            assert done.returncode == 0, (
                f"`{command}`: {done.returncode}\n{done.stdout}{done.stderr}"
            )
            if command == "cp env.example .env":  # "then choose Grafana's password in .env"
                dotenv = cwd / ".env"
                chosen = "GRAFANA_ADMIN_PASSWORD=walked-the-readme\n"
                dotenv.write_text(dotenv.read_text().replace("GRAFANA_ADMIN_PASSWORD=\n", chosen))
            if "check-config" in command:
                assert f"{CONFIG}: OK" in done.stdout, done
                assert "warning: receiver im871a: /dev/ttyUSB0 does not exist" in done.stdout
        # `up -d` is not run here: it pulls Prometheus, Alertmanager and Grafana from a registry
        # (this machine has none) and needs the stick of `devices:`. Of ours it would start the
        # image the block built.
        assert engine.exists(tag)
        resolved = shell("docker compose config")
        assert resolved.returncode == 0, resolved.stderr
        assert yaml.safe_load(resolved.stdout)["services"]["amiplus-exporter"]["image"] == tag
    finally:
        shell("docker compose down --remove-orphans")
        engine.docker("rmi", "--force", tag, check=False)


# --- the health check and stopping, once the simulated container has run a while --------------


def test_the_health_check_reaches_healthy(engine: DockerEngine, simulated: Container) -> None:
    """With the Dockerfile's own interval (30 s): the tests above ran meanwhile."""
    check = engine.inspect(TAG)["Config"]["Healthcheck"]
    interval = check["Interval"] / 1e9
    assert wait_until(lambda: simulated.state()["Health"]["Status"] == "healthy", 2 * interval + 30)
    log = simulated.state()["Health"]["Log"]
    assert log and all(entry["ExitCode"] == 0 for entry in log), log


def test_docker_stop_exits_0(simulated: Container) -> None:
    seconds, code = simulated.stop()
    assert code == 0, f"docker stop took {seconds:.1f} s, exit {code}:\n{simulated.logs()}"


def test_the_dockerfile_builds_with_buildkit_too(engine: DockerEngine, image: str) -> None:
    """The engine's BuildKit (DOCKER_BUILDKIT=1, no frontend image) gives the same image."""
    engine.docker(
        "build",
        "--quiet",
        f"--file={DOCKERFILE}",
        "--tag=amiplus-exporter:test-buildkit",
        str(ROOT),
        env={"DOCKER_BUILDKIT": "1"},
        timeout=900,
    )
    classic, buildkit = (
        engine.inspect(i)["Config"] for i in (image, "amiplus-exporter:test-buildkit")
    )
    keys = (
        "User",
        "Entrypoint",
        "Cmd",
        "Env",
        "Healthcheck",
        "Volumes",
        "WorkingDir",
        "ExposedPorts",
    )
    assert {k: classic[k] for k in keys} == {k: buildkit[k] for k in keys}
