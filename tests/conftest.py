"""Shared fixtures and helpers: the public test vectors, hypothesis profiles, the `integration`
mark, free ports, waiting for a condition (never a fixed sleep), plain HTTP, required binaries,
the real servers of servers.py started once per session, a mosquitto per test module
(mosquitto.py), and the exporter's web server in-process."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, settings

from exporter.amiplus import fields, id_variants
from exporter.amiplus.fields import Field, Label, Metric, MetricType, Shape
from exporter.amiplus.reading import MeterReading
from exporter.config import MeterConfig
from exporter.receivers.base import Event, Framer, Reply, SessionStep
from exporter.receivers.receiver import Receiver
from exporter.web import server as web
from exporter.web.security import SecurityFile
from exporter.web.server import Routes, WebServer
from exporter.wmbus import Function, MeterKey, Quantity
from exporter.wmbus.cache import clear_caches

from .emulators.pty_device import PtyDevice

if TYPE_CHECKING:
    import serial

    from .docker_engine import DockerEngine
    from .mosquitto import Mosquitto
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

#: Fixtures that start a server, a process, a browser, a Docker engine or a stick emulator on a
#: pseudo-terminal: a test that uses one (directly or through another fixture) is marked
#: `integration`, which `pytest -m "not integration"` (`make test-fast`) leaves out.
INTEGRATION_FIXTURES = frozenset(
    {
        # stick emulators on pseudo-terminals
        "emulators",
        "make",
        "plug",
        "stick",
        "started",
        # receiver threads on real sockets, ttys and processes; the HTTP server
        "receivers",
        "serve",
        # exporter processes, real servers, mount(8)
        "start_exporter",
        "exporter",
        "api",  # the stand-in of PSE's price API (tests/pse_api.py)
        "listener",  # a bare TCP listener that plays a broker (tests/test_net.py)
        "prometheus",
        "influxdb",
        "influx",
        "broker",
        "victoria",
        "fleet_prometheus",
        "tmpfs",
        # headless Chromium, a Docker engine, a wheel built and installed
        "chrome",
        "engine",
        "wheel",
    }
)
#: What a test not marked `integration` may not do on its own thread: start a process, bind a
#: socket (a listener, or a free port for one) or open a pseudo-terminal.
GUARDED = ((subprocess.Popen, "__init__"), (socket.socket, "bind"), (os, "openpty"))


#: The test files that use the Docker engine: with `pytest -n` (make test runs pytest-xdist) they
#: all run in one worker, as one engine holds its data directory at a time.
DOCKER_FILES = frozenset({"tests/test_image.py", "tests/test_addon_image.py"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if INTEGRATION_FIXTURES.intersection(fixtures):
            item.add_marker(pytest.mark.integration)
        if "engine" in fixtures and item.nodeid.split("::")[0] not in DOCKER_FILES:
            raise pytest.UsageError(
                f"{item.nodeid} uses the Docker engine: add its file to DOCKER_FILES"
            )


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist hands out whole files (a file's module fixtures are made once), and the
    Docker engine's files as one."""
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "docker" if path in DOCKER_FILES else path

    return ByFile(config, log)


