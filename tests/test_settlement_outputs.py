"""The settlement figures in every output, from the one figure table (exporter/settlement/
figures.py): Prometheus (its own collector), InfluxDB fields, the status data; the figures
handed on with the readings that changed them, at no cost to the others; a new row of the table
reaching every output with no other change. MQTT's part is in test_mqtt_publisher.py."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.fields import FIELDS, Label, Metric, MetricType, table
from exporter.amiplus.simulated import SimulatedMeter
from exporter.config import Config, Scheme, parse_config
from exporter.outputs.influx import point
from exporter.outputs.mqtt import entities, settled_keys, settlement_payload
from exporter.outputs.mqtt.documents import entities_of
from exporter.outputs.settlement import SettlementCollector
from exporter.pipeline import Intake, MeterUpdate, Output, Settlements, State
from exporter.receivers.base import Frame
from exporter.settlement import LedgerView, Scope, Totals, figure_table, figures
from exporter.web.status import status
from exporter.wmbus.cache import clear_caches

from .conftest import reading
from .ledgers import book, fed, keep, price, price_file
from .prosumer_model import local_time
from .servers import SIMULATED_KEY

NOW = local_time(2026, 3, 10, 12, 20)  # a Tuesday: the hour counting is 12:00-13:00
HOUSE, COTTAGE, NEIGHBOUR = "12345678", "12345679", "12345680"
JOULES = 3.6e6


def yaml(directory: Path) -> str:
    prices = price_file(directory / "prices.csv", local_time(2026, 1, 1), NOW + 86400)
    return f"""
meters:
  - id: "{HOUSE}"
    key: "{SIMULATED_KEY}"
    name: house
    settlement: {{scheme: net-billing, since: 2026-01-20}}
  - id: "{COTTAGE}"
    key: "{SIMULATED_KEY}"
    name: cottage
    settlement: {{scheme: net-metering}}
  - id: "{NEIGHBOUR}"
    key: "{SIMULATED_KEY}"
    name: neighbour
receivers:
  - type: simulator
prices:
  - from: 2020-01-01
    tariffs: {{1: {{energy: 0.6, distribution: 0.3}}}}
state: {{directory: {directory / "state"}}}
market_prices: {{source: file, file: {prices}}}
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """The house in net-billing since January (its ledger kept until now), the cottage in
    net-metering since this morning (its day is partial), the neighbour not settled."""
    parsed = parse_config(yaml(tmp_path), env={})
    prices = book(tmp_path / "prices.csv", parsed.prices)
    rules = {meter.meter_id: meter.settlement for meter in parsed.settled}
    house, cottage = rules[HOUSE], rules[COTTAGE]
    assert house is not None and cottage is not None
    keep(
        tmp_path / "state",
        {
            HOUSE: fed(house, prices, local_time(2026, 1, 20), NOW, (3000.0, 500.0)),
            COTTAGE: fed(cottage, prices, local_time(2026, 3, 10, 6), NOW, (100.0, 10.0)),
        },
    )
    return parsed


@pytest.fixture
def settlements(config: Config) -> Settlements:
    return Settlements(config, clock=lambda: NOW)


def scrape(settlements: Settlements, state: State) -> dict[str, Any]:
    """The collector's families as Prometheus reads them, by name."""
    collectors = CollectorRegistry(auto_describe=False)
    collectors.register(SettlementCollector(settlements, state, clock=lambda: NOW))
    text = generate_latest(collectors).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family: Any) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


def view(settlements: Settlements, key: str) -> LedgerView:
    found = settlements.view(key, NOW)
    assert found is not None
    return found


# --- the table --------------------------------------------------------------------------------


def test_every_row_is_consistent() -> None:
    rows = figure_table().rows
    for scope, source in ((Scope.NOW, LedgerView), (Scope.PERIOD, Totals)):
        keys = [row.key for row in rows if row.scope is scope]
        assert len(set(keys)) == len(keys), keys
        for key in keys:
            assert hasattr(source, key), f"{key} is not an attribute of {source.__name__}"
    families = [row.metric.sample_name for row in rows if row.metric is not None]
    assert len(set(families)) == len(families)
    assert all(name.startswith("amiplus_settlement_") for name in families)
    by_key = {row.key: row for row in figure_table().period}
    for row in rows:
        assert row.unit in ("kWh", "PLN", "PLN/kWh"), row.key
        assert row.label.en and row.label.pl, row.key
        if row.metric is not None and row.unit == "kWh":
            assert row.metric.name.endswith("_joules") and row.metric.scale == JOULES, row.key
        if row.scope is Scope.PERIOD:
            assert row.column == (row.metric is not None), row.key
        if row.detail:
            assert row.column and row.detail in by_key, row.key
            assert by_key[row.detail].schemes >= row.schemes, row.key
    # names no other output already uses: InfluxDB fields, Home Assistant entities
    readings = {row.influx for row in FIELDS if row.influx} | {"export_value_pln"}
    assert not {row.influx for row in rows if row.influx} & readings
    settled = set(settled_keys(Scheme.NET_BILLING)) | set(settled_keys(Scheme.NET_METERING))
    assert not set(entities_of(table()).every) & settled
    assert set(entities()) == set(entities_of(table()).every) | settled


