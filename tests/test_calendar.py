"""Calendar periods from synthetic readings: midnight, both DST days, weeks and months, a gap
across midnight, a restart, a price change, the tariff zone counting now."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter.amiplus import table
from exporter.amiplus.clock import WARSAW
from exporter.config import parse_config
from exporter.config.prices import PriceEntry, Prices, TariffPrice
from exporter.pipeline.calendar import (
    SAVE_SOON,
    Calendar,
    Figure,
    midnight,
    period_start,
)

from .conftest import wait_until
from .servers import CONSOLE_SCRIPT, SIMULATED_KEY, Start
from .test_config import GOOD

METER = "12345678"
IMPORTED, EXPORTED = table().imported, table().exported


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    """A Warsaw wall-clock time as Unix time (the first of a repeated hour)."""
    return datetime(year, month, day, hour, minute, tzinfo=WARSAW).timestamp()


class Meter:
    """A G12 meter drawing `power_w` (in zone 2 from 22 to 6 local time) and exporting
    `export_w`, read every `every` seconds into a calendar."""

    def __init__(self, calendar: Calendar, power_w: float = 1000.0, export_w: float = 0.0) -> None:
        self.calendar = calendar
        self.power_w = power_w
        self.export_w = export_w
        self.zones = {1: 1000.0, 2: 500.0}
        self.exported = 10.0
        self.at: float | None = None
        self.money: dict[str, float] = {}

    def zone(self, at: float) -> int:
        hour = datetime.fromtimestamp(at, WARSAW).hour
        return 2 if hour >= 22 or hour < 6 else 1

    def values(self) -> dict[str, Any]:
        return {
            IMPORTED.key: round(sum(self.zones.values()), 6),
            IMPORTED.tariff_key: dict(self.zones),
            EXPORTED.key: round(self.exported, 6),
            EXPORTED.tariff_key: {1: round(self.exported, 6)},
        }

    def run(self, until: float, every: float = 300.0, read: bool = True) -> None:
        """Advance to `until`, reading every `every` seconds (or silently: `read=False`)."""
        assert self.at is not None
        while self.at + every <= until + 1e-6:
            self.advance(self.at + every, read)

    def advance(self, at: float, read: bool = True) -> None:
        if self.at is not None:
            hours = (at - self.at) / 3600
            self.zones[self.zone(at)] += self.power_w / 1000 * hours
            self.exported += self.export_w / 1000 * hours
        self.at = at
        if read:
            self.money = self.calendar.record(METER, self.values(), at, silent_after=600)

    def start(self, at: float) -> None:
        self.advance(at)


def figures(calendar: Calendar, now: float) -> dict[str, Figure]:
    return {figure.period.name: figure for figure in calendar.figures(METER, now)}


def kwh(figure: Figure) -> float:
    return figure.energy[IMPORTED.key]


def test_period_starts() -> None:
    sunday = date(2026, 10, 25)
    assert period_start("week", sunday) == date(2026, 10, 19)  # weeks begin on Monday
    assert period_start("week", sunday, 1) == date(2026, 10, 12)
    assert period_start("month", date(2026, 1, 15), 1) == date(2025, 12, 1)
    assert period_start("month", date(2026, 12, 31), -1) == date(2027, 1, 1)
    assert midnight(date(2026, 10, 26), WARSAW) - midnight(sunday, WARSAW) == 25 * 3600
    assert midnight(date(2026, 3, 30), WARSAW) - midnight(date(2026, 3, 29), WARSAW) == 23 * 3600


def test_across_midnight_yesterday_and_today() -> None:
    calendar = Calendar()
    meter = Meter(calendar)
    meter.start(local(2026, 6, 10, 21, 0))
    meter.run(local(2026, 6, 11, 3, 0))
    now = local(2026, 6, 11, 3, 0)
    found = figures(calendar, now)
    # first heard at 21:00: the 10th counts from then and is partial; the 11th from the reading
    # at midnight, the register right at the boundary, and is complete
    assert found["yesterday"].partial and kwh(found["yesterday"]) == pytest.approx(3.0)
    assert not found["today"].partial and kwh(found["today"]) == pytest.approx(3.0)
    assert found["today"].tariffs(IMPORTED) == pytest.approx({1: 0.0, 2: 3.0})
    # read every 7 minutes instead, the 11th starts at the last reading before midnight
    calendar = Calendar()
    meter = Meter(calendar)
    meter.start(local(2026, 6, 10, 21, 0))
    meter.run(local(2026, 6, 11, 3, 0), every=420)  # 23:55, then 00:02
    found = figures(calendar, local(2026, 6, 11, 3, 0))
    assert kwh(found["yesterday"]) == pytest.approx(2 + 55 / 60)
    assert kwh(found["today"]) == pytest.approx(3 + 2 / 60)  # 23:55 to 02:57
    assert found["today"].start == date(2026, 6, 11) and found["today"].current
    # this week (Monday the 8th) and month began before the first reading: partial
    assert found["this_week"].partial and kwh(found["this_week"]) == pytest.approx(5 + 57 / 60)
    assert found["this_month"].partial
    assert "last_month" not in found and "last_week" not in found  # not heard then


def test_after_midnight_before_the_next_reading() -> None:
    calendar = Calendar()
    meter = Meter(calendar)
    meter.start(local(2026, 6, 10, 0, 0))
    meter.run(local(2026, 6, 10, 23, 55))
    found = figures(calendar, local(2026, 6, 11, 0, 2))  # no reading since midnight yet
    assert kwh(found["today"]) == 0.0 and not found["today"].partial
    assert kwh(found["yesterday"]) == pytest.approx(23 + 55 / 60)


@pytest.mark.parametrize(
    ("day", "hours"), [(date(2026, 10, 25), 25), (date(2026, 3, 29), 23), (date(2026, 6, 1), 24)]
)
def test_a_day_has_the_hours_of_the_calendar(day: date, hours: int) -> None:
    calendar = Calendar()
    meter = Meter(calendar)
    before = midnight(day, WARSAW) - 600
    meter.start(before)
    meter.run(midnight(day + timedelta(days=1), WARSAW) + 600)
    found = figures(calendar, meter.at or 0)
    yesterday = found["yesterday"]
    assert yesterday.start == day and not yesterday.partial
    assert kwh(yesterday) == pytest.approx(hours)  # 1 kW all day long
    assert yesterday.ends_at - yesterday.begins_at == hours * 3600


def test_weeks_and_months() -> None:
    calendar = Calendar()
    meter = Meter(calendar, power_w=500)
    meter.start(local(2026, 9, 1, 0, 0) - 60)
    meter.run(local(2026, 11, 4, 12, 0), every=600)
    found = figures(calendar, local(2026, 11, 4, 12, 0))
    assert kwh(found["last_month"]) == pytest.approx(0.5 * (31 * 24 + 1))  # October: 745 hours
    assert kwh(found["this_month"]) == pytest.approx(0.5 * (3 * 24 + 12))
    assert found["this_week"].start == date(2026, 11, 2)
    assert kwh(found["this_week"]) == pytest.approx(0.5 * (2 * 24 + 12))
    assert kwh(found["last_week"]) == pytest.approx(0.5 * 7 * 24)
    assert not any(figure.partial for figure in found.values())


def test_a_gap_across_midnight_starts_the_day_at_the_last_reading_before_it() -> None:
    calendar = Calendar()
    meter = Meter(calendar)
    meter.start(local(2026, 6, 1, 0, 0) - 60)
    meter.run(local(2026, 6, 10, 23, 0))
    meter.run(local(2026, 6, 11, 1, 0), every=7200, read=False)  # the exporter is down
    meter.advance(local(2026, 6, 11, 1, 5))
    found = figures(calendar, local(2026, 6, 11, 1, 5))
    today, yesterday = found["today"], found["yesterday"]
    assert today.partial and yesterday.partial
    assert kwh(yesterday) == pytest.approx(23.0)  # up to the last reading before midnight
    assert kwh(today) == pytest.approx(2 + 6 / 60)  # from it (22:59): the gap counts to today
    assert not found["this_week"].partial  # boundaries the gap did not cross
    assert not found["last_week"].partial


def test_a_meter_silent_since_before_midnight_is_partial_today() -> None:
    calendar = Calendar()
    meter = Meter(calendar)
    meter.start(local(2026, 6, 9, 0, 0) - 60)
    meter.run(local(2026, 6, 10, 23, 50))
    found = figures(calendar, local(2026, 6, 11, 2, 0))
    assert found["today"].partial and kwh(found["today"]) == 0.0


def test_a_restart_changes_nothing(tmp_path: Path) -> None:
    first = Calendar(directory=tmp_path)
    first.start()
    meter = Meter(first)
    meter.start(local(2026, 6, 1, 0, 0) - 60)
    meter.run(local(2026, 6, 10, 12, 0), every=600)
    before = figures(first, local(2026, 6, 10, 12, 0))
    first.stop()
    saved = json.loads((tmp_path / "calendar.json").read_text())
    assert saved["format"] == 2 and "2026-06-10" in saved["meters"][METER]["marks"]
    second = Calendar(directory=tmp_path)
    second.reconfigure(second.zone, second.prices, [METER])
    assert figures(second, local(2026, 6, 10, 12, 0)) == before
    meter.calendar = second
    meter.run(local(2026, 6, 10, 18, 0), every=600)
    after = figures(second, local(2026, 6, 10, 18, 0))
    assert kwh(after["today"]) == pytest.approx(18.0)  # 23:59 to 17:59
    assert kwh(after["this_month"]) == pytest.approx(9 * 24 + 18)
    assert not after["today"].partial


def test_a_midnight_is_saved_soon_and_a_new_meter_with_the_regular_saves(tmp_path: Path) -> None:
    """A crash must not lose a midnight's marks (the day would start again); a new meter's
    first periods are partial anyway, so 20,000 new meters do not rewrite the file at once."""
    now = [1000.0]
    calendar = Calendar(directory=tmp_path, monotonic=lambda: now[0])
    meter = Meter(calendar)
    meter.start(local(2026, 6, 10, 23, 0))
    meter.run(local(2026, 6, 10, 23, 50))
    now[0] += SAVE_SOON + 1
    calendar.flush()
    assert not (tmp_path / "calendar.json").exists()
    meter.run(local(2026, 6, 11, 0, 10))
    calendar.flush()
    saved = json.loads((tmp_path / "calendar.json").read_text())
    assert "2026-06-11" in saved["meters"][METER]["marks"]


def test_an_unwritable_directory_is_reported_once_and_periods_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    calendar = Calendar(directory=blocked)
    meter = Meter(calendar)
    meter.start(local(2026, 6, 10, 0, 0))
    calendar.flush(everything=True)
    meter.run(local(2026, 6, 11, 1, 0))
    calendar.flush(everything=True)
    warnings = [r for r in caplog.records if "cannot keep calendar periods" in r.getMessage()]
    assert len(warnings) == 1 and "state: directory:" in warnings[0].getMessage()
    assert kwh(figures(calendar, local(2026, 6, 11, 1, 0))["today"]) == pytest.approx(1.0)


def test_a_meter_no_longer_configured_is_set_aside_and_comes_back_as_it_was(
    tmp_path: Path,
) -> None:
    now = [local(2026, 6, 10, 12, 0)]
    first = Calendar(directory=tmp_path, clock=lambda: now[0])
    first.reconfigure(first.zone, first.prices, [METER, "87654321"])
    meter = Meter(first)
    meter.start(local(2026, 6, 1, 0, 0) - 60)
    meter.run(local(2026, 6, 10, 12, 0), every=600)
    before = figures(first, now[0])
    first.reconfigure(first.zone, first.prices, ["87654321"])  # commented out
    assert set(first.revisions()) == {"87654321"} and figures(first, now[0]) == {}
    saved = json.loads((tmp_path / "calendar.json").read_text())
    assert set(saved["meters"]) == {"87654321"}  # the file a save rewrites holds no more
    aside = [json.loads(line) for line in (tmp_path / "calendar.unconfigured.jsonl").open()]
    assert [(e["key"], e["since"]) for e in aside] == [(METER, now[0])]
    first.stop()
    second = Calendar(directory=tmp_path, clock=lambda: now[0])  # a restart, a day later
    now[0] += 86400
    second.reconfigure(second.zone, second.prices, ["87654321"])
    assert set(second.revisions()) == {"87654321"}  # never loaded
    second.reconfigure(second.zone, second.prices, [METER, "87654321"])  # back in
    assert figures(second, local(2026, 6, 10, 12, 0)) == before
    saved = json.loads((tmp_path / "calendar.json").read_text())
    assert set(saved["meters"]) == {METER, "87654321"}
    assert not (tmp_path / "calendar.unconfigured.jsonl").exists()


def test_a_fleet_file_with_one_meter_configured_loads_one_and_sets_the_rest_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The state directory of a 20,000-meter run, started with one meter (an upgrade from a
    version that kept everyone in calendar.json): one is loaded, the rest set aside, and
    forgotten after forget_after with one line."""
    now = [local(2026, 6, 10, 12, 0)]
    fleet = [f"3000{n:04d}" for n in range(50)]
    first = Calendar(directory=tmp_path)
    for key in fleet:
        first.record(key, Meter(first).values(), now[0] - 3600)
    first.flush(everything=True)
    one = Calendar(directory=tmp_path, clock=lambda: now[0])
    one.reconfigure(one.zone, one.prices, [fleet[0]], forget_after=10 * 86400)
    assert set(one.revisions()) == {fleet[0]}
    assert set(json.loads((tmp_path / "calendar.json").read_text())["meters"]) == {fleet[0]}
    assert len((tmp_path / "calendar.unconfigured.jsonl").read_text().splitlines()) == 49
    now[0] += 10 * 86400 + 1
    with caplog.at_level(logging.INFO):
        one.start()
        assert wait_until(lambda: not (tmp_path / "calendar.unconfigured.jsonl").exists(), 10)
        one.stop()
    said = [r.getMessage() for r in caplog.records if "forgot" in r.getMessage()]
    assert said == [
        "calendar.unconfigured.jsonl: forgot 49 of the meters no longer configured (set aside "
        "more than 10 days ago)"
    ]


