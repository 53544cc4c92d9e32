"""The `decode` command: text lines in, one JSON object per telegram out (docs/contracts.md,
sections 1 and 2).

A file or a fast pipe arrives in large batches, which are decoded on every CPU in worker
processes (order kept); a live receiver trickles lines, which are decoded at once in-process.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import select
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from ..amiplus import (
    NOT_ENCRYPTED,
    CredentialsError,
    advice,
    failure_as_json,
    id_variants,
    parse_key,
    parse_qr,
    read_meter,
)
from ..receivers import LineFrame, parse_line
from ..wmbus import Address, MeterKey, NoKeyError, Telegram, WMBusError, decode
from .exits import EXIT_FAILURE, EXIT_OK, UsageError

PARALLEL_MIN_LINES = 2000  # a batch at least this long is worth the worker processes
CHUNK_LINES = 1000  # lines per task sent to a worker
READ_SIZE = 1 << 20
MAX_LINE = 1 << 20  # a "line" longer than this is cut and reported, never buffered forever

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

_encode = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode


class KeyRing:
    """The key of `decode`: for every meter, or only for the IDs given with --id / --qr."""

    def __init__(self, key: MeterKey | None, meter_ids: frozenset[str]) -> None:
        self.key = key
        self.meter_ids = meter_ids

    def __call__(self, address: Address) -> MeterKey | None:
        if not self.meter_ids or address.meter_id in self.meter_ids:
            return self.key
        return None

    def checked(self, telegram: Telegram, reading: dict[str, Any]) -> dict[str, Any]:
        """The reading, with a warning when a key was given for the meter but the telegram
        arrived in clear: it decodes without any key, so it says nothing of the key's worth."""
        if telegram.encrypted or self(telegram.address) is None:
            return reading
        return {
            **reading,
            "encrypted": False,
            "warning": (
                "This telegram arrived unencrypted, so it decodes without any key: it does not "
                "show that the key given is right. The exporter does not take such telegrams "
                f"from a meter with a key ({NOT_ENCRYPTED}). {advice(NOT_ENCRYPTED)}"
            ),
        }

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


TOO_LONG = {
    "ok": False,
    "error": "malformed",
    "message": "This line is longer than 1 MiB; a telegram line has at most a few hundred "
    "characters, so it holds no telegram (the whole line is skipped).",
}


def decode_lines(lines: Iterable[str], keys: KeyRing) -> Iterator[dict[str, Any]]:
    """One JSON object per telegram found in the lines, and one per line that holds none."""
    for line in lines:
        if len(line) > MAX_LINE:
            yield TOO_LONG
            continue
        for item in parse_line(line):
            if isinstance(item, LineFrame):
                try:
                    telegram = decode(item.frame, keys)
                except WMBusError as error:
                    yield keys.explain(error)
                    continue
                yield keys.checked(telegram, read_meter(telegram, rssi_dbm=item.rssi_dbm).as_json())
            else:
                yield {"ok": False, "error": item.code, "message": item.message}


#: Characters JSON may leave raw that some line readers take as line ends (str.splitlines,
#: JavaScript): escaped, so that every answer stays on one line for every reader.
_LINE_BREAKS = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def render(lines: Iterable[str], keys: KeyRing) -> tuple[str, bool]:
    """The JSON lines for some input lines, and whether any telegram failed."""
    out = []
    failed = False
    for result in decode_lines(lines, keys):
        failed = failed or not result["ok"]
        out.append(_encode(result) + "\n")
    text = "".join(out)
    for character, escaped in _LINE_BREAKS.items():
        if character in text:
            text = text.replace(character, escaped)
    return text, failed


def _ready(stream: BinaryIO) -> bool:
    """Whether more input can be read without waiting (a pipe from a file, not a live radio)."""
    try:
        return bool(select.select([stream], [], [], 0)[0])
    except (OSError, ValueError, io.UnsupportedOperation):
        return False


def _read_available(stream: BinaryIO) -> bytes:
    """At least one read (waiting for it), then whatever follows without waiting."""
    data: bytes = stream.read1(READ_SIZE)  # type: ignore[attr-defined]
    while data and len(data) < READ_SIZE and _ready(stream):
        more: bytes = stream.read1(READ_SIZE - len(data))  # type: ignore[attr-defined]
        if not more:
            break
        data += more
    return data


