"""Status page benchmark: prints figures, asserts nothing.

    .venv/bin/python tests/bench/bench_page.py [--loads N] [--size WxH ...]

Page weight (the HTML with the embedded status of the simulated meter, and /api/status with its
history) against 100 KB, and the first render in headless Chromium on loopback against 1 s, on
a phone's screen (390x844) and a desktop's (1366x900): navigation start to first contentful
paint (Chromium's Performance API), and to the meter's power figure on screen.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.servers import ExporterProcess  # noqa: E402
from tests.test_status_page import CONFIG, browser  # noqa: E402

WEIGHT_TARGET = 100_000
RENDER_TARGET_MS = 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--size", action="append", help="screen WxH (default: phone and desktop)")
    parser.add_argument("--warm-up", type=float, default=70, help="seconds of history first")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp())
    exporter = ExporterProcess(directory, CONFIG)
    driver = browser()
    try:
        time.sleep(args.warm_up)  # a few history points for the charts
        page = exporter.get("/")[1]
        status = exporter.get("/api/status?history=1")[1]
        print(
            f"page weight          : {len(page):,} bytes (HTML, CSS, JS and the embedded status)"
            f"  [{'target met' if len(page) <= WEIGHT_TARGET else 'ABOVE TARGET'}]"
        )
        print(f"/api/status?history=1: {len(status):,} bytes per poll")
        day = exporter.get("/api/status?history=1,day")[1]
        print(f"/api/status?history=1,day: {len(day):,} bytes (once a minute)")
        for size in args.size or ["390x844", "1366x900"]:
            width, height = map(int, size.split("x"))
            driver.set_window_size(width, height)
            print(f"screen {size}:")
            render_figures(driver, exporter.url, args.loads)
    finally:
        driver.quit()
        exporter.stop()
    return 0


def render_figures(driver: Any, url: str, loads: int) -> None:
    """First contentful paint and the power figure on screen, over `loads` loads."""
    paints, ready = [], []
    for _ in range(loads):
        driver.get("about:blank")
        started = time.perf_counter()
        driver.get(url + "/")
        WebDriverWait(driver, 10, poll_frequency=0.005).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, '[data-field="import"]')
        )
        ready.append((time.perf_counter() - started) * 1000)
        paint = driver.execute_script(
            "const p = performance.getEntriesByName('first-contentful-paint')[0];"
            "return p ? p.startTime : null;"
        )
        if paint is not None:
            paints.append(float(paint))
    worst = max(paints) if paints else float("inf")
    verdict = "target met" if worst <= RENDER_TARGET_MS else "ABOVE TARGET"
    print(
        f"  first contentful paint: median {statistics.median(paints):.0f} ms, "
        f"max {worst:.0f} ms over {len(paints)} loads  [{verdict}]"
    )
    print(
        f"  power figure shown    : median {statistics.median(ready):.0f} ms, "
        f"max {max(ready):.0f} ms (WebDriver round trips included)"
    )
    print(
        f"  targets               : page <= {WEIGHT_TARGET:,} bytes, first render <= "
        f"{RENDER_TARGET_MS} ms on loopback"
    )


if __name__ == "__main__":
    raise SystemExit(main())
