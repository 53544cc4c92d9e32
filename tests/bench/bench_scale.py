"""Exporter scale and idle benchmark: prints figures, asserts nothing.

    .venv/bin/python tests/bench/bench_scale.py [--telegrams N] [--meters N] [--delay S] [--csv]
        [--idle-minutes M] [--scale-only | --idle-only]

Figure 3: the same number of telegrams (default 20,000) through a `replay` receiver, once from
as many distinct configured meters (one telegram each) and once from 16 meters. The replay file
holds every telegram at the offset `+delay`, so all of them arrive at full speed once the
exporter has started and its CPU time has been read; the exporter logs when the replay has
finished. Per-telegram cost = the exporter's CPU time (utime + stime of all its threads) over
that span / telegrams. Target: many meters within 20 % of 16 meters. Memory per meter = (RSS
after the many-meter run - RSS after the 16-meter run) / (meters - 16), and again after one
scrape of /metrics. Then as many telegrams come again (`STEADY_GAP` seconds later): the steady
state, where no meter is new, per telegram. `--csv` puts the meters in a CSV file. Neither span
holds a save of the calendar file (every 5 minutes, or soon after a midnight): with 20,000 meters
a save costs about 0.6 s of CPU, 2 ms a second over its 5 minutes.

Figure 5: start-up with the many meters, in a CSV file and in YAML: seconds until /healthz
answers, the median of 3. Target: under 2 s.

Figure 4: CPU of an idle exporter with one stick: an iM871A emulator on a pseudo-terminal (the
one the tests use) that the exporter sets up and then hears nothing from. CPU time over
`--idle-minutes` (default 10). Target: under 1 s per 10 minutes.

A figure that cannot be measured stops the run with a report and exit status 1.
"""

from __future__ import annotations

import argparse
import datetime
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# The repository, so that `tests` imports also when this file runs as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import exporter
from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.simulated import DEFAULT_FAMILY, DEFAULT_KEY, SimulatedMeter
from tests.bench.bench_exporter import (
    BenchError,
    ExporterProcess,
    at_most,
    run_figures,
)
from tests.bench.provenance import source_state

FEW_METERS = 16
COST_RATIO_TARGET = 1.20
IDLE_TARGET_PER_10_MIN = 1.0  # CPU seconds
FINISH_TIMEOUT = 600.0  # seconds for the replay to finish once it has started
STARTUP_TARGET = 2.0  # seconds to /healthz with 20,000 meters
STEADY_GAP = 30.0  # seconds between the first pass and the steady-state telegrams
LOG_TIME = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"


def meter_id(n: int) -> str:
    """Distinct addresses that none is another's byte-reversed form: 30nnnn01, 31nnnn01, ..."""
    return f"{30 + n // 10_000}{n % 10_000:04d}01"


# --- figure 3 ---------------------------------------------------------------------------------