def test_entries_the_disk_will_not_set_aside_stay_in_the_calendar_file(tmp_path: Path) -> None:
    (tmp_path / "calendar.unconfigured.jsonl").mkdir()  # a directory in its place: cannot write
    calendar = Calendar(directory=tmp_path)
    calendar.reconfigure(calendar.zone, calendar.prices, [METER, "87654321"])
    Meter(calendar).start(local(2026, 6, 10, 12, 0))
    calendar.reconfigure(calendar.zone, calendar.prices, ["87654321"])
    saved = json.loads((tmp_path / "calendar.json").read_text())
    assert METER in saved["meters"] and saved["meters"][METER]["latest"] is not None
    assert set(calendar.revisions()) == {"87654321"}
    calendar.reconfigure(calendar.zone, calendar.prices, [METER, "87654321"])
    assert calendar.revisions()[METER] >= 0 and figures(calendar, local(2026, 6, 10, 13, 0))


PRICES = Prices(
    (
        PriceEntry(date(2026, 1, 1), ((1, TariffPrice(0.6, 0.3)), (2, TariffPrice(0.4, 0.1))), 0.2),
        PriceEntry(date(2026, 2, 1), ((1, TariffPrice(1.0, 0.5)), (2, TariffPrice(0.5, 0.1))), 0.3),
    )
)


