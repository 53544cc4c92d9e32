"""The status page on a phone (390x844) and a desktop (1366x900), in Polish and English, in a real
headless Chromium: nothing wider than the screen or its card, chart text of at least 11 px with
legends, units and local-time ticks, periods and cost, server messages in the page's language,
charts for the first 16 meters, and no console errors."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from exporter.amiplus.clock import WARSAW
from exporter.pipeline.calendar import PERIODS, local_day, midnight, period_start

from .conftest import free_port, wait_until
from .servers import SIMULATED_KEY, Start
from .test_status_page import ARTIFACTS, browser

SIZES = {"phone": (390, 844), "desktop": (1366, 900)}
LANGUAGES = {"pl": "pl-PL", "en": "en-GB"}
#: Each measured element, with what it must fit in (the viewport and its card); Chromium's own
#: bounding boxes, half a pixel of rounding allowed.
LAYOUT = """
const width = document.documentElement.clientWidth, out = [];
const page = document.documentElement.scrollWidth;
if (page > width) out.push(`page ${page} > ${width}`);
for (const el of document.querySelectorAll("body *")) {
  if (el.closest("details:not([open]) > :not(summary), script, noscript, style")) continue;
  const box = el.getBoundingClientRect();
  if (!box.width && !box.height) continue;
  const what = el.outerHTML.slice(0, 80);
  if (box.left < -0.5 || box.right > width + 0.5) {
    out.push(`${what} leaves the screen: ${box.left}-${box.right} of ${width}`);
  }
  const card = el.parentElement && el.parentElement.closest(".card");
  if (card) {
    const c = card.getBoundingClientRect();
    if (box.left < c.left - 0.5 || box.right > c.right + 0.5) {
      out.push(`${what} leaves its card: ${box.left}-${box.right} in ${c.left}-${c.right}`);
    }
  }
}
return out;
"""
#: Every chart text's size on screen: its font size times the SVG's scale.
CHART_TEXT = """
return [...document.querySelectorAll(".chart svg text")].map(el => {
  const svg = el.ownerSVGElement;
  const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  return [el.textContent, parseFloat(getComputedStyle(el).fontSize) * scale];
});
"""


def calendar_file(directory: Path) -> None:
    """Periods from before this start: the meter was heard an hour ago, with registers a
    little below the simulator's (zone 1 2345.678 kWh, zone 2 1234.567, exported 456.789 and
    98.765), and at the boundaries of the kept periods before that."""
    now = time.time()
    today = local_day(now, WARSAW)
    starts = sorted({period_start(p.kind, today, p.back) for p in PERIODS})
    marks = {}
    for n, start in enumerate(reversed(starts), start=1):
        marks[start.isoformat()] = {
            "at": midnight(start, WARSAW) - 60,
            "registers": registers(2345.0 - 10 * n, 1234.0 - 5 * n, 456.0 - 2 * n, 98.0 - n),
            "money": {"energy/1": 100.0 - n, "distribution/1": 50.0 - n, "export": 10.0 - n},
            "partial": start == starts[0],  # the exporter started that day
        }
    latest = {
        "at": now - 3600,
        "registers": registers(2345.0, 1234.0, 456.0, 98.0),
        "money": {"energy/1": 101.0, "distribution/1": 51.0, "export": 11.0},
        "partial": False,
    }
    path = directory / "calendar.json"
    path.parent.mkdir(parents=True)
    meter = {"latest": latest, "marks": marks, "active_tariff": 1}
    path.write_text(json.dumps({"format": 2, "meters": {"12345678": meter}}))


def registers(zone_1: float, zone_2: float, out_1: float, out_2: float) -> dict[str, float]:
    return {
        "energy_imported_kwh": zone_1 + zone_2,
        "energy_imported_tariff_kwh/1": zone_1,
        "energy_imported_tariff_kwh/2": zone_2,
        "energy_exported_kwh": out_1 + out_2,
        "energy_exported_tariff_kwh/1": out_1,
        "energy_exported_tariff_kwh/2": out_2,
    }


def config(state: Path) -> str:
    """Two meters of a simulated three (the third is a neighbour's), one configured meter
    never heard, a receiver that cannot connect, prices and contracted power."""
    return f"""
meters:
  - id: "12345678"
    key: "{SIMULATED_KEY}"
    name: home
    contracted_power: 14000
  - id: "12345679"
    key: "{SIMULATED_KEY}"
    name: "garage with a rather long name that has to wrap on a phone"
  - id: "87654321"
    key: "{SIMULATED_KEY}"
    name: cellar
receivers:
  - type: simulator
    meters: 3
    interval: 1
  - type: lines
    name: esp32-in-the-hall-by-the-front-door
    connect: tcp://127.0.0.1:{free_port()}
prices:
  - from: 2020-01-01
    tariffs:
      1: {{energy: 0.62, distribution: 0.31}}
      2: {{energy: 0.45, distribution: 0.12}}
    export: 0.3
state:
  directory: {state}
"""


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from .servers import ExporterProcess

    directory = tmp_path_factory.mktemp("page")
    calendar_file(directory / "state")
    process = ExporterProcess(directory, config(directory / "state"))

    def ready() -> bool:
        status = process.status()
        heard = {m["meter_id"] for m in status["meters"] if m["telegrams"] >= 2}
        down = [r for r in status["receivers"] if not r["up"] and r.get("what")]
        return bool(down) and {"12345678", "12345679"} <= heard

    assert wait_until(ready, 30), process.log()
    yield process
    assert process.stop() == 0, process.log()


def shown(driver: webdriver.Chrome) -> None:
    wait = WebDriverWait(
        driver, 30, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    )
    wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, '[data-meter="12345678"] [data-chart="day"] svg')
    )
    wait.until(
        lambda d: d.find_elements(
            By.CSS_SELECTOR, '[data-meter="12345678"] [data-chart="voltage"] svg .series'
        )
    )


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("size", SIZES)
def test_the_page_fits_and_speaks(exporter: Any, size: str, language: str) -> None:
    driver = browser(LANGUAGES[language])
    try:
        driver.set_window_size(*SIZES[size])
        width = driver.execute_script("return window.innerWidth")
        driver.set_window_size(2 * SIZES[size][0] - width, SIZES[size][1])  # the inner width
        driver.get(exporter.url + "/")
        shown(driver)
        assert driver.execute_script("return window.innerWidth") == SIZES[size][0]
        assert driver.execute_script("return document.documentElement.lang") == language
        problems = driver.execute_script(LAYOUT)
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / f"status-{size}-{language}.png"))
        assert problems == [], problems[:10]
        texts = driver.execute_script(CHART_TEXT)
        assert texts and all(px >= 11 for _, px in texts), [t for t in texts if t[1] < 11]
        labels = [text for text, _ in texts]
        assert {"W", "V"} <= set(labels) or {"kW", "V"} <= set(labels)  # the axes' units
        assert (
            sum(bool(re.fullmatch(r"\d\d:\d\d(:\d\d)?", label)) for label in labels) >= 6
        )  # ticks
        charts = driver.find_elements(By.CSS_SELECTOR, '[data-meter="12345678"] .chart')
        legends = driver.find_elements(By.CSS_SELECTOR, '[data-meter="12345678"] .chart + .legend')
        assert len(charts) == len(legends) == 3  # the hour, the day, the voltage
        card = driver.find_element(By.CSS_SELECTOR, '[data-meter="12345678"]').text
        never = driver.find_element(By.CSS_SELECTOR, '[data-meter="87654321"]').text
        receivers = driver.find_element(By.CSS_SELECTOR, '[data-card="receivers"]').text
        if language == "pl":
            assert "Dzisiaj" in card and "Wczoraj" in card and "Poprzedni miesiąc" in card
            assert "zł" in card and "niepełne" in card and "Strefa taryfowa teraz" in card
            assert "Jeszcze nie usłyszany" in never and "amiplus-exporter listen" in never
            assert "Nie da się go otworzyć" in receivers and "Sprawdź" in receivers
        else:
            assert "Today" in card and "Yesterday" in card and "Last month" in card
            assert "partial" in card and "Tariff zone now" in card
            assert "Not heard yet" in never and "amiplus-exporter listen" in never
            assert "cannot be opened" in receivers
        assert not driver.find_elements(By.CSS_SELECTOR, '[data-state="example-prices"]')  # its own
        clock = driver.find_element(By.CSS_SELECTOR, '[data-meter="12345678"] [data-field="clock"]')
        assert re.search(r"\d\d:\d\d:\d\d", clock.text) and "T" not in clock.text  # local, not ISO
        link = driver.find_element(By.ID, "metrics")
        assert link.get_attribute("href").endswith("/metrics")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()


def test_the_language_switch_and_its_memory(exporter: Any) -> None:
    driver = browser("en-GB")
    try:
        driver.get(exporter.url + "/")
        shown(driver)
        switch = driver.find_element(By.ID, "lang")
        assert switch.text == "Polski"
        switch.click()
        WebDriverWait(driver, 10).until(
            lambda d: d.execute_script("return document.documentElement.lang") == "pl"
        )
        assert "Odbiorniki" in driver.find_element(By.ID, "app").text
        driver.refresh()  # remembered
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-meter]"))
        assert driver.execute_script("return document.documentElement.lang") == "pl"
        assert driver.find_element(By.ID, "lang").text == "English"
    finally:
        driver.quit()


def test_charts_for_the_first_sixteen_meters(start_exporter: Start) -> None:
    meters = "".join(
        f'  - id: "{12345678 + n}"\n    key: "{SIMULATED_KEY}"\n    name: m{n}\n' for n in range(18)
    )
    exporter = start_exporter(
        f"meters:\n{meters}receivers:\n  - type: simulator\n    meters: 18\n    interval: 1\n"
    )

    def days() -> list[Any]:
        status = json.loads(exporter.get("/api/status?history=day")[1])
        return [m.get("day") for m in status["meters"] if m["telegrams"]]

    assert wait_until(lambda: len(days()) == 18, 30)
    found = days()
    assert sum(day is not None for day in found) == 16
    assert all(day["t"] and day["import_w"] for day in found if day is not None)
    hours = [m["history"] for m in json.loads(exporter.get("/api/status?history=1")[1])["meters"]]
    assert sum(hour is not None for hour in hours) == 16  # the last hour: the same 16
    assert "day" not in json.loads(exporter.get("/api/status?history=1")[1])["meters"][0]
    driver = browser()
    try:
        driver.get(exporter.url + "/")
        WebDriverWait(driver, 30).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-chart="day"]')) == 16
        )
        assert len(driver.find_elements(By.CSS_SELECTOR, '[data-chart="power"]')) == 16
        notes = driver.find_elements(By.CSS_SELECTOR, '[data-state="no-charts"]')
        assert len(notes) == 2 and "first 16 meters" in notes[0].text
    finally:
        driver.quit()
