"""Exporter scale and idle benchmark: prints figures, asserts nothing.

    .venv/bin/python tests/bench/bench_scale.py [--telegrams N] [--meters N] [--delay S] [--csv]
        [--idle-minutes M] [--scale-only | --idle-only]

Figure 3: the same number of telegrams (default 20,000) through a `replay` receiver, once from
as many distinct configured meters (one telegram each) and once from 16 meters. The replay file
holds every telegram at the offset `+delay`, so all of them arrive at full speed once the
exporter has started and its CPU time has been read; the exporter logs when the replay has
finished. Per-telegram cost = the exporter's CPU time (utime + stime of all its threads) over
that span / telegrams. Target: many meters within 20 % of 16 meters. Memory per meter = (RSS
after the many-meter run - RSS after the 16-meter run) / (meters - 16), and again after two
gzip scrapes of /metrics, 1.5 s apart (each renders the body anew), the figure that counts:
target at most 8 KB. Then as many telegrams come again (`STEADY_GAP` seconds later): the steady
state, where no meter is new, per telegram. `--csv` puts the meters in a CSV file. Neither span
holds a save of the calendar file (every 5 minutes, or soon after a midnight): with 20,000 meters
a save costs about 0.6 s of CPU, 2 ms a second over its 5 minutes.

Figure 5: start-up with the many meters, each with its own key, in a CSV file and in YAML:
seconds until /healthz answers, and `check-config` of the same file, the median of 3. Target:
under 2 s. Then, on figure 3's state directory (every meter's calendar kept): a restart with
every meter, and one with a single meter configured: its start-up, its RSS, and the state
directory's files after it stopped (what a save rewrites).

Figure 4: CPU of an idle exporter with one stick: an iM871A emulator on a pseudo-terminal (the
one the tests use) that the exporter sets up and then hears nothing from. CPU time over
`--idle-minutes` (default 10). Target: under 1 s per 10 minutes.

A figure that cannot be measured stops the run with a report and exit status 1.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import re
import resource
import shlex
import shutil
import statistics
import subprocess
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
    CONSOLE_SCRIPT,
    MB,
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
RUNS = 3  # of each start-up and check-config
STEADY_GAP = 30.0  # seconds between the first pass and the steady-state telegrams
SCRAPES = 2  # gzip scrapes of /metrics before the memory after scrapes is read
SCRAPE_GAP = 1.5  # seconds before each: longer than the body is shared (1 s)
MEMORY_TARGET_KB = 8.0  # per meter, after the scrapes
LOG_TIME = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"


def meter_id(n: int) -> str:
    """Distinct addresses that none is another's byte-reversed form: 30nnnn01, 31nnnn01, ..."""
    return f"{30 + n // 10_000}{n % 10_000:04d}01"


def meter_key(n: int) -> str:
    """Each meter its own AES key (32 hex digits), as a fleet's meters have."""
    return hashlib.sha256(f"meter {n}".encode()).hexdigest()[:32].upper()


# --- figure 3 ---------------------------------------------------------------------------------


def capture(meters: int, telegrams: int, delay: float, again: float) -> str:
    """`telegrams` replay lines, round-robin over `meters` simulated meters, all due at +delay,
    then as many again due at +again (the steady state: every meter is known by then).
    Each meter's telegrams are 5 s apart in meter time, like a real meter's."""
    family = FAMILIES_BY_NAME[DEFAULT_FAMILY]
    simulated = [
        SimulatedMeter(family, meter_id=meter_id(n), key=bytes.fromhex(meter_key(n)))
        for n in range(meters)
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
    if table is not None:
        rows = [f"{meter_id(n)},{meter_key(n)}\n" for n in range(meters)]
        table.write_text("id,key\n" + "".join(rows))
        lines = [f"meters_file: {table}"]
    else:
        lines = ["meters:"]
        for n in range(meters):
            lines += [f'  - id: "{meter_id(n)}"', f'    key: "{meter_key(n)}"']
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
    scraped_rss_mb: float  # after two gzip scrapes of /metrics (what a scrape keeps counts)

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
        for _ in range(SCRAPES):  # as Prometheus asks: gzip, each one rendered anew
            time.sleep(SCRAPE_GAP)
            if process.get("/metrics", gzipped=True).status != 200:
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
        f"  memory per meter: {per_meter_kb:.1f} KB, {scraped_kb:.1f} KB after {SCRAPES} gzip "
        f"scrapes of /metrics (target <= {MEMORY_TARGET_KB:g} KB: "
        f"{at_most(scraped_kb, MEMORY_TARGET_KB)}; KB = 2**10 bytes)"
    )


