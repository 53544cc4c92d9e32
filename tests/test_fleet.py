"""A fleet for real: two exporters hear overlapping meters (site-a meters A, B, C; site-b B, C,
D, and E that it never hears), both fed the same telegram bytes for the shared meters over UDP;
a real Prometheus scrapes them with the site labels of deploy/prometheus/fleet/prometheus.yml,
evaluates the fleet rules and writes remotely to VictoriaMetrics. Queries against
VictoriaMetrics count each meter once and sum the fleet's registers to what the meters sent;
every query of the fleet dashboard answers from it. Also the shipped fleet configuration."""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.reading import MeterReading
from exporter.amiplus.simulated import SimulatedMeter

from .conftest import free_port, wait_until
from .servers import SIMULATED_KEY, ExporterProcess, Prometheus, Start
from .test_dashboards import DASHBOARDS, load, panels, substitute
from .test_prometheus_rules import promtool, rules
from .victoria import VictoriaMetrics

pytestmark = pytest.mark.integration  # promtool, Prometheus, VictoriaMetrics, exporters

ROOT = Path(__file__).parent.parent
FLEET = ROOT / "deploy" / "prometheus" / "fleet"
FLEET_CONFIG = FLEET / "prometheus.yml"
FLEET_RULES = FLEET / "rules" / "amiplus-fleet.rules.yml"
DASHBOARD = DASHBOARDS / "amiplus-fleet.json"
DOCS = ROOT / "docs" / "fleet.md"
JOULES_PER_KWH = 3.6e6

METERS = {"A": "12345678", "B": "12345679", "C": "12345680", "D": "12345681", "E": "12345682"}
#: Which site hears which meter; E is configured at site-b and never sends.
HEARS = {"site-a": ("A", "B", "C"), "site-b": ("B", "C", "D")}
CONFIGURED = {"site-a": ("A", "B", "C"), "site-b": ("B", "C", "D", "E")}


def close(actual: float | None, expected: float) -> bool:
    """Equal up to float rounding (joules from kWh with three decimals)."""
    return actual is not None and math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-6)


# --- the shipped configuration -------------------------------------------------------------------


def shipped() -> dict[str, Any]:
    """A fresh copy of deploy/prometheus/fleet/prometheus.yml."""
    document: dict[str, Any] = yaml.safe_load(FLEET_CONFIG.read_text())
    return document


def alternatives() -> list[dict[str, Any]]:
    """The commented remote_write entries for the clustered stores, as YAML."""
    found = []
    for block in re.findall(r"^  # (- url: .*\n(?:  #   .*\n)*)", FLEET_CONFIG.read_text(), re.M):
        first, *rest = block.splitlines()
        (entry,) = yaml.safe_load("\n".join([first, *(line[4:] for line in rest)]))
        found.append(entry)
    return found


def test_the_fleet_config_is_valid() -> None:
    document = shipped()
    (scrape,) = document["scrape_configs"]
    assert "amiplus" in scrape["job_name"]  # what the "exporter down" alerts expect
    sites = [static["labels"]["site"] for static in scrape["static_configs"]]
    assert len(sites) == len(set(sites)) >= 2, sites
    assert all(len(static["targets"]) == 1 for static in scrape["static_configs"])
    rule_files = [(FLEET / name).resolve() for name in document["rule_files"]]
    assert rule_files == [
        (FLEET.parent / "rules" / "amiplus.rules.yml").resolve(),
        FLEET_RULES.resolve(),
    ]
    (remote,) = document["remote_write"]
    assert remote == {"url": "http://victoriametrics:8428/api/v1/write"}
    result = promtool("check", "config", "--lint=all", "--lint-fatal", str(FLEET_CONFIG))
    assert "SUCCESS: 2 rule files found" in result.stdout, result.stdout
    for path in rule_files:
        count = len(rules("record", path)) + len(rules("alert", path))
        assert f"SUCCESS: {count} rules found" in result.stdout, result.stdout


def test_each_clustered_store_changes_only_the_url_and_the_tenant(tmp_path: Path) -> None:
    found = alternatives()
    by_url = {entry["url"]: entry.get("headers", {}) for entry in found}
    assert by_url == {
        "http://vminsert:8480/insert/0/prometheus/api/v1/write": {},  # the tenant in the path
        "http://mimir:8080/api/v1/push": {"X-Scope-OrgID": "amiplus"},
        "http://thanos-receive:19291/api/v1/receive": {"THANOS-TENANT": "amiplus"},
    }
    assert all(set(entry) <= {"url", "headers"} for entry in found), found
    docs = DOCS.read_text()
    for url, headers in by_url.items():
        assert url in docs, f"docs/fleet.md does not show {url}"
        assert all(name in docs for name in headers), headers
    # each alternative in place of the single-node entry is a valid configuration
    shutil.copytree(FLEET.parent / "rules", tmp_path / "rules")
    shutil.copytree(FLEET / "rules", tmp_path / "fleet" / "rules")
    for n, entry in enumerate(found):
        document = shipped()
        document["remote_write"] = [entry]
        path = tmp_path / "fleet" / f"prometheus-{n}.yml"
        path.write_text(yaml.safe_dump(document))
        promtool("check", "config", "--lint=all", "--lint-fatal", str(path))


