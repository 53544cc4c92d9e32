"""The live status page in a real headless Chromium, against the simulator-fed exporter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import bcrypt
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import exporter as package
from exporter.amiplus.clock import WARSAW

from . import mosquitto
from .conftest import basic_auth, require, wait_until
from .gateways import Gateway
from .mosquitto import Mosquitto
from .servers import SIMULATED_KEY, Start, simulated_config

KEY = SIMULATED_KEY
ARTIFACTS = Path(__file__).parent / "artifacts"
CONFIG = simulated_config(1)


def browser(language: str = "en-GB", *flags: str) -> webdriver.Chrome:
    """Debian's Chromium, headless, with the flags this closed network needs (and `flags`)."""
    options = webdriver.ChromeOptions()
    options.binary_location = require("chromium", "chromium")
    for flag in (
        *flags,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1100,1600",
        f"--lang={language}",
    ):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=require("chromedriver", "chromium-driver"))
    return webdriver.Chrome(options=options, service=service)


#: The page's own user, for tests of what a client that proved who it is sees (paths, devices).
USER, PASSWORD = "household", "page-password"


def web_config(directory: Path) -> Path:
    """A web config file with basic auth for `USER` (the exporter then names paths to it)."""
    path = directory / "web.yml"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    path.write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
    return path


def with_password(driver: webdriver.Chrome) -> webdriver.Chrome:
    """Every request of the browser, the page's own fetches too, carries `USER`'s password."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": basic_auth(USER, PASSWORD)})
    return driver


def viewport(driver: webdriver.Chrome, width: int, height: int) -> webdriver.Chrome:
    """The page's inner width and height exactly (the window's frame differs by platform and
    a resize is answered late under load; the DevTools override is exact and at once)."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    return driver


@pytest.fixture
def chrome() -> Iterator[webdriver.Chrome]:
    driver = browser()
    yield driver
    driver.quit()


def text(driver: webdriver.Chrome, selector: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, selector).text)


def test_the_page_is_live(chrome: webdriver.Chrome, start_exporter: Start) -> None:
    exporter = start_exporter(CONFIG)
    chrome.get(exporter.url + "/")
    wait = WebDriverWait(
        chrome, 30, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    )
    wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, '[data-meter="12345678"] [data-field="import"]')
    )
    assert text(chrome, '[data-meter="12345678"] h2').startswith("home")
    first = (text(chrome, '[data-field="import"]'), text(chrome, '[data-field="export"]'))
    shown = text(chrome, '[data-meter="12345678"]')
    assert "Taking from the grid" in shown or "Sending to the grid" in shown or "Balanced" in shown
    wait.until(
        lambda d: (text(d, '[data-field="import"]'), text(d, '[data-field="export"]')) != first
    )
    phases = chrome.find_elements(By.CSS_SELECTOR, "[data-phase]")
    assert [p.get_attribute("data-phase") for p in phases] == ["L1", "L2", "L3"]
    assert all(p.text.endswith(" V") for p in phases)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-chart="voltage"] svg .series'))
    assert chrome.find_element(By.CSS_SELECTOR, '[data-chart="voltage"] svg').get_attribute(
        "aria-label"
    )
    assert "simulator" in text(chrome, "main")  # the receiver
    chrome.execute_script("document.querySelector('[data-meter=\"12345678\"] details').open = true")
    row = '[data-meter="12345678"] [data-key="voltage_v"]'
    shown_row = wait.until(lambda d: text(d, row))
    assert shown_row.startswith("Voltage L1: ") and shown_row.endswith(" V")  # label and unit
    ARTIFACTS.mkdir(exist_ok=True)
    chrome.save_screenshot(str(ARTIFACTS / "status-page.png"))
    errors = [entry for entry in chrome.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    assert chrome.execute_script("return document.documentElement.lang") == "en"


def test_the_page_speaks_polish_to_a_polish_browser(start_exporter: Start) -> None:
    exporter = start_exporter(CONFIG)
    driver = browser("pl-PL")
    try:
        driver.get(exporter.url + "/")
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-meter]"))
        assert driver.execute_script("return document.documentElement.lang") == "pl"
        page = text(driver, "main")
        assert "Napięcie (norma 207-253 V)" in page and "Odbiorniki" in page
        driver.execute_script("document.querySelector('[data-meter] details').open = true")
        WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: text(d, '[data-key="energy_exported_kwh"]').startswith("Energia oddana")
        )
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "status-page-pl.png"))
    finally:
        driver.quit()


def test_page_weight_and_no_key_anywhere(start_exporter: Start) -> None:
    exporter = start_exporter(CONFIG)

    def charted() -> list[float]:
        meters = json.loads(exporter.get("/api/status?history=1")[1])["meters"]
        kept = meters[0]["history"] if meters else None  # null until the first telegram
        return list(kept["t"]) if kept else []

    assert wait_until(charted, 30)
    code, page = exporter.get("/")
    assert code == 200 and len(page) < 100_000
    assert b"cdn" not in page.lower() and b"https://" not in page  # self-contained
    for body in (page, exporter.get("/api/status?history=1")[1], exporter.get("/api/status")[1]):
        assert KEY.encode() not in body and KEY.lower().encode() not in body
    status = json.loads(exporter.get("/api/status?history=1")[1])
    history = status["meters"][0]["history"]
    assert set(history) == {"t", "import_w", "export_w", "L1", "L2", "L3"}
    assert (
        len(history["t"]) >= 1
        and "history" not in json.loads(exporter.get("/api/status")[1])["meters"][0]
    )


