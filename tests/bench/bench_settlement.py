"""Prosumer settlement benchmark: prints figures, asserts nothing.

    .venv/bin/python tests/bench/bench_settlement.py [--telegrams N] [--repeat R] [--quick]

Figure 1: CPU per reading through the whole intake (peek, dedupe, decode, name, state, calendar
and, for a settled meter, its ledger), for one simulated Otus meter sending every 5 s (so hours
close as they do live), with and without `settlement:`: process CPU time over `--telegrams`
frames (default 50,000), alternating the two configurations `--repeat` times (default 3), the
least of each (a busy machine only adds to CPU time: caches, frequency). Target: at most +10 %
with `settlement:`. On a busy machine the difference can drown in the noise of the runs, so the
settlement's own part is timed alone too (the same readings into `Settlements.record`) and
printed as a share of a reading's cost.

Figure 2: the state a settled meter keeps after a year (what `settlement.json` holds for it):
a year of readings every minute, priced at the market, net-billing and net-metering. Target:
at most 150 KB per settled meter.

Figure 3: `amiplus-exporter settle --json` on a year of 1-minute readings (525,600 rows, prices
from a file of 35,040 quarter-hours): wall time of the command, start-up included, the median of
`--repeat`. Target: at most 10 s.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# The repository, so that `tests` imports also when this file runs as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from exporter.amiplus.clock import WARSAW
from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.simulated import SimulatedMeter
from exporter.config import MarketPrices, Prices, Scheme, Settlement, parse_config
from exporter.config.market_prices import parse_price_file
from exporter.config.prices import PriceEntry, TariffPrice
from exporter.pipeline.calendar import Calendar
from exporter.pipeline.intake import Intake
from exporter.pipeline.settlement import Settlements
from exporter.pipeline.state import State
from exporter.receivers.base import Frame
from exporter.settlement import Ledger, PriceBook
from tests.bench.provenance import source_state

CONSOLE = Path(sys.executable).parent / "amiplus-exporter"
YEAR_START = datetime(2025, 1, 1, tzinfo=WARSAW)
MINUTES = 365 * 24 * 60
CPU_TARGET = 1.10
BYTES_TARGET = 150 * 1024
SETTLE_TARGET = 10.0
CONFIG = """
meters:
  - id: "12345678"
    key: "000102030405060708090A0B0C0D0E0F"
{settlement}
receivers:
  - type: simulator
market_prices: {{source: file, file: {prices}}}
prices:
  - from: 2024-01-01
    tariffs: {{1: {{energy: 0.62, distribution: 0.3}}, 2: {{energy: 0.45, distribution: 0.1}}}}
