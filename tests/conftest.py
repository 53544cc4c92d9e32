"""Shared fixtures and helpers: the public test vectors, hypothesis profiles, free ports, waiting
for a condition (never a fixed sleep), plain HTTP, required binaries, and the real servers of
servers.py started once per session."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, settings

from exporter.amiplus import id_variants
from exporter.config import MeterConfig
from exporter.receivers.receiver import Receiver
from exporter.wmbus import MeterKey

from .emulators.pty_device import PtyDevice

if TYPE_CHECKING:
    from .ordinary_user import OrdinaryUser
    from .servers import ExporterProcess, Prometheus

DATA = Path(__file__).parent / "data"

# "ci" keeps `make test` fast on two cores; "thorough" is for a deliberate long run:
#   HYPOTHESIS_PROFILE=thorough .venv/bin/pytest tests/test_properties.py
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def emulators() -> Iterator[list[PtyDevice]]:
    """Stick emulators a test makes, closed after it."""
    made: list[PtyDevice] = []
    yield made
    for emulator in made:
        emulator.close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    """Receivers a test starts, stopped after it."""
    started: list[Receiver] = []
    yield started
    for receiver in started:
        receiver.stop()


def load_vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads((DATA / "amiplus-vectors.json").read_text())[
        "vectors"
    ]
    return vectors


VECTORS = load_vectors()


def vector(name: str) -> dict[str, Any]:
    return next(v for v in VECTORS if v["name"] == name)


def assert_matches(actual: Any, expected: Any, path: str = "$") -> None:
    """Every expected key present with an equal value (floats with a small tolerance)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} is missing from {sorted(actual)}"
            assert_matches(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{path}: {actual!r} != {expected!r}"
        for n, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_matches(a, e, f"{path}[{n}]")
    elif isinstance(expected, float):
        assert isinstance(actual, int | float), f"{path}: {actual!r} is not a number"
        assert math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-9), (
            f"{path}: {actual!r} != {expected!r}"
        )
    else:
        assert actual == expected and type(actual) is type(expected), (
            f"{path}: {actual!r} != {expected!r}"
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def require(binary: str, package: str) -> str:
    """The path of a server binary, or a failed test saying how to install it."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(
            f"{binary} is not installed; `make test` installs it, or run: "
            f"sudo apt-get install {package}",
            pytrace=False,
        )
    return path


#: Every server process the helpers started; the session's end stops any a failing test left.
SERVER_PROCESSES: list[subprocess.Popen[bytes]] = []


def server_process(args: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """Start a server (Prometheus, InfluxDB, mosquitto...) that the session's end will stop for
    sure, even when a fixture fails before its own teardown."""
    process: subprocess.Popen[bytes] = subprocess.Popen(args, **options)
    SERVER_PROCESSES.append(process)
    return process


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Terminate a server and wait for it; kill it when it has not gone after `timeout`."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop what failing tests left running: terminate, then kill after 10 s."""
    for process in SERVER_PROCESSES:
        if process.poll() is None:
            stop_process(process, timeout=10)


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """Whether the other end closes this connection within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, every: float = 0.05) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (its last answer).
    A connection error or a missing entry (not there yet) while polling is another try; the
    last answer raises it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, LookupError):
            if predicate():
                return True
        time.sleep(every)
    return bool(predicate())


def http_get(
    url: str, *, headers: dict[str, str] | None = None, timeout: float = 10, **kwargs: Any
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, **kwargs) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(params=VECTORS, ids=[v["name"] for v in VECTORS])
def any_vector(request: pytest.FixtureRequest) -> dict[str, Any]:
    value: dict[str, Any] = request.param
    return value


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """One real Prometheus server for the whole session; tests set its scrape jobs."""
    from .servers import Prometheus

    server = Prometheus(tmp_path_factory.mktemp("prometheus"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ordinary_user() -> Iterator[OrdinaryUser]:
    """A user who is not root (uid 65534) with a home of its own, for the whole session."""
    from .ordinary_user import OrdinaryUser

    user = OrdinaryUser()
    yield user
    user.remove()


@pytest.fixture
def start_exporter(tmp_path: Path) -> Iterator[Callable[..., ExporterProcess]]:
    """Start exporter processes; each is stopped (and must stop cleanly) after the test."""
    from .servers import ExporterProcess

    started: list[ExporterProcess] = []

    def start(config: str | None, **options: Any) -> ExporterProcess:
        directory = tmp_path / f"exporter{len(started)}"
        directory.mkdir()
        process = ExporterProcess(directory, config, **options)
        started.append(process)
        return process

    yield start
    for process in started:
        assert process.stop() == 0, process.log()


def configured_meter(
    meter_id: str, name: str, site: str = "", contracted_power: float | None = None
) -> MeterConfig:
    """A meter as the configuration gives it (the test key), for `State.reconfigure`."""
    return MeterConfig(
        name,
        meter_id,
        id_variants(meter_id),
        MeterKey.from_bytes(bytes(range(16))),
        site=site,
        contracted_power=contracted_power,
    )
