"""Command line (design.md 3.1). Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from . import __version__
from .amiplus import failure_as_json, read_meter
from .credentials import CredentialsError, id_variants, parse_qr
from .receivers.lines import LineFrame, parse_line
from .wmbus import Address, KeyFormatError, MeterKey, NoKeyError, WMBusError, decode

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A command-line value that cannot be used; the message says what to give instead."""


class KeyRing:
    """The key of `decode`: for every meter, or only for the IDs given with --id / --qr."""

    def __init__(self, key: MeterKey | None, meter_ids: frozenset[str]) -> None:
        self.key = key
        self.meter_ids = meter_ids

    def __call__(self, address: Address) -> MeterKey | None:
        if not self.meter_ids or address.meter_id in self.meter_ids:
            return self.key
        return None

    def explain(self, error: WMBusError) -> dict[str, Any]:
        """The failure object, telling a user whose key belongs to another meter."""
        out = failure_as_json(error)
        if isinstance(error, NoKeyError) and self.key is not None and self.meter_ids:
            ids = ", ".join(sorted(self.meter_ids))
            out["message"] = (
                f"This telegram is from meter {out.get('meter_id')}, but the key given is for "
                f"meter {ids} (either byte order). It is encrypted, so it cannot be read "
                "without that meter's own key; telegrams from neighbours' meters are normal."
            )
        return out

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> KeyRing:
        try:
            if args.qr is not None:
                if args.key is not None:
                    raise UsageError("give either --key or --qr, not both")
                credentials = parse_qr(args.qr)
                ids = credentials.meter_ids
                if args.id is not None:
                    ids = id_variants(args.id)
                return cls(credentials.key, ids)
            key = MeterKey.parse(args.key) if args.key is not None else None
            return cls(key, id_variants(args.id) if args.id is not None else frozenset())
        except (KeyFormatError, CredentialsError) as error:
            raise UsageError(str(error)) from None


def decode_lines(lines: Iterable[str], keys: KeyRing) -> Iterator[dict[str, Any]]:
    """One JSON object per telegram found in the lines, and one per line that holds none."""
    for line in lines:
        for item in parse_line(line):
            if isinstance(item, LineFrame):
                try:
                    telegram = decode(item.frame, keys)
                except WMBusError as error:
                    yield keys.explain(error)
                    continue
                yield read_meter(telegram, rssi_dbm=item.rssi_dbm).as_json()
            else:
                yield {"ok": False, "error": item.code, "message": item.message}


def run_decode(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    keys = KeyRing.from_arguments(args)
    if args.telegrams:
        lines: Iterable[str] = args.telegrams
    else:
        if stdin.isatty():
            print(
                "Reading telegrams from standard input, one per line (Ctrl-D ends).",
                file=sys.stderr,
            )
        lines = stdin
    failed = False
    dumps = json.dumps
    write = stdout.write
    for result in decode_lines(lines, keys):
        failed = failed or not result["ok"]
        write(dumps(result, ensure_ascii=False) + "\n")
    return EXIT_FAILURE if failed else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amiplus-exporter",
        description="Receive, decrypt and export TAURON AMIplus wireless M-Bus meter readings.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    decode_parser = commands.add_parser(
        "decode",
        help="decode telegrams given as arguments or one per line on standard input",
        description=(
            "Decode telegrams (plain hex with or without block CRCs, rtl_wmbus lines, "
            "telegram=|HEX| lines, rtl_433 JSON lines) and print one JSON object per "
            "telegram. Exit status 0 when all decoded, 1 when any failed, 2 for usage errors."
        ),
    )
    decode_parser.add_argument(
        "--key",
        help="the AES key from eLicznik ('Klucz szyfrujący'): 32 hex digits or 16 characters",
    )
    decode_parser.add_argument(
        "--qr", help="the text of the eLicznik QR code (address, factory number, key; ';')"
    )
    decode_parser.add_argument(
        "--id",
        help="use the key only for this meter address (8 digits, either byte order)",
    )
    decode_parser.add_argument("telegrams", nargs="*", metavar="TELEGRAM")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "decode":
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return run_decode(args, sys.stdin, sys.stdout)
    except UsageError as error:
        print(f"amiplus-exporter decode: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
