"""The prosumer dashboard's hours and days against a real Prometheus fed three days of scrapes
that cross the October DST change (26 October 2025, a 25-hour day): each hour's net export bar
must be that hour's own balance and its price that hour's price, each day's bars the day's raw
and balanced energy, whatever step alignment Grafana uses.

The meter's readings go through the exporter's own state, calendar, ledger and exposition; the
scrapes' samples are backfilled into Prometheus. The expected figures are computed here from the
readings and the prices alone.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pytest
from prometheus_client import generate_latest

from exporter.amiplus.clock import WARSAW
from exporter.config import Config, parse_config
from exporter.outputs import ConfigReloads, ExporterCollector, Exposition, registry
from exporter.outputs.settlement import SettlementCollector
from exporter.pipeline.calendar import Calendar
from exporter.pipeline.settlement import Settlements
from exporter.pipeline.state import State

from .backfill import BackfilledPrometheus, Samples, collect
from .conftest import configured_meter, reading
from .grafana import query_range, seconds
from .ledgers import price, price_file
from .test_calendar_bars import nearest_day
from .test_dashboards import DASHBOARDS, load, substitute

METER = "12345678"
EVERY = 300  # seconds between readings, 13 s past the minute: none falls on an hour
FIRST = datetime(2025, 10, 24, 12, 0, 13, tzinfo=WARSAW).timestamp()
NOW = datetime(2025, 10, 27, 12, 0, tzinfo=WARSAW).timestamp()  # when the dashboard is looked at
SCRAPE_AFTER = 150  # seconds after each reading
HOUR = 3600
FAMILIES = {
    "amiplus_meter_info",
    "amiplus_period_start_timestamp_seconds",
    "amiplus_energy_imported_period_joules",
    "amiplus_energy_exported_period_joules",
    "amiplus_settlement_balanced_energy_imported_period_joules",
    "amiplus_settlement_balanced_energy_exported_period_joules",
    "amiplus_settlement_balanced_energy_exported_joules_total",
    "amiplus_settlement_market_price_pln_per_kwh",
    "amiplus_settlement_export_price_pln_per_kwh",
}
OFFSETS = {"UTC": 0, "winter (CET)": 3600, "summer (CEST)": 7200}


@dataclass(frozen=True)
class Reading:
    at: float
    imported: float  # kWh
    exported: float


def readings() -> list[Reading]:
    """A household with PV read every five minutes: export from 9 to 16 (local), import all
    day, both at once around noon, so that balancing each hour matters."""
    out = []
    imported, exported, at = 4321.0, 321.0, FIRST
    while at <= NOW:
        hour = datetime.fromtimestamp(at, WARSAW).hour
        load = 250 + (hour * 37) % 600 + (1800 if 11 <= hour < 13 else 0)
        pv = 600 + 150 * (hour % 5) if 9 <= hour < 16 else 0
        imported += load / 1000 * EVERY / 3600
        exported += pv / 1000 * EVERY / 3600
        out.append(Reading(at, round(imported, 3), round(exported, 3)))
        at += EVERY
    return out


# --- what each hour and day should show, from the readings alone ------------------------------


def at_boundary(history: list[Reading], moment: float) -> Reading:
    """The reading a boundary takes: the last one at or before it, else the first."""
    times = [r.at for r in history]
    return history[max(bisect.bisect_right(times, moment) - 1, 0)]


def hour_of(history: list[Reading], start: float) -> tuple[float, float, float, float]:
    """An hour's raw import and export, and its net import and export."""
    a, b = at_boundary(history, start), at_boundary(history, start + HOUR)
    imported, exported = b.imported - a.imported, b.exported - a.exported
    return imported, exported, max(0.0, imported - exported), max(0.0, exported - imported)


def day_of(history: list[Reading], day: date) -> dict[str, float]:
    """A local day's raw and net energy: its settled hours (those that ended by NOW)."""
    start = datetime(day.year, day.month, day.day, tzinfo=WARSAW).timestamp()
    end = datetime.fromordinal(day.toordinal() + 1).replace(tzinfo=WARSAW).timestamp()
    out = dict.fromkeys(("Imported, raw", "Imported, net", "Exported, raw", "Exported, net"), 0.0)
    hour = max(start, FIRST - FIRST % HOUR)
    while hour < min(end, NOW - HOUR):  # the hour ending at NOW is settled after it
        _, _, net_in, net_out = hour_of(history, hour)
        out["Imported, net"] += net_in
        out["Exported, net"] += net_out
        hour += HOUR
    a, b = at_boundary(history, start), at_boundary(history, min(end, NOW))
    out["Imported, raw"], out["Exported, raw"] = b.imported - a.imported, b.exported - a.exported
    return out


# --- the exporter's view, scraped 150 s after each reading ------------------------------------


@pytest.fixture(scope="module")
def history() -> list[Reading]:
    return readings()


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    directory = tmp_path_factory.mktemp("prosumer-panels")
    prices = price_file(directory / "prices.csv", FIRST - 86400, NOW + 86400)
    return parse_config(
        f"""
meters:
  - id: "{METER}"
    key: "000102030405060708090A0B0C0D0E0F"
    name: home
    settlement: {{scheme: net-billing}}
state: {{directory: {directory / "state"}}}
market_prices: {{source: file, file: {prices}}}
""",
        env={},
    )