# --- two exporters, one Prometheus, VictoriaMetrics ----------------------------------------------


class FleetMeter(SimulatedMeter):
    """A simulated meter whose registers gain half a kWh per telegram and whose power and
    voltage fall with every telegram: a site one telegram behind holds visibly different
    (and higher) instantaneous values."""

    def reading(self, now: datetime) -> MeterReading:
        self.imported_wh[1] += 500.0
        self.exported_wh[2] += 100.0
        reading = super().reading(now)
        volts = 240.0 - self.sent
        changed = {
            "power_imported_w": 3000 - 500 * self.sent,
            "power_exported_w": 100 * self.sent,
            "voltage_v": {"L1": volts, "L2": volts - 2, "L3": volts - 4},
        }
        return dataclasses.replace(reading, values={**reading.values, **changed})


def fleet_meters() -> dict[str, FleetMeter]:
    """Meters A to E with registers of their own (E never sends)."""
    family = FAMILIES_BY_NAME["gama"]  # one record set: every telegram carries every value
    return {
        name: FleetMeter(
            family,
            meter_id=meter_id,
            imported_wh={1: 1_000_000.0 * n, 2: 400_000.0 * n},
            exported_wh={1: 50_000.0 * n, 2: 10_000.0 * n},
        )
        for n, (name, meter_id) in enumerate(METERS.items(), start=1)
    }


def exporter_config(site: str, port: int) -> str:
    """A site's exporter: its configured meters and one network radio (rtl_wmbus lines over
    UDP); stale_after well beyond the test, so no reading is withdrawn meanwhile."""
    meters = "".join(
        f'  - id: "{METERS[name]}"\n    key: "{SIMULATED_KEY}"\n    name: flat-{name}\n'
        for name in CONFIGURED[site]
    )
    return f"""
meters:
{meters}receivers:
  - type: lines
    name: {site}-roof
    listen: udp://127.0.0.1:{port}
state:
  stale_after: 600
"""


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    server = VictoriaMetrics(tmp_path / "victoria-metrics")
    yield server
    server.stop()


@pytest.fixture
def fleet_prometheus(tmp_path: Path, victoria: VictoriaMetrics) -> Iterator[Prometheus]:
    """Prometheus with the shipped fleet configuration's rules, writing to VictoriaMetrics
    (sending every second); the test sets the scrape job."""
    document = shipped()
    (remote,) = document["remote_write"]
    remote["url"] = victoria.write_url
    remote["queue_config"] = {"batch_send_deadline": "1s", "max_backoff": "1s"}
    extra = {
        "rule_files": [str((FLEET / name).resolve()) for name in document["rule_files"]],
        "remote_write": [remote],
    }
    directory = tmp_path / "prometheus"
    directory.mkdir()
    server = Prometheus(directory, extra)
    yield server
    server.stop()


def send(port: int, frame: bytes, rssi: int) -> None:
    """One telegram as an ESPHome radio passes it on: an rtl_wmbus line in a UDP datagram."""
    now = datetime.now(UTC)
    line = f"T1;1;1;{now:%Y-%m-%d %H:%M:%S}.00Z;{rssi};;;0x{frame.hex().upper()}\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(line.encode(), ("127.0.0.1", port))