def batches(stream: BinaryIO) -> Iterator[list[str]]:
    """Lines as they become available: a file gives big batches, a live pipe small ones.

    Lines end at `\n` only (a `\r`, `\v`, `\f`, `\x1c`-`\x1e` or `\x85` inside one does not
    split it), so every input line gives its own answer. A line longer than `MAX_LINE` is never
    buffered whole: its first `MAX_LINE + 1` bytes stand for it, the rest is skipped.
    """
    rest = b""
    skipping = False  # inside a line already handed on as too long
    while True:
        data = _read_available(stream)
        if not data:
            if rest and not skipping:
                yield [rest.decode("utf-8", "replace")]
            return
        data = rest + data
        if skipping:
            end = data.find(b"\n")
            rest, data = b"", (b"" if end < 0 else data[end + 1 :])
            skipping = end < 0
        cut = data.rfind(b"\n") + 1
        lines = data[:cut].decode("utf-8", "replace").split("\n")[:-1]
        rest = data[cut:]
        if len(rest) > MAX_LINE:
            lines.append(rest[: MAX_LINE + 1].decode("latin-1"))
            rest, skipping = b"", True
        if lines:
            yield lines


_worker_keys: KeyRing | None = None


def _start_worker(keys: KeyRing) -> None:
    global _worker_keys  # noqa: PLW0603 (a worker process holds one key ring for its life)
    _worker_keys = keys


def _render_in_worker(lines: list[str]) -> tuple[str, bool]:
    assert _worker_keys is not None
    return render(lines, _worker_keys)


def _done(result: tuple[str, bool]) -> Future[tuple[str, bool]]:
    future: Future[tuple[str, bool]] = Future()
    future.set_result(result)
    return future


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _worker_pool(workers: int, keys: KeyRing) -> ProcessPoolExecutor:
    """Worker processes holding the key ring (imported only for large inputs)."""
    import multiprocessing  # noqa: PLC0415
    from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_start_worker,
        initargs=(keys,),
    )


def run_stream(stream: BinaryIO, keys: KeyRing, out: TextIO, workers: int) -> bool:
    """Decode a stream of lines to `out` in input order; True if any telegram failed."""
    pending: deque[Future[tuple[str, bool]]] = deque()
    pool: ProcessPoolExecutor | None = None
    failed = False

    def flush(keep: int) -> None:
        """Write finished results in order, waiting while more than `keep` are in flight."""
        nonlocal failed
        while pending and (pending[0].done() or len(pending) > keep):
            text, batch_failed = pending.popleft().result()
            out.write(text)
            failed = failed or batch_failed
        out.flush()

    try:
        for lines in batches(stream):
            if workers > 1 and len(lines) >= PARALLEL_MIN_LINES:
                if pool is None:
                    pool = _worker_pool(workers, keys)
                for start in range(0, len(lines), CHUNK_LINES):
                    chunk = lines[start : start + CHUNK_LINES]
                    pending.append(pool.submit(_render_in_worker, chunk))
            else:
                pending.append(_done(render(lines, keys)))
            flush(keep=2 * workers)
        flush(keep=0)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return failed


def key_ring(args: argparse.Namespace) -> KeyRing:
    """The key and meter IDs of --key, --qr and --id."""
    try:
        if args.qr is not None:
            if args.key is not None:
                raise UsageError("give either --key or --qr, not both")
            credentials = parse_qr(args.qr)
            ids = id_variants(args.id) if args.id is not None else credentials.meter_ids
            return KeyRing(credentials.key, ids)
        key = parse_key(args.key) if args.key is not None else None
        return KeyRing(key, id_variants(args.id) if args.id is not None else frozenset())
    except CredentialsError as error:
        raise UsageError(str(error)) from None


def run_decode(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    keys = key_ring(args)
    if args.telegrams:
        text, failed = render(args.telegrams, keys)
        stdout.write(text)
    else:
        if stdin.isatty():
            print(
                "Reading telegrams from standard input, one per line (Ctrl-D ends).",
                file=sys.stderr,
            )
        failed = run_stream(stdin.buffer, keys, stdout, available_cpus())
    return EXIT_FAILURE if failed else EXIT_OK