def test_cost_follows_the_prices_and_splits_at_a_change() -> None:
    calendar = Calendar(prices=PRICES)
    meter = Meter(calendar, power_w=1000, export_w=100)
    meter.start(local(2026, 1, 26, 0, 0) - 60)  # Monday
    meter.run(local(2026, 2, 2, 0, 0) + 60)
    found = figures(calendar, local(2026, 2, 2, 0, 1))
    week = found["last_week"]  # Monday 26 January to Sunday 1 February
    # six January days at January's prices, 1 February at February's: zone 1 is 6-22 h
    january = {1: 6 * 16, 2: 6 * 8}
    february = {1: 16, 2: 8}
    assert week.money["energy/1"] == pytest.approx(january[1] * 0.6 + february[1] * 1.0)
    assert week.money["distribution/2"] == pytest.approx(january[2] * 0.1 + february[2] * 0.1)
    assert week.money["export"] == pytest.approx(0.1 * (6 * 24 * 0.2 + 24 * 0.3))
    assert "unpriced" not in week.money
    day = found["yesterday"]  # 1 February
    assert day.money["energy/1"] + day.money["distribution/1"] == pytest.approx(16 * 1.5)
    # the running cost the outputs get: no reading since the week ended
    assert meter.money["energy/1"] == pytest.approx(week.money["energy/1"])


