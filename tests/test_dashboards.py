"""The Grafana dashboards of grafana/dashboards/: well-formed, no data source hard-coded, every
variable used, every panel titled and with a unit, only metrics the exporter exposes; and every
query of every panel run against a real Prometheus and a real InfluxDB that a real exporter feeds,
each of which must answer with data."""

from __future__ import annotations

import datetime
import json
import math
import re
import shlex
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.amiplus import fields
from exporter.amiplus.clock import WARSAW
from exporter.amiplus.fields import Shape
from exporter.config import InfluxConfig, parse_config
from exporter.config.prices import PriceEntry, Prices, TariffPrice
from exporter.outputs import ConfigReloads, ExporterCollector, Exposition, registry
from exporter.outputs.influx import InfluxOutput
from exporter.outputs.settlement import SettlementCollector
from exporter.pipeline.calendar import Calendar
from exporter.pipeline.handoff import MeterUpdate
from exporter.pipeline.settlement import Settlements
from exporter.pipeline.state import State
from exporter.receivers import ReceiverStats

from .conftest import configured_meter, free_port, reading, wait_until
from .grafana import query_range, seconds, utc_offset
from .ledgers import DAY, kept_until_now, price_file
from .servers import SIMULATED_KEY, InfluxDB, Prometheus, Start, job

ROOT = Path(__file__).parent.parent
DASHBOARDS = ROOT / "grafana" / "dashboards"
FILES = sorted(DASHBOARDS.glob("*.json"))
KEY = SIMULATED_KEY

#: Dashboard file -> the kind of data source it is written for.
EXPECTED = {
    "amiplus-energy-flows.json": "prometheus",
    "amiplus-voltages.json": "prometheus",
    "amiplus-health.json": "prometheus",
    "amiplus-energy-flows-influxdb.json": "influxdb",
    "amiplus-voltages-influxdb.json": "influxdb",
    "amiplus-fleet.json": "prometheus",
    "amiplus-prosumer.json": "prometheus",
}
#: The meter variable of a dashboard that also has a site variable offers that site's meters;
#: Prometheus pickers show each meter's name (amiplus_meter_info) and select its ID.
METER_VARIABLE = {
    "prometheus": "query_result(amiplus_meter_info)",
    "prometheus with sites": 'query_result(amiplus_meter_info{site=~"$site"})',
    "influxdb": 'SHOW TAG VALUES FROM "amiplus" WITH KEY = "meter_id"',
}
PICKER_REGEX = '/meter_id="(?<value>[^"]+)".*name="(?<text>[^"]*)"/'
DATASOURCE_REFERENCES = ("${datasource}", "$datasource")
VARIABLE = re.compile(r"\$\{(\w+)(?::[\w:]+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


PROMQL_FUNCTIONS = words(
    """abs absent absent_over_time avg_over_time ceil changes clamp clamp_max clamp_min
    count_over_time day_of_month day_of_week day_of_year days_in_month delta deriv exp floor
    histogram_quantile holt_winters hour idelta increase irate label_join label_replace
    last_over_time ln log10 log2 max_over_time min_over_time minute month predict_linear
    present_over_time quantile_over_time rate resets round scalar sgn sort sort_desc sqrt
    stddev_over_time stdvar_over_time sum_over_time time timestamp vector year"""
)
PROMQL_AGGREGATIONS = words(
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile"
)
PROMQL_KEYWORDS = words("and or unless bool offset")
LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


# --- reading the dashboards ----------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows something, also those inside (collapsed) rows."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def kind(dashboard: dict[str, Any]) -> str:
    """The data source type the dashboard's `datasource` variable offers."""
    query: str = variables(dashboard)["datasource"]["query"]
    return query


def walk(node: Any, path: str = "$") -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) of a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from walk(value, f"{path}[{n}]")


