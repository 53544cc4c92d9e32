"""Decoder throughput benchmark: prints figures, asserts nothing.

    .venv/bin/python tests/bench/bench_decode.py [--telegrams N] [--quick] [--repeat R]

Telegrams are generated from the record layout families of `exporter.amiplus.families` (every
family, every record set of the families that alternate) with values that move like a real meter's:
registers that grow, power that follows a load and a PV curve, voltages of 225-250 V, a meter
clock that advances. Three sets are built, each with a fixed seed:

    A: 16 meters, each with its own key   (figure 1, and the small side of figure 3)
    B: 20,000 meters, each with its own key   (the large side of figure 3)
    C: 16 meters sharing one key   (figure 2, the `decode` command)

Figure 1: library decode on one core: `decode(frame, keys)` (target >= 30,000/s), and with the
AMIplus naming step, `read_meter(decode(frame, keys))`, for information.
Figure 2: `python -m exporter decode --key HEX` end to end, start-up included, target >= 20,000
lines/s. Figure 3: the rate with 20,000 meters stays within 20 % of the rate with 16 meters.

Before anything is timed, a sample of every set is compared with the intended values and every
telegram is decoded once; a mismatch or an error stops the run with a report. `--profile`
profiles the library decode of set A instead of timing.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import os
import platform
import pstats
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# The repository, so that `tests` imports also when this file runs as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import exporter
from exporter.amiplus import table
from exporter.amiplus.clock import WARSAW
from exporter.amiplus.encoding import encode_reading
from exporter.amiplus.families import FAMILIES, Family
from exporter.amiplus.fields import Field, Shape
from exporter.amiplus.reading import MeterReading, UnknownRecord, read_meter, slot_for
from exporter.wmbus import Address, MeterKey, decode
from exporter.wmbus.encoder import encode_frame
from exporter.wmbus.link import manufacturer_code
from exporter.wmbus.records import Value, parse_header
from exporter.wmbus.timepoint import TimePoint, TimeType
from exporter.wmbus.vif import Combinable
from tests.bench.provenance import source_state

SEED = 20250329
SMALL_METERS = 16
LARGE_METERS = 20_000
DEFAULT_TELEGRAMS = 100_000
QUICK_TELEGRAMS = 20_000
PROGRESS_EVERY = 20_000
SAMPLE_HEAD = 2 * len(FAMILIES) * 50  # the first telegrams of every meter of a small set
SAMPLE_EVERY = 53  # and every 53rd telegram after them
START = datetime(2025, 3, 29, 12, 0, tzinfo=UTC)  # the night after is the spring DST change
REPO = Path(__file__).resolve().parents[2]

LIBRARY_TARGET = 30_000
COMMAND_TARGET = 20_000
STATELESS_TARGET = 0.80  # the 20,000-meter rate over the 16-meter rate

ROWS = table().by_key
ENERGY_IMPORTED = ROWS["energy_imported_kwh"]
ENERGY_EXPORTED = ROWS["energy_exported_kwh"]
VOLTAGE = ROWS["voltage_v"]
PHASE_NAMES = ("L1", "L2", "L3")


# --- layouts and simulated meters ------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a named record carries: a field, with its tariff (0: the total) or its phase.

    Worked out here from the header and the field table's record selectors, not from the
    decoder's own slots, so the correctness check does not lean on the code it checks.
    """

    field: Field
    tariff: int
    phase: str | None
    exponent: int  # decimal exponent of the raw value in the VIF's base unit

    @classmethod
    def of(cls, key: str) -> Target | None:
        """The target of a record key, or None for a record `read_meter` keeps as unknown."""
        header = parse_header(bytes.fromhex(key))
        if slot_for(header) is None:
            return None
        data, value = header.data, header.value
        backward = Combinable.BACKWARD in value.combinables
        selector = (value.quantity, data.function, backward)
        row = table().by_records[selector]
        phase = value.phase.value if value.phase else None
        return cls(row, data.tariff, phase, value.exponent)