def test_energy_before_the_first_price_is_unpriced() -> None:
    calendar = Calendar(prices=PRICES)
    meter = Meter(calendar)
    meter.start(local(2025, 12, 31, 12, 0))
    meter.run(local(2026, 1, 1, 12, 0))
    found = figures(calendar, local(2026, 1, 1, 12, 0))
    assert found["yesterday"].money["unpriced"] == pytest.approx(12.0)
    assert "unpriced" not in found["today"].money
    # zone 1 from 06:00 (the meter counts each reading's interval in the zone it ends in)
    assert found["today"].money["energy/1"] == pytest.approx((6 + 5 / 60) * 0.6)


def test_a_period_costs_zero_in_a_zone_that_has_not_counted_yet() -> None:
    """A prosumer's day at noon (nothing imported yet) costs 0 PLN per zone, not nothing: the
    dashboards' and the page's cost exist from the period's start."""
    calendar = Calendar(prices=PRICES)
    meter = Meter(calendar, power_w=0.0, export_w=2000.0)
    meter.start(local(2026, 6, 10, 8, 0))
    meter.run(local(2026, 6, 10, 12, 0))
    today = figures(calendar, local(2026, 6, 10, 12, 0))["today"]
    assert today.cost.zones == {1: (0.0, 0.0), 2: (0.0, 0.0)}
    assert today.cost.export == pytest.approx(4 * 2 * 0.3)