@pytest.fixture(scope="module")
def scraped(history: list[Reading], config: Config) -> Samples:
    """What a Prometheus scraping the exporter 150 s after each reading would hold: the
    exporter's own state, calendar, ledger and exposition at work."""
    clock = [FIRST]
    state = State()
    state.reconfigure(None, [configured_meter(METER, "home")])
    calendar = Calendar(WARSAW)
    settlements = Settlements(config, clock=lambda: clock[0])
    collector = ExporterCollector(
        state, list, list, ConfigReloads(), calendar, clock=lambda: clock[0]
    )
    collectors = registry(collector)
    collectors.register(SettlementCollector(settlements, state, clock=lambda: clock[0]))
    exposition = Exposition(state, collectors, clock=lambda: clock[0], calendar=calendar)
    samples: Samples = defaultdict(list)
    for sample in history:
        values = {"energy_imported_kwh": sample.imported, "energy_exported_kwh": sample.exported}
        _, merged = state.record(METER, "home", reading(METER, **values), sample.at, "r")
        calendar.record(METER, merged, sample.at, state.silent_after(METER))
        settlements.record(METER, merged, sample.at, state.silent_after(METER))
        clock[0] = sample.at + SCRAPE_AFTER
        if clock[0] <= NOW:
            text = exposition.render() + generate_latest(collectors).decode()
            collect(samples, text, clock[0], FAMILIES)
    return samples


@pytest.fixture(scope="module")
def prometheus(scraped: Samples, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = BackfilledPrometheus(tmp_path_factory.mktemp("backfilled"), scraped)
    yield server.url
    server.stop()


def panel(title: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        p for p in load(DASHBOARDS / "amiplus-prosumer.json")["panels"] if p["title"] == title
    )
    return found


def shown(url: str, found: dict[str, Any], offset: int) -> dict[str, dict[float, float]]:
    """A panel's series as Grafana asks for them (its interval as the step, its relative
    time), by legend: the value at each step's time."""
    span = seconds(found["timeFrom"])
    step = seconds(found["interval"])
    out: dict[str, dict[float, float]] = {}
    for target in found["targets"]:
        legend = target["legendFormat"].removesuffix(", {{name}} ({{meter_id}})")
        expression = substitute(
            target["expr"], {"meter": METER, "__range": f"{span}s", "__to": str(int(NOW))}
        )
        (series,) = query_range(url, expression, NOW - span, NOW, step=step, offset=offset)
        assert series["metric"]["name"] == "home"  # the legend's name
        out[legend] = {float(t): float(v) for t, v in series["values"]}
    return out


@pytest.mark.parametrize("offset", OFFSETS.values(), ids=OFFSETS.keys())
def test_each_hour_shows_its_own_net_export_and_price(
    prometheus: str, history: list[Reading], offset: int
) -> None:
    found = shown(prometheus, panel("Net export and its price per hour, last 48 hours"), offset)
    hours = sorted(found["Net export"])
    assert hours[0] == NOW - 48 * HOUR and hours[-1] == NOW - HOUR  # hourly steps, in UTC
    assert len(hours) == 48
    fall_back = datetime(2025, 10, 26, 2, 0, tzinfo=WARSAW).timestamp()
    assert {fall_back, fall_back + HOUR} <= set(hours)  # 02:00 twice: both hours there
    exported_somewhere = 0
    for start in hours[:-1]:  # the last hour ends at NOW: settled after it
        _, _, _, net_export = hour_of(history, start)
        assert found["Net export"][start] == pytest.approx(net_export, abs=1e-9), start
        exported_somewhere += net_export > 0
        assert found["Market price"][start] == pytest.approx(price(start) / 1000), start
        assert found["Export price"][start] == pytest.approx(max(0.0, price(start)) / 1000)
    assert found["Net export"][hours[-1]] == 0
    assert exported_somewhere >= 5  # the afternoons of two days
    noon = datetime(2025, 10, 26, 12, 0, tzinfo=WARSAW).timestamp()
    raw_in, raw_out, _, net_out = hour_of(history, noon)
    assert raw_in > 1 and raw_out > 0.5 and net_out == 0 and found["Net export"][noon] == 0
    one = datetime(2025, 10, 26, 13, 0, tzinfo=WARSAW).timestamp()
    assert found["Market price"][one] < 0 and found["Export price"][one] == 0  # negative: 0


@pytest.mark.parametrize("offset", OFFSETS.values(), ids=OFFSETS.keys())
def test_each_day_shows_its_raw_and_balanced_energy(
    prometheus: str, history: list[Reading], offset: int
) -> None:
    found = shown(prometheus, panel("Balanced and raw energy per day, last 31 days"), offset)
    for legend, bars in found.items():
        days = [nearest_day(moment) for moment in sorted(bars)]
        assert days == [date(2025, 10, d) for d in (24, 25, 26, 27)], (legend, days)
        for moment, value in bars.items():
            day = nearest_day(moment)
            want = day_of(history, day)[legend]
            assert value == pytest.approx(want, abs=1e-6), (legend, day)
    october_26 = day_of(history, date(2025, 10, 26))
    assert october_26["Exported, net"] < october_26["Exported, raw"] - 0.5  # balancing counts


def test_the_expectation_itself(history: list[Reading]) -> None:
    """The 25-hour day has 25 hours of net figures that add up with the raw ones."""
    day = date(2025, 10, 26)
    start = datetime(2025, 10, 26, tzinfo=WARSAW).timestamp()
    hours = [hour_of(history, start + n * HOUR) for n in range(25)]
    figures = day_of(history, day)
    assert sum(h[0] for h in hours) == pytest.approx(figures["Imported, raw"])
    assert sum(h[2] - h[3] for h in hours) == pytest.approx(
        figures["Imported, raw"] - figures["Exported, raw"]
    )