"""


def quarter_price(start: int) -> float:
    """A daily wave with negative middays in summer, PLN per MWh."""
    hour = (start % 86400) / 3600
    month = datetime.fromtimestamp(start, UTC).month
    if 5 <= month <= 8 and 10 <= hour < 12 and start // 900 % 2:
        return -25.0
    return round(420 + 180 * math.sin(2 * math.pi * (hour - 7) / 24), 2)


def write_prices(path: Path, start: datetime, days: int) -> None:
    with path.open("w") as file:
        file.write("start,minutes,pln_per_mwh\n")
        first = int(start.timestamp()) - 86400
        for quarter in range(first, first + (days + 2) * 86400, 900):
            moment = datetime.fromtimestamp(quarter, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            file.write(f"{moment},15,{quarter_price(quarter)}\n")


def registers(minutes: int) -> list[tuple[float, float, float]]:
    """A year of readings every minute: a household of 0.5 kW and 5 kWp of PV."""
    out = []
    imported, exported = 5000.0, 800.0
    start = YEAR_START.timestamp()
    for minute in range(minutes):
        at = start + minute * 60
        hour = (at % 86400) / 3600
        pv = max(0.0, 5.0 * math.sin(math.pi * (hour - 5) / 14)) * (0.3 if minute % 17 < 4 else 1)
        load = 0.5 + (2.0 if minute % 90 < 12 else 0.0)
        imported += max(0.0, load - pv) / 60
        exported += max(0.0, pv - load) / 60
        out.append((at, round(imported, 3), round(exported, 3)))
    return out


def intake_cpu(config_text: str, frames: list[Frame]) -> tuple[float, Settlements]:
    """Process CPU seconds to take every frame through a fresh intake."""
    config = parse_config(config_text, env={})
    settlements = Settlements(config)
    calendar = Calendar(config.timezone, config.prices, None, market=settlements.market_price)
    intake = Intake(config, State(None), calendar=calendar, settlements=settlements)
    began = time.process_time()
    for frame in frames:
        intake.on_frame("bench", frame)
    return time.process_time() - began, settlements


def figure_cpu(telegrams: int, repeat: int, folder: Path) -> bool:
    prices = folder / "prices.csv"
    write_prices(prices, YEAR_START, telegrams * 5 // 86400 + 2)
    meter = SimulatedMeter(FAMILIES_BY_NAME["otus"], started=YEAR_START.astimezone(UTC))
    frames = []
    for n in range(telegrams):
        now = YEAR_START.astimezone(UTC) + timedelta(seconds=5 * n)
        data, _ = meter.telegram(now)
        frames.append(Frame(data, now.timestamp()))
    plain = CONFIG.format(settlement="", prices=prices)
    settled = CONFIG.format(
        settlement="    settlement: {scheme: net-billing, export_price: rce}", prices=prices
    )
    without, with_ = [], []
    for _ in range(repeat):
        without.append(intake_cpu(plain, frames)[0])
        seconds, settlements = intake_cpu(settled, frames)
        with_.append(seconds)
    view = settlements.view("12345678", frames[-1].received_at)
    assert view is not None and view.periods, "the settled meter's ledger counted nothing"
    base, more = min(without), min(with_)  # a busy machine only ever adds CPU time
    ratio = more / base
    print(f"Figure 1: CPU per reading through the intake, {telegrams} telegrams every 5 s")
    print(f"  without settlement: {base / telegrams * 1e6:7.1f} us  (runs: {fmt(without)})")
    print(f"  with settlement:    {more / telegrams * 1e6:7.1f} us  (runs: {fmt(with_)})")
    print(f"  ratio {ratio:.3f} (target <= {CPU_TARGET}): {verdict(ratio <= CPU_TARGET)}")
    owner = Settlements(parse_config(settled, env={}))
    values = [
        {"energy_imported_kwh": i, "energy_exported_kwh": e, "energy_imported_tariff_kwh": {1: i}}
        for _, i, e in registers(telegrams)
    ]
    began = time.process_time()
    for n, reading in enumerate(values):
        owner.record("12345678", reading, YEAR_START.timestamp() + 5 * n, 600.0)
    alone = (time.process_time() - began) / len(values)
    print(
        f"  the settlement's own part (Settlements.record, the ledger): {alone * 1e6:.2f} us "
        f"per reading, {alone / (base / telegrams):.1%} of a reading's cost"
    )
    return ratio <= CPU_TARGET


def figure_bytes(folder: Path) -> bool:
    prices = folder / "year-prices.csv"
    write_prices(prices, YEAR_START, 366)
    quarters, problems = parse_price_file(prices.read_text())
    assert not problems, problems[:3]
    readings = registers(MINUTES)
    ok = True
    print("Figure 2: what a settled meter keeps after a year of minute readings")
    for rules in (
        Settlement(Scheme.NET_BILLING),
        Settlement(Scheme.NET_METERING, ratio=0.8),
    ):
        tariffs = Prices((PriceEntry(YEAR_START.date(), ((1, TariffPrice(0.62)),)),))
        ledger = Ledger(rules, PriceBook(MarketPrices(quarters=quarters), tariffs), WARSAW)
        for at, imported, exported in readings:
            ledger.feed(at, imported, exported, {1: imported}, 600.0)
        size = len(json.dumps(ledger.as_json()))
        ok &= size <= BYTES_TARGET
        print(
            f"  {rules.scheme}: {size / 1024:6.1f} KB "
            f"(target <= {BYTES_TARGET // 1024} KB): {verdict(size <= BYTES_TARGET)}"
        )
    return ok


def figure_settle(repeat: int, folder: Path, minutes: int) -> bool:
    prices = folder / "settle-prices.csv"
    write_prices(prices, YEAR_START, 366)
    readings = folder / "readings.csv"
    with readings.open("w") as file:
        file.write("time,energy_imported_kwh,energy_exported_kwh\n")
        for at, imported, exported in registers(minutes):
            moment = datetime.fromtimestamp(at, WARSAW).isoformat()
            file.write(f"{moment},{imported:.3f},{exported:.3f}\n")
    config = folder / "settle.yml"
    config.write_text(
        "settlement: {scheme: net-billing}\n"
        f"market_prices: {{source: file, file: {prices}}}\n"
        "prices: [{from: 2024-01-01, tariffs: {1: {energy: 0.62}}}]\n"
    )
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        done = subprocess.run(
            [str(CONSOLE), "settle", "--config", str(config), "--json", str(readings)],
            capture_output=True,
            text=True,
            check=False,
        )
        times.append(time.perf_counter() - began)
        if done.returncode != 0:
            print(f"settle failed ({done.returncode}):\n{done.stderr[-2000:]}")
            return False
    months = len(done.stdout.splitlines())
    seconds = statistics.median(times)
    print(f"Figure 3: settle --json on {minutes} one-minute readings ({months} months)")
    print(
        f"  {seconds:.2f} s (runs: {fmt(times)}; target <= {SETTLE_TARGET:g} s): "
        f"{verdict(seconds <= SETTLE_TARGET)}"
    )
    return seconds <= SETTLE_TARGET


def fmt(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--telegrams", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller figures 1 and 3")
    args = parser.parse_args()
    telegrams = 5_000 if args.quick else args.telegrams
    minutes = MINUTES // 12 if args.quick else MINUTES
    print(f"bench_settlement: {source_state()}; Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        results = [
            figure_cpu(telegrams, args.repeat, folder),
            figure_bytes(folder),
            figure_settle(args.repeat, folder, minutes),
        ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
