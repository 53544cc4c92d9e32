"""The live status page in a real headless Chromium, against the simulator-fed exporter."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import require, wait_until
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

    def history() -> list[float]:
        meters = json.loads(exporter.get("/api/status?history=1")[1])["meters"]
        return list(meters[0]["history"]["t"]) if meters else []

    assert wait_until(history, 30)
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
    token = base64.b64encode(b"family:open sesame").decode()
    exporter = start_exporter(
        CONFIG + f"web:\n  config_file: {web}\n", headers={"Authorization": f"Basic {token}"}
    )
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
        headers = {"headers": {"Authorization": f"Basic {token}"}}
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", headers)
        driver.get(exporter.url + "/")
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-meter]"))
        first = text(driver, "#updated")
        WebDriverWait(driver, 30).until(lambda d: text(d, "#updated") != first)  # a poll went
        assert not driver.find_element(By.ID, "offline").is_displayed()
    finally:
        driver.quit()
