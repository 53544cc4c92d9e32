"""The dashboards' calendar bars against real servers fed with a synthetic month that crosses the
October DST change (26 October 2025, a 25-hour day), a gap across midnight and a price change:
every daily, weekly and monthly bar must be the calendar period's register difference (and
cost), whatever step alignment Grafana uses.

The meter's readings go through the exporter's own state, calendar and exposition; the scrapes'
samples are backfilled into Prometheus (`promtool tsdb create-blocks-from openmetrics`), the
readings written to InfluxDB as the exporter's points. The expected figures are computed here
from the readings alone.
"""

from __future__ import annotations

import bisect
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pytest
from prometheus_client import generate_latest

from exporter.amiplus.clock import WARSAW
from exporter.config.prices import PriceEntry, Prices, TariffPrice
from exporter.outputs import ConfigReloads, ExporterCollector, Exposition, registry
from exporter.outputs.influx import point
from exporter.pipeline.calendar import Calendar, midnight, period_start
from exporter.pipeline.state import State

from .backfill import BackfilledPrometheus, Samples, collect
from .conftest import configured_meter, reading
from .grafana import query_range, seconds
from .servers import InfluxDB
from .test_dashboards import DASHBOARDS, load, substitute

METER = "12345678"
EVERY = 600  # seconds between readings, 13 s past the minute: none falls on a midnight
FIRST = datetime(2025, 9, 27, 12, 0, 13, tzinfo=WARSAW).timestamp()
NOW = datetime(2025, 11, 5, 12, 0, tzinfo=WARSAW).timestamp()  # when the dashboard is looked at
GAP = (datetime(2025, 10, 10, 22, 0, tzinfo=WARSAW).timestamp(),  # the exporter is down
       datetime(2025, 10, 11, 2, 30, tzinfo=WARSAW).timestamp())  # fmt: skip
PRICES = Prices(
    (
        PriceEntry(date(2025, 9, 1), ((1, TariffPrice(0.6, 0.3)), (2, TariffPrice(0.4, 0.1))), 0.2),
        PriceEntry(
            date(2025, 11, 1), ((1, TariffPrice(0.8, 0.35)), (2, TariffPrice(0.5, 0.12))), 0.25
        ),
    )
)
FAMILIES = {
    "amiplus_energy_imported_period_joules",
    "amiplus_energy_exported_period_joules",
    "amiplus_energy_imported_tariff_period_joules",
    "amiplus_period_cost_pln",
    "amiplus_period_export_value_pln",
    "amiplus_period_start_timestamp_seconds",
    "amiplus_meter_info",
}


@dataclass(frozen=True)
class Reading:
    at: float
    zones: dict[int, float]  # kWh per import tariff zone
    exported: float

    @property
    def imported(self) -> float:
        return sum(self.zones.values())


def zone(at: float) -> int:
    hour = datetime.fromtimestamp(at, WARSAW).hour
    return 2 if hour >= 22 or hour < 6 or 13 <= hour < 15 else 1


def readings() -> list[Reading]:
    """A G12 prosumer read every ten minutes, silent during GAP; registers in whole Wh."""
    out = []
    zones, exported, at = {1: 4321.0, 2: 1234.0}, 321.0, FIRST
    while at <= NOW:
        hour = datetime.fromtimestamp(at, WARSAW).hour
        watts = 250 + (hour * 37) % 600 + (1500 if 17 <= hour < 20 else 0)
        zones[zone(at)] += watts / 1000 * EVERY / 3600
        exported += (900 if 10 <= hour < 15 else 0) / 1000 * EVERY / 3600
        if not GAP[0] < at < GAP[1]:
            out.append(Reading(at, {k: round(v, 3) for k, v in zones.items()}, round(exported, 3)))
        at += EVERY
    return out


def values(reading: Reading) -> dict[str, Any]:
    return {
        "energy_imported_kwh": round(reading.imported, 3),
        "energy_imported_tariff_kwh": dict(reading.zones),
        "energy_exported_kwh": reading.exported,
        "energy_exported_tariff_kwh": {1: reading.exported},
    }


