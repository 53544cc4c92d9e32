"""`amiplus-exporter settle` end to end, as a subprocess: two months of minute readings against
the independent computation (tests/prosumer_model.py), the table, --meter, bad rows with their
lines, and prices fetched from (a stand-in of) PSE's API once, then from the cache."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from .prosumer_model import (
    WARSAW,
    SyntheticMeter,
    expected_hours,
    hour_rate,
    local_time,
    net_billing,
    net_metering,
    quarter_price,
)
from .pse_api import PseApi, started
from .servers import CONSOLE_SCRIPT
from .test_config import KEY

START, END = local_time(2025, 10, 1), local_time(2025, 12, 1)
HEADER = "time,energy_imported_kwh,energy_exported_kwh\n"


def settle(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONSOLE_SCRIPT), "settle", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_readings(path: Path, readings: list[tuple[float, float, float]]) -> Path:
    with path.open("w") as file:
        file.write(HEADER)
        for at, imported, exported in readings:
            moment = datetime.fromtimestamp(at, WARSAW).isoformat()
            file.write(f"{moment},{imported:.3f},{exported:.3f}\n")
    return path


pytestmark = pytest.mark.integration  # every test runs `settle` as a process


@pytest.fixture(scope="module")
def minutes() -> list[tuple[float, float, float]]:
    """Every minute of October and November 2025 (the autumn DST change), and the midnight
    that ends them."""
    return SyntheticMeter(START - 3600, 62).readings(START, END + 1, 60)


@pytest.fixture
def files(tmp_path: Path, minutes: list[tuple[float, float, float]]) -> dict[str, Path]:
    prices = tmp_path / "prices.csv"
    with prices.open("w") as file:
        file.write("start,minutes,pln_per_mwh\n")
        for start in range(int(START) - 3600, int(END) + 7200, 900):
            moment = datetime.fromtimestamp(start, WARSAW).isoformat()
            file.write(f"{moment},15,{quarter_price(start)}\n")
    config = tmp_path / "settle.yml"
    config.write_text(
        "settlement: {scheme: net-billing}\n"
        "market_prices: {source: file, file: prices.csv}\n"
        "prices:\n"
        "  - from: 2025-01-01\n"
        "    tariffs: {1: {energy: 0.62, distribution: 0.3}}\n"
        "  - from: 2025-11-01\n"
        "    tariffs: {1: {energy: 0.7}}\n"
    )
    return {"config": config, "readings": write_readings(tmp_path / "r.csv", minutes)}


def month_lines(stdout: str) -> dict[str, dict[str, Any]]:
    return {line["month"]: line for line in map(json.loads, stdout.splitlines())}


def test_settle_gives_what_the_independent_computation_gives(
    files: dict[str, Path], minutes: list[tuple[float, float, float]]
) -> None:
    run = settle("--config", files["config"], "--json", files["readings"])
    assert run.returncode == 0, run.stderr
    found = month_lines(run.stdout)
    expected = net_billing(
        expected_hours(minutes, 600),
        lambda hour: hour_rate(hour.start, True),
        lambda hour: 0.62 if hour.day < date(2025, 11, 1) else 0.7,
        lambda day: 1.23,
        refund_cap=0.2,
    )
    assert sorted(found) == ["2025-10", "2025-11", "2025-12"]
    for month in ("2025-10", "2025-11"):
        got, wanted = found[month], expected[month]
        assert got["hours"] == wanted.hours and got["partial_hours"] == 0
        for name in (
            "imported_kwh",
            "exported_kwh",
            "balanced_imported_kwh",
            "balanced_exported_kwh",
            "export_value_pln",
            "deposit_credit_pln",
            "import_energy_pln",
            "from_deposit_pln",
        ):
            assert got[name] == pytest.approx(getattr(wanted, name), abs=0.006), (month, name)
    assert found["2025-10"]["hours"] == 745  # the autumn change: one hour more
    assert found["2025-11"]["from_deposit_pln"] > 0  # October's credit paid November
    december = found["2025-12"]  # the last reading, right at midnight: an hour begun
    assert (december["hours"], december["partial_hours"], december["imported_kwh"]) == (1, 1, 0)


def test_settle_prints_a_table_by_default(files: dict[str, Path]) -> None:
    run = settle("--config", files["config"], files["readings"])
    assert run.returncode == 0, run.stderr
    header, *rows = run.stdout.splitlines()
    assert header.split()[:5] == ["month", "import", "export", "bal.imp", "bal.exp"]
    assert [row.split()[0] for row in rows] == ["2025-10", "2025-11", "2025-12"]


def test_settle_by_a_meter_s_own_rules(
    tmp_path: Path, minutes: list[tuple[float, float, float]]
) -> None:
    config = tmp_path / "meters.yml"
    config.write_text(
        f"meters:\n"
        f'  - {{id: "30584551", key: "{KEY}", name: house, settlement: {{scheme: net-billing, '
        f"export_price: 0.25}}}}\n"
        f'  - {{id: "12345678", key: "{KEY}", name: garage, settlement: {{scheme: net-metering, '
        f"ratio: 0.7}}}}\n"
        f'  - {{id: "12345679", key: "{KEY}", name: shed}}\n'
        f"receivers: [{{type: simulator}}]\n"
    )
    readings = write_readings(tmp_path / "r.csv", minutes[: 14 * 1440 + 1])
    run = settle("--config", config, "--meter", "garage", "--json", readings)
    assert run.returncode == 0, run.stderr
    october = month_lines(run.stdout)["2025-10"]
    expected = net_metering(expected_hours(minutes[: 14 * 1440 + 1], 600), 0.7, 365)["2025-10"]
    assert october["bank_credit_kwh"] == pytest.approx(expected.bank_credit_kwh, abs=0.002)
    assert october["from_bank_kwh"] == pytest.approx(expected.from_bank_kwh, abs=0.002)
    run = settle("--config", config, "--meter", "3058 4551", "--json", readings)
    assert run.returncode == 0, run.stderr
    october = month_lines(run.stdout)["2025-10"]
    balanced = october["balanced_exported_kwh"]
    assert october["export_value_pln"] == pytest.approx(0.25 * balanced, abs=0.01)
    for meter, says in (
        (None, "several meters are settled (house, garage): say which with --meter"),
        ("shed", "meter shed has no settlement (scheme none)"),
        ("99999999", "no meter '99999999' in"),
    ):
        extra = ["--meter", meter] if meter else []
        run = settle("--config", config, *extra, readings)
        assert run.returncode == 2 and says in run.stderr, run.stderr


def test_bad_rows_are_listed_with_their_lines_and_nothing_is_settled(
    files: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        HEADER
        + "2025-10-01T00:00:00+02:00,100.000,5.000\n"
        + "2025-10-01 00:01,100.010,5.000\n"
        + "yesterday,100.020,5.000\n"
        + "2025-10-01T00:03:00Z,100.030,-1\n"
        + "\n"
        + "2025-10-01T00:04:00Z,lots,5.000\n"
        + "2025-10-01T00:05:00Z,100.050\n"
    )
    run = settle("--config", files["config"], bad)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.splitlines() == [
        f"{bad}:3: time '2025-10-01 00:01' needs an offset (+02:00, or Z for UTC)",
        f"{bad}:4: time 'yesterday' is not ISO 8601 like 2026-07-01T12:00:00+02:00",
        f"{bad}:5: energies must be meter registers: numbers of kWh, not negative",
        f"{bad}:7: energies must be numbers (kWh), not 'lots' and '5.000'",
        f"{bad}:8: expected at least 3 values, found 2",
        "5 problem(s) found; nothing settled.",
    ]
    header = tmp_path / "header.csv"
    header.write_text("_time,_value\n2025-10-01T00:00:00Z,1\n")
    run = settle("--config", files["config"], header)
    assert run.returncode == 2
    assert f"{header}:1: the header names time,energy_imported_kwh,energy_exported_kwh" in (
        run.stderr
    )
    run = settle(files["readings"])
    assert run.returncode == 2 and "give --config FILE with a settlement: section" in run.stderr


@pytest.fixture
def pse() -> Iterator[PseApi]:
    yield from started(page_size=50)


def test_settle_asks_pse_for_the_days_it_lacks_once(
    pse: PseApi, tmp_path: Path, minutes: list[tuple[float, float, float]]
) -> None:
    for day in range(1, 5):
        pse.add(date(2025, 10, day), quarter_price)
    config = tmp_path / "pse.yml"
    config.write_text(
        "settlement: {scheme: net-billing}\n"
        f"market_prices: {{source: pse, url: '{pse.url}'}}\n"
        f"state: {{directory: {tmp_path / 'state'}}}\n"
    )
    readings = write_readings(tmp_path / "r.csv", minutes[: 3 * 1440 + 1])  # to 4 October
    run = settle("--config", config, "--json", readings)
    assert run.returncode == 0, run.stderr
    assert f"asking {pse.url} for the market prices of 4 days" in run.stderr
    first = month_lines(run.stdout)["2025-10"]
    assert first["unpriced_export_kwh"] == 0 and first["export_value_pln"] > 0
    assert (tmp_path / "state" / "market_prices.json").exists()
    asked = len(pse.requests)
    again = settle("--config", config, "--json", readings)
    assert again.returncode == 0 and len(pse.requests) == asked  # from the cache
    assert month_lines(again.stdout)["2025-10"] == first
    pse.stop()  # PSE away, and a day not asked before: its hours stay unpriced
    longer = write_readings(tmp_path / "r5.csv", minutes[: 5 * 1440 + 1])
    away = settle("--config", config, "--json", longer)
    assert away.returncode == 0, away.stderr
    assert "2025-10-05: cannot connect" in away.stderr
    assert month_lines(away.stdout)["2025-10"]["unpriced_export_kwh"] > 0
