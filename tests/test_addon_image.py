"""The Home Assistant add-on's image (deploy/Dockerfile, target `addon`) built by the real Docker
engine and run as the Supervisor runs it: `/data` holding options.json, a real mosquitto, and
a stand-in for the Supervisor's `/services/mqtt` on loopback (tests/supervisor.py: the
Supervisor cannot run here). The page is opened in headless Chromium through a proxy that does
what Home Assistant's ingress does (a frame at `/api/hassio_ingress/<token>/`, the prefix
stripped, `X-Ingress-Path` added). The containers use the host's network, so that they reach
the broker and the stand-in on 127.0.0.1, and listen on free loopback ports.
"""

from __future__ import annotations

import datetime
import http.client
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import yaml
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.simulated import SimulatedMeter

from .conftest import Answer, Answering, free_port, http_get, wait_until
from .docker_engine import ROOT, Container, DockerEngine, build_image, run
from .mosquitto import PASSWORD, USER, Mosquitto, Subscriber
from .servers import SIMULATED_KEY
from .supervisor import StandInSupervisor
from .test_status_page import browser

pytestmark = pytest.mark.integration

TAG = "amiplus-exporter-addon:test"
ADDON = yaml.safe_load((ROOT / "deploy/home-assistant/amiplus-exporter/config.yaml").read_text())
TOKEN = "supervisor-token-of-this-add-on"
METER = {"id": "12345678", "key": SIMULATED_KEY, "name": "dom"}


@pytest.fixture(scope="module")
def image(engine: DockerEngine) -> str:
    """The add-on's target, as `make addon` builds it; the exporter's layers come from the
    engine's cache when tests/test_image.py built them first."""
    build_image(engine, TAG, "--target=addon", f"--build-arg=VERSION={ADDON['version']}")
    return TAG


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def supervisors() -> Iterator[list[StandInSupervisor]]:
    made: list[StandInSupervisor] = []
    yield made
    for supervisor in made:
        supervisor.close()


@dataclass
class Running:
    container: Container
    port: int  # /metrics and the page
    ingress: int  # the ingress listener

    def status(self) -> dict[str, Any]:
        code, body = http_get(f"http://127.0.0.1:{self.port}/api/status", timeout=5)
        assert code == 200
        document: dict[str, Any] = json.loads(body)
        return document


def data_directory(tmp_path: Path, **options: Any) -> Path:
    """A /data holding options.json: config.yaml's defaults with these options."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "options.json").write_text(json.dumps({**ADDON["options"], **options}))
    return data


@contextmanager
def addon(
    engine: DockerEngine,
    image: str,
    data: Path,
    supervisor: StandInSupervisor | None = None,
    token: str = TOKEN,
) -> Iterator[Running]:
    """The add-on's container with `data` as /data, the Supervisor's URL and the add-on's
    token in its environment (as the Supervisor gives them), ingress for 127.0.0.1 only."""
    port, ingress = free_port(), free_port()
    environment = (
        [f"--env=SUPERVISOR_TOKEN={token}", f"--env=SUPERVISOR_URL={supervisor.url}"]
        if supervisor
        else []
    )
    with run(
        engine,
        "--network=host",
        f"--volume={data}:/data",
        *environment,
        image,
        f"--listen=127.0.0.1:{port}",
        f"--ingress-listen=127.0.0.1:{ingress}",
        "--ingress-allow=127.0.0.1",
    ) as container:
        yield Running(container, port, ingress)


def answered(running: Running) -> bool:
    running.container.running()
    return http_get(f"http://127.0.0.1:{running.port}/healthz", timeout=2)[0] == 200


def get_from(source: str, port: int, path: str) -> tuple[int, dict[str, str]]:
    """GET from another loopback address than 127.0.0.1."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        connection.close()


class IngressProxy(Answering):
    """Home Assistant's ingress as a browser meets it: at `/` a page that frames the add-on at
    `PREFIX/`; under `PREFIX` every request goes to the add-on's ingress port with the prefix
    stripped and `X-Ingress-Path: PREFIX` added; anything else is 404 (as an URL that left the
    prefix would be)."""

    PREFIX = "/api/hassio_ingress/aXvYpT0kEn"
    PARENT = (
        '<!doctype html><html><head><link rel="icon" href="data:,"><title>Home Assistant'
        f'</title></head><body><iframe id="addon" src="{PREFIX}/" width="1100" height="1400">'
        "</iframe></body></html>"
    ).encode()
    HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        super().__init__(self.answer)

    def answer(self, path: str, headers: Message) -> Answer:
        if path == "/":
            return 200, [("Content-Type", "text/html; charset=utf-8")], self.PARENT
        if not path.startswith(f"{self.PREFIX}/"):
            return 404, [("Content-Type", "text/plain")], b"not under the ingress prefix\n"
        connection = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=10)
        try:
            connection.request(
                "GET", path.removeprefix(self.PREFIX), headers={"X-Ingress-Path": self.PREFIX}
            )
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        kept = [(k, v) for k, v in response.getheaders() if k.lower() not in self.HOP_BY_HOP]
        return response.status, kept, body


