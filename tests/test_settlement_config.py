"""The `settlement:` and `market_prices:` sections and dynamic tariffs in `prices:`: what they
give, every problem at once with its line, a meter's own keys over the common section's, and a
file holding only these sections (enough for `settle`, not for the exporter)."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import pytest

from exporter.config import (
    Coefficient,
    ExportPrice,
    NegativeQuarters,
    PriceSource,
    Scheme,
    parse_config,
)

from .prosumer_model import local_time
from .servers import CONSOLE_SCRIPT
from .test_config import GOOD, KEY, problems

SETTLED = f"""
meters:
  - id: "30584551"
    key: "{KEY}"
    name: home
  - id: "12345678"
    key: "{KEY}"
    name: garage
    settlement:
      scheme: net-metering
      ratio: 0.7
  - id: "12345679"
    key: "{KEY}"
    name: shed
    settlement: {{scheme: none}}
  - id: "12345670"
    key: "{KEY}"
    name: barn
    settlement: {{export_price: rcem, refund_cap: 0.3}}
receivers:
  - type: simulator
settlement:
  scheme: net-billing
  since: 2024-07-01
  coefficient:
    - {{from: 2025-02-01, value: 1.23}}
    - {{from: 2027-01-01, value: 1.1}}
  negative_quarters: average_first
"""


def test_each_meter_has_the_common_rules_with_its_own_keys_over_them() -> None:
    config = parse_config(SETTLED, env={})
    home, garage, shed, barn = config.meters
    assert home.settlement == config.settlement
    assert home.settlement is not None and home.settlement.scheme is Scheme.NET_BILLING
    assert home.settlement.since == date(2024, 7, 1)
    assert home.settlement.negative_quarters is NegativeQuarters.AVERAGE_FIRST
    assert home.settlement.coefficients == (
        Coefficient(date(2025, 2, 1), 1.23),
        Coefficient(date(2027, 1, 1), 1.1),
    )
    assert [home.settlement.coefficient(date(y, 1, 15)) for y in (2025, 2026, 2027)] == [
        1.0,
        1.23,
        1.1,
    ]
    assert garage.settlement is not None and garage.settlement.scheme is Scheme.NET_METERING
    assert (garage.settlement.ratio, garage.settlement.window_days) == (0.7, 365)
    assert garage.settlement.since == date(2024, 7, 1)  # inherited
    assert shed.settlement is None  # scheme none: not settled
    assert barn.settlement is not None and barn.settlement.export_price is ExportPrice.RCEM
    assert barn.settlement.refund_cap == 0.3
    assert [meter.name for meter in config.settled] == ["home", "garage", "barn"]
    # RCE needs market prices: PSE's API by default
    assert config.market_prices is not None and config.market_prices.source is PriceSource.PSE
    assert config.market_prices.url == "https://api.raporty.pse.pl/api"


def test_without_settlement_nothing_is_settled_or_fetched() -> None:
    config = parse_config(GOOD, env={})
    assert config.settlement is None and not config.settled and config.market_prices is None


def test_meters_from_a_csv_file_take_the_common_rules(tmp_path: Path) -> None:
    (tmp_path / "meters.csv").write_text(f"id,key\n11111111,{KEY}\n")
    text = GOOD + "meters_file: meters.csv\nsettlement: {scheme: net-metering, ratio: 0.8}\n"
    config = parse_config(text, env={}, base=tmp_path)
    assert all(meter.settlement == config.settlement for meter in config.meters)
    assert config.market_prices is None  # net-metering prices nothing at the market


def test_every_settlement_problem_at_once_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "prices.csv").write_text(
        "start,minutes,pln_per_mwh\n"
        "2025-10-01T00:00:00+02:00,15,412.5\n"
        "2025-10-01T00:00:00,15,1\n"
        "2025-10-01T00:05:00Z,15,1\n"
        "2025-09-30T22:00:00Z,60,3\n"
        "2025-10-01T01:00:00Z,20,3\n"
        "2025-10-01T02:00:00Z,15,0.412.5\n"
    )
    text = f"""
meters:
  - id: "30584551"
    key: "{KEY}"
    settlement:
      ratio: 0.8
      sheme: net-metering
receivers:
  - type: simulator
settlement:
  scheme: net-biling
  since: 2024-13-01
  export_price: rcx
  coefficient: [{{from: 2025-02-01}}]
  refund_cap: 2
  window_days: 30.5
market_prices:
  source: file
  file: prices.csv
  rcem: {{"2026-10": 412.57, "2026-13": 1, "2026-11": -5}}
prices:
  - from: 2025-01-01
    tariffs:
      1: {{energy: market, margin: 0.05}}
      2: {{energy: 0.5, margin: 0.1}}
