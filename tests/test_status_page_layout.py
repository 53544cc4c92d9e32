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

from exporter.amiplus import ADVICE, STATE_UNWRITABLE
from exporter.amiplus.clock import WARSAW
from exporter.pipeline.calendar import PERIODS, local_day, midnight, period_start
from exporter.web import render

from .conftest import basic_auth, free_port, wait_until
from .servers import SIMULATED_KEY, Start, simulated_config
from .test_status_page import (
    ARTIFACTS,
    PASSWORD,
    USER,
    browser,
    viewport,
    web_config,
    with_password,
)

SIZES = {"phone": (390, 844), "desktop": (1366, 900)}
#: A stick by its stable name, not plugged in: the longest word a receiver's row holds.
STICK = "/dev/serial/by-id/usb-IMST_GmbH_iM871A-USB-if00-port0"
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
  - type: im871a
    device: {STICK}
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
    web = f"web:\n  config_file: {web_config(directory)}\n"
    process = ExporterProcess(
        directory, config(directory / "state") + web, headers=basic_auth(USER, PASSWORD)
    )

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
    driver = with_password(browser(LANGUAGES[language]))
    try:
        viewport(driver, *SIZES[size])
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
        assert re.search(MONTHS[language], clock.text), clock.text  # no 12/5/26: whose order?
        assert not re.search(r"\d+[/.]\d+[/.]\d+", clock.text), clock.text
        link = driver.find_element(By.ID, "metrics")
        href = link.get_attribute("href")
        assert href is not None and href.endswith("/metrics")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()


#: A month's name, as the meter clock is written in each language.
MONTHS = {
    "en": r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b",
    "pl": r"\b(sty|lut|mar|kwi|maj|cze|lip|sie|wrz|paź|lis|gru)\b",
}
#: Every word of the receivers' cells that the browser laid out on more than one line: a word
#: is a run of letters and digits inside one text node (a path breaks after its slashes).
BROKEN_WORDS = r"""
const out = [];
const cells = document.querySelectorAll('[data-card="receivers"] td, [data-card="receivers"] th');
for (const cell of cells) {
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest("details:not([open]) > :not(summary)")) continue;
    for (const match of node.textContent.matchAll(/[\p{L}\p{N}_]+/gu)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const boxes = [...range.getClientRects()].filter(r => r.width);
      const lines = new Set(boxes.map(r => Math.round(r.top)));
      if (lines.size > 1) out.push(`${match[0]} on ${lines.size} lines`);
    }
  }
}
return out;
"""


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_word_is_broken_inside_on_a_desktop(exporter: Any, language: str) -> None:
    """1366 px with a receiver at a long /dev/serial/by-id path: the Receivers table gives
    every word its width (it was 'im/87/1a', 'b/ł/ę/d/y')."""
    driver = with_password(browser(LANGUAGES[language]))
    try:
        viewport(driver, *SIZES["desktop"])
        driver.get(exporter.url + "/")
        shown(driver)
        WebDriverWait(driver, 30).until(
            lambda d: STICK.rpartition("/")[2] in d.find_element(By.ID, "app").text
        )
        assert driver.execute_script(BROKEN_WORDS) == []
        assert driver.execute_script(LAYOUT) == []
    finally:
        driver.quit()


def english_server_text(status: dict[str, Any]) -> set[str]:
    """What the server says in English only, of what the page shows: receivers' sources and
    why they are down, device types, the English of every two-language text."""
    found = {r["down_reason"] for r in status["receivers"] if r["down_reason"]}
    found |= {
        r["source"]["en"] for r in status["receivers"] if r["source"]["en"] != r["source"]["pl"]
    }
    found |= {h["device_type_words"]["en"] for h in status["heard"]}
    found |= {h["yaml_words"]["en"] for h in status["heard"] if "yaml_words" in h}
    for entry in (*status["receivers"], *(m.get("not_heard") or {} for m in status["meters"])):
        found |= {
            entry[key]["en"] for key in ("what", "advice") if key in entry and entry[key]["en"]
        }
    return found