def test_home_assistant_gets_classes_it_accepts_and_totals_for_the_energy_dashboard() -> None:
    # Home Assistant's sensor rules: monetary only as total, energy as total or
    # total_increasing, a price without a device class as a measurement
    allowed = {
        "monetary": {"total"},
        "energy": {"total", "total_increasing"},
        None: {"measurement"},
    }
    shown = [row for row in figure_table().now if row.home_assistant is not None]
    for row in shown:
        ha = row.home_assistant
        assert ha is not None and ha.state_class in allowed[ha.device_class], row.key
        assert ha.unit == row.unit, row.key
    increasing = {
        row.key
        for row in shown
        if row.home_assistant and row.home_assistant.state_class == "total_increasing"
    }
    assert increasing == {"balanced_imported_total_kwh", "balanced_exported_total_kwh"}
    assert set(settled_keys(Scheme.NET_BILLING)) >= increasing | {"deposit_pln"}
    assert "bank_kwh" in settled_keys(Scheme.NET_METERING)
    assert "deposit_pln" not in settled_keys(Scheme.NET_METERING)


# --- Prometheus -------------------------------------------------------------------------------


def test_the_collector_shows_each_settled_meter_by_its_scheme(
    config: Config, settlements: Settlements
) -> None:
    state = State()
    state.reconfigure(None, config.meters)
    state.record(COTTAGE, "cottage", reading("79563412", rssi_dbm=-70.0), NOW - 5, "r")
    found = scrape(settlements, state)
    house, cottage = view(settlements, HOUSE), view(settlements, COTTAGE)
    home = (("meter_id", HOUSE),)
    away = (("meter_id", "79563412"),)  # as its telegrams print it
    assert house.deposit_pln > 1 and cottage.bank_kwh > 0.1  # the ledgers hold something
    assert samples(found["amiplus_settlement_deposit_pln"]) == {home: round(house.deposit_pln, 6)}
    assert samples(found["amiplus_settlement_bank_joules"]) == {
        away: round(cottage.bank_kwh * JOULES, 6)
    }
    assert samples(found["amiplus_settlement_deposit_expiring_pln"]) == {home: 0.0}
    assert samples(found["amiplus_settlement_export_price_pln_per_kwh"]) == {
        home: pytest.approx(price(NOW) / 1000)
    }
    assert samples(found["amiplus_settlement_market_price_pln_per_kwh"]) == {
        home: pytest.approx(price(NOW) / 1000),
        away: pytest.approx(price(NOW) / 1000),
    }
    balanced = found["amiplus_settlement_balanced_energy_exported_joules"]
    assert balanced.type == "counter"
    assert samples(balanced)[home] == pytest.approx(house.total.balanced_exported_kwh * JOULES)
    daily = samples(found["amiplus_settlement_balanced_energy_exported_period_joules"])
    today = (("meter_id", HOUSE), ("period", "day"), ("start", "2026-03-10"))
    yesterday = (("meter_id", HOUSE), ("period", "day"), ("start", "2026-03-09"))
    # a reading's energy counts to the hour it ends in: 09:00 nets 0.02 of export against 3
    # quarters of 0.0025 import, 10:00-14:00 four quarters of 0.02 export, 14:00 nets three
    # against one quarter of import
    assert daily[yesterday] == pytest.approx((0.0125 + 4 * 0.08 + 0.0575) * JOULES)
    assert daily[today] == pytest.approx((0.0125 + 2 * 0.08) * JOULES)  # settled until 12:00
    assert {labels[1][1] for labels in daily} == {"day", "week", "month"}
    credits = samples(found["amiplus_settlement_deposit_credit_period_pln"])
    february = (("meter_id", HOUSE), ("period", "month"), ("start", "2026-02-01"))
    assert credits[february] == pytest.approx(house_month(house, "last_month").deposit_credit_pln)
    partial = samples(found["amiplus_settlement_period_partial"])
    assert set(partial) == {
        (("meter_id", "79563412"), ("period", kind), ("start", start))
        for kind, start in (("day", "2026-03-10"), ("week", "2026-03-09"), ("month", "2026-03-01"))
    }  # the cottage was first heard this morning; the house is complete
    banked = samples(found["amiplus_settlement_bank_credit_period_joules"])
    assert banked and {dict(labels)["meter_id"] for labels in banked} == {"79563412"}