"""
    found = problems(text, base=tmp_path)
    prices = tmp_path / "prices.csv"
    assert found == [
        "amiplus.yml:7: meter 1 settlement: unknown key 'sheme'; did you mean 'scheme'?",
        "amiplus.yml:11: settlement scheme must be one of net-billing, net-metering, none, "
        "not 'net-biling'; did you mean 'net-billing'?",
        "amiplus.yml:12: settlement since must be a date like 2024-07-01, not '2024-13-01'",
        "amiplus.yml:13: settlement export_price must be rce, rcem or a price in PLN per kWh, "
        "not 'rcx'",
        "amiplus.yml:14: settlement coefficient[1]: give from: (a date) and value: (e.g. 1.23)",
        "amiplus.yml:15: settlement refund_cap must be between 0 and 1, not 2",
        "amiplus.yml:16: settlement window_days must be a whole number of days",
        "amiplus.yml:20: market_prices rcem: '2026-13' is not a month like 2026-10",
        "amiplus.yml:20: market_prices rcem 2026-11 must be between 0 and 100000, not -5",
        "amiplus.yml:25: prices[1] tariff 2: margin goes with energy: market only",
        f"{prices}:3: start '2025-10-01T00:00:00' needs Z or an offset (+02:00): times are "
        "UTC-based",
        f"{prices}:4: start '2025-10-01T00:05:00Z' is not on a quarter-hour",
        f"{prices}:5: the quarter-hour at 2025-09-30T22:00:00+00:00 has a price already",
        f"{prices}:6: minutes must be 15, 30, 45 or 60, not '20'",
        f"{prices}:7: pln_per_mwh must be a number, not '0.412.5'",
    ]
    assert problems("meters: []\nsettlement: {since: 2024-07-01}\n") == [
        "amiplus.yml:2: settlement: say the scheme: net-billing (connected from April 2022), "
        "net-metering (before), or none"
    ]


def test_keys_of_the_other_scheme_are_problems_where_they_are_given() -> None:
    text = (
        GOOD.replace(
            "name: home\n", "name: home\n    settlement: {scheme: net-metering, refund_cap: 0.3}\n"
        )
        + "settlement: {scheme: net-billing, ratio: 0.8}\n"
    )
    assert problems(text) == [
        "amiplus.yml:6: meter 'home' settlement: refund_cap applies to net-billing only, not "
        "net-metering",
        "amiplus.yml:10: settlement: ratio applies to net-metering only, not net-billing",
    ]


def test_a_price_file_and_monthly_prices(tmp_path: Path) -> None:
    (tmp_path / "prices.csv").write_text(
        "start,minutes,pln_per_mwh\n"
        "# PSE, October 2025\n"
        "2025-10-01T00:00:00+02:00,60,412.5\n"
        "2025-09-30T23:00:00Z,15,-20\n"
    )
    text = GOOD + (
        "settlement: {scheme: net-billing}\n"
        "market_prices: {source: file, file: prices.csv, rcem: {'2025-09': 390.1}}\n"
    )
    config = parse_config(text, env={}, base=tmp_path)
    market = config.market_prices
    assert market is not None and market.source is PriceSource.FILE
    start = int(local_time(2025, 10, 1))
    assert list(market.quarters.starts) == [start + 900 * n for n in range(5)]
    assert list(market.quarters.prices) == [412.5] * 4 + [-20.0]
    assert market.monthly("2025-09") == 390.1 and market.monthly("2025-10") is None


def test_a_dynamic_tariff_in_prices() -> None:
    text = GOOD + (
        "prices:\n  - from: 2025-01-01\n"
        "    tariffs: {1: {energy: Market, margin: -0.01, distribution: 0.3}}\n"
    )
    config = parse_config(text, env={})
    entry = config.prices.at(date(2025, 6, 1))
    assert entry is not None
    price = entry.tariff(1)
    assert price is not None and price.market and price.margin == -0.01
    assert price.energy_at(0.4) == pytest.approx(0.39) and price.energy_at(None) is None
    assert config.market_prices is not None  # the market price is fetched for it


SETTLE_ONLY = """
settlement:
  scheme: net-billing
market_prices:
  source: pse
"""


@pytest.mark.integration
def test_a_file_with_only_settlement_is_enough_for_settle_not_for_the_exporter(
    tmp_path: Path,
) -> None:
    config = parse_config(SETTLE_ONLY, env={})
    assert config.receivers == () and config.meters == ()
    assert config.settlement is not None
    path = tmp_path / "settle.yml"
    path.write_text(SETTLE_ONLY)
    check = subprocess.run(
        [str(CONSOLE_SCRIPT), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert "note: no receivers: this file is enough for `amiplus-exporter settle`" in check.stdout
    assert (
        "settlement: net-billing: export at RCE, coefficient 1.23 from 2025-02-01" in check.stdout
    )
    run = subprocess.run(
        [str(CONSOLE_SCRIPT), "--config", str(path), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "the exporter needs at least one receiver to hear meters" in run.stderr
    assert [p.split(":")[2] for p in problems("meters: []\n")] == [" no receivers"]