def test_the_tariff_zone_counting_now_is_the_register_that_advanced() -> None:
    calendar = Calendar()
    meter = Meter(calendar)
    meter.start(local(2026, 6, 10, 21, 0))
    meter.run(local(2026, 6, 10, 21, 50))
    assert calendar.active_tariff(METER) == 1
    meter.run(local(2026, 6, 10, 22, 10))
    assert calendar.active_tariff(METER) == 2


def test_a_new_meter_with_lower_registers_starts_the_periods_again() -> None:
    calendar = Calendar()
    meter = Meter(calendar)
    meter.start(local(2026, 6, 10, 8, 0))
    meter.run(local(2026, 6, 10, 10, 0))
    meter.zones = {1: 1.0, 2: 0.0}
    meter.run(local(2026, 6, 10, 12, 0))
    today = figures(calendar, local(2026, 6, 10, 12, 0))["today"]
    assert today.partial and 0 < kwh(today) <= 2.0


def test_prices_in_the_configuration() -> None:
    config = parse_config(
        GOOD
        + """prices:
  - from: 2026-02-01
    tariffs: {"1": {energy: 1.0, distribution: 0.5}, "2": {energy: 0.5}}
    export: 0.3
  - from: 2026-01-01
    tariffs:
      1: {energy: 0.6, distribution: 0.3}
state:
  directory: periods
""",
        env={},
        base=Path("/srv/amiplus"),
    )
    january, february = config.prices.entries  # in date order
    assert february.tariff(2) == TariffPrice(0.5, 0.0) and february.export == 0.3
    assert january.export is None and january.tariff(2) is None
    assert config.prices.at(date(2026, 1, 31)) is january
    assert config.prices.at(date(2025, 12, 31)) is None
    assert config.state_directory == Path("/srv/amiplus/periods")
    assert parse_config(GOOD, env={"STATE_DIRECTORY": "/run/x"}).state_directory == Path("/run/x")
    assert parse_config(GOOD, env={}).state_directory == Path("/var/lib/amiplus-exporter")