# --- what each period should show, from the readings alone ------------------------------------


def at_boundary(history: list[Reading], moment: float) -> int:
    """The reading a period boundary takes: the last one at or before it, else the first."""
    times = [r.at for r in history]
    return max(bisect.bisect_right(times, moment) - 1, 0)


def pricing_day(moment: float) -> date:
    return datetime.fromtimestamp(moment, WARSAW).date()


def expected(history: list[Reading], begins: float, ends: float) -> dict[str, float]:
    """kWh and PLN of the period [begins, ends): register differences, each reading's energy
    priced at its day's prices."""
    first, last = at_boundary(history, begins), at_boundary(history, min(ends, NOW))
    a, b = history[first], history[last]
    out = {
        "imported": b.imported - a.imported,
        "exported": b.exported - a.exported,
        **{f"zone {z}": b.zones[z] - a.zones[z] for z in a.zones},
        "export value": 0.0,
        "cost 1": 0.0,
        "cost 2": 0.0,
    }
    for before, after in zip(history[first:last], history[first + 1 : last + 1], strict=True):
        entry = PRICES.at(pricing_day(after.at))
        assert entry is not None
        for z in after.zones:
            price = entry.tariff(z)
            assert price is not None
            out[f"cost {z}"] += (after.zones[z] - before.zones[z]) * price.total
        out["export value"] += (after.exported - before.exported) * (entry.export or 0.0)
    return out


def period_of(kind: str, day: date) -> tuple[float, float]:
    start = period_start(kind, day)
    return midnight(start, WARSAW), midnight(period_start(kind, start, -1), WARSAW)


def nearest_day(moment: float) -> date:
    """The local day whose midnight is nearest to a step (steps lie within hours of one)."""
    return datetime.fromtimestamp(moment + 12 * 3600, WARSAW).date()


# --- the exporter's view, scraped every ten minutes --------------------------------------------


@pytest.fixture(scope="module")
def history() -> list[Reading]:
    return readings()


@pytest.fixture(scope="module")
def scraped(history: list[Reading]) -> Samples:
    """What a Prometheus scraping the exporter every ten minutes (5 minutes after each
    reading) would hold: the exporter's own state, calendar and exposition at work."""
    state = State()
    state.reconfigure(None, [configured_meter(METER, "home")])
    calendar = Calendar(WARSAW, PRICES)
    clock = [FIRST]
    collector = ExporterCollector(
        state, list, list, ConfigReloads(), calendar, clock=lambda: clock[0]
    )
    exposition = Exposition(state, registry(collector), clock=lambda: clock[0], calendar=calendar)
    samples: Samples = defaultdict(list)
    for sample in history:
        meter = reading(METER, **values(sample))
        _, merged = state.record(METER, "home", meter, sample.at, "r")
        calendar.record(METER, merged, sample.at, state.silent_after(METER))
        clock[0] = sample.at + 300
        if clock[0] <= NOW:
            text = exposition.render() + generate_latest(exposition.collectors).decode()
            collect(samples, text, clock[0], FAMILIES)
    return samples


