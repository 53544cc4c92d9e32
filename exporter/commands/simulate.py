"""The `simulate` command: encrypted telegrams of simulated meters as hex lines, for other tools."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..amiplus import simulated_meters
from ..receivers import SimulatorSource, SourceFinished
from .exits import EXIT_OK, UsageError


def run_simulate(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    if args.meters < 1:
        raise UsageError("--meters must be at least 1")
    source = SimulatorSource(
        simulated_meters(args.meters, args.family),
        interval=args.interval,
        realtime=args.realtime,
        count=args.count,
    )
    source.open()
    try:
        while True:
            for chunk in source.read(timeout=1.0):
                stdout.write(chunk.data.decode())
                stdout.flush()
    except SourceFinished:
        return EXIT_OK