@dataclass(frozen=True)
class Runs:
    """Seconds of several runs, wall clock and CPU (user + system: what a busy machine
    disturbs least)."""

    wall: list[float]
    cpu: list[float]

    def line(self, label: str) -> str:
        median = statistics.median(self.wall)
        shown = ", ".join(f"{s:.2f}" for s in self.wall)
        return (
            f"  {label}: {median:.2f} s median ({shown}; CPU {statistics.median(self.cpu):.2f} s"
            f"; target <= {STARTUP_TARGET:g} s: {at_most(median, STARTUP_TARGET)})"
        )


def startup_runs(
    directory: Path, label: str, config: str, state: Path | None = None
) -> tuple[Runs, float]:
    """`RUNS` starts to /healthz (each stopped again), and the last one's RSS in MB a second
    after its first answer."""
    runs, rss = Runs([], []), 0.0
    for run in range(RUNS):
        process = ExporterProcess(directory, f"startup-{label}-{run}", config, state)
        try:
            runs.wall.append(process.wait_healthy())
            runs.cpu.append(process.cpu_seconds())
            time.sleep(1.0)  # whatever start-up still loads after the first answer
            rss = process.memory().rss_mb
            process.stop()
        finally:
            process.kill()
    return runs, rss


def check_config_runs(path: Path) -> Runs:
    """`amiplus-exporter check-config FILE`, `RUNS` times (its output dropped)."""
    runs = Runs([], [])
    for _ in range(RUNS):
        started = time.monotonic()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [str(CONSOLE_SCRIPT), "check-config", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        runs.wall.append(time.monotonic() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs.cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if done.returncode != 0:
            raise BenchError(f"check-config {path} failed: {done.stderr.decode()[-2000:]}")
    return runs


def figure_startup(directory: Path, meters: int, kept: Path | None) -> None:
    print(
        f"\nFigure 5: start-up with {meters:,} configured meters, each with its own key (to "
        f"/healthz), and check-config of the same file ({RUNS} runs each)"
    )
    table = directory / "startup.csv"
    table.write_text("id,key\n" + "".join(f"{meter_id(n)},{meter_key(n)}\n" for n in range(meters)))
    kinds = {
        "CSV file": f"meters_file: {table}\n",
        "YAML": "meters:\n"
        + "".join(f'  - id: "{meter_id(n)}"\n    key: "{meter_key(n)}"\n' for n in range(meters)),
    }
    receivers = "receivers:\n  - type: simulator\n    interval: 3600\n"
    for kind, meters_text in kinds.items():
        path = directory / f"check-{kind[:3]}.yml"
        path.write_text(meters_text + receivers)
        runs, _ = startup_runs(directory, kind[:3], meters_text + receivers)
        print(runs.line(f"meters in a {kind:<8}, start-up    "))
        print(check_config_runs(path).line(f"meters in a {kind:<8}, check-config"))
    kept = kept or directory / f"replay-{meters}-state"  # figure 3's: every meter's calendar
    if not (kept / "calendar.json").exists():
        return
    heard = directory / "kept-state"
    shutil.copytree(kept, heard, dirs_exist_ok=True)
    runs, _ = startup_runs(directory, "kept", kinds["CSV file"] + receivers, heard)
    print(runs.line("CSV file, restarted with every meter's calendar kept"))
    shutil.rmtree(heard)
    shutil.copytree(kept, heard)
    one = f'meters:\n  - id: "{meter_id(0)}"\n    key: "{meter_key(0)}"\n' + receivers
    runs, rss = startup_runs(directory, "one", one, heard)
    files = ", ".join(
        f"{path.name} {path.stat().st_size / MB:.1f} MB" for path in sorted(heard.iterdir())
    )
    print(
        runs.line(f"one meter on the {meters:,}-meter run's state directory")
        + f"\n    RSS {rss:.1f} MB after start-up; the state directory after "
        f"the stop: {files} (calendar.json is what a save rewrites every 5 minutes)"
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
    only.add_argument("--startup-only", action="store_true", help="run figure 5 only")
    parser.add_argument(
        "--state",
        type=Path,
        help="figure 5: a state directory with every meter's calendar (a copy is used; "
        "default: figure 3's)",
    )
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
    if not (args.idle_only or args.startup_only):
        figures.append(
            lambda directory: figure_scale(
                directory, args.meters, args.telegrams, args.delay, args.csv
            )
        )
    if not (args.idle_only or args.scale_only):
        figures.append(lambda directory: figure_startup(directory, args.meters, args.state))
    if not (args.scale_only or args.startup_only):
        figures.append(lambda directory: figure_idle(directory, args.idle_minutes))
    return run_figures("bench-scale-", figures, wall)


if __name__ == "__main__":
    sys.exit(main())