def targets(data_source: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(file, panel, target) of every query in the dashboards of one data source type."""
    found = []
    for path in FILES:
        dashboard = load(path)
        if kind(dashboard) == data_source:
            for panel in panels(dashboard):
                for target in panel.get("targets", []):
                    found.append((path.name, panel, target))
    return found


def substitute(text: str, values: dict[str, str]) -> str:
    """Grafana's variables replaced by test values (an unknown variable is a KeyError)."""
    return VARIABLE.sub(lambda m: values[m.group(1) or m.group(2) or m.group(3)], text)


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects; an unknown function fails the test."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expression)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = LABEL_LISTS.sub(" ", text)  # by (meter_id, phase) ...
    text = VARIABLE.sub("1", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", text):
        word = match.group()
        if word in PROMQL_KEYWORDS:  # also before a parenthesis: `a and (b == c)`
            continue
        if text[match.end() :].lstrip().startswith("("):
            assert word in PROMQL_FUNCTIONS | PROMQL_AGGREGATIONS, f"{expression}: {word}()?"
        else:
            names.add(word)
    return names


def exposed_metrics(tmp_path: Path) -> set[str]:
    """The sample names of every family a fully featured exporter exposes: a meter that sent
    every field, a receiver, and an InfluxDB output."""
    state = State()
    state.reconfigure(None, [configured_meter("12345678", "home", "", 14000.0)])
    values: dict[str, Any] = {
        row.key: {"L1": 1.0} if row.shape is Shape.PHASES else 1.0 for row in fields.FIELDS
    }
    values["meter_time"] = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    values["energy_imported_tariff_kwh"] = values["energy_exported_tariff_kwh"] = {1: 1.0}
    decoded = reading(**values)
    state.record("12345678", "home", decoded, 1.0, "r")
    price = PriceEntry(datetime.date(1970, 1, 1), ((1, TariffPrice(1.0)),), 0.5)
    calendar = Calendar(prices=Prices((price,)))
    calendar.record("12345678", values, 0.5)
    calendar.record("12345678", {**values, "energy_imported_tariff_kwh": {1: 2.0}}, 1.0)
    config = InfluxConfig("http://127.0.0.1:9", api="v1", database="x", spool=tmp_path)
    influx = InfluxOutput(config)
    influx.submit(MeterUpdate("12345678", "home", decoded, values, 1.0, "r"))  # a waiting point
    collector = ExporterCollector(
        state, lambda: [ReceiverStats("r", "stick")], lambda: [influx], ConfigReloads(), calendar
    )
    collectors = registry(collector)
    collectors.register(settled(tmp_path))
    exposition = Exposition(state, collectors, clock=lambda: 2.0, calendar=calendar)
    text = exposition.body().decode()
    return set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))


def settled(directory: Path) -> SettlementCollector:
    """The settled meters of `config`, with the ledgers it keeps, scraped at their latest
    reading (the hour counting then has its price)."""
    influx = "  url: http://127.0.0.1:9\n  api: v1\n  database: x\n"
    parsed = parse_config(config(directory, influx), env={})
    state = State()
    state.reconfigure(None, parsed.meters)
    settlements = Settlements(parsed)
    latest = settlements.view("12345678", 0.0)
    assert latest is not None and latest.latest_at is not None
    return SettlementCollector(settlements, state, clock=lambda: latest.latest_at or 0.0)


# --- the dashboards as files ---------------------------------------------------------------------


def test_the_dashboards_are_there() -> None:
    assert {path.name: kind(load(path)) for path in FILES} == EXPECTED