@pytest.fixture(scope="module")
def prometheus(scraped: Samples, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = BackfilledPrometheus(tmp_path_factory.mktemp("backfilled"), scraped)
    yield server.url
    server.stop()


def bar_panels(name: str) -> dict[str, dict[str, Any]]:
    return {
        p["title"]: p
        for p in load(DASHBOARDS / name)["panels"]
        if p.get("interval") == "1d" and "timeFrom" in p
    }


def bars(url: str, panel: dict[str, Any], ref: str, offset: int) -> dict[tuple[date, str], float]:
    """A panel's bars as Grafana asks for them, by the day each stands on and its tariff."""
    span = seconds(panel["timeFrom"])
    (target,) = [t for t in panel["targets"] if t["refId"] == ref]
    expression = substitute(
        target["expr"],
        {"meter": METER, "tariff": ".*", "__range": f"{span}s", "__to": str(int(NOW))},
    )
    out: dict[tuple[date, str], float] = {}
    for series in query_range(url, expression, NOW - span, NOW, step=86400, offset=offset):
        assert series["metric"]["name"] == "home"  # the legend's name
        for moment, value in series["values"]:
            key = (nearest_day(float(moment)), series["metric"].get("tariff", ""))
            assert key not in out, f"two bars for {key}"
            out[key] = float(value)
    return out


OFFSETS = {"UTC": 0, "winter (CET)": 3600, "summer (CEST)": 7200}
KINDS = {
    "Energy per day, last 31 days": "day",
    "Energy per week, last 12 weeks": "week",
    "Energy per month, last 13 months": "month",
    "Cost per day, last 31 days": "day",
    "Cost per month, last 13 months": "month",
}
#: What a bar shows, by panel kind, refId and tariff label: the key of `expected`.
FIGURES = {
    ("Energy", "A", ""): "imported",
    ("Energy", "B", ""): "exported",
    ("Cost", "A", "1"): "cost 1",
    ("Cost", "A", "2"): "cost 2",
    ("Cost", "B", ""): "export value",
}


def periods(kind: str, span: int) -> list[date]:
    """The first days of the periods a panel should show: from the one holding the range's
    start (or the first reading) to the current one, each once."""
    day = period_start(kind, pricing_day(max(FIRST, NOW - span)))
    out = []
    while day <= pricing_day(NOW):
        out.append(day)
        day = period_start(kind, day, -1)
    return out


@pytest.mark.parametrize("offset", OFFSETS.values(), ids=OFFSETS.keys())
@pytest.mark.parametrize("title", KINDS)
def test_prometheus_bars_are_calendar_periods(
    prometheus: str, history: list[Reading], title: str, offset: int
) -> None:
    kind = KINDS[title]
    panel = bar_panels("amiplus-energy-flows.json")[title]
    wanted = periods(kind, seconds(panel["timeFrom"]))
    if kind == "day":
        assert date(2025, 10, 26) in wanted  # the 25-hour day
        assert date(2025, 10, 11) in wanted  # the day that began in the gap
    for target in panel["targets"]:
        shown = bars(prometheus, panel, target["refId"], offset)
        by_tariff: dict[str, list[date]] = defaultdict(list)
        for day, tariff in sorted(shown):
            by_tariff[tariff].append(day)
        assert by_tariff and all(days == wanted for days in by_tariff.values()), (
            title,
            dict(by_tariff),
            wanted,
        )
        for (day, tariff), value in shown.items():
            figure = FIGURES[title.split(maxsplit=1)[0], target["refId"], tariff]
            want = expected(history, *period_of(kind, day))[figure]
            assert value == pytest.approx(want, rel=1e-9, abs=1e-6), (title, day, figure)


def test_a_period_across_the_price_change_is_split_at_it(history: list[Reading]) -> None:
    """The week of 27 October to 2 November 2025: October's prices until Friday night,
    November's from Saturday; the expectation itself is checked here."""
    begins, ends = period_of("week", date(2025, 10, 27))
    week = expected(history, begins, ends)
    change = midnight(date(2025, 11, 1), WARSAW)
    before, after = expected(history, begins, change), expected(history, change, ends)
    assert week["cost 1"] == pytest.approx(before["cost 1"] + after["cost 1"])
    assert before["zone 1"] * 0.9 == pytest.approx(before["cost 1"])
    assert after["zone 1"] * 1.15 == pytest.approx(after["cost 1"])


# --- InfluxDB ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def influx(history: list[Reading], tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    """A real InfluxDB holding the exporter's points of every reading, running cost included."""
    server = InfluxDB(tmp_path_factory.mktemp("influx"))
    try:
        server.query('CREATE DATABASE "amiplus"')
        calendar = Calendar(WARSAW, PRICES)
        lines: list[str] = []
        for sample in history:
            meter = reading(METER, **values(sample))
            money = calendar.record(METER, values(sample), sample.at)
            line = point(meter, "home", sample.at, money)
            assert line is not None  # every sample has its registers
            lines.append(line)
        for start in range(0, len(lines), 5000):
            body = "\n".join(lines[start : start + 5000]).encode()
            request = urllib.request.Request(
                f"{server.url}/write?db=amiplus&precision=ms", data=body, method="POST"
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                assert response.status == 204
        yield server
    finally:
        server.stop()


def influx_bars(server: InfluxDB, panel: dict[str, Any]) -> dict[date, dict[str, float]]:
    """A panel's query over its relative time, as Grafana fills $timeFilter; by local day."""
    span = seconds(panel["timeFrom"])
    (target,) = panel["targets"]
    query = substitute(
        target["query"],
        {
            "meter": f"({METER})",
            "timeFilter": f"time >= {int(NOW - span)}s AND time <= {int(NOW)}s",
        },
    )
    out: dict[date, dict[str, float]] = {}
    for series in server.query(query, "amiplus"):
        if "name" in series.get("tags", {}):
            assert series["tags"]["name"] == "home"
        for row in series["values"]:
            day = datetime.fromtimestamp(row[0], WARSAW)
            assert (day.hour, day.minute) == (0, 0), f"a bar off midnight: {day}"
            columns = dict(zip(series["columns"][1:], row[1:], strict=True))
            out[day.date()] = {k: v for k, v in columns.items() if v is not None}
    return out


INFLUX_FIGURES = {
    "Imported": "imported",
    "Exported": "exported",
    "Cost, tariff 1": "cost 1",
    "Cost, tariff 2": "cost 2",
    "Exported, value": "export value",
}


@pytest.mark.parametrize("title", ["Energy per day, last 31 days", "Cost per day, last 31 days"])
def test_influxdb_daily_bars_are_calendar_days(
    influx: InfluxDB, history: list[Reading], title: str
) -> None:
    panel = bar_panels("amiplus-energy-flows-influxdb.json")[title]
    shown = influx_bars(influx, panel)
    wanted = periods("day", seconds(panel["timeFrom"]))
    assert sorted(shown) == wanted[1:] or sorted(shown) == wanted, (sorted(shown), wanted)
    assert date(2025, 10, 26) in shown
    for day, columns in shown.items():
        figures = expected(history, *period_of("day", day))
        assert columns  # every column the meter has
        for column, value in columns.items():
            want = figures[INFLUX_FIGURES[column]]
            assert value == pytest.approx(want, rel=1e-9, abs=1e-6), (title, day, column)


@pytest.mark.parametrize(
    ("title", "fmt"),
    [
        ("Energy per week, last 12 weeks", "week"),
        ("Energy per month, last 13 months", "month"),
        ("Cost per month, last 13 months", "month"),
    ],
)
def test_influxdb_weeks_and_months_add_up_the_days(
    influx: InfluxDB, history: list[Reading], title: str, fmt: str
) -> None:
    """The panel's daily sums grouped as its transformations do (formatTime in the dashboard's
    zone, then groupBy with sum): each complete period equals its register difference."""
    panel = bar_panels("amiplus-energy-flows-influxdb.json")[title]
    transform = {t["id"]: t["options"] for t in panel["transformations"]}
    assert (
        transform["formatTime"]["outputFormat"] == {"week": "GGGG-[W]WW", "month": "YYYY-MM"}[fmt]
    )
    grouped = transform["groupBy"]["fields"]
    assert grouped["Time"]["operation"] == "groupby"
    sums: dict[date, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for day, columns in influx_bars(influx, panel).items():
        for column, value in columns.items():
            assert grouped[column]["aggregations"] == ["sum"]
            sums[period_start(fmt, day)][column] += value
    complete = [
        start
        for start in sums
        if midnight(start, WARSAW) > FIRST + 86400
        and period_start(fmt, start, -1) <= pricing_day(NOW)
    ]
    assert complete  # October, and the weeks of October
    for start in complete:
        figures = expected(history, *period_of(fmt, start))
        for column, value in sums[start].items():
            want = figures[INFLUX_FIGURES[column]]
            assert value == pytest.approx(want, rel=1e-9, abs=1e-6), (title, start, column)