def test_the_addon_image(engine: DockerEngine, image: str) -> None:
    """The add-on's labels, its entry point, root (the Supervisor's /data is root's), and the
    package's version inside equal to config.yaml's."""
    config: dict[str, Any] = engine.inspect(image)["Config"]
    labels = config["Labels"]
    assert labels["io.hass.type"] == "app"
    assert labels["io.hass.version"] == ADDON["version"]
    assert labels["io.hass.arch"] == "|".join(ADDON["arch"])
    assert config["Entrypoint"] == ["amiplus-exporter", "addon"] and not config["Cmd"]
    assert config["User"] == "0" and config["Healthcheck"]["Test"][0] == "CMD"
    inside = engine.docker("run", "--rm", "--entrypoint=amiplus-exporter", image, "--version")
    assert inside.stdout.split() == ["amiplus-exporter", ADDON["version"]]


def test_the_meter_reaches_home_assistant_and_the_sidebar(
    engine: DockerEngine,
    image: str,
    broker: Mosquitto,
    supervisors: list[StandInSupervisor],
    tmp_path: Path,
) -> None:
    """`mqtt: {}`: the broker the Supervisor offers; readings published with discovery and
    retained; the page and its data in the sidebar's frame; 403 for any other source."""
    offered = {
        "host": "127.0.0.1",
        "port": str(broker.port),
        "username": USER,
        "password": PASSWORD,
    }
    supervisor = StandInSupervisor(TOKEN, offered)
    supervisors.append(supervisor)
    data = data_directory(
        tmp_path, meters=[METER], receivers=[{"type": "simulator", "interval": 1}]
    )
    subscriber = Subscriber(broker, "amiplus/#", "homeassistant/#")
    try:
        with addon(engine, image, data, supervisor) as running:
            state = "amiplus/12345678/state"

            def published() -> bool:
                running.container.running()
                return subscriber.latest(state) is not None

            assert wait_until(published, 60, every=0.5), running.container.logs()
            assert json.loads(subscriber.latest(state) or b"{}")["energy_imported_kwh"] > 0
            sensors = [
                json.loads(payload)
                for topic, payload in subscriber.topics_under("homeassistant/sensor/").items()
                if topic.startswith("homeassistant/sensor/amiplus_12345678/")
            ]
            energy = [s for s in sensors if s.get("device_class") == "energy"]
            assert energy and all(s["state_class"] == "total_increasing" for s in energy)
            assert all(s["state_topic"] == state for s in sensors)
            late = Subscriber(broker, state)  # a new subscriber is handed the retained state
            try:
                assert wait_until(lambda: late.on(state), 10) and late.on(state)[0].retain
            finally:
                late.close()
            assert [(p, h["Authorization"]) for p, h, _ in supervisor.requests] == [
                ("/services/mqtt", f"Bearer {TOKEN}")
            ]
            sidebar(running.ingress)
            assert get_from("127.0.0.2", running.ingress, "/")[0] == 403
            assert get_from("127.0.0.2", running.ingress, "/api/status")[0] == 403
            logs = running.container.logs()
    finally:
        subscriber.close()
    assert "MQTT: the broker Home Assistant offers, mqtt://127.0.0.1" in logs
    assert PASSWORD not in logs and SIMULATED_KEY not in logs and "Traceback" not in logs


def sidebar(ingress: int) -> None:
    """The page in Home Assistant's frame through the ingress proxy: it shows the meter, asks
    for its data under the prefix, and no request fails."""
    proxy = IngressProxy(ingress)
    driver = browser()
    try:
        driver.get(f"{proxy.url}/")
        wait = WebDriverWait(
            driver, 30, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
        )
        driver.switch_to.frame(wait.until(lambda d: d.find_element(By.ID, "addon")))
        wait.until(
            lambda d: d.find_elements(
                By.CSS_SELECTOR, '[data-meter="12345678"] [data-field="import"]'
            )
        )
        polled = f"{proxy.PREFIX}/api/status?history="
        assert wait_until(lambda: any(p.startswith(polled) for p, _, _ in proxy.requests), 30)
        assert driver.find_elements(By.ID, "metrics") == []  # /metrics is not served here
        assert [(p, s) for p, _, s in proxy.requests if s >= 400] == []
        assert {p for p, _, _ in proxy.requests} >= {"/", f"{proxy.PREFIX}/"}
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()
        proxy.close()


#: Why there is no broker: what the stand-in answers (a broker offered, the token sent) and
#: what the log says.
NO_BROKER = {
    "service-not-enabled": (
        False,
        TOKEN,
        "no MQTT broker is installed in Home Assistant (the Supervisor: Service not enabled)",
    ),
    "wrong-token": (True, "not-the-add-ons-token", "refused this add-on's token (HTTP 401)"),
}