def house_month(ledger_view: LedgerView, name: str) -> Totals:
    (found,) = [p.totals for p in ledger_view.periods if p.period.name == name]
    return found


def test_without_a_settled_meter_the_collector_costs_nothing(tmp_path: Path) -> None:
    text = yaml(tmp_path)
    for rules in ("{scheme: net-billing, since: 2026-01-20}", "{scheme: net-metering}"):
        text = text.replace(f"settlement: {rules}", "")
    plain = parse_config(text, env={})
    state = State()
    state.reconfigure(None, plain.meters)
    assert scrape(Settlements(plain, clock=lambda: NOW), state) == {}


# --- the figures handed on --------------------------------------------------------------------


def values(imported: float, exported: float) -> dict[str, Any]:
    return {"energy_imported_kwh": imported, "energy_exported_kwh": exported}


def test_record_hands_the_figures_on_only_when_they_changed(
    config: Config, settlements: Settlements
) -> None:
    first = settlements.record(HOUSE, values(3100.0, 600.0), NOW + 60)
    assert first is not None and first.scheme is Scheme.NET_BILLING  # owed since the start
    assert settlements.record(HOUSE, values(3100.0, 600.1), NOW + 120) is None  # same hour
    closed = settlements.record(
        HOUSE, values(3100.0, 600.5), local_time(2026, 3, 10, 13, 0, second=5)
    )
    assert closed is not None and closed.total.hours == first.total.hours + 1
    assert settlements.record(HOUSE, values(3100.0, 600.6), local_time(2026, 3, 10, 13, 1)) is None
    settlements.resend()  # an output started
    assert settlements.record(HOUSE, values(3100.0, 600.7), local_time(2026, 3, 10, 13, 2))
    assert settlements.record(COTTAGE, values(200.0, 20.0), local_time(2026, 3, 10, 13, 2))
    settlements.reconfigure(config)  # a reload: rules may have changed
    assert settlements.record(HOUSE, values(3100.0, 600.8), local_time(2026, 3, 10, 13, 3))
    assert settlements.record(NEIGHBOUR, values(1.0, 1.0), NOW) is None  # not settled


class Taken(Output):
    name = "taken"

    def __init__(self) -> None:
        self.updates: list[MeterUpdate] = []

    def submit(self, update: MeterUpdate) -> None:
        self.updates.append(update)


def test_the_intake_hands_each_reading_its_scheme_and_the_figures_that_changed(
    config: Config, settlements: Settlements
) -> None:
    state = State()
    state.reconfigure(None, config.meters)
    taken = Taken()
    intake = Intake(config, state, [taken], settlements=settlements)
    meters = {
        key: SimulatedMeter(FAMILIES_BY_NAME["otus"], meter_id=key) for key in (HOUSE, NEIGHBOUR)
    }
    for at in (NOW + 60, NOW + 70, local_time(2026, 3, 10, 13, 0, second=5)):
        for meter in meters.values():
            frame, _ = meter.telegram(datetime.fromtimestamp(at, UTC))
            intake.on_frame("radio", Frame(frame, at))
    by_meter = {key: [u for u in taken.updates if u.meter_id == key] for key in meters}
    assert [u.scheme for u in by_meter[HOUSE]] == [Scheme.NET_BILLING] * 3
    assert [u.settlement is not None for u in by_meter[HOUSE]] == [True, False, True]
    assert [(u.scheme, u.settlement) for u in by_meter[NEIGHBOUR]] == [(None, None)] * 3


# --- InfluxDB and the status data -------------------------------------------------------------


def test_a_point_carries_the_figures_of_the_meters_scheme(settlements: Settlements) -> None:
    house, cottage = view(settlements, HOUSE), view(settlements, COTTAGE)
    line = point(reading(HOUSE, energy_imported_kwh=3100.0), "house", NOW, settlement=house)
    assert line is not None
    fields = dict(item.split("=") for item in line.split(" ")[1].split(","))
    assert float(fields["deposit_pln"]) == house.deposit_pln
    assert float(fields["balanced_exported_total_kwh"]) == house.total.balanced_exported_kwh
    assert float(fields["export_price_pln_per_kwh"]) == pytest.approx(price(NOW) / 1000)
    assert "bank_kwh" not in fields and "hour_balanced_exported_kwh" not in fields
    later = dataclasses.replace(house, hour=None)  # the hour's price not known: no field
    line = point(reading(HOUSE, energy_imported_kwh=3100.0), "house", NOW, settlement=later)
    assert line is not None and "export_price_pln_per_kwh" not in line
    line = point(reading(COTTAGE, energy_imported_kwh=3.0), "cottage", NOW, settlement=cottage)
    assert line is not None and "bank_kwh=" in line and "deposit_pln" not in line
    plain = point(reading(HOUSE, energy_imported_kwh=3100.0), "house", NOW)
    assert plain is not None and "deposit" not in plain and "balanced" not in plain