@dataclass(frozen=True)
class Layout:
    """What a family's telegrams need: its record sets with their slots, tariffs and scales."""

    family: Family
    manufacturer: int
    iv_manufacturer: int | None
    record_sets: tuple[tuple[str, ...], ...]
    targets: tuple[tuple[tuple[str, Target | None], ...], ...]  # per record set: (key, target)
    import_tariffs: tuple[int, ...]  # the tariff registers that count (1 when none is sent)
    export_tariffs: tuple[int, ...]
    decivolts: bool  # voltages sent in 0.1 V
    phases: int  # phases with a voltage record (1 or 3)

    @classmethod
    def of(cls, family: Family) -> Layout:
        targets = tuple(tuple((key, Target.of(key)) for key in keys) for keys in family.record_sets)
        every = [t for record_set in targets for _, t in record_set if t is not None]

        def tariffs(target: Field) -> tuple[int, ...]:
            sent = sorted({t.tariff for t in every if t.field is target and t.tariff})
            return tuple(sent) or (1,)

        return cls(
            family=family,
            manufacturer=manufacturer_code(family.manufacturer),
            iv_manufacturer=(
                manufacturer_code(family.iv_manufacturer) if family.iv_manufacturer else None
            ),
            record_sets=family.record_sets,
            targets=targets,
            import_tariffs=tariffs(ENERGY_IMPORTED),
            export_tariffs=tariffs(ENERGY_EXPORTED),
            decivolts=any(t.field is VOLTAGE and t.exponent == -1 for t in every),
            phases=len({t.phase for t in every if t.field is VOLTAGE}) or 1,
        )

    def unknown_keys(self, record_set: int) -> tuple[str, ...]:
        return tuple(key for key, target in self.targets[record_set] if target is None)


LAYOUTS = tuple(Layout.of(family) for family in FAMILIES)
COMBINATIONS = frozenset(
    (layout.family.name, n) for layout in LAYOUTS for n in range(len(layout.record_sets))
)


def time_f(moment: datetime) -> TimePoint:
    """A type F time point (date, hour, minute) of a local time, as the PGE profile sends it."""
    local = moment.astimezone(WARSAW)
    return TimePoint(
        TimeType.F,
        year=local.year,
        month=local.month,
        day=local.day,
        hour=local.hour,
        minute=local.minute,
        summer_time=bool(local.dst()),
    )


def clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


