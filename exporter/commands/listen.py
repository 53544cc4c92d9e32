"""The `listen` command: every meter heard, live, so that a user can find their own."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import datetime
from typing import TextIO

from ..amiplus import (
    RECEIVER_FINISHED,
    RECEIVER_NO_PERMISSION,
    CredentialsError,
    advice,
    normalise_meter_id,
    parse_qr,
)
from ..config import ConfigError, load_config
from ..pipeline import HeardMeter, HeardMeters, configured_match, peek_or_none
from ..plumbing import MissingExtra
from ..receivers import (
    Frame,
    Receiver,
    ReceiverSpec,
    ReceiverSpecError,
    ReceiverStats,
    build_receiver,
    parse_spec,
)
from .exits import EXIT_FAILURE, EXIT_OK, UsageError

REFRESH = 1.0  # seconds between redraws of the live table
_CLEAR = "\x1b[H\x1b[2J"
_COLUMNS = ("ID", "maker", "ver", "type", "RSSI", "encrypted", "count", "last seen", "")


def table(meters: list[HeardMeter], configured: frozenset[str]) -> str:
    """The heard meters as an aligned text table."""
    rows = [_COLUMNS] + [
        (
            m.meter_id,
            m.manufacturer,
            str(m.version),
            m.device_type_name,
            f"{m.rssi_dbm:.0f} dBm" if m.rssi_dbm is not None else "-",
            "yes" if m.encrypted else "no",
            str(m.count),
            datetime.fromtimestamp(m.last_seen).strftime("%H:%M:%S"),
            configured_match(m.meter_id, configured),
        )
        for m in meters
    ]
    widths = [max(len(row[n]) for row in rows) for n in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def as_json(meter: HeardMeter, configured: frozenset[str], frame: Frame) -> str:
    """A JSON line for one telegram heard: the meter's headers and the telegram itself (hex, as
    `decode` takes it)."""
    return json.dumps(
        {
            "meter_id": meter.meter_id,
            "manufacturer": meter.manufacturer,
            "version": meter.version,
            "device_type": meter.device_type,
            "device_type_name": meter.device_type_name,
            "rssi_dbm": meter.rssi_dbm,
            "encrypted": meter.encrypted,
            "count": meter.count,
            "last_seen": meter.last_seen,
            "receiver": meter.receiver,
            "configured": configured_match(meter.meter_id, configured) or None,
            "telegram": frame.data.hex().upper(),
        }
    )


def run_listen(
    specs: list[ReceiverSpec],
    configured: frozenset[str],
    out: TextIO,
    *,
    as_lines: bool,
    duration: float | None,
) -> int:
    """Listen until `duration` passes, every receiver's input ends, or Ctrl-C."""
    heard = HeardMeters()
    printing = threading.Lock()

    def sink(receiver: str, frame: Frame) -> None:
        meter = heard.hear(receiver, frame, peek_or_none(frame.data))
        if as_lines and meter is not None:
            with printing:
                out.write(as_json(meter, configured, frame) + "\n")
                out.flush()

    try:
        receivers: list[Receiver] = [build_receiver(spec, sink) for spec in specs]
    except MissingExtra as error:
        raise UsageError(str(error)) from None
    live = not as_lines and out.isatty()
    deadline = None if duration is None else time.monotonic() + duration
    started: list[Receiver] = []  # a Ctrl-C while starting stops those already running
    try:
        for receiver in receivers:
            started.append(receiver)  # first: a Ctrl-C inside start() may find its thread up
            receiver.start()
        while not all(r.finished.is_set() for r in receivers):
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(
                REFRESH if deadline is None else min(REFRESH, max(0.0, deadline - time.monotonic()))
            )
            if live:
                out.write(
                    _CLEAR
                    + _status(receivers)
                    + "\n\n"
                    + table(heard.snapshot(), configured)
                    + "\n"
                )
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        for receiver in started:
            receiver.stop()
    stats = [receiver.stats for receiver in receivers]
    down = all(not s.up and s.down_code != RECEIVER_FINISHED for s in stats)
    if down:  # said first: nothing below can mean anything while no receiver is up
        print(_all_down(stats), file=sys.stderr, flush=True)
    if not as_lines:
        if not live:
            out.write(_status(receivers) + "\n\n")
        out.write(table(heard.snapshot(), configured) + "\n")
    if down:
        return EXIT_FAILURE
    if not heard.snapshot():
        print(
            "No telegram heard. Check that the receiver is on 868.95 MHz in T1 mode, that the "
            "antenna is near the meter, and that HAN is activated in eLicznik (it takes up to "
            "one working day).",
            file=sys.stderr,
        )
    return EXIT_OK


def _all_down(stats: list[ReceiverStats]) -> str:
    """Every receiver's reason for being down, and what to do where the reason does not say."""
    lines = ["No receiver is up, so nothing can be heard:"]
    for receiver in stats:
        lines.append(f"  {receiver.name} [{receiver.description}]: {receiver.down_reason}")
        hint = advice(receiver.down_code or "")
        if hint and receiver.down_code != RECEIVER_NO_PERMISSION:  # that reason says it all
            lines.append(f"    {hint}")
    return "\n".join(lines)


def _status(receivers: list[Receiver]) -> str:
    lines = []
    for stats in (view for receiver in receivers for view in receiver.views()):
        state = "up" if stats.up else f"down ({stats.down_reason})"
        errors = ", ".join(f"{n} {reason}" for reason, n in sorted(stats.errors.items()))
        lines.append(
            f"{stats.name} [{stats.description}]: {state}, {stats.frames} frames"
            + (f", errors: {errors}" if errors else "")
            + (f", {stats.reconnects} reconnects" if stats.reconnects else "")
        )
    return "\n".join(lines)


def run_listen_command(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    config = None
    if args.config is not None:
        try:
            config = load_config(args.config)
        except ConfigError as error:
            raise UsageError(f"the configuration has problems:\n{error}") from None
    if not args.receiver and config is None:
        raise UsageError(
            "say which receiver to listen with, e.g. --receiver im871a:/dev/ttyUSB0, or give "
            "--config with receivers"
        )
    try:
        specs = [parse_spec(text) for text in args.receiver] or list(
            config.receivers if config else ()
        )
        configured = {normalise_meter_id(text) for text in args.id}
        configured |= {meter.meter_id for meter in config.meters} if config else set()
        if args.qr:
            credentials = parse_qr(args.qr)
            configured |= {n for n in (credentials.address, credentials.factory_number) if n}
    except (ReceiverSpecError, CredentialsError) as error:
        raise UsageError(str(error)) from None
    return run_listen(
        specs, frozenset(configured), stdout, as_lines=args.json, duration=args.duration
    )