def capture(meters: int, telegrams: int, delay: float, again: float) -> str:
    """`telegrams` replay lines, round-robin over `meters` simulated meters, all due at +delay,
    then as many again due at +again (the steady state: every meter is known by then).
    Each meter's telegrams are 5 s apart in meter time, like a real meter's."""
    family = FAMILIES_BY_NAME[DEFAULT_FAMILY]
    simulated = [
        SimulatedMeter(family, meter_id=meter_id(n), key=DEFAULT_KEY) for n in range(meters)
    ]
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5 * telegrams)
    lines = []
    for n in range(2 * telegrams):
        moment = start + datetime.timedelta(seconds=5 * (n // meters))
        frame, _ = simulated[n % meters].telegram(moment)
        due = delay if n < telegrams else again
        lines.append(f"telegram=|{frame.hex().upper()}|+{due:g}\n")
    return "".join(lines)


def replay_config(meters: int, replay: Path, table: Path | None) -> str:
    """The meters in the YAML file, or in a CSV `table` (`meters_file:`) when one is given."""
    key = DEFAULT_KEY.hex().upper()
    if table is not None:
        rows = [f"{meter_id(n)},{key}\n" for n in range(meters)]
        table.write_text("id,key\n" + "".join(rows))
        lines = [f"meters_file: {table}"]
    else:
        lines = ["meters:"]
        for n in range(meters):
            lines += [f'  - id: "{meter_id(n)}"', f'    key: "{key}"']
    lines += ["receivers:", "  - type: replay", f"    file: {replay}", "    realtime: true"]
    return "\n".join(lines) + "\n"


def log_time(process: ExporterProcess, pattern: str, timeout: float) -> float:
    """The epoch time of the first log line matching `pattern` (local time, as logged)."""
    line = re.compile(LOG_TIME + r" .*" + pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.check_alive()
        found = line.search(process.log_path.read_text(errors="replace"))
        if found:
            moment = datetime.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f")
            return moment.timestamp()
        time.sleep(0.02)
    raise BenchError(f"no log line /{pattern}/ within {timeout:.0f} s:\n{process.log_tail()}")


@dataclass(frozen=True)
class ReplayRun:
    meters: int
    telegrams: int
    startup_s: float
    cpu_s: float
    rss_mb: float
    decoded: int
    steady_cpu_s: float  # as many telegrams again, every meter known by then
    scraped_rss_mb: float  # after one scrape of /metrics (its per-meter lines are kept)

    @property
    def cost_us(self) -> float:
        return self.cpu_s / self.telegrams * 1e6

    @property
    def steady_us(self) -> float:
        return self.steady_cpu_s / self.telegrams * 1e6


def replay_run(directory: Path, meters: int, telegrams: int, delay: float, csv: bool) -> ReplayRun:
    made = time.perf_counter()
    replay = directory / f"replay-{meters}.txt"
    again = delay + STEADY_GAP
    replay.write_text(capture(meters, telegrams, delay, again))
    print(
        f"  {meters:>6,} meters: {telegrams:,} telegrams written in "
        f"{time.perf_counter() - made:.1f} s",
        flush=True,
    )
    table = directory / f"meters-{meters}.csv" if csv else None
    config = replay_config(meters, replay, table)
    process = ExporterProcess(directory, f"replay-{meters}", config)
    try:
        startup = process.wait_healthy(timeout=delay)
        up = log_time(process, r"receiver replay up: ", timeout=delay)
        cpu_before, read_at = process.cpu_seconds(), time.time()
        if read_at >= up + delay - 0.5:
            raise BenchError(
                f"the exporter took {startup:.1f} s to start with {meters:,} meters: "
                f"--delay {delay:g} leaves no time to read its CPU before the replay; raise it"
            )
        first_pass_end = up + again - 1.0  # the first pass must be over by then
        time.sleep(max(0.0, first_pass_end - time.time()))
        cpu = process.cpu_seconds() - cpu_before
        rss = process.memory().rss_mb
        log_time(
            process,
            rf"receiver replay finished: .*\({2 * telegrams} frames\)",
            FINISH_TIMEOUT + again,
        )
        steady = process.cpu_seconds() - cpu_before - cpu
        meters_seen = process.status()["meters"]
        decoded = sum(meter["telegrams"] for meter in meters_seen)
        if len(meters_seen) != meters or decoded != 2 * telegrams:
            raise BenchError(
                f"{decoded:,} of {2 * telegrams:,} telegrams decoded, from "
                f"{len(meters_seen):,} of {meters:,} meters; the log ends:\n{process.log_tail()}"
            )
        if process.get("/metrics").status != 200:
            raise BenchError(f"/metrics failed; the log ends:\n{process.log_tail()}")
        scraped = process.memory().rss_mb
        process.stop()
    finally:
        process.kill()
    return ReplayRun(meters, telegrams, startup, cpu, rss, decoded, steady, scraped)


def figure_scale(directory: Path, meters: int, telegrams: int, delay: float, csv: bool) -> None:
    print(
        f"\nFigure 3: {telegrams:,} telegrams through replay from {meters:,} configured meters "
        f"vs {FEW_METERS} (family {DEFAULT_FAMILY}; meters in {'a CSV file' if csv else 'YAML'})",
        flush=True,
    )
    few = replay_run(directory, FEW_METERS, telegrams, delay, csv)
    many = replay_run(directory, meters, telegrams, delay, csv)
    for run in (few, many):
        print(
            f"  {run.meters:>6,} meters: start-up {run.startup_s:5.1f} s, "
            f"CPU {run.cpu_s:6.2f} s ({run.cost_us:6.1f} µs/telegram), "
            f"steady {run.steady_us:6.1f} µs/telegram, RSS {run.rss_mb:.1f} MB "
            f"({run.scraped_rss_mb:.1f} MB after a scrape), decoded {run.decoded:,}"
        )
    ratio = many.cost_us / few.cost_us
    steady_ratio = many.steady_us / few.steady_us
    per_meter_kb = (many.rss_mb - few.rss_mb) * 1024 / (many.meters - few.meters)
    scraped_kb = (many.scraped_rss_mb - few.scraped_rss_mb) * 1024 / (many.meters - few.meters)
    print(
        f"  cost ratio {meters:,}/{FEW_METERS}: {ratio:.3f} (target <= {COST_RATIO_TARGET:.2f}: "
        f"{at_most(ratio, COST_RATIO_TARGET)})"
    )
    print(
        f"  steady state (every meter known): {steady_ratio:.3f}; the first telegram of a meter "
        "costs more (its state, calendar entry and AES context are made then)"
    )
    print(
        f"  memory per meter: {per_meter_kb:.1f} KB, {scraped_kb:.1f} KB once /metrics was "
        "scraped (MB = 2**20 bytes)"
    )


def figure_startup(directory: Path, meters: int) -> None:
    print(f"\nFigure 5: start-up with {meters:,} configured meters (to /healthz, 3 runs each)")
    key = DEFAULT_KEY.hex().upper()
    table = directory / "startup.csv"
    table.write_text("id,key\n" + "".join(f"{meter_id(n)},{key}\n" for n in range(meters)))
    kinds = {
        "CSV file": f"meters_file: {table}\n",
        "YAML": "meters:\n"
        + "".join(f'  - id: "{meter_id(n)}"\n    key: "{key}"\n' for n in range(meters)),
    }
    heard = directory / f"replay-{meters}-state"  # figure 3's run: every meter's calendar
    if (heard / "calendar.json").exists():
        kinds["CSV file, restarted with every meter's calendar kept"] = kinds["CSV file"]
    for kind, meters_text in kinds.items():
        seconds = []
        for run in range(3):
            config = f"{meters_text}receivers:\n  - type: simulator\n    interval: 3600\n"
            state = heard if "restarted" in kind else None
            process = ExporterProcess(directory, f"startup-{kind[:3]}-{run}", config, state)
            try:
                seconds.append(process.wait_healthy())
                process.stop()
            finally:
                process.kill()
        shown = ", ".join(f"{s:.2f}" for s in seconds)
        median = statistics.median(seconds)
        print(
            f"  meters in a {kind}: {median:.2f} s median ({shown}; "
            f"target <= {STARTUP_TARGET:g} s: {at_most(median, STARTUP_TARGET)})"
        )


# --- figure 4 ---------------------------------------------------------------------------------


def figure_idle(directory: Path, minutes: float) -> None:
    from tests.emulators.imst import Im871aEmulator  # the tests' stick, by path

    print(f"\nFigure 4: CPU of an idle exporter with one iM871A stick for {minutes:g} min")
    stick = Im871aEmulator()
    config = (
        f'meters:\n  - id: "{meter_id(0)}"\n    key: "{DEFAULT_KEY.hex().upper()}"\n'
        f"receivers:\n  - type: im871a\n    device: {stick.path}\n"
    )
    process = ExporterProcess(directory, "idle", config)
    try:
        process.wait_healthy()
        if not stick.wait_for(lambda: stick.mode is not None, timeout=30):
            raise BenchError(f"the exporter never set the stick's mode:\n{process.log_tail()}")
        time.sleep(2)  # the session's last replies
        before = process.cpu_seconds()
        time.sleep(minutes * 60)
        cpu = process.cpu_seconds() - before
        process.stop()
    finally:
        process.kill()
        stick.close()
    per_10 = cpu / minutes * 10
    print(
        f"  CPU {cpu:.2f} s in {minutes:g} min = {per_10:.2f} s per 10 min "
        f"(target < {IDLE_TARGET_PER_10_MIN:g} s: {at_most(per_10, IDLE_TARGET_PER_10_MIN)})"
    )


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--telegrams", type=int, default=20_000, help="figure 3 (default 20,000)")
    parser.add_argument(
        "--meters", type=int, default=20_000, help="figure 3: the many meters (default 20,000)"
    )
    parser.add_argument(
        "--delay",
        type=float,
        default=30.0,
        help="figure 3: seconds after the replay opens before the telegrams come (default 30)",
    )
    parser.add_argument(
        "--csv", action="store_true", help="figure 3: meters from a CSV file (meters_file:)"
    )
    parser.add_argument("--idle-minutes", type=float, default=10.0, help="figure 4 (default 10)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--scale-only", action="store_true", help="run figure 3 only")
    only.add_argument("--idle-only", action="store_true", help="run figure 4 only")
    args = parser.parse_args(argv)
    if args.meters <= FEW_METERS or args.telegrams < args.meters:
        parser.error(f"--meters must exceed {FEW_METERS} and --telegrams be at least --meters")
    if args.delay <= 0 or args.idle_minutes <= 0:
        parser.error("--delay and --idle-minutes must be positive")
    wall = time.perf_counter()
    print("amiplus-exporter scale and idle benchmark")
    print(f"  command line : {shlex.join(sys.orig_argv)}")
    print(f"  exporter     : {exporter.__version__} ({Path(exporter.__file__).parent})")
    print(f"  source       : {source_state()}", flush=True)

    figures: list[Callable[[Path], None]] = []
    if not args.idle_only:
        figures.append(
            lambda directory: figure_scale(
                directory, args.meters, args.telegrams, args.delay, args.csv
            )
        )
        figures.append(lambda directory: figure_startup(directory, args.meters))
    if not args.scale_only:
        figures.append(lambda directory: figure_idle(directory, args.idle_minutes))
    return run_figures("bench-scale-", figures, wall)


if __name__ == "__main__":
    sys.exit(main())