class Meter:
    """One simulated meter: registers that grow, a load, maybe PV, and a clock."""

    def __init__(self, rng: random.Random, layout: Layout, meter_id: str, key: bytes) -> None:
        self.rng = rng
        self.layout = layout
        self.meter_id = meter_id
        self.key = key
        family = layout.family
        self.address = Address(
            layout.manufacturer, bytes.fromhex(meter_id)[::-1], family.version, family.device_type
        )
        self.serial = f"{rng.randrange(10**7, 10**8):08d}"
        self.clock = START + timedelta(seconds=rng.randrange(-6 * 3600, 6 * 3600))
        self.interval = rng.choice((5, 10, 15, 30, 60))
        self.access_number = rng.randrange(256)
        self.sent = rng.randrange(len(layout.record_sets))  # alternating meters start anywhere
        self.load_w = rng.uniform(150, 2500)
        self.pv_peak_w = rng.choice((0.0, 0.0, rng.uniform(3000, 9000)))
        self.reactive_share = rng.uniform(0.05, 0.3)
        volt_scale = 10 if layout.decivolts else 1
        self.volt_range = (225 * volt_scale, 250 * volt_scale)
        self.volts = [rng.randint(*self.volt_range) for _ in PHASE_NAMES]
        self.volt_scale = volt_scale
        total_wh = rng.randrange(1_000_000, 40_000_000)
        self.import_wh = _split(rng, total_wh, layout.import_tariffs)
        self.export_wh = _split(
            rng, rng.randrange(0, 8_000_000) if self.pv_peak_w else 0, layout.export_tariffs
        )
        self.reactive_import_varh = rng.randrange(100_000, 5_000_000)
        self.reactive_export_varh = rng.randrange(0, 500_000)
        self.reactive_import_t1_varh = self.reactive_import_varh * 3 // 5
        self.reactive_export_t1_varh = self.reactive_export_varh * 3 // 5
        self.max_import_w = rng.randrange(2000, 6000)
        self.max_import_at = time_f(self.clock - timedelta(days=rng.randrange(1, 20)))
        self.max_export_w = rng.randrange(0, 3000)
        self.max_export_at = time_f(self.clock - timedelta(days=rng.randrange(1, 20)))
        self.aux = rng.randrange(0, 20_000)  # the value of the unknown 0BABC8FC10
        self.imported_w = self.exported_w = 0

    def _advance(self) -> None:
        rng = self.rng
        seconds = self.interval + rng.randint(0, 2)
        self.clock += timedelta(seconds=seconds)
        local = self.clock.astimezone(WARSAW)
        hour = local.hour + local.minute / 60
        self.load_w = clamp(self.load_w * rng.uniform(0.92, 1.08) + rng.uniform(-40, 40), 80, 11000)
        sun = max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.0
        pv = self.pv_peak_w * sun * rng.uniform(0.75, 1.0)
        self.imported_w = max(round(self.load_w - pv), 0)
        self.exported_w = max(round(pv - self.load_w), 0)
        night = local.hour >= 22 or local.hour < 6
        tariff = self.layout.import_tariffs[night % len(self.layout.import_tariffs)]
        self.import_wh[tariff] += round(self.imported_w * seconds / 3600)
        tariff = self.layout.export_tariffs[night % len(self.layout.export_tariffs)]
        self.export_wh[tariff] += round(self.exported_w * seconds / 3600)
        reactive_import = round(self.load_w * self.reactive_share * seconds / 3600)
        self.reactive_import_varh += reactive_import
        self.reactive_import_t1_varh += 0 if night else reactive_import
        reactive_export = rng.randint(0, 1)
        self.reactive_export_varh += reactive_export
        self.reactive_export_t1_varh += reactive_export
        low, high = self.volt_range
        step = self.volt_scale
        self.volts = [int(clamp(v + rng.randint(-1, 1) * step, low, high)) for v in self.volts]
        if self.imported_w > self.max_import_w:
            self.max_import_w, self.max_import_at = self.imported_w, time_f(self.clock)
        if self.exported_w > self.max_export_w:
            self.max_export_w, self.max_export_at = self.exported_w, time_f(self.clock)
        self.aux = int(clamp(self.aux + rng.randint(-200, 200), 0, 99_999))

    def next_telegram(self) -> tuple[bytes, MeterReading, int]:
        """The next frame, the reading it carries, and the record set it was built from."""
        self._advance()
        layout = self.layout
        record_set = self.sent % len(layout.record_sets)
        self.sent += 1
        constant = layout.family.constant_access_number
        if constant is None:
            self.access_number = (self.access_number + 1) % 256
            access_number = self.access_number
        else:
            access_number = constant
        reading = self._reading(access_number, record_set)
        records = encode_reading(reading, layout.record_sets[record_set])
        frame = encode_frame(
            self.address,
            records,
            access_number=access_number,
            key=self.key,
            iv_manufacturer=layout.iv_manufacturer,
        )
        return frame, reading, record_set

    def _reading(self, access_number: int, record_set: int) -> MeterReading:
        unknown_values: dict[str, Value] = {
            "0BABC8FC10": self.aux,
            "8E10FB8273": self.reactive_import_t1_varh,
            "8E10FB82F33C": self.reactive_export_t1_varh,
            "146D": self.max_import_at,
            "14ED3C": self.max_export_at,
        }
        volts = {name: v / self.volt_scale for name, v in zip(PHASE_NAMES, self.volts, strict=True)}
        amps = {
            name: round(self.load_w / self.layout.phases / v * 100) / 100
            for name, v in volts.items()
        }
        family = self.layout.family
        values = {
            "meter_time": self.clock.astimezone(WARSAW),
            "serial_number": self.serial,
            "energy_imported_kwh": sum(self.import_wh.values()) / 1000,
            "energy_imported_tariff_kwh": {t: wh / 1000 for t, wh in self.import_wh.items()},
            "energy_exported_kwh": sum(self.export_wh.values()) / 1000,
            "energy_exported_tariff_kwh": {t: wh / 1000 for t, wh in self.export_wh.items()},
            "power_imported_w": float(self.imported_w),
            "power_exported_w": float(self.exported_w),
            "power_imported_max_w": float(self.max_import_w),
            "voltage_v": volts,
            "current_a": amps,
            "reactive_energy_imported_kvarh": self.reactive_import_varh / 1000,
            "reactive_energy_exported_kvarh": self.reactive_export_varh / 1000,
            "reactive_power_imported_var": float(round(self.load_w * self.reactive_share)),
            "reactive_power_exported_var": float(self.rng.randint(0, 40)),
        }
        return MeterReading(
            meter_id=self.meter_id,
            manufacturer=family.manufacturer,
            version=family.version,
            device_type=family.device_type,
            access_number=access_number,
            values=values,
            unknown=tuple(
                UnknownRecord(key, unknown_values[key])
                for key in self.layout.unknown_keys(record_set)
            ),
        )


