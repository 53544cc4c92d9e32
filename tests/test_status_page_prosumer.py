"""The status page's "Prosument" card in a real headless Chromium, on a phone (390 px) and a
desktop (1366 px), in Polish and English: each settled meter's figures of its scheme from the
figure table, its calendar periods balanced per hour, nothing wider than the screen or the card,
no console errors. The ledgers were kept before this start (tests/ledgers.py), as a restarted
exporter finds them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from exporter.config import parse_config

from .conftest import wait_until
from .ledgers import kept_until_now, price_file
from .servers import SIMULATED_KEY, ExporterProcess
from .test_status_page import ARTIFACTS, browser, viewport
from .test_status_page_layout import LANGUAGES, LAYOUT, SIZES

HOUSE, COTTAGE = "12345678", "12345679"
DAY = 86400.0


def config(directory: Path) -> str:
    now = time.time()
    prices = price_file(directory / "prices.csv", now - 50 * DAY, now + 2 * DAY)
    return f"""
meters:
  - id: "{HOUSE}"
    key: "{SIMULATED_KEY}"
    name: home
    settlement: {{scheme: net-billing}}
  - id: "{COTTAGE}"
    key: "{SIMULATED_KEY}"
    name: "cottage by the lake with a name that has to wrap on a phone"
    settlement: {{scheme: net-metering}}
receivers:
  - type: simulator
    meters: 2
    interval: 1
prices:
  - from: 2020-01-01
    tariffs: {{1: {{energy: 0.62, distribution: 0.31}}, 2: {{energy: 0.45, distribution: 0.12}}}}
state:
  directory: {directory / "state"}
market_prices: {{source: file, file: {prices}}}
"""


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An exporter whose two settled meters have kept their ledgers for 45 days, up to the
    registers the simulator starts from."""
    directory = tmp_path_factory.mktemp("prosumer-page")
    text = config(directory)
    kept_until_now(parse_config(text, env={}), directory / "prices.csv")
    process = ExporterProcess(directory, text)

    def ready() -> bool:
        meters = process.status()["meters"]
        return all(meter["telegrams"] >= 2 and "settlement" in meter for meter in meters)

    assert wait_until(ready, 30), process.log()
    yield process
    assert process.stop() == 0, process.log()


def card_shown(driver: Any) -> Any:
    wait = WebDriverWait(
        driver, 30, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    )
    wait.until(
        lambda d: d.find_elements(
            By.CSS_SELECTOR, f'[data-card="prosumer"] [data-settled="{COTTAGE}"] tbody tr'
        )
    )
    return driver.find_element(By.CSS_SELECTOR, '[data-card="prosumer"]')


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("size", SIZES)
def test_the_prosumer_card_fits_and_speaks(exporter: Any, size: str, language: str) -> None:
    driver = browser(LANGUAGES[language])
    try:
        viewport(driver, *SIZES[size])
        driver.get(exporter.url + "/")
        card = card_shown(driver)
        assert driver.execute_script("return window.innerWidth") == SIZES[size][0]
        driver.execute_script("arguments[0].scrollIntoView()", card)
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / f"prosumer-{size}-{language}.png"))
        problems = driver.execute_script(LAYOUT)
        assert problems == [], problems[:10]
        house = card.find_element(By.CSS_SELECTOR, f'[data-settled="{HOUSE}"]')
        cottage = card.find_element(By.CSS_SELECTOR, f'[data-settled="{COTTAGE}"]')
        figures = {
            element.get_attribute("data-figure")
            for element in house.find_elements(By.CSS_SELECTOR, "[data-figure]")
        }
        assert {"deposit_pln", "export_price_pln_per_kwh", "balanced_exported_total_kwh"} <= figures
        assert "bank_kwh" not in figures
        banked = cottage.find_element(By.CSS_SELECTOR, '[data-figure="bank_kwh"]').text
        assert "kWh" in banked
        periods = [
            row.get_attribute("data-period")
            for row in house.find_elements(By.CSS_SELECTOR, "tbody tr")
        ]
        assert {"yesterday", "last_week", "last_month"} <= set(periods)
        text = card.get_attribute("textContent")  # the phone shows the columns' names per cell
        if language == "pl":
            assert "Prosument" in text and "Depozyt prosumencki" in text and "zł" in text
            assert "Wczoraj" in text and "Pobór po bilansowaniu" in text
            assert "Na depozyt" in text and "Energia do odebrania" in text
            assert "Bilansowanie godzinowe" in text
        else:
            assert "Prosumer" in text and "Deposit" in text and "Yesterday" in text
            assert "Net export" in text and "Into the deposit" in text
            assert "Energy to take back" in text and "Balanced per hour" in text
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()


def test_the_card_shows_what_the_api_says(exporter: Any) -> None:
    driver = browser("en-GB")
    try:
        driver.get(exporter.url + "/")
        card = card_shown(driver)
        house = next(m for m in exporter.status()["meters"] if m["meter_id"] == HOUSE)
        shown = card.find_element(
            By.CSS_SELECTOR, f'[data-settled="{HOUSE}"] [data-figure="deposit_pln"] b'
        ).text
        deposit = house["settlement"]["deposit_pln"]
        assert deposit > 0 and shown == f"{deposit:,.2f} zł"
        cell = card.find_element(
            By.CSS_SELECTOR, f'[data-settled="{HOUSE}"] tr[data-period="yesterday"] td.n'
        ).text
        yesterday = house["settlement"]["periods"]["yesterday"]
        assert f"{yesterday['balanced_imported_kwh']:.2f} kWh" in cell
        assert f"meter {yesterday['imported_kwh']:.2f} kWh" in cell
    finally:
        driver.quit()
