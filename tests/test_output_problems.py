"""An output's problem in plain words, English and Polish: in `/api/status` and on the page (the
InfluxDB spool's disk full or read-only, InfluxDB or the MQTT broker away)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import Metric
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from exporter.amiplus import OUTPUT_ADVICE
from exporter.config import parse_config
from exporter.outputs.influx import STATUS_MEANINGS
from exporter.outputs.mqtt.output import ERROR_REASONS
from exporter.outputs.spool import DISK_FULL, SPOOL_ERROR
from exporter.pipeline import MeterUpdate, Output, State
from exporter.web.status import status

from .conftest import free_port, wait_until
from .servers import Start, simulated_config
from .test_data_safety import fill, tmpfs  # noqa: F401 (a fixture, used by name)
from .test_status_page import browser


class Reported(Output):
    """An output that reports a given status."""

    def __init__(self, name: str, shown: dict[str, Any]) -> None:
        self.name = name
        self.shown = shown

    def submit(self, update: MeterUpdate) -> None:
        raise AssertionError("not used here")

    def collect(self) -> Iterator[Metric]:
        return iter(())

    def status(self) -> dict[str, Any]:
        return self.shown


def problem_of(name: str, shown: dict[str, Any]) -> dict[str, Any] | None:
    config = parse_config("receivers:\n  - type: simulator\n", env={})
    found = status(
        config, State(), receivers=[], heard=[], started_at=0.0, outputs=[Reported(name, shown)]
    )
    problem: dict[str, Any] | None = found[name].get("problem")
    return problem


@pytest.mark.parametrize(
    ("name", "shown", "code"),
    [
        ("influxdb", {"spool_problem": DISK_FULL, "error_reason": "connection"}, DISK_FULL),
        ("influxdb", {"spool_problem": None, "error_reason": "unauthorized"}, "unauthorized"),
        ("influxdb", {"spool_problem": None, "error_reason": ""}, None),
        ("mqtt", {"connected": False, "error_reason": "connection"}, "connection"),
        ("mqtt", {"connected": False, "error_reason": ""}, None),  # still connecting
        ("mqtt", {"connected": True, "error_reason": "unauthorized"}, None),  # back by now
    ],
)
def test_an_outputs_problem_comes_with_what_and_advice_in_both_languages(
    name: str, shown: dict[str, Any], code: str | None
) -> None:
    problem = problem_of(name, shown)
    if code is None:
        assert problem is None
        return
    assert problem is not None and problem["code"] == code
    words = OUTPUT_ADVICE[f"{name}:{code}"]
    assert problem["what"] == {"en": words.what_en, "pl": words.what_pl}
    assert problem["advice"] == {"en": words.en, "pl": words.pl}


def test_every_reason_an_output_gives_has_plain_words() -> None:
    influx = {reason for reason, _ in STATUS_MEANINGS.values()}
    influx |= {"server_error", "http_error", "connection", "timeout", "spool", DISK_FULL}
    influx |= {SPOOL_ERROR}
    mqtt = set(ERROR_REASONS) - {"queue_full", "publish"}  # counts of updates, not a state
    codes = {f"influxdb:{r}" for r in influx} | {f"mqtt:{r}" for r in mqtt}
    assert codes == set(OUTPUT_ADVICE)
    for code, words in OUTPUT_ADVICE.items():
        assert all((words.en, words.pl, words.what_en, words.what_pl)), code
        assert words.what_pl != words.what_en and words.pl != words.en, code


def test_the_page_says_the_spool_disk_is_full_and_the_broker_is_away(
    tmpfs: Path,  # noqa: F811
    start_exporter: Start,
) -> None:
    """A real exporter whose InfluxDB spool is on a full disk and whose MQTT broker does not
    listen: the page says both in plain words, in English and in Polish."""
    extra = (
        f"influxdb:\n  url: http://127.0.0.1:{free_port()}\n  api: v1\n  database: x\n"
        f"  spool: {tmpfs / 'spool'}\n  flush_interval: 0.2\n"
        f"mqtt:\n  host: 127.0.0.1\n  port: {free_port()}\n"
    )
    exporter = start_exporter(simulated_config(0.5, extra))
    fill(tmpfs)

    def problems() -> dict[str, str]:
        shown = exporter.status()
        return {
            name: shown[name]["problem"]["code"]
            for name in ("influxdb", "mqtt")
            if "problem" in shown.get(name, {})
        }

    assert wait_until(lambda: problems() == {"influxdb": DISK_FULL, "mqtt": "connection"}, 30), (
        problems(),
        exporter.log(),
    )
    for language, key in (("en-GB", "en"), ("pl-PL", "pl")):
        driver = browser(language)
        try:
            driver.get(exporter.url + "/")
            for card, code in (("influxdb", "influxdb:disk_full"), ("mqtt", "mqtt:connection")):
                selector = f'[data-card="{card}"] [data-field="problem"]'
                WebDriverWait(driver, 20).until(
                    expected_conditions.presence_of_element_located((By.CSS_SELECTOR, selector))
                )
                shown = driver.find_element(By.CSS_SELECTOR, selector).text
                words = OUTPUT_ADVICE[code].as_json()
                assert words["what"][key] in shown and words["advice"][key] in shown, shown
        finally:
            driver.quit()