def _split(rng: random.Random, total: int, tariffs: tuple[int, ...]) -> dict[int, int]:
    """A register total spread over the tariffs that count (the day tariff gets the most)."""
    shares = [rng.uniform(1, 3) if n == 0 else rng.uniform(0.2, 1) for n in range(len(tariffs))]
    parts = [int(total * share / sum(shares)) for share in shares]
    return dict(zip(tariffs, parts, strict=True))


# --- telegram sets ---------------------------------------------------------------------------


@dataclass
class Sample:
    index: int
    reading: MeterReading
    family: str
    record_set: int


@dataclass
class TelegramSet:
    name: str
    frames: list[bytes]
    meter_ids: list[str]  # per telegram
    keys: dict[str, MeterKey]  # per meter
    families: dict[str, str]  # per meter
    samples: list[Sample]
    meters: int
    seconds: float
    shared_key: bytes | None  # the one key of every meter, if they share one

    def lookup(self) -> Callable[[Address], MeterKey | None]:
        """The key lookup a daemon would use: the meter's ID in a dict."""
        get = self.keys.get

        def key_for(address: Address) -> MeterKey | None:
            return get(address.meter_id)

        return key_for


def generate(name: str, count: int, meter_count: int, shared_key: bool) -> TelegramSet:
    """`count` telegrams from `meter_count` meters; family i % len(FAMILIES) for telegram i."""
    rng = random.Random(f"{SEED}-{name}")
    ids = [f"{n:08d}" for n in rng.sample(range(10**7, 10**8), meter_count)]
    one_key = rng.randbytes(16)
    meters = [
        Meter(
            rng, LAYOUTS[n % len(LAYOUTS)], meter_id, one_key if shared_key else rng.randbytes(16)
        )
        for n, meter_id in enumerate(ids)
    ]
    by_family = [[m for m in meters if m.layout is layout] for layout in LAYOUTS]
    if not all(by_family):
        raise SystemExit(f"set {name}: {meter_count} meters cannot cover {len(LAYOUTS)} families")
    frames: list[bytes] = []
    meter_ids: list[str] = []
    samples: list[Sample] = []
    started = time.perf_counter()
    for index in range(count):
        group = by_family[index % len(LAYOUTS)]
        meter = group[(index // len(LAYOUTS)) % len(group)]
        frame, reading, record_set = meter.next_telegram()
        frames.append(frame)
        meter_ids.append(meter.meter_id)
        if index < SAMPLE_HEAD or index % SAMPLE_EVERY == 0:
            samples.append(Sample(index, reading, meter.layout.family.name, record_set))
        if (index + 1) % PROGRESS_EVERY == 0:
            print(f"  set {name}: {index + 1:,}/{count:,} telegrams", file=sys.stderr)
    seconds = time.perf_counter() - started
    keys = {m.meter_id: MeterKey.from_bytes(m.key) for m in meters}
    families = {m.meter_id: m.layout.family.name for m in meters}
    shared = one_key if shared_key else None
    return TelegramSet(
        name, frames, meter_ids, keys, families, samples, meter_count, seconds, shared
    )


# --- correctness -----------------------------------------------------------------------------


def compare(decoded: MeterReading, wanted: MeterReading, layout: Layout, record_set: int) -> str:
    """What differs between a decoded reading and the intended one, or '' when nothing."""
    problems = [
        f"{name}: {getattr(decoded, name)!r} != {getattr(wanted, name)!r}"
        for name in ("meter_id", "manufacturer", "version", "device_type", "access_number")
        if getattr(decoded, name) != getattr(wanted, name)
    ]
    if decoded.key_variant is not None:
        problems.append(f"key variant {decoded.key_variant!r}")
    sent: dict[Field, set[int]] = {}
    for key, target in layout.targets[record_set]:
        if target is None:
            continue
        row = target.field
        attribute = row.key
        got: Any
        want: Any
        if row.shape is Shape.TIME:
            got = decoded.meter_time.isoformat() if decoded.meter_time else None
            want = wanted.meter_time.isoformat() if wanted.meter_time else None
        elif row.shape is Shape.TARIFFS:
            sent.setdefault(row, set()).add(target.tariff)
            if target.tariff:
                attribute = row.tariff_key
                got = decoded.get(attribute, {}).get(target.tariff)
                want = wanted.get(attribute, {}).get(target.tariff)
            else:
                got, want = decoded.get(attribute), wanted.get(attribute)
        elif target.phase is not None:
            got = decoded.get(attribute, {}).get(target.phase)
            want = wanted.get(attribute, {}).get(target.phase)
        else:
            got, want = decoded.get(attribute), wanted.get(attribute)
        if got != want or type(got) is not type(want):
            problems.append(f"{key} ({attribute}): {got!r} != {want!r}")
    for total, tariffs in sent.items():
        attribute = total.key
        got, want = decoded.get(attribute), wanted.get(attribute)
        derived = bool(decoded.get(total.derived_key))
        if got != want or derived != (0 not in tariffs):
            problems.append(f"{attribute} (total, derived={derived}): {got!r} != {want!r}")
    if decoded.unknown != wanted.unknown:
        problems.append(f"unknown: {decoded.unknown!r} != {wanted.unknown!r}")
    return "; ".join(problems)


def check(telegrams: TelegramSet) -> int:
    """Compare the samples of a set with their intended values, then decode every telegram
    of the set once (errors only); exits with a report on any mismatch or error."""
    lookup = telegrams.lookup()
    layouts = {layout.family.name: layout for layout in LAYOUTS}
    failures: list[str] = []
    covered: set[tuple[str, int]] = set()
    for sample in telegrams.samples:
        frame = telegrams.frames[sample.index]
        try:
            decoded = read_meter(decode(frame, lookup))
            decoded.as_json()
        except Exception as error:  # report everything, the run stops below
            failures.append(f"#{sample.index} {sample.family}: {type(error).__name__}: {error}")
            continue
        problem = compare(decoded, sample.reading, layouts[sample.family], sample.record_set)
        if problem:
            failures.append(
                f"#{sample.index} {sample.family} set {sample.record_set} "
                f"({frame.hex().upper()}): {problem}"
            )
        covered.add((sample.family, sample.record_set))
    missing = COMBINATIONS - covered
    if missing:
        failures.append(f"family/record sets never checked: {sorted(missing)}")
    for index, frame in enumerate(telegrams.frames):
        try:
            read_meter(decode(frame, lookup)).as_json()
        except Exception as error:
            family = telegrams.families[telegrams.meter_ids[index]]
            failures.append(
                f"#{index} {family} ({frame.hex().upper()}): {type(error).__name__}: {error}"
            )
    if failures:
        print(f"\nCORRECTNESS FAILURE in set {telegrams.name}:", file=sys.stderr)
        for line in failures[:20]:
            print(f"  {line}", file=sys.stderr)
        if len(failures) > 20:
            print(f"  ... and {len(failures) - 20} more", file=sys.stderr)
        raise SystemExit(1)
    return len(telegrams.samples)


# --- timing ----------------------------------------------------------------------------------


def library_pass(frames: Sequence[bytes], keys: Callable[[Address], MeterKey | None]) -> None:
    for frame in frames:
        read_meter(decode(frame, keys))


def decode_pass(frames: Sequence[bytes], keys: Callable[[Address], MeterKey | None]) -> None:
    for frame in frames:
        decode(frame, keys)


def timed_rate(run: Callable[[], object], count: int) -> float:
    gc.collect()
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


@dataclass
class Rates:
    runs: list[float]

    @property
    def best(self) -> float:
        return max(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def text(self, unit: str = "telegrams/s") -> str:
        runs = ", ".join(f"{r:,.0f}" for r in self.runs)
        return f"best {self.best:>9,.0f} {unit}, median {self.median:>9,.0f}  (runs: {runs})"


def library_rates(telegrams: TelegramSet, repeat: int, full: bool = True) -> Rates:
    keys = telegrams.lookup()
    run = library_pass if full else decode_pass
    count = len(telegrams.frames)
    return Rates([timed_rate(lambda: run(telegrams.frames, keys), count) for _ in range(repeat)])


def command_rates(telegrams: TelegramSet, repeat: int) -> tuple[Rates, list[float], float]:
    """Lines/s of the `decode` command, start-up included; also the bare start-up times."""
    if telegrams.shared_key is None:
        raise SystemExit(f"set {telegrams.name} has no shared key for the decode command")
    command = [
        sys.executable,
        "-m",
        "exporter",
        "decode",
        "--key",
        telegrams.shared_key.hex().upper(),
    ]
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as directory:
        lines = Path(directory) / "telegrams.txt"
        lines.write_text("".join(f"{frame.hex().upper()}\n" for frame in telegrams.frames))
        output = Path(directory) / "out.jsonl"
        empty = Path(directory) / "empty.txt"
        empty.write_text("")
        startups: list[float] = []
        runs: list[float] = []
        for _ in range(repeat):
            with empty.open("rb") as stdin:
                started = time.perf_counter()
                subprocess.run(
                    command, stdin=stdin, stdout=subprocess.DEVNULL, check=True, cwd=REPO
                )
                startups.append(time.perf_counter() - started)
            with lines.open("rb") as stdin, output.open("wb") as stdout:
                started = time.perf_counter()
                done = subprocess.run(command, stdin=stdin, stdout=stdout, check=False, cwd=REPO)
                seconds = time.perf_counter() - started
            runs.append(len(telegrams.frames) / seconds)
            verify_command_output(telegrams, output, done.returncode)
        size = lines.stat().st_size
    return Rates(runs), startups, size / 1e6


def verify_command_output(telegrams: TelegramSet, output: Path, returncode: int) -> None:
    """One line per telegram, every one ok, in order, for the right meter (not timed)."""
    problems: list[str] = []
    if returncode != 0:
        problems.append(f"exit status {returncode}")
    with output.open(encoding="utf-8") as lines:
        count = 0
        for count, line in enumerate(lines, start=1):
            result = json.loads(line)
            meter_id = telegrams.meter_ids[count - 1] if count <= len(telegrams.meter_ids) else "?"
            if result.get("ok") is not True or result.get("meter_id") != meter_id:
                problems.append(f"line {count}: {line.strip()[:200]}")
                if len(problems) > 10:
                    break
    if count != len(telegrams.frames):
        problems.append(f"{count} output lines for {len(telegrams.frames)} telegrams")
    if problems:
        print("\nDECODE COMMAND OUTPUT IS WRONG:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(1)


def profile_library(telegrams: TelegramSet) -> None:
    keys = telegrams.lookup()
    profiler = cProfile.Profile()
    profiler.runcall(library_pass, telegrams.frames, keys)
    for order, count in (("tottime", 30), ("cumtime", 25)):
        print(f"\n--- read_meter(decode()) over set {telegrams.name}, sorted by {order} ---")
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.strip_dirs().sort_stats(order).print_stats(count)


# --- main ------------------------------------------------------------------------------------


def verdict(value: float, target: float) -> str:
    return "target met" if value >= target else "BELOW TARGET"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--telegrams",
        type=int,
        help=f"telegrams per set (default {DEFAULT_TELEGRAMS:,}; {QUICK_TELEGRAMS:,} with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run with fewer telegrams")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument(
        "--profile", action="store_true", help="profile the library decode of set A and stop"
    )
    args = parser.parse_args(argv)
    count = args.telegrams or (QUICK_TELEGRAMS if args.quick else DEFAULT_TELEGRAMS)
    repeat = max(args.repeat, 1)
    wall = time.perf_counter()

    print("amiplus-exporter decode benchmark")
    print(f"  command line : {shlex.join(sys.orig_argv)}")
    print(f"  python       : {platform.python_implementation()} {platform.python_version()}")
    print(f"  executable   : {sys.executable}")
    print(f"  platform     : {platform.platform()}")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"  cpus         : {os.cpu_count()} (usable by this process: {usable})")
    print(f"  exporter     : {exporter.__version__} ({Path(exporter.__file__).parent})")
    print(f"  source       : {source_state()}")
    print(f"  telegrams    : {count:,} per set, {repeat} runs per measurement, seed {SEED}")
    print(f"  families     : {len(FAMILIES)}, {len(COMBINATIONS)} family/record-set combinations")

    plan = [("A", SMALL_METERS, False)]
    if not args.profile:
        plan += [("B", LARGE_METERS, False), ("C", SMALL_METERS, True)]
    print("\nGenerating telegrams (progress on stderr)")
    sets: dict[str, TelegramSet] = {}
    for name, meters, shared in plan:
        sets[name] = generate(name, count, meters, shared)
        telegrams = sets[name]
        size = statistics.mean(len(frame) for frame in telegrams.frames)
        keys = "one shared key" if shared else "one key each"
        print(
            f"  set {name}: {count:,} telegrams from {meters:,} meters ({keys}), "
            f"mean frame {size:.1f} bytes, generated in {telegrams.seconds:.1f} s "
            f"({count / telegrams.seconds:,.0f}/s)"
        )
    print(f"  generation total: {sum(s.seconds for s in sets.values()):.1f} s")

    print("\nCorrectness (decoded values against the intended ones, before timing)")
    for telegrams in sets.values():
        checked = check(telegrams)
        print(
            f"  set {telegrams.name}: {checked:,} sampled telegrams match (all combinations), "
            f"all {len(telegrams.frames):,} decode without error"
        )

    if args.profile:
        profile_library(sets["A"])
        return 0

    a, b, c = sets["A"], sets["B"], sets["C"]
    print(f"\nFigure 1: library decode on one core, set A ({a.meters} meters, dict key lookup)")
    full = library_rates(a, repeat)
    bare = library_rates(a, repeat, full=False)
    print(f"  decode()             : {bare.text()}  [{verdict(bare.median, LIBRARY_TARGET)}]")
    print(f"  read_meter(decode()) : {full.text()}")
    print(f"  target               : >= {LIBRARY_TARGET:,} telegrams/s (decode())")

    print(f"\nFigure 2: `python -m exporter decode --key HEX`, set C ({c.meters} meters, one key)")
    rates, startups, megabytes = command_rates(c, repeat)
    print(f"  input                : {len(c.frames):,} hex lines, {megabytes:.1f} MB, to a file")
    reached = verdict(rates.median, COMMAND_TARGET)
    print(f"  lines/s incl. start  : {rates.text('lines/s')}  [{reached}]")
    seconds = ", ".join(f"{len(c.frames) / r:.2f}" for r in rates.runs)
    print(f"  wall time per run    : {seconds} s")
    print(
        f"  start-up alone       : best {min(startups):.3f} s, "
        f"median {statistics.median(startups):.3f} s (empty input)"
    )
    print(f"  output verified      : {len(c.frames):,} lines per run, all ok, in order")
    print(f"  target               : >= {COMMAND_TARGET:,} lines/s")

    print(f"\nFigure 3: statelessness, set B ({b.meters:,} meters) against set A ({a.meters})")
    small_runs: list[float] = []
    large_runs: list[float] = []
    for _ in range(repeat):  # alternated, so that drift hits both alike
        small_runs += library_rates(a, 1).runs
        large_runs += library_rates(b, 1).runs
    small, large = Rates(small_runs), Rates(large_runs)
    print(f"  {a.meters:>6,} meters        : {small.text()}")
    print(f"  {b.meters:>6,} meters        : {large.text()}")
    ratio_median = large.median / small.median
    ratio_best = large.best / small.best
    label = f"ratio {b.meters:,}/{a.meters}"
    print(
        f"  {label:<21}: {ratio_median:.3f} (medians), "
        f"{ratio_best:.3f} (bests)  [{verdict(ratio_median, STATELESS_TARGET)}]"
    )
    print(f"  target               : ratio >= {STATELESS_TARGET:.2f} (within 20 %)")

    print(f"\nTotal run time: {time.perf_counter() - wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