def test_a_fleet_counts_each_meter_once_in_victoria_metrics(
    start_exporter: Start, fleet_prometheus: Prometheus, victoria: VictoriaMetrics
) -> None:
    started = time.monotonic()
    ports = {site: free_port() for site in HEARS}
    exporters: dict[str, ExporterProcess] = {
        site: start_exporter(exporter_config(site, ports[site])) for site in HEARS
    }
    document = shipped()
    (scrape,) = document["scrape_configs"]
    assert [static["labels"]["site"] for static in scrape["static_configs"]] == list(HEARS)
    for static, exporter in zip(scrape["static_configs"], exporters.values(), strict=True):
        static["targets"] = [f"127.0.0.1:{exporter.port}"]
    fleet_prometheus.scrape(scrape)

    def receiving(exporter: ExporterProcess) -> bool:
        return bool(exporter.status()["receivers"][0]["up"])

    for exporter in exporters.values():
        assert wait_until(partial(receiving, exporter), 20), exporter.log()

    def received(site: str, telegrams: dict[str, int]) -> bool:
        counts = {m["meter_id"]: m["telegrams"] for m in exporters[site].status()["meters"]}
        return all(counts.get(METERS[name]) == n for name, n in telegrams.items())

    # Round 1: every meter once; B and C reach both sites as the same bytes. Then B again,
    # heard by site-a only: site-b missed it and stays one telegram behind. (Round 1 is in at
    # both sites first, so that site-a heard B last.)
    meters = fleet_meters()
    last: dict[str, dict[str, MeterReading]] = {site: {} for site in HEARS}
    for name in ("A", "B", "C", "D"):
        frame, reading = meters[name].telegram(datetime.now(UTC))
        for n, (site, heard) in enumerate(HEARS.items()):
            if name in heard:
                send(ports[site], frame, rssi=-70 - 15 * n)
                last[site][name] = reading
    for site, heard in HEARS.items():
        once = dict.fromkeys(heard, 1)
        assert wait_until(partial(received, site, once), 20), exporters[site].log()
    frame, reading = meters["B"].telegram(datetime.now(UTC))
    send(ports["site-a"], frame, rssi=-70)
    last["site-a"]["B"] = reading
    assert wait_until(lambda: received("site-a", {"B": 2}), 20), exporters["site-a"].log()

    # what the meters sent: each meter's latest telegram, wherever it was heard
    latest = {**last["site-b"], **last["site-a"]}
    assert set(latest) == {"A", "B", "C", "D"}
    assert latest["B"] is last["site-a"]["B"] and latest["B"] is not last["site-b"]["B"]
    imported = sum(r.get("energy_imported_kwh") or 0 for r in latest.values()) * JOULES_PER_KWH
    exported = sum(r.get("energy_exported_kwh") or 0 for r in latest.values()) * JOULES_PER_KWH
    power = sum(r.get("power_imported_w") or 0 for r in latest.values())

    def arrived() -> bool:
        """The fleet's registers and meter counts, as the rules record them, in the store."""
        return (
            close(victoria.value("fleet:amiplus_energy_imported_joules_total:sum"), imported)
            and close(victoria.value("fleet:amiplus_power_imported_watts:sum"), power)
            and victoria.value("fleet:amiplus_meters_heard:count") == 4
            and victoria.value("fleet:amiplus_meters_silent:count") == 1
            and len(victoria.query("site:amiplus_meters_heard_only_here:count")) == 2
        )

    assert wait_until(arrived, 60, every=0.5), (
        {r["metric"]["__name__"]: r["value"][1] for r in victoria.query('{__name__=~"fleet:.*"}')},
        fleet_prometheus.targets(),
        fleet_prometheus.log()[-3000:],
    )
    arrived_after = time.monotonic() - started

    # the raw series: what Prometheus scraped and wrote, a meter heard twice is there twice
    series = victoria.value("count(amiplus_energy_imported_joules_total)")
    assert series == 6
    assert victoria.value("count(amiplus_meter_info)") == 7
    assert victoria.value("count(count by (meter_id) (amiplus_meter_info))") == 5
    per_site = victoria.value("sum(amiplus_energy_imported_joules_total)")
    lagging = last["site-b"]["B"].get("energy_imported_kwh") or 0
    twice = imported + (lagging + (latest["C"].get("energy_imported_kwh") or 0)) * JOULES_PER_KWH
    assert close(per_site, twice), (per_site, twice)

    # the fleet rules, as remote-written: each meter once
    meters_counted = victoria.value("fleet:amiplus_meters_heard:count")
    assert meters_counted == 4
    assert victoria.value("fleet:amiplus_meters_configured:count") == 5
    assert victoria.value("fleet:amiplus_meters_silent:count") == 1
    assert by_label(victoria.values("meter:amiplus_meter_stale:min"), "meter_id") == {
        METERS[name]: 1.0 if name == "E" else 0.0 for name in METERS
    }
    assert by_label(victoria.values("site:amiplus_meters_heard:count"), "site") == {
        "site-a": 3.0,
        "site-b": 3.0,
    }
    assert by_label(victoria.values("site:amiplus_meters_heard_only_here:count"), "site") == {
        "site-a": 1.0,  # A
        "site-b": 1.0,  # D
    }
    fleet_imported = victoria.value("fleet:amiplus_energy_imported_joules_total:sum")
    assert close(fleet_imported, imported)
    assert close(victoria.value("fleet:amiplus_energy_exported_joules_total:sum"), exported)
    registers = by_label(
        victoria.values("meter:amiplus_energy_imported_joules_total:max"), "meter_id"
    )
    assert registers.keys() == {METERS[name] for name in latest}
    for name, reading in latest.items():
        assert close(
            registers[METERS[name]], (reading.get("energy_imported_kwh") or 0) * JOULES_PER_KWH
        )
    for direction in ("imported", "exported"):
        tariffs = by_label(
            victoria.values(f"fleet_tariff:amiplus_energy_{direction}_tariff_joules_total:sum"),
            "tariff",
        )
        expected = {
            str(tariff): sum(
                r.get(f"energy_{direction}_tariff_kwh")[tariff] for r in latest.values()
            )
            * JOULES_PER_KWH
            for tariff in (1, 2, 3, 4)
        }
        assert tariffs.keys() == expected.keys()
        assert all(close(tariffs[t], expected[t]) for t in expected), (tariffs, expected)

    # instantaneous values from the site that heard the meter last: B's newer reading at
    # site-a, not site-b's older and higher one
    watts = by_label(victoria.values("meter:amiplus_power_imported_watts:latest"), "meter_id")
    assert watts == {METERS[name]: r.get("power_imported_w") for name, r in latest.items()}
    site_b_watts = victoria.value(
        f'amiplus_power_imported_watts{{site="site-b",meter_id="{METERS["B"]}"}}'
    )
    assert site_b_watts == last["site-b"]["B"].get("power_imported_w")
    assert site_b_watts is not None and site_b_watts > watts[METERS["B"]]
    assert close(victoria.value("fleet:amiplus_power_imported_watts:sum"), power)
    volts = victoria.values(f'meter_phase:amiplus_voltage_volts:latest{{meter_id="{METERS["B"]}"}}')
    assert by_label(volts, "phase") == latest["B"].get("voltage_v")

    # every recording rule of the fleet reached the store
    missing = [
        record["record"]
        for record in rules("record", FLEET_RULES)
        if not victoria.query(record["record"])
    ]
    assert not missing, missing

    # every query of the fleet dashboard answers from the store, and the main panels say what
    # the meters sent
    answers = dashboard_answers(victoria)
    assert not [where for where, rows in answers.items() if not rows], answers
    assert answers["Meters configured"] == {(): 5.0}
    assert answers["Meters heard"] == {(): 4.0}
    assert answers["Silent meters"] == {(): 1.0}
    assert answers["Meters heard per site"] == {
        (("site", "site-a"),): 3.0,
        (("site", "site-b"),): 3.0,
    }
    assert answers["Meters only this site hears"] == {
        (("site", "site-a"),): 1.0,
        (("site", "site-b"),): 1.0,
    }
    ((register_kwh,),) = [tuple(answers["1.8.0 Imported, all meters"].values())]
    assert close(register_kwh, imported / JOULES_PER_KWH)
    ((now_watts,),) = [tuple(answers["Taking from the grid"].values())]
    assert now_watts == power
    assert victoria.label_values("site", "amiplus_meter_info") == set(HEARS)
    assert victoria.label_values("meter_id", 'amiplus_meter_info{site=~".*"}') == set(
        METERS.values()
    )
    print(
        f"\nfleet in VictoriaMetrics after {arrived_after:.1f} s: {meters_counted:.0f} meters "
        f"counted (of {series:.0f} register series, 5 configured, 1 silent); fleet import "
        f"{fleet_imported:.0f} J = {imported:.0f} J expected (per-site sum {per_site:.0f} J); "
        f"{len(answers)} dashboard queries answered; "
        f"{time.monotonic() - started:.1f} s in all"
    )


def by_label(values: dict[tuple[tuple[str, str], ...], float], label: str) -> dict[str, float]:
    """Query results keyed by one label's value."""
    return {dict(labels)[label]: value for labels, value in values.items()}


#: Grafana's variables as the fleet dashboard sends them with everything chosen.
DASHBOARD_VALUES = {
    "site": ".*",
    "meter": ".*",
    "__range": "5m",
    "__rate_interval": "15s",
    "__interval": "5s",
}


def dashboard_answers(
    store: VictoriaMetrics,
) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every query of the fleet dashboard against the store, by panel title (and refId when a
    panel has several)."""
    answers = {}
    for panel in panels(load(DASHBOARD)):
        for target in panel["targets"]:
            where = panel["title"]
            if len(panel["targets"]) > 1:
                where += f" ({target['refId']})"
            answers[where] = store.values(substitute(target["expr"], DASHBOARD_VALUES))
    return answers