def test_the_status_holds_each_settled_meters_ledger_and_the_table(
    config: Config, settlements: Settlements
) -> None:
    state = State()
    state.reconfigure(None, config.meters)
    page = status(config, state, receivers=[], heard=[], started_at=0.0, settlements=settlements)
    meters = {meter["meter_id"]: meter for meter in page["meters"]}
    assert "settlement" not in meters[NEIGHBOUR]
    house = meters[HOUSE]["settlement"]
    assert house["scheme"] == "net-billing" and house["deposit_pln"] > 1
    assert "bank_kwh" not in house
    today = house["periods"]["today"]
    assert today["current"] and not today["partial"]
    assert today["balanced_exported_kwh"] == pytest.approx(0.1725)
    assert today["start"] == "2026-03-10T00:00:00+01:00" and today["end"].startswith("2026-03-11")
    cottage = meters[COTTAGE]["settlement"]
    assert cottage["bank_kwh"] > 0 and cottage["periods"]["today"]["partial"]
    shown = {row["key"]: row for row in page["settlement"]["figures"]}
    assert shown["deposit_pln"]["label"] == {"en": "Deposit", "pl": "Depozyt prosumencki"}
    assert shown["balanced_exported_kwh"]["detail"] == "exported_kwh"
    assert page["settlement"]["market_prices"] is None  # from a file: nothing fetched
    plain = status(config, state, receivers=[], heard=[], started_at=0.0)
    assert "settlement" not in plain and "settlement" not in plain["meters"][0]


# --- a new row --------------------------------------------------------------------------------


@pytest.fixture
def refund_rows(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two rows more, for this test only: when the last reading came (now) and what expired
    credits refunded (per period)."""
    latest = dataclasses.replace(
        figures.FIGURES[0],
        key="latest_at",
        label=Label("Latest reading", "Ostatni odczyt"),
        schemes=figures.BOTH,
        metric=Metric("amiplus_settlement_latest_reading_pln", MetricType.GAUGE, "test"),
        influx="latest_at",
    )
    refunded = dataclasses.replace(
        figures.FIGURES[-1],
        key="refunded_pln",
        label=Label("Refunded", "Zwrot"),
        schemes=figures.NET_BILLING,
        metric=Metric("amiplus_settlement_refunded_period_pln", MetricType.GAUGE, "test"),
        column=True,
    )
    monkeypatch.setattr(figures, "FIGURES", (*figures.FIGURES, latest, refunded))
    clear_caches()
    yield
    monkeypatch.undo()
    clear_caches()


@pytest.mark.usefixtures("refund_rows")
def test_a_new_row_appears_in_every_output(config: Config, settlements: Settlements) -> None:
    house = view(settlements, HOUSE)
    state = State()
    state.reconfigure(None, config.meters)
    found = scrape(settlements, state)
    assert samples(found["amiplus_settlement_latest_reading_pln"])[(("meter_id", HOUSE),)] == (
        house.latest_at
    )
    refunds = samples(found["amiplus_settlement_refunded_period_pln"])
    assert refunds[(("meter_id", HOUSE), ("period", "day"), ("start", "2026-03-10"))] == 0
    assert "latest_at" in entities() and "latest_at" in settled_keys(Scheme.NET_METERING)
    update = MeterUpdate(HOUSE, "house", reading(HOUSE), {}, NOW, "r", settlement=house)
    assert json.loads(settlement_payload(update))["latest_at"] == house.latest_at
    line = point(reading(HOUSE, energy_imported_kwh=1.0), "house", NOW, settlement=house)
    assert line is not None and f"latest_at={house.latest_at!r}" in line
    page = status(config, state, receivers=[], heard=[], started_at=0.0, settlements=settlements)
    meter = next(m for m in page["meters"] if m["meter_id"] == HOUSE)
    assert meter["settlement"]["latest_at"] == house.latest_at
    assert meter["settlement"]["periods"]["last_month"]["refunded_pln"] == 0
    assert {"latest_at", "refunded_pln"} <= {row["key"] for row in page["settlement"]["figures"]}


def test_the_contract_names_every_figure() -> None:
    """docs/contracts.md holds every stable name the table gives the outputs."""
    contract = (Path(__file__).parent.parent / "docs" / "contracts.md").read_text()
    for row in figure_table().rows:
        names = [f"`{row.key}`"]
        if row.metric is not None:
            names.append(f"`{row.metric.sample_name}`")
        for name in names:
            assert name in contract, name
    assert "`amiplus_settlement_period_partial`" in contract
    assert "`<base>/<meter>/settlement`" in contract