def test_basic_auth_protects_the_page(start_exporter: Start, tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"open sesame", bcrypt.gensalt(rounds=10)).decode()
    web.write_text(f"basic_auth_users:\n  family: '{hashed}'\n")
    auth = basic_auth("family", "open sesame")
    exporter = start_exporter(CONFIG + f"web:\n  config_file: {web}\n", headers=auth)
    assert exporter.get("/", headers={})[0] == 401
    assert exporter.get("/api/status", headers={})[0] == 401
    code, page = exporter.get("/")
    assert code == 200 and b'id="status"' in page and KEY.encode() not in page
    driver = browser()
    try:
        driver.get(exporter.url + "/")  # a browser asks for the password: nothing arrives
        WebDriverWait(driver, 10).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        assert not driver.find_elements(By.CSS_SELECTOR, "[data-meter]")
        assert KEY not in driver.page_source and "12345678" not in driver.page_source
        # What a browser does once the user typed the password: send it with every request.
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": auth})
        driver.get(exporter.url + "/")
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-meter]"))
        first = text(driver, "#updated")
        WebDriverWait(driver, 30).until(lambda d: text(d, "#updated") != first)  # a poll went
        assert not driver.find_element(By.ID, "offline").is_displayed()
    finally:
        driver.quit()


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=WARSAW).timestamp()


#: Spans the page's charts may hold (from local Warsaw times), the most labels that fit, and the
#: ticks they get: seconds, minutes or hours as the span needs, on whole steps, never twice.
TICKS = [
    ((2026, 6, 10, 0, 30), 1, 4, ["00:30:00", "00:30:01"]),
    ((2026, 6, 10, 0, 30), 60, 7, [f"00:30:{s}0" for s in range(6)] + ["00:31:00"]),
    ((2026, 6, 10, 0, 30), 300, 7, [f"00:3{m}" for m in range(6)]),
    (
        (2026, 6, 10, 0, 30),
        3600,
        7,
        ["00:30", "00:40", "00:50", "01:00", "01:10", "01:20", "01:30"],
    ),
    ((2026, 6, 10, 0, 30), 86400, 7, ["04:00", "08:00", "12:00", "16:00", "20:00", "00:00"]),
    # the night the clocks go back: 02:00 comes twice, its label once
    ((2026, 10, 25, 0, 0), 7 * 3600, 8, [f"0{h}:00" for h in range(7)]),
]


def test_the_time_axis_follows_the_span(chrome: webdriver.Chrome, start_exporter: Start) -> None:
    exporter = start_exporter(CONFIG)
    chrome.get(exporter.url + "/")
    day = '[data-meter="12345678"] [data-chart="day"] svg text.tick'
    WebDriverWait(chrome, 30, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, day)
    )
    # A minute of data: the 24-hour chart holds one 5-minute step and labels its minutes.
    labels = chrome.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)", day
    )
    assert len(labels) >= 2 and len(set(labels)) == len(labels), labels
    assert all(len(label) == 5 for label in labels), labels  # HH:MM
    for start, span, most, expected in TICKS:
        x0 = local(*start)
        shown = chrome.execute_script(
            "return ticks(arguments[0], arguments[1], arguments[2]).map(t => t[1])",
            x0,
            x0 + span,
            most,
        )
        assert shown == expected, (start, span)


def test_the_built_in_meter_shows_example_prices_and_the_version(
    chrome: webdriver.Chrome, start_exporter: Start
) -> None:
    exporter = start_exporter(None)  # `make run`: no configuration
    assert exporter.status()["exporter"]["example_prices"] is True
    chrome.get(exporter.url + "/")
    note = '[data-meter="12345678"] [data-state="example-prices"]'
    wait = WebDriverWait(chrome, 30, ignored_exceptions=(StaleElementReferenceException,))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, note))
    assert text(chrome, note) == "cost: example prices"
    assert "zł" in text(chrome, '[data-meter="12345678"] [data-period="today"]')
    assert text(chrome, "footer") == f"amiplus-exporter {package.__version__}"
    chrome.find_element(By.ID, "lang").click()
    wait.until(lambda d: text(d, note) == "koszt: ceny przykładowe")


def test_each_gateway_behind_a_broker_is_a_receiver_on_the_page(
    chrome: webdriver.Chrome, start_exporter: Start, broker: Mosquitto
) -> None:
    """An mqtt receiver's gateways have rows of their own; a gateway refused a view is counted
    in the receiver's row."""
    exporter = start_exporter(
        f'meters:\n  - id: "12345678"\n    key: "{KEY}"\n'
        f"receivers:\n  - type: mqtt\n    name: esp\n    host: 127.0.0.1\n    port: {broker.port}\n"
        f"    username: {mosquitto.USER}\n    password: {mosquitto.PASSWORD}\n"
    )
    assert wait_until(lambda: exporter.status()["receivers"][0]["up"], 20)
    board = Gateway(broker, "page")
    try:
        board.publish(
            "wmbus/kitchen/telegram", "T1;1;1;2026-01-01 10:00:00.00Z;-70;;;0x" + "00" * 20
        )
        board.publish("wmbus/" + "x" * 65 + "/telegram", "hello")  # a name too long for a view
        assert wait_until(lambda: len(exporter.status()["receivers"]) == 2, 20)
    finally:
        board.close()
    chrome.get(exporter.url + "/")
    wait = WebDriverWait(chrome, 30, poll_frequency=0.2)
    rows = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-receiver="esp/kitchen"]'))
    assert "1" in rows[0].text  # its frame
    own = text(chrome, '[data-receiver="esp"]')
    assert "from gateways over the limit 1" in own and "framing 1" in own
