"""The ledgers in the running exporter: kept per settled meter in `settlement.json` of the state
directory (atomically, across restarts), a meter no longer settled set aside in
`settlement.unconfigured.jsonl` (not loaded, taken back, forgotten after forget_after_days), fed
by the intake for settled meters only, repriced when market prices arrive."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest

from exporter.config import Config, parse_config
from exporter.pipeline.settlement import ASIDE_FILE, STATE_FILE, Settlements

from .conftest import wait_until
from .prosumer_model import local_time
from .servers import SIMULATED_KEY, Start

METERS = f"""
meters:
  - id: "12345678"
    key: "{SIMULATED_KEY}"
    name: house
    settlement: {{scheme: net-billing}}
  - id: "12345679"
    key: "{SIMULATED_KEY}"
    name: neighbour
receivers:
  - type: simulator
"""


def config(directory: Path, extra: str = "", meters: str = METERS, state: str = "") -> Config:
    """`meters` with the state in `directory` (and `state`'s further options), prices from a
    file and `extra`."""
    prices = directory / "prices.csv"
    if not prices.exists():
        prices.write_text("start,minutes,pln_per_mwh\n2025-06-01T10:00:00+02:00,60,500\n")
    return parse_config(
        meters
        + f"state: {{directory: {directory / 'state'}{state}}}\n"
        + f"market_prices: {{source: file, file: {prices}}}\n"
        + extra,
        env={},
    )


def values(imported: float, exported: float) -> dict[str, Any]:
    return {
        "energy_imported_kwh": imported,
        "energy_exported_kwh": exported,
        "energy_imported_tariff_kwh": {1: imported},
    }


def feed(settlements: Settlements, start: float, hours: int) -> None:
    """A reading every 10 minutes; 2 kWh of export an hour."""
    for step in range(hours * 6 + 1):
        exported = 10 + step / 3
        settlements.record("12345678", values(100.0, exported), start + step * 600)


def test_the_ledgers_survive_a_restart_and_a_meter_removed_is_set_aside(tmp_path: Path) -> None:
    now = [local_time(2025, 6, 1, 12, 30)]
    first = Settlements(config(tmp_path), clock=lambda: now[0])
    feed(first, local_time(2025, 6, 1, 9), 3)  # 10:00-11:00 is priced: 2 kWh x 0.5 PLN
    first.flush(everything=True)
    path = tmp_path / "state" / STATE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert set(saved["meters"]) == {"12345678"}  # settled meters only
    before = first.view("12345678")
    assert before is not None and first.view("12345679") is None
    second = Settlements(config(tmp_path), clock=lambda: now[0])
    assert second.view("12345678") == before  # nothing starts again
    (june,) = [p for p in before.periods if p.period.name == "today"]
    assert june.totals.hours == 3 and june.totals.export_value_pln == pytest.approx(1.0)
    assert june.totals.unpriced_export_kwh == pytest.approx(4.0)  # 9-10 and 11-12: no price
    without = config(tmp_path, meters=METERS.replace("settlement: {scheme: net-billing}", ""))
    second.reconfigure(without)
    assert second.view("12345678") is None  # not loaded ...
    assert json.loads(path.read_text())["meters"] == {}  # ... nor in the file a save rewrites
    (aside,) = [json.loads(line) for line in (tmp_path / "state" / ASIDE_FILE).open()]
    assert (aside["key"], aside["since"]) == ("12345678", now[0])  # ... but kept aside
    third = Settlements(without, clock=lambda: now[0])  # a restart without it: still aside
    assert third.keys() == [] and (tmp_path / "state" / ASIDE_FILE).exists()
    third.reconfigure(config(tmp_path))  # back in
    assert third.view("12345678") == before
    assert set(json.loads(path.read_text())["meters"]) == {"12345678"}
    assert not (tmp_path / "state" / ASIDE_FILE).exists()


def settled(count: int) -> str:
    """`count` meters, each with a settlement."""
    return "meters:\n" + "".join(
        f'  - {{id: "3000{n:04d}", key: "{SIMULATED_KEY}", settlement: {{scheme: net-billing}}}}\n'
        for n in range(count)
    )


def test_a_fleet_file_with_one_meter_settled_loads_one_and_forgets_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The state directory of a run with many settled meters, started with one: one ledger is
    loaded, the rest set aside, and forgotten after forget_after_days with one line."""
    now = [local_time(2025, 6, 1, 12, 30)]
    fleet = Settlements(config(tmp_path, meters=settled(5)), clock=lambda: now[0])
    for n in range(5):
        fleet.record(f"3000{n:04d}", values(100.0, 10.0), now[0] - 600)
    fleet.stop()
    one = config(tmp_path, meters=settled(1), state=", forget_after_days: 10")
    assert one.forget_after == 10 * 86400
    single = Settlements(one, clock=lambda: now[0])
    assert single.keys() == ["30000000"] and single.view("30000000") is not None
    assert set(json.loads((tmp_path / "state" / STATE_FILE).read_text())["meters"]) == {"30000000"}
    assert len((tmp_path / "state" / ASIDE_FILE).read_text().splitlines()) == 4
    now[0] += 10 * 86400 + 1
    with caplog.at_level(logging.INFO):
        single.start()
        assert wait_until(lambda: not (tmp_path / "state" / ASIDE_FILE).exists(), 10)
        single.stop()
    said = [r.getMessage() for r in caplog.records if "forgot" in r.getMessage()]
    assert said == [
        f"{ASIDE_FILE}: forgot 4 of the meters no longer settled (set aside more than 10 days ago)"
    ]


def test_ledgers_the_disk_will_not_set_aside_stay_in_the_settlement_file(tmp_path: Path) -> None:
    now = [local_time(2025, 6, 1, 12, 30)]
    settlements = Settlements(config(tmp_path), clock=lambda: now[0])
    feed(settlements, local_time(2025, 6, 1, 9), 3)
    before = settlements.view("12345678")
    (tmp_path / "state" / ASIDE_FILE).mkdir(parents=True)  # a directory in its place: no write
    settlements.reconfigure(
        config(tmp_path, meters=METERS.replace("settlement: {scheme: net-billing}", ""))
    )
    assert settlements.keys() == []
    saved = json.loads((tmp_path / "state" / STATE_FILE).read_text())["meters"]
    assert set(saved) == {"12345678"} and saved["12345678"]["balancer"]["latest"]
    settlements.reconfigure(config(tmp_path))
    assert settlements.view("12345678") == before


def test_prices_that_arrive_value_the_hours_that_waited(tmp_path: Path) -> None:
    now = [local_time(2025, 6, 1, 12, 30)]
    settlements = Settlements(config(tmp_path), clock=lambda: now[0])
    feed(settlements, local_time(2025, 6, 1, 9), 3)
    start = int(local_time(2025, 6, 1, 9))
    settlements.prices_arrived({start + 900 * n: 100.0 for n in range(4)})  # what the fetcher hands
    view = settlements.view("12345678")
    assert view is not None
    (today,) = [p for p in view.periods if p.period.name == "today"]
    assert today.totals.export_value_pln == pytest.approx(1.0 + 0.2)
    assert view.unpriced_export_kwh == pytest.approx(2.0)  # 11-12 still waits
    assert settlements.market_price(start + 1800) == pytest.approx(0.1)


def test_an_unwritable_state_directory_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "state").write_text("a file where the directory should be")
    settlements = Settlements(config(tmp_path), clock=lambda: local_time(2025, 6, 1, 12))
    feed(settlements, local_time(2025, 6, 1, 9), 2)
    settlements.flush(everything=True)
    feed(settlements, local_time(2025, 6, 1, 11), 1)
    settlements.flush(everything=True)
    said = [r for r in caplog.records if "cannot keep the prosumer ledgers" in r.getMessage()]
    assert len(said) == 1
    assert settlements.view("12345678") is not None  # it carries on in memory


def test_the_exporter_feeds_settled_meters_and_keeps_them(
    start_exporter: Start, tmp_path: Path
) -> None:
    state, prices = tmp_path / "state", tmp_path / "prices.csv"
    prices.write_text("start,minutes,pln_per_mwh\n")
    exporter = start_exporter(
        METERS.replace("type: simulator", "type: simulator\n    meters: 2\n    interval: 0.2")
        + f"state: {{directory: {state}}}\n"
        + f"market_prices: {{source: file, file: {prices}}}\n",
    )

    def heard() -> bool:
        meters = exporter.status()["meters"]
        return all(meter["telegrams"] >= 3 for meter in meters)

    assert wait_until(heard, 30), exporter.log()
    assert exporter.stop() == 0
    saved = json.loads((state / STATE_FILE).read_text())
    assert set(saved["meters"]) == {"12345678"}  # the neighbour has no settlement
    latest = saved["meters"]["12345678"]["balancer"]["latest"]
    assert latest[1] > 0 and latest[3]  # the registers, and the import per tariff zone