def test_uids_and_titles_are_unique() -> None:
    documents = [load(path) for path in FILES]
    uids = [document["uid"] for document in documents]
    titles = [document["title"] for document in documents]
    assert len(set(uids)) == len(uids), uids
    assert len(set(titles)) == len(titles), titles
    assert all(re.fullmatch(r"[a-z0-9-]{1,40}", uid) for uid in uids), uids


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_a_dashboard_is_well_formed(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["tags"] == ["amiplus"]
    assert dashboard["title"].startswith("AMIplus") and dashboard["description"]
    assert 36 <= dashboard["schemaVersion"] <= 41  # Grafana 10 and 11
    assert dashboard.get("id") is None  # Grafana gives the id when it loads the file
    found = variables(dashboard)
    assert found["datasource"]["type"] == "datasource"
    assert found["datasource"]["query"] in ("prometheus", "influxdb")
    meter = found["meter"]
    assert meter["type"] == "query" and meter["multi"] and meter["includeAll"]
    with_sites = " with sites" if "site" in found else ""
    assert meter["definition"] == METER_VARIABLE[kind(dashboard) + with_sites]
    if kind(dashboard) == "prometheus":
        assert meter["regex"] == PICKER_REGEX
    shown = list(panels(dashboard))
    ids = [panel["id"] for panel in dashboard["panels"]] + [
        panel["id"] for row in dashboard["panels"] for panel in row.get("panels", [])
    ]
    assert len(set(ids)) == len(ids), "panel ids are unique"
    for panel in shown:
        name = f"{path.name}: panel {panel['id']}"
        assert panel.get("title"), f"{name} has no title"
        assert panel.get("description"), f"{name} ({panel['title']}) explains nothing"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{name} ({panel['title']}): unit"
        assert panel.get("targets"), f"{name} ({panel['title']}) queries nothing"
        refs = [target["refId"] for target in panel["targets"]]
        assert len(set(refs)) == len(refs), f"{name}: refIds {refs}"
    for row in dashboard["panels"]:
        if row["type"] == "row":
            assert row["title"]
            for panel in row.get("panels", []):
                assert panel["type"] != "row"


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_panels_fit_the_grid_without_overlapping(path: Path) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in load(path)["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[x, y]}"
                taken[x, y] = panel["title"]


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_no_data_source_is_hard_coded(path: Path) -> None:
    dashboard = load(path)
    data_source = kind(dashboard)
    references = 0
    for where, key, value in walk(dashboard):
        if key == "datasource":
            references += 1
            if isinstance(value, dict):
                assert value.get("uid") in DATASOURCE_REFERENCES, f"{where}: {value}"
                assert value.get("type") == data_source, f"{where}: {value}"
            else:
                assert value in DATASOURCE_REFERENCES, f"{where}: {value}"
        elif key == "uid":
            assert where == "$" or value in DATASOURCE_REFERENCES, f"{where}.uid: {value}"
    shown = list(panels(dashboard))
    every_target = sum(len(panel["targets"]) for panel in shown)
    assert references >= len(shown) + every_target  # each panel and each query names one
    assert "__inputs" not in dashboard and "__requires" not in dashboard  # not an export


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_every_variable_is_used(path: Path) -> None:
    dashboard = load(path)
    for name, variable in variables(dashboard).items():
        elsewhere = json.dumps(
            {
                **dashboard,
                "templating": [v for v in dashboard["templating"]["list"] if v is not variable],
            }
        )
        used = {m.group(1) or m.group(2) or m.group(3) for m in VARIABLE.finditer(elsewhere)}
        assert name in used, f"{path.name}: the variable {name} is never used"


def test_prometheus_dashboards_use_only_metrics_the_exporter_exposes(tmp_path: Path) -> None:
    exposed = exposed_metrics(tmp_path)
    assert "amiplus_energy_imported_joules_total" in exposed  # the families were found
    assert "amiplus_influxdb_spool_points" in exposed
    used: set[str] = set()
    for name, panel, target in targets("prometheus"):
        names = metric_names(target["expr"])
        unknown = names - exposed
        assert not unknown, f"{name}, {panel['title']}: {sorted(unknown)} in {target['expr']}"
        for window in re.findall(r"\brate\([^\[]*\[([^\]]*)\]", target["expr"]):
            assert window == "$__rate_interval", f"{name}, {panel['title']}: rate over {window}"
        used |= names
    for path in FILES:
        for variable in variables(load(path)).values():
            if variable["type"] == "query" and kind(load(path)) == "prometheus":
                selector = re.fullmatch(
                    r"(?:label_values|query_result)\((\w+)[{,)].*", variable["definition"]
                )
                assert selector and selector.group(1) in exposed, variable["definition"]
    # the panels cover what a household and its operator look at
    for metric in (
        "amiplus_energy_imported_tariff_joules_total",
        "amiplus_power_imported_max_watts",
        "amiplus_voltage_volts",
        "amiplus_current_amperes",
        "amiplus_meter_rssi_dbm",
        "amiplus_receiver_frame_errors_total",
        "amiplus_influxdb_oldest_point_age_seconds",
        "amiplus_settlement_deposit_pln",
        "amiplus_settlement_bank_joules",
        "amiplus_settlement_balanced_energy_exported_period_joules",
        "amiplus_settlement_market_price_pln_per_kwh",
        "amiplus_settlement_unpriced_export_joules",
    ):
        assert metric in used, metric


def test_the_promql_checker_sees_metric_names() -> None:
    assert metric_names(
        'sum by (meter_id) (increase(amiplus_energy_imported_joules_total{meter_id=~"$meter"}'
        "[$__range])) / 3.6e6 - on (meter_id) amiplus_power_exported_watts > bool 5"
    ) == {"amiplus_energy_imported_joules_total", "amiplus_power_exported_watts"}
    assert metric_names("vector($contracted_power)") == set()
    assert metric_names("a and (b == on (m) group_left () max by (m) (c))") == {"a", "b", "c"}
    with pytest.raises(AssertionError, match="ratee"):
        metric_names("ratee(amiplus_meter_telegrams_total[5m])")


# --- every query against real servers fed by the exporter ----------------------------------------

#: A second meter as an ESPHome radio passes it on (rtl_wmbus lines with RSSI in dBm), in the
#: layout of Apator's 2025 meters, which send the maximum demand and two tariffs; it sits at the
#: end of a long line: two phases above 253 V and one below 207 V, so the panels that count
#: readings outside the band have something to count.
RADIO = """
import dataclasses
import time
from datetime import UTC, datetime

from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.simulated import SimulatedMeter


class FarFromTheTransformer(SimulatedMeter):
    def reading(self, now):
        reading = super().reading(now)
        drift = self.sent % 5 / 10
        volts = {"L1": 255.0 + drift, "L2": 205.0 - drift, "L3": 254.0 + drift}
        return dataclasses.replace(reading, values={**reading.values, "voltage_v": volts})


meter = FarFromTheTransformer(FAMILIES_BY_NAME["apa-v2-2025"], meter_id="12345679")
while True:
    now = datetime.now(UTC)
    frame, _ = meter.telegram(now)
    rssi = -70 - meter.sent % 7
    print(f"T1;1;1;{now:%Y-%m-%d %H:%M:%S}.00Z;{rssi};;;0x{frame.hex().upper()}", flush=True)
    time.sleep(0.4)
"""
METERS = ("12345678", "12345679")


def config(directory: Path, influx: str) -> str:
    """Meter 12345678 from the fast built-in simulator in the PGE layout of the Apator Otus 3
    (0.1 V, currents, reactive energy), meter 12345679 from the radio above; the first settled
    in net-billing, the second in net-metering, their ledgers kept for 45 days before the start
    (tests/ledgers.py), market prices from a file."""
    script = directory / "radio.py"
    script.write_text(RADIO)
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    now = time.time()
    prices = price_file(directory / "prices.csv", now - 50 * DAY, now + 2 * DAY)
    text = f"""
meters:
  - id: "12345678"
    key: "{KEY}"
    name: home
    contracted_power: 14000
    settlement: {{scheme: net-billing}}
  - id: "12345679"
    key: "{KEY}"
    name: garage
    contracted_power: 14000
    settlement: {{scheme: net-metering}}
market_prices: {{source: file, file: {prices}}}
prices:
  - from: 2020-01-01
    tariffs:
      1: {{energy: 0.62, distribution: 0.31}}
      2: {{energy: 0.45, distribution: 0.12}}
    export: 0.3
state:
  directory: {directory / "state"}
receivers:
  - type: simulator
    interval: 0.2
    family: otus-pge
  - type: lines
    name: radio
    command: {json.dumps(command)}
influxdb:
{influx}"""
    kept_until_now(parse_config(text, env={}), prices)
    return text


def only_this_job(expression: str, name: str) -> str:
    """The session's Prometheus keeps the series of earlier tests' exporters (meter 12345678
    too): every selector is narrowed to this test's scrape job."""

    def narrowed(match: re.Match[str]) -> str:
        if match.group(2):
            return f'{match.group(1)}{{job="{name}",'
        return f'{match.group(1)}{{job="{name}"}}'

    return re.sub(r"\b(amiplus_\w+)(\{)?", narrowed, expression)


PROMQL_VALUES = {
    "meter": "|".join(METERS),  # the "=~" form of two selected meters
    "site": ".*",  # All: also the series of an exporter scraped without a site label
    "tariff": "1",
    "__rate_interval": "10s",
    "__interval": "5s",
    "__range": "1m",
}


def promql(expression: str, span: int | None = None) -> str:
    """A panel's expression as Grafana would send it, with a minute of history in mind (or
    the `span` seconds of a panel's relative time)."""
    # Subqueries sample once a minute (`[1d:1m]`); a minute of data may hold no such sample,
    # so the test samples every second instead.
    expression = expression.replace(":1m]", ":1s]")
    values = {**PROMQL_VALUES, "__to": str(int(time.time()) + 1)}  # ${__to:date:seconds}
    if span is not None:
        values["__range"] = f"{span}s"
    return only_this_job(substitute(expression, values), "dashboards")


def bars(prometheus: Prometheus, panel: dict[str, Any], expression: str) -> list[float]:
    """Every bar of a panel of calendar bars (a step a day) or hours (a step an hour) over its
    relative time, queried as Grafana does for a dashboard in Polish time."""
    span = seconds(panel["timeFrom"])
    now = time.time()
    offset = utc_offset(WARSAW, now)
    expression = promql(expression, span)
    step = seconds(panel["interval"])
    found = query_range(prometheus.url, expression, now - span, now, step=step, offset=offset)
    return [float(value) for series in found for _, value in series["values"]]


def label_values(prometheus: Prometheus, definition: str) -> set[str]:
    """What Grafana's `label_values(selector, label)` gives, through Prometheus's label API; for
    `query_result(selector)` the IDs of the meter picker (names checked in `meter_names`)."""
    if definition.startswith("query_result("):
        return set(meter_names(prometheus, definition).values())
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", definition)
    assert match, definition
    selector = promql(match.group(1))
    code, body = prometheus.get(
        f"/api/v1/label/{match.group(2)}/values?" + urllib.parse.urlencode({"match[]": selector})
    )
    assert code == 200, body
    values: list[str] = json.loads(body)["data"]
    return set(values)


def meter_names(prometheus: Prometheus, definition: str) -> dict[str, str]:
    """The meter picker as Grafana fills it: `query_result` lines (`name{labels} value time`,
    labels in Prometheus's order) through the variable's regex, its `text` shown and its
    `value` used; text -> value."""
    match = re.fullmatch(r"query_result\((.+)\)", definition)
    assert match, definition
    pattern = re.compile(PICKER_REGEX.strip("/").replace("(?<", "(?P<"))
    out = {}
    for series in prometheus.query(promql(match.group(1))):
        labels = series["metric"]
        inner = ", ".join(f'{k}="{v}"' for k, v in labels.items() if k != "__name__")
        found = pattern.search(f"{labels.get('__name__', '')}{{{inner}}} {series['value'][1]}")
        assert found, (labels, PICKER_REGEX)
        out[found.group("text")] = found.group("value")
    return out


def test_every_promql_query_returns_data(
    prometheus: Prometheus, start_exporter: Start, tmp_path: Path
) -> None:
    # InfluxDB is away (nothing listens on the port): the spool fills and the writer counts
    # its errors, so every panel of the InfluxDB output has something to show.
    exporter = start_exporter(
        config(
            tmp_path,
            f"""  url: http://127.0.0.1:{free_port()}
  api: v1
  database: amiplus
  spool: {tmp_path / "spool"}
  flush_interval: 0.3
""",
        )
    )
    prometheus.scrape(job("dashboards", exporter.port))
    queries = [
        (f"{name}, {panel['title']} ({target['refId']})", panel, target["expr"])
        for name, panel, target in targets("prometheus")
    ]
    assert len(queries) > 40

    def answer(panel: dict[str, Any], expression: str) -> list[float]:
        """The values a panel shows: a calendar-bar panel's bars, else an instant query's."""
        if panel.get("interval") in ("1d", "1h") and "timeFrom" in panel:
            return bars(prometheus, panel, expression)
        return list(prometheus.values(promql(expression)).values())

    def without_data() -> list[str]:
        """The queries that answer with nothing (a failing query fails the test at once)."""
        return [where for where, panel, query in queries if not answer(panel, query)]

    assert wait_until(lambda: not without_data(), 30, every=1), (
        f"no data: {without_data()}\n{exporter.log()[-3000:]}"
    )
    for where, panel, query in queries:
        values = answer(panel, query)
        unit = panel["fieldConfig"]["defaults"]["unit"]
        if unit == "kwatth":  # energy of a household in a few seconds, or kept ledgers' figures
            most = math.inf if "amiplus_settlement_" in query else 1
            assert all(0 <= value < most for value in values), (where, query, values)
        elif unit == "volt":
            assert all(0 <= value <= 300 for value in values), (where, query, values)
        elif unit == "percent":
            assert all(0 <= value <= 100 for value in values), (where, query, values)

    # the variables offer both meters and their tariffs
    for path in FILES:
        dashboard = load(path)
        if kind(dashboard) == "prometheus":
            found = variables(dashboard)
            assert label_values(prometheus, found["meter"]["definition"]) == set(METERS)
            picker = meter_names(prometheus, found["meter"]["definition"])
            assert picker == {"home": "12345678", "garage": "12345679"}
            if "tariff" in found:
                assert label_values(prometheus, found["tariff"]["definition"]) >= {"1", "2"}

    # what some panels show, checked against what the meters sent
    by_title = {panel["title"]: panel for _, panel, _ in targets("prometheus")}
    outside = by_title["Minutes outside 207-253 V today"]["targets"][0]["expr"]
    minutes = {
        (dict(labels)["meter_id"], dict(labels)["phase"]): value
        for labels, value in prometheus.values(promql(outside)).items()
    }
    assert {key for key, value in minutes.items() if value > 0} == {
        ("12345679", "L1"),
        ("12345679", "L2"),
        ("12345679", "L3"),
    }, minutes
    assert {key for key, value in minutes.items() if value == 0} == {
        ("12345678", "L1"),
        ("12345678", "L2"),
        ("12345678", "L3"),
    }, minutes
    contracted = by_title["Maximum demand and contracted power"]["targets"][1]["expr"]
    shown = prometheus.values(promql(contracted))
    assert {dict(labels)["name"]: value for labels, value in shown.items()} == {
        "home": 14000,
        "garage": 14000,
    }
    register = by_title["1.8.0 Imported, total"]["targets"][0]["expr"]
    registers = {
        dict(labels)["meter_id"]: v for labels, v in prometheus.values(promql(register)).items()
    }
    status = {meter["meter_id"]: meter["values"] for meter in exporter.status()["meters"]}
    for meter in METERS:
        assert abs(registers[meter] - status[meter]["energy_imported_kwh"]) < 0.01


INFLUXQL_VALUES = {
    "meter": "(" + "|".join(METERS) + ")",  # how Grafana puts two meters into /^$meter$/
    "timeFilter": "time > now() - 3d",
    "__interval": "5s",
}


def test_every_influxql_query_returns_data(start_exporter: Start, tmp_path: Path) -> None:
    server = InfluxDB(tmp_path / "influx")
    try:
        server.query('CREATE DATABASE "amiplus"')
        # a reading of each meter the day before, so that the daily bars have a day to
        # compare with (the registers and running cost were lower then)
        yesterday = int(time.time()) - 86400
        lines = "".join(
            f"amiplus,meter_id={meter},name={name} energy_imported_kwh=1.0,"
            f"energy_exported_kwh=0.5,cost_t1_pln=0.0,cost_t2_pln=0.0,export_value_pln=0.0 "
            f"{yesterday}\n"
            for meter, name in zip(METERS, ("home", "garage"), strict=True)
        )
        write = urllib.request.Request(
            f"{server.url}/write?db=amiplus&precision=s", data=lines.encode(), method="POST"
        )
        with urllib.request.urlopen(write, timeout=10) as response:
            assert response.status == 204
        exporter = start_exporter(
            config(
                tmp_path,
                f"""  url: {server.url}
  api: v1
  database: amiplus
  spool: {tmp_path / "spool"}
  flush_interval: 0.3
""",
            )
        )
        queries = [
            (
                f"{name}, {panel['title']} ({target['refId']})",
                substitute(target["query"], INFLUXQL_VALUES),
            )
            for name, panel, target in targets("influxdb")
        ]
        assert len(queries) > 20
        assert all(target["rawQuery"] for _, _, target in targets("influxdb"))

        def values(query: str) -> list[list[Any]]:
            """The rows of every series that hold at least one value besides the time."""
            return [
                row
                for series in server.query(query, "amiplus")
                for row in series["values"]
                if any(value is not None for value in row[1:])
            ]

        def without_data() -> list[str]:
            return [where for where, query in queries if not values(query)]

        assert wait_until(lambda: not without_data(), 30, every=0.5), (
            f"no data: {without_data()}\n{exporter.log()[-3000:]}"
        )
        for path in FILES:
            dashboard = load(path)
            if kind(dashboard) == "influxdb":
                definition = variables(dashboard)["meter"]["definition"]
                (series,) = server.query(definition, "amiplus")
                assert {value for _, value in series["values"]} == set(METERS)

        # legends carry the meters' names
        for where, query in queries:
            for series in server.query(query, "amiplus"):
                if "meter_id" in series.get("tags", {}):
                    assert series["tags"]["name"] in ("home", "garage"), (where, series["tags"])
        # readings outside the band: only the radio's meter, on every phase
        for where, query in queries:
            if "Readings outside" in where:
                meters = {s["tags"]["meter_id"] for s in server.query(query, "amiplus")}
                assert meters == {"12345679"}, (where, query)
    finally:
        server.stop()