#: A meter whose registers follow the wall clock (100 kW, so that the whole-Wh registers move
#: between two telegrams), going on across restarts of the exporter as a real meter's do;
#: rtl_wmbus lines on standard output.
CLOCKED_METER = """
import time
from datetime import UTC, datetime

from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.simulated import SimulatedMeter


class Clocked(SimulatedMeter):
    def reading(self, now):
        hours = (now.timestamp() - 1_790_000_000) / 3600  # since September 2026
        self.imported_wh = {1: 1_000_000.0 + 100_000 * hours, 2: 500_000.0}
        self.exported_wh = {1: 100_000.0, 2: 0.0}
        return super().reading(now)


meter = Clocked(FAMILIES_BY_NAME["apa-v2-2025"], meter_id="12345678")
while True:
    now = datetime.now(UTC)
    frame, _ = meter.telegram(now)
    print(f"T1;1;1;{now:%Y-%m-%d %H:%M:%S}.00Z;-70;;;0x{frame.hex().upper()}", flush=True)
    time.sleep(0.5)
"""


def test_a_real_exporter_restarted_keeps_its_periods(start_exporter: Start, tmp_path: Path) -> None:
    script = tmp_path / "meter.py"
    script.write_text(CLOCKED_METER)
    command = f"{sys.executable} {script}"
    exporter = start_exporter(
        f"""
meters:
  - id: "12345678"
    key: "{SIMULATED_KEY}"
    name: home
receivers:
  - type: lines
    command: {json.dumps(command)}
state:
  directory: {tmp_path / "state"}
"""
    )

    def meter() -> dict[str, Any]:
        (found,) = exporter.status()["meters"]
        return dict(found)

    def heard(count: int) -> bool:
        found = meter()
        return found["telegrams"] >= count and "today" in found["periods"]

    def start_register(found: dict[str, Any]) -> dict[str, float]:
        """Where each period began: the register now minus the period's energy."""
        register = found["values"]["energy_imported_kwh"]
        return {
            name: round(register - period["energy_imported_kwh"], 3)
            for name, period in found["periods"].items()
        }

    assert wait_until(lambda: heard(4), 30), exporter.log()
    before = meter()
    assert exporter.stop() == 0
    saved = json.loads((tmp_path / "state" / "calendar.json").read_text())
    assert set(saved["meters"]) == {"12345678"}
    exporter.start()
    at_once = meter()  # before the first telegram after the restart: from the file
    assert at_once["telegrams"] == 0 and set(at_once["periods"]) == set(before["periods"])
    assert wait_until(lambda: heard(3), 30), exporter.log()
    after = meter()
    assert after["values"]["energy_imported_kwh"] > before["values"]["energy_imported_kwh"]
    assert start_register(after) == start_register(before)  # the periods did not start again
    for name, period in after["periods"].items():
        assert period["start"] == before["periods"][name]["start"]
        assert period["partial"] == before["periods"][name]["partial"]  # first heard: partial
    assert after["periods"]["today"]["energy_imported_kwh"] > 0
    code, metrics = exporter.get("/metrics")
    assert code == 200 and b'amiplus_energy_imported_period_joules{meter_id="12345678"' in metrics


