"""Memory per meter of what the exporter keeps for it: prints figures, asserts nothing.

    .venv/bin/python tests/bench/bench_memory.py [--meters N] [--days D]

Each meter is fed a reading every hour over `--days` days (default 40, so the calendar
holds every kept period: today back to last month) through the same parts the intake uses:
the state, the calendar (with prices) and the status page's history, and the Prometheus
exposition renders it once. Python's allocations are traced (tracemalloc) part by part. The
first 16 meters get the status page's charts (the last hour and the last 24 hours); the others
do not, so "history on" is the average of the first 16 and "history off" of the rest.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from exporter.amiplus.reading import MeterReading  # noqa: E402
from exporter.config.prices import PriceEntry, Prices, TariffPrice  # noqa: E402
from exporter.outputs import (  # noqa: E402
    ConfigReloads,
    ExporterCollector,
    Exposition,
    registry,
)
from exporter.pipeline.calendar import Calendar  # noqa: E402
from exporter.pipeline.handoff import MeterUpdate  # noqa: E402
from exporter.pipeline.state import State  # noqa: E402
from exporter.web.history import CHART_METERS, PageHistory  # noqa: E402

STEP = 3600.0
END = 1_795_000_000.0  # November 2026
PRICES = Prices(
    (PriceEntry(date(2020, 1, 1), ((1, TariffPrice(0.6, 0.3)), (2, TariffPrice(0.4))), 0.3),)
)


def values(n: int, step: int) -> dict[str, object]:
    zone_1, zone_2 = 1000.0 + n + step * 0.2, 500.0 + step * 0.1
    return {
        "energy_imported_kwh": round(zone_1 + zone_2, 3),
        "energy_imported_tariff_kwh": {1: round(zone_1, 3), 2: round(zone_2, 3), 3: 0.0, 4: 0.0},
        "energy_exported_kwh": round(step * 0.05, 3),
        "energy_exported_tariff_kwh": {1: round(step * 0.05, 3), 2: 0.0, 3: 0.0, 4: 0.0},
        "power_imported_w": 500.0 + step % 7,
        "power_exported_w": 0.0,
        "voltage_v": {"L1": 231.0, "L2": 232.0, "L3": 233.0},
        "current_a": {"L1": 1.0, "L2": 1.5, "L3": 0.5},
        "rssi_dbm": -70.0,
    }


def traced(work: Callable[[], object]) -> int:
    """Bytes still allocated after `work` (what it keeps)."""
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    kept = work()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    del kept
    return after - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--meters", type=int, default=116, help="meters in all (16 with charts)")
    parser.add_argument("--days", type=int, default=40)
    args = parser.parse_args()
    keys = [f"{30_000_001 + n:08d}" for n in range(args.meters)]
    steps = int(args.days * 86400 / STEP)
    tracemalloc.start()
    state = State()
    calendar = Calendar(prices=PRICES)
    history = PageHistory()
    exposition = Exposition(
        state,
        registry(ExporterCollector(state, list, list, ConfigReloads(), calendar)),
        clock=lambda: END,
        calendar=calendar,
    )

    def feed(group: list[str], part: str) -> None:
        for n, key in enumerate(group):
            for step in range(steps):
                at = END - (steps - step) * STEP
                reading = MeterReading(key, "APA", 1, 2, values=values(n, step))
                if part == "state":
                    state.record(key, key, reading, at, "r")
                elif part == "calendar":
                    calendar.record(key, reading.values, at)
                else:
                    history.submit(MeterUpdate(key, key, reading, reading.values, at, "r"))

    first, rest = keys[:CHART_METERS], keys[CHART_METERS:]
    figures: dict[str, tuple[int, int]] = {}
    for part in ("state", "calendar", "history"):
        on = traced(partial(feed, first, part))
        off = traced(partial(feed, rest, part))
        figures[part] = (on, off)
    figures["exposition"] = (0, traced(exposition.render))
    collector = ExporterCollector(state, list, list, ConfigReloads())
    plain = Exposition(state, registry(collector), clock=lambda: END)
    without_periods = traced(plain.render)
    kb = 1024
    print(
        f"meters: {len(first)} with the page's charts, {len(rest)} without; {steps} readings each"
    )
    for part, (on, off) in figures.items():
        if part == "exposition":
            print(
                f"  {part:<11}: {off / len(keys) / kb:6.1f} KB per meter (rendered lines kept; "
                f"{without_periods / len(keys) / kb:.1f} KB without the periods' lines)"
            )
        else:
            print(
                f"  {part:<11}: {on / len(first) / kb:6.1f} KB per meter with charts, "
                f"{off / len(rest) / kb:6.1f} KB without"
            )
    rendered = figures["exposition"][1] / len(keys)
    parts = [part for part in figures if part != "exposition"]
    with_day = sum(figures[part][0] / len(first) for part in parts) + rendered
    without = sum(figures[part][1] / len(rest) for part in parts) + rendered
    print(
        f"  in all     : {with_day / kb:6.1f} KB per meter with the page's charts "
        f"(the first {CHART_METERS}), {without / kb:6.1f} KB without"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