def test_the_polish_page_shows_no_english_server_text(exporter: Any) -> None:
    driver = with_password(browser("pl-PL"))
    try:
        viewport(driver, *SIZES["desktop"])
        driver.get(exporter.url + "/")
        shown(driver)
        WebDriverWait(driver, 30).until(
            lambda d: "Brak uprawnień" in d.page_source or "Nie da się go otworzyć" in d.page_source
        )
        status = json.loads(exporter.get("/api/status")[1])
        english = english_server_text(status)
        assert "simulator (3 meters)" in english and "electricity" in english
        assert any("the 32-digit key from eLicznik" in phrase for phrase in english)
        text = driver.execute_script("return document.getElementById('app').innerText")
        assert [phrase for phrase in english if phrase in text] == []
        assert "symulator (3 liczniki)" in text and "energia elektryczna" in text
        summary = driver.find_element(By.CSS_SELECTOR, '[data-card="receivers"] details summary')
        assert summary.text == "szczegóły techniczne (po angielsku)"
        summary.click()  # the English detail is there for whoever asks, and stays open
        shows = "return document.getElementById('app').innerText"
        WebDriverWait(driver, 10).until(lambda d: STICK in d.execute_script(shows))
    finally:
        driver.quit()


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_meters_on_the_air_have_labelled_columns(exporter: Any, language: str) -> None:
    driver = with_password(browser(LANGUAGES[language]))
    try:
        viewport(driver, *SIZES["desktop"])
        driver.get(exporter.url + "/")
        shown(driver)
        card = driver.find_element(By.CSS_SELECTOR, '[data-card="heard"]')
        labels = [th.text for th in card.find_elements(By.CSS_SELECTOR, "thead th")]
        first = card.find_element(By.CSS_SELECTOR, "tbody tr")
        assert len(labels) == len(first.find_elements(By.CSS_SELECTOR, "td")) and all(labels)
        expected = ("meter", "signal") if language == "en" else ("licznik", "sygnał")
        assert [label.lower() for label in labels[:2]] == list(expected)
    finally:
        driver.quit()


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_state_directory_it_cannot_write_is_on_the_page(
    start_exporter: Start, tmp_path: Path, language: str
) -> None:
    """The daemon's warning, at the top of the page in the page's language (issues 21, 24)."""
    taken = tmp_path / "a-file-not-a-directory"
    taken.write_text("")
    web = f"web:\n  config_file: {web_config(tmp_path)}\n"
    exporter = start_exporter(
        f"{simulated_config(1)}state:\n  directory: {taken}\n{web}",
        headers=basic_auth(USER, PASSWORD),
    )
    advice = ADVICE[STATE_UNWRITABLE]
    driver = with_password(browser(LANGUAGES[language]))
    try:
        driver.get(exporter.url + "/")
        card = WebDriverWait(driver, 30).until(
            lambda d: d.find_element(By.CSS_SELECTOR, '[data-card="warnings"]')
        )
        text = driver.execute_script("return arguments[0].innerText", card)
        what, how = (advice.what_pl, advice.pl) if language == "pl" else (advice.what_en, advice.en)
        assert what in text and how in text and str(taken) in text, text
        english = exporter.status()["warnings"][0]["message"]
        assert (english in text) == (language == "en"), text  # folded on the Polish page
    finally:
        driver.quit()


def test_both_power_charts_use_one_unit(exporter: Any, tmp_path: Path) -> None:
    """The last hour peaks above 2 kW while the 24 hours' 5-minute averages stay below: both
    charts still speak kW (the page as served, from a status the test shapes)."""
    status = json.loads(exporter.get("/api/status?history=1,day")[1])
    meter = next(m for m in status["meters"] if m["meter_id"] == "12345678")
    hour, day = meter["history"], meter["day"]
    hour["import_w"] = [2500.0 if n == 0 else 400.0 for n in range(len(hour["t"]))]
    day["import_w"] = [900.0 for _ in day["t"]]
    page = tmp_path / "page.html"
    page.write_text(render(status))
    driver = with_password(browser())
    try:
        driver.get(page.as_uri())
        for kind in ("power", "day"):
            texts = {
                text.text
                for text in driver.find_elements(
                    By.CSS_SELECTOR, f'[data-meter="12345678"] [data-chart="{kind}"] svg text'
                )
            }
            assert "kW" in texts and "W" not in texts, (kind, texts)
    finally:
        driver.quit()


def test_the_language_switch_and_its_memory(exporter: Any) -> None:
    driver = with_password(browser("en-GB"))
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
    driver = with_password(browser())
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