@pytest.mark.integration
def test_check_config_lists_every_price_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "amiplus.yml"
    path.write_text(
        GOOD.replace("    name: home\n", "    name: home\n    contracted_power: 14\n")
        + """prices:
  - from: 2026-01-01
    tariffs: {"1": {energy: 0.62, distribution: -0.31}}
  - from: 2026-01-01
    tariffs:
      5: {energy: 0.5}
      day: {energy: 0.4}
    export: -0.1
  - from: 2026-02-30
    tariffs: {"2": {distribution: 0.1}}
"""
    )
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    expected = [
        (6, "contracted_power is in watts, between 1000 and 1e+06 (14 kW is 14000)"),
        (12, "prices[1] tariff 1 distribution must be between 0 and 100, not -0.31"),
        (13, "prices[2] applies from 2026-01-01, as prices[1] does"),
        (15, "prices[2] tariffs: unknown tariff zone '5'"),
        (16, "prices[2] tariffs: unknown tariff zone 'day'"),
        (17, "prices[2] export must be between 0 and 100, not -0.1"),
        (18, "prices[3] from must be a date like 2026-01-01"),
        (19, "prices[3] tariff 2: give its energy price in PLN per kWh"),
    ]
    for line, text in expected:
        assert any(f"amiplus.yml:{line}: " in found and text in found for found in lines), (
            line,
            text,
            lines,
        )
    assert lines[-1] == f"{len(expected)} problem(s) found."


def test_a_reload_sets_a_removed_meter_aside_and_brings_it_back(
    start_exporter: Start, tmp_path: Path
) -> None:
    """A meter commented out keeps its periods: the reload that removes it moves its entry out
    of calendar.json (and out of the running exporter), the one that brings it back restores
    its periods where they began."""
    home = f'  - id: "12345678"\n    key: "{SIMULATED_KEY}"\n    name: home\n'
    other = f'  - id: "12345679"\n    key: "{SIMULATED_KEY}"\n    name: other\n'
    rest = "receivers:\n  - type: simulator\n    interval: 1\n"
    exporter = start_exporter(f"meters:\n{home}{other}{rest}")
    state = exporter.directory / "state"

    def home_meter() -> dict[str, Any] | None:
        return next((m for m in exporter.status()["meters"] if m["name"] == "home"), None)

    def started_at(found: dict[str, Any]) -> dict[str, float]:
        register = found["values"]["energy_imported_kwh"]
        return {
            name: round(register - period["energy_imported_kwh"], 3)
            for name, period in found["periods"].items()
        }

    assert wait_until(lambda: (home_meter() or {}).get("telegrams", 0) >= 3, 30), exporter.log()
    before = started_at(home_meter() or {})
    exporter.config_path.write_text(f"meters:\n{other}{rest}")
    exporter.signal(signal.SIGHUP)
    assert wait_until(lambda: home_meter() is None, 20), exporter.log()
    assert wait_until((state / "calendar.unconfigured.jsonl").exists, 10)
    aside = [json.loads(line) for line in (state / "calendar.unconfigured.jsonl").open()]
    assert [entry["key"] for entry in aside] == ["12345678"]
    assert "12345678" not in json.loads((state / "calendar.json").read_text())["meters"]
    _, metrics = exporter.get("/metrics")
    assert b'meter_id="12345678"' not in metrics
    exporter.config_path.write_text(f"meters:\n{home}{other}{rest}")
    exporter.signal(signal.SIGHUP)
    assert wait_until(lambda: (home_meter() or {}).get("telegrams", 0) >= 1, 20), exporter.log()
    assert started_at(home_meter() or {}) == before  # the periods did not start again
    assert not (state / "calendar.unconfigured.jsonl").exists()