@pytest.mark.parametrize("case", NO_BROKER)
def test_without_the_supervisors_broker_the_page_and_metrics_work(
    engine: DockerEngine,
    image: str,
    supervisors: list[StandInSupervisor],
    tmp_path: Path,
    case: str,
) -> None:
    broker_offered, token, said = NO_BROKER[case]
    offered = {"host": "127.0.0.1", "port": free_port(), "username": USER, "password": PASSWORD}
    supervisor = StandInSupervisor(TOKEN, offered if broker_offered else None)
    supervisors.append(supervisor)
    data = data_directory(
        tmp_path, meters=[METER], receivers=[{"type": "simulator", "interval": 1}]
    )
    with addon(engine, image, data, supervisor, token) as running:
        assert wait_until(lambda: answered(running), 60, every=0.5), running.container.logs()
        assert wait_until(lambda: running.status()["meters"][0]["telegrams"] > 0, 30)
        assert "mqtt" not in running.status()
        code, body = http_get(f"http://127.0.0.1:{running.port}/metrics")
        assert code == 200 and b'amiplus_meter_info{meter_id="12345678"' in body
        assert http_get(f"http://127.0.0.1:{running.ingress}/")[0] == 200
        logs = running.container.logs()
    lines = [line for line in logs.splitlines() if "MQTT:" in line]
    assert len(lines) == 1 and said in lines[0] and "running without MQTT" in lines[0], logs
    assert PASSWORD not in logs and "Traceback" not in logs


def test_bad_options_stop_the_addon_with_every_problem(
    engine: DockerEngine, image: str, tmp_path: Path
) -> None:
    """What the Supervisor accepts and the exporter does not: every problem in the add-on's
    log with its option's name, exit status 2, no traceback, no key."""
    bad_key = "00112233445566778899AABBCCDDEEFG"
    data = data_directory(
        tmp_path,
        meters=[
            {"id": "123456", "key": SIMULATED_KEY},
            {"id": "22334455", "key": bad_key},
            {"id": "12345678", "key": SIMULATED_KEY},
            {"id": "78563412", "key": SIMULATED_KEY, "name": "twice"},
        ],
        receivers=[{"type": "antenna"}],
    )
    with addon(engine, image, data) as running:

        def stopped() -> bool:
            status: str = running.container.state()["Status"]
            return status == "exited"

        assert wait_until(stopped, 60, every=0.5), running.container.logs()
        assert running.container.state()["ExitCode"] == 2
        logs = running.container.logs()
    for option in ("meters[1].id", "meters[2].key", "meters[4]", "receivers[1].type"):
        assert f"add-on configuration: {option}: " in logs, logs
    assert "4 problem(s) in the add-on's options; nothing started" in logs
    assert "Traceback" not in logs and bad_key not in logs and SIMULATED_KEY not in logs


def test_the_state_in_data_survives_a_restart(
    engine: DockerEngine, image: str, tmp_path: Path
) -> None:
    """The Supervisor replaces the container on a restart, keeping /data: the day's energy
    still counts from the first container's first reading."""
    listen = free_port()
    meter = SimulatedMeter(FAMILIES_BY_NAME["otus"], meter_id="20240001")
    data = data_directory(
        tmp_path,
        meters=[{"id": "20240001", "key": SIMULATED_KEY, "name": "flat"}],
        receivers=[{"type": "lines", "listen": f"udp://127.0.0.1:{listen}"}],
    )
    radio = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def today(running: Running, kwh: float) -> bool:
        """Send a telegram; whether the page says the day's import is `kwh` (give or take what
        the simulated household draws while the test runs)."""
        frame, _ = meter.telegram(datetime.datetime.now(datetime.UTC))
        radio.sendto(frame.hex().encode() + b"\n", ("127.0.0.1", listen))
        periods = running.status()["meters"][0]["periods"]
        imported = periods.get("today", {}).get("energy_imported_kwh")
        return imported is not None and abs(imported - kwh) < 0.2

    try:
        with addon(engine, image, data) as first:
            assert wait_until(lambda: answered(first), 60, every=0.5), first.container.logs()
            assert wait_until(lambda: today(first, 0.0), 30, every=0.5), first.container.logs()
            meter.imported_wh[1] += 1000.0
            assert wait_until(lambda: today(first, 1.0), 30, every=0.5), first.container.logs()
            assert first.container.stop()[1] == 0, first.container.logs()
        assert "20240001" in json.loads((data / "calendar.json").read_text())["meters"]
        meter.imported_wh[1] += 2000.0
        with addon(engine, image, data) as second:
            assert wait_until(lambda: answered(second), 60, every=0.5), second.container.logs()
            assert wait_until(lambda: today(second, 3.0), 30, every=0.5), second.container.logs()
            assert "periods start again" not in second.container.logs()
    finally:
        radio.close()