@pytest.fixture(autouse=True, scope="session")
def _state_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A state directory of the session's own, through systemd's variable: a test (or an
    exporter process it starts) that names none never writes into this machine's
    /var/lib/amiplus-exporter or the user's ~/.local/state."""
    before = os.environ.get("STATE_DIRECTORY")
    os.environ["STATE_DIRECTORY"] = str(tmp_path_factory.mktemp("default-state"))
    yield
    if before is None:
        del os.environ["STATE_DIRECTORY"]
    else:
        os.environ["STATE_DIRECTORY"] = before


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_as_in_a_terminal() -> None:
    """Ctrl-C reaches the programs the tests start as it does in a terminal. A shell without
    job control starts a background command (`make test &`) with SIGINT ignored, and every
    program it starts inherits that: the SIGINT a test sends as the user's Ctrl-C would be
    lost. A handler of ours is undone in each child's exec, so the child gets the default."""
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _integration_only(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that starts a process, binds a socket or opens a pseudo-terminal without the
    `integration` mark fails saying so, so that the inner loop stays free of them."""
    if request.node.get_closest_marker("integration"):
        return
    for owner, name in GUARDED:
        monkeypatch.setattr(owner, name, _refused(getattr(owner, name), f"{owner.__name__}.{name}"))


def _refused(real: Callable[..., Any], what: str) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is threading.main_thread():
            pytest.fail(
                f"this test calls {what} (a server, a process or a pseudo-terminal): mark it "
                "@pytest.mark.integration or use a fixture of INTEGRATION_FIXTURES (conftest.py)",
                pytrace=False,
            )
        return real(*args, **kwargs)

    return guarded


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


#: A row no family carries, for tests of a quantity added to the field table.
WATER = Field(
    "water_m3",
    Shape.SINGLE,
    Label("Water", "Woda"),
    (Quantity.VOLUME, Function.INSTANTANEOUS, False),
    unit="m³",
    metric=Metric("amiplus_water_cubic_meters", MetricType.COUNTER, "Water, a test register."),
    influx="water_m3",
    register=True,
)


@pytest.fixture
def add_rows(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Adds rows to the field table, for this test only."""

    def add(*rows: Field) -> None:
        monkeypatch.setattr(fields, "FIELDS", (*fields.FIELDS, *rows))
        clear_caches()

    yield add
    monkeypatch.undo()
    clear_caches()


@pytest.fixture
def water_row(add_rows: Callable[..., None]) -> Field:
    """The field table with `WATER`, for this test only."""
    add_rows(WATER)
    return WATER


def run_session(
    port: serial.Serial,
    framer: Framer,
    steps: list[SessionStep],
    wait: float = 2.0,
    clock: Callable[[], float] = time.time,
) -> tuple[list[Event], list[str | None]]:
    """Send each step's command to an emulated stick and read until a reply the step accepts
    (at most `wait` seconds): every event read (received at `clock()`), in order, and each
    awaited step's verdict ("no reply" when none came)."""
    events: list[Event] = []
    verdicts: list[str | None] = []
    for step in steps:
        port.write(step.command)
        if step.timeout == 0:
            continue
        deadline = time.monotonic() + wait
        reply = None
        while reply is None and time.monotonic() < deadline:
            new = framer.feed(port.read(port.in_waiting or 1), clock())
            events += new
            reply = next((e for e in new if isinstance(e, Reply) and step.accepts(e)), None)
        verdicts.append("no reply" if reply is None else step.verdict(reply))
    return events, verdicts


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


def reading(meter_id: str = "12345678", **values: object) -> MeterReading:
    """A decoded reading of an Apator meter (version 1, electricity) with these field values."""
    return MeterReading(meter_id, "APA", 1, 2, values=values)


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The request header of HTTP basic auth."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


#: Ports for the test servers: below the kernel's ephemeral range (32768 and up on Linux), where
#: the outgoing connections of a busy test session take their local ports. A port the kernel
#: hands out for binding to 0 is ephemeral, and an outgoing connection could take it before the
#: server binds it ("address already in use").
SERVER_PORTS = range(20000, 32768)


def free_port() -> int:
    """A TCP and UDP port on loopback that nothing holds now, outside the ephemeral range."""
    for _ in range(200):
        port = random.choice(SERVER_PORTS)
        with socket.socket() as tcp, socket.socket(type=socket.SOCK_DGRAM) as udp:
            try:
                tcp.bind(("127.0.0.1", port))
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail(f"no free port in {SERVER_PORTS} on 127.0.0.1 after 200 tries")


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


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One mosquitto for a module's tests that do not stop it; each test has its own topics."""
    from .mosquitto import Mosquitto

    server = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
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


def routes(slow: threading.Event | None = None) -> Routes:
    """Routes whose `/slow` answers only once `slow` is set (a connection being answered)."""

    def metrics(compressed: bool) -> bytes:
        return b"# metrics\n"

    def status(histories: frozenset[str], private: bool) -> dict[str, Any]:
        if slow is not None:
            slow.wait(10)
        return {}

    return Routes(metrics, status, lambda _: "page", lambda private: (True, "ready"))


@pytest.fixture
def serve(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., WebServer]]:
    """A `WebServer` on a free port with short timeouts, in a thread; closed afterwards."""
    monkeypatch.setattr(web, "IDLE_TIMEOUT", 1.0)
    monkeypatch.setattr(web, "HEADER_TIMEOUT", 1.0)
    started: list[WebServer] = []

    def start(**options: Any) -> WebServer:
        security = options.pop("security", SecurityFile(None))
        server = WebServer(("127.0.0.1", 0), options.pop("routes", routes()), security, **options)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


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


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    """The Docker engine of the image tests, started once (when none answers) and stopped at the
    session's end."""
    from .docker_engine import DockerEngine

    docker = DockerEngine()
    yield docker
    docker.close()


#: What a stand-in server answers a GET: status, headers, body.
Answer = tuple[int, list[tuple[str, str]], bytes]


class Answering:
    """A small HTTP/1.1 server on 127.0.0.1 for the stand-ins of things that cannot run here:
    `answer(path, headers)` gives each GET's answer; every request's path, headers and status
    are kept in `requests`."""

    def __init__(self, answer: Callable[[str, Message], Answer]) -> None:
        self.requests: list[tuple[str, Message, int]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status, headers, body = answer(self.path, self.headers)
                server.requests.append((self.path, self.headers, status))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
