"""Where a receiver's bytes come from: serial ports, sockets, processes, files, the simulator.

A `Source` owns one file descriptor, socket or process and hands over chunks of bytes; every
wait is a blocking read or select with a timeout, so an idle source never spins. The receiver
thread (`receiver.py`) opens, reads and reopens it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from ..amiplus import SimulatedMeter, meters_pl
from ..plumbing import ConnectionLimit, RateLimitedLog, listening_family
from .devices import DENIED, MISSING, denied, missing

log = logging.getLogger(__name__)

READ_WAIT = 0.5  # longest single wait, so that stop() is honoured quickly


class SourceGone(Exception):
    """The device, connection or process went away; the receiver reopens it later."""


class NoPermission(SourceGone):
    """This user may not open the device; the message says how to get the permission."""


class BrokerGone(SourceGone):
    """An MQTT broker cannot be reached, refused the session, or lost it."""


class SourceFinished(Exception):
    """The input ended for good (stdin, a replay file); the receiver stops."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes from one stream of a source; `ended` closes that stream (its framer is flushed);
    `gateway` names the gateway they came through, where the source knows (an MQTT topic)."""

    stream: Hashable
    data: bytes
    ended: bool = False
    gateway: str | None = None


class Source(ABC):
    """Where bytes come from. `read` waits at most `timeout` seconds and may return nothing."""

    description: str  # English, for logs, metrics and the status page
    description_pl: str = ""  # the page's Polish words, where `description` has English ones

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self, timeout: float) -> list[Chunk]: ...

    #: Connections of senders this source closed, by reason (only sources that listen).
    closed_connections: Counter[str] | None = None
    #: Whether its chunks name the gateway they came through (each gets a view of its own).
    names_gateways = False
    #: Messages taken and dropped for want of room (only sources that shed a flood).
    dropped: int | None = None

    def write(self, data: bytes) -> None:
        raise SourceGone(f"{self.description} cannot take commands")

    def interrupt(self) -> None:  # noqa: B027 (most sources have no wait to cut short)
        """The receiver is stopping (any thread may call this): cut short a wait in `open`."""

    def accepted(self) -> bool:
        """Whether the far end accepted the current session (a broker's yes), which makes it a
        good session even without frames: the backoff starts again after it."""
        return False

    @abstractmethod
    def close(self) -> None: ...


def _wait_readable(fds: list[Any], timeout: float) -> list[Any]:
    ready, _, _ = select.select(fds, [], [], timeout)
    return ready


class SerialSource(Source):
    """A USB stick through pyserial: a device path, a /dev/serial/by-id link, socket:// or
    rfc2217:// (imported only when used). A by-id link is resolved again on every open, so a
    stick that re-enumerates under a new tty name is found again."""

    def __init__(self, url: str, baudrate: int) -> None:
        self.url = url
        self.baudrate = baudrate
        self.description = url
        self._port: Any = None  # a pyserial port; its class depends on the URL scheme

    def open(self) -> None:
        import serial  # noqa: PLC0415 (pyserial is needed only for stick receivers)

        try:
            self._port = serial.serial_for_url(
                self.url, baudrate=self.baudrate, timeout=READ_WAIT, exclusive=True
            )
        except (serial.SerialException, OSError, ValueError) as error:
            number = getattr(error, "errno", None)  # pyserial keeps the open's errno
            if number in DENIED:
                raise NoPermission(denied(self.url)) from None
            if number in MISSING:
                raise SourceGone(missing(self.url)) from None
            raise SourceGone(f"cannot open {self.url}: {error}") from None

    def read(self, timeout: float) -> list[Chunk]:
        import serial  # noqa: PLC0415

        port = self._port
        try:
            port.timeout = timeout
            data = port.read(max(1, port.in_waiting))
            if data and port.in_waiting:
                data += port.read(port.in_waiting)
        except (serial.SerialException, OSError, TypeError) as error:
            # pyserial reports a pulled stick as "device reports readiness to read but
            # returned no data" or EIO; a closed pty can surface as TypeError inside it.
            raise SourceGone(f"{self.url} stopped answering: {error}") from None
        return [Chunk(None, data)] if data else []

    def write(self, data: bytes) -> None:
        import serial  # noqa: PLC0415

        port = self._port
        try:
            port.write(data)
            port.flush()
        except (serial.SerialException, OSError) as error:
            raise SourceGone(f"cannot write to {self.url}: {error}") from None

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()


class TcpClientSource(Source):
    """A TCP server to connect to: an ESP32 stream server, ser2net, a network stick."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.description = f"tcp://{host}:{port}"
        self._socket: socket.socket | None = None

    def open(self) -> None:
        try:
            self._socket = socket.create_connection(self.address, timeout=10)
        except OSError as error:
            raise SourceGone(f"cannot connect to {self.description}: {error}") from None

    def read(self, timeout: float) -> list[Chunk]:
        assert self._socket is not None
        try:
            if not _wait_readable([self._socket], timeout):
                return []
            data = self._socket.recv(65536)
        except OSError as error:
            raise SourceGone(f"{self.description} failed: {error}") from None
        if not data:
            raise SourceGone(f"{self.description} closed the connection")
        return [Chunk(None, data)]

    def write(self, data: bytes) -> None:
        assert self._socket is not None
        try:
            self._socket.sendall(data)
        except OSError as error:
            raise SourceGone(f"cannot write to {self.description}: {error}") from None

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()


@dataclass(frozen=True, slots=True)
class _Sender:
    """A connection of a TCP listener: who, and its stream (its own framer)."""

    peer: tuple[str, int]
    stream: int


#: Why a TCP listener closed a sender's connection (the `reason` of its metric).
CLOSED_REASONS = ("idle", "replaced", "refused")


class TcpServerSource(Source):
    """Listens for senders: ESPHome's socket_transmitter connects once per telegram, bridges
    stay connected; every connection is its own stream (its own framer).

    At most `MAX_CLIENTS` connections (plumbing's `ConnectionLimit`): one silent for
    `idle_timeout` is closed, and when all are taken, the one silent longest gives way to a new
    sender if it has been silent for `REPLACE_AFTER` (otherwise, all being busy, the new one is
    refused). Each is counted in `closed_connections` by reason.
    """

    MAX_CLIENTS = 64
    REPLACE_AFTER = 2.0

    def __init__(
        self, host: str, port: int, *, idle_timeout: float = 300.0, max_clients: int = MAX_CLIENTS
    ) -> None:
        self.address = (host, port)
        self.description = f"tcp listen {host}:{port}"
        self.description_pl = f"tcp nasłuch {host}:{port}"
        self.idle_timeout = idle_timeout
        self.max_clients = max_clients
        self.closed_connections: Counter[str] = Counter(dict.fromkeys(CLOSED_REASONS, 0))
        self._server: socket.socket | None = None
        self._clients: dict[socket.socket, _Sender] = {}
        self._limit: ConnectionLimit[socket.socket, None] = ConnectionLimit(
            max_clients, replace_after=self.REPLACE_AFTER
        )
        self._streams = itertools.count()
        self._closed_log = RateLimitedLog(log, logging.WARNING)

    @property
    def port(self) -> int:
        """The bound port (useful when 0 asked the system for a free one)."""
        assert self._server is not None
        port: int = self._server.getsockname()[1]
        return port

    def open(self) -> None:
        try:
            family = listening_family(*self.address, socket.SOCK_STREAM)
            self._server = socket.create_server(self.address, family=family, backlog=128)
        except OSError as error:
            raise SourceGone(
                f"cannot listen on {self.address[0]}:{self.address[1]}: {error}"
            ) from None

    def read(self, timeout: float) -> list[Chunk]:
        assert self._server is not None
        now = time.monotonic()
        idle = self._limit.waiting_longer(self.idle_timeout, now)
        chunks = [chunk for sock in idle for chunk in self._close(sock, "idle")]
        ready = _wait_readable([self._server, *self._clients], timeout)
        now = time.monotonic()
        for sock in ready:
            if sock is self._server:
                chunks += self._accept(now)
                continue
            sender = self._clients.get(sock)
            if sender is None:  # closed to make room a moment ago
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data:
                self._limit.mark(sock, None, now)
                chunks.append(Chunk(sender.stream, data))
            else:
                chunks += self._close(sock)
        return chunks

    def _accept(self, now: float) -> list[Chunk]:
        assert self._server is not None
        try:
            client, peer = self._server.accept()
        except OSError as error:  # out of file descriptors: do not spin
            log.warning("%s: cannot accept a connection: %s", self.description, error)
            time.sleep(0.1)
            return []
        admission = self._limit.admit(client, None, now)
        if not admission.admitted:
            self._note("refused", f"all {self.max_clients} connections are busy", peer)
            client.close()
            return []
        chunks = [] if admission.replaced is None else self._close(admission.replaced, "replaced")
        self._clients[client] = _Sender(peer, next(self._streams))
        return chunks

    def _close(self, sock: socket.socket, reason: str | None = None) -> list[Chunk]:
        """Close one connection (its framer gets the end of its stream)."""
        sender = self._clients.pop(sock)
        self._limit.remove(sock)
        if reason is not None:
            why = {
                "idle": f"silent for more than {self.idle_timeout:g} s",
                "replaced": f"the longest silent of {self.max_clients}, for a new sender",
            }[reason]
            self._note(reason, why, sender.peer)
        sock.close()
        return [Chunk(sender.stream, b"", ended=True)]

    def _note(self, reason: str, why: str, peer: tuple[str, int]) -> None:
        """Count a closed connection; log it at most once a minute per reason."""
        self.closed_connections[reason] += 1
        self._closed_log(
            "%s: closed the connection from %s (%s)", self.description, peer[0], why, key=reason
        )

    def close(self) -> None:
        for client in self._clients:
            client.close()
            self._limit.remove(client)
        self._clients.clear()
        server, self._server = self._server, None
        if server is not None:
            server.close()


class UdpSource(Source):
    """UDP datagrams, one telegram (or line) each, from any sender."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.description = f"udp listen {host}:{port}"
        self.description_pl = f"udp nasłuch {host}:{port}"
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        assert self._socket is not None
        port: int = self._socket.getsockname()[1]
        return port

    def open(self) -> None:
        try:
            family = listening_family(*self.address, socket.SOCK_DGRAM)
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as error:
            raise SourceGone(f"cannot listen on udp {self.address}: {error}") from None
        try:
            sock.bind(self.address)
        except OSError as error:
            sock.close()
            raise SourceGone(f"cannot listen on udp {self.address}: {error}") from None
        self._socket = sock

    def read(self, timeout: float) -> list[Chunk]:
        assert self._socket is not None
        if not _wait_readable([self._socket], timeout):
            return []
        data, sender = self._socket.recvfrom(65536)
        return [Chunk(sender, data, ended=True)]

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()


def _signal_group(group: int, number: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, number)


def _group_alive(group: int) -> bool:
    """Whether any process of the group is left (signal 0 checks without sending)."""
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class ProcessSource(Source):
    """A command's standard output, e.g. `rtl_sdr ... | rtl_wmbus` or `mosquitto_sub ...`.

    Run through the shell so pipelines work (the configuration is trusted like code: whoever
    can write it can run commands as the exporter's user); its stderr goes to the log. The
    command runs in a session of its own, so a stop ends every process of its pipeline. When
    it exits, the receiver starts it again after the backoff.
    """

    STOP_WAIT = 5.0  # seconds the pipeline has to end after SIGTERM before SIGKILL

    def __init__(self, command: str) -> None:
        self.command = command
        program = shlex.split(command)[0] if command.strip() else "?"
        self.description = f"command {program}"
        self.description_pl = f"polecenie {program}"
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr_thread: threading.Thread | None = None

    def open(self) -> None:
        try:
            self._process = subprocess.Popen(  # the user's own pipeline
                self.command,
                shell=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as error:
            raise SourceGone(f"cannot start {self.description}: {error}") from None
        stderr = self._process.stderr
        assert stderr is not None
        self._stderr_thread = threading.Thread(
            target=self._log_stderr, args=(stderr,), name="stderr", daemon=True
        )
        self._stderr_thread.start()

    def _log_stderr(self, stream: IO[bytes]) -> None:
        for line in stream:
            log.info("%s: %s", self.description, line.decode("utf-8", "replace").rstrip())

    def read(self, timeout: float) -> list[Chunk]:
        process = self._process
        assert process is not None and process.stdout is not None
        stdout = process.stdout
        if not _wait_readable([stdout], timeout):
            return []
        data = stdout.read1(65536)  # type: ignore[attr-defined]
        if not data:
            code = process.wait(timeout=5)
            raise SourceGone(f"{self.description} exited with status {code}")
        return [Chunk(None, data)]

    def close(self) -> None:
        """End the whole process group (the shell and every command of its pipeline): SIGTERM,
        then SIGKILL to what is left after `STOP_WAIT` seconds."""
        process, self._process = self._process, None
        if process is None:
            return
        group = process.pid  # start_new_session: the shell leads its own process group
        deadline = time.monotonic() + self.STOP_WAIT
        _signal_group(group, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=self.STOP_WAIT)
        while _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.02)  # the rest of the pipeline heard SIGTERM too and is exiting
        if _group_alive(group):
            _signal_group(group, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=self.STOP_WAIT)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


class StreamSource(Source):
    """An already open binary stream, such as standard input; its end is the end."""

    def __init__(self, stream: IO[bytes], description: str = "stdin") -> None:
        self.stream = stream
        self.description = description
        self.description_pl = "standardowe wejście" if description == "stdin" else ""

    def open(self) -> None:
        return None

    def read(self, timeout: float) -> list[Chunk]:
        if not _wait_readable([self.stream], timeout):
            return []
        data = self.stream.read1(65536)  # type: ignore[attr-defined]
        if not data:
            raise SourceFinished(f"{self.description} ended")
        return [Chunk(None, data)]

    def close(self) -> None:
        return None


_OFFSET = re.compile(rb"\+(\d+(?:\.\d+)?)\s*$")


class ReplaySource(Source):
    """A file of telegram lines, as fast as possible or in real time: a line ending in `+N`
    (the wmbusmeters simulation form) is due N seconds after the replay started."""

    def __init__(self, path: Path, *, realtime: bool = False) -> None:
        self.path = path
        self.realtime = realtime
        self.description = f"replay {path}"
        self.description_pl = f"odtwarzanie {path}"
        self._lines: list[bytes] = []
        self._started = 0.0

    def open(self) -> None:
        try:
            lines = self.path.read_bytes().split(b"\n")  # at LF only, as every line reader
        except OSError as error:
            raise SourceFinished(f"cannot read {self.path}: {error}") from None
        if not lines[-1]:
            lines.pop()
        self._lines = [line + b"\n" for line in reversed(lines)]
        self._started = time.monotonic()

    def read(self, timeout: float) -> list[Chunk]:
        if not self._lines:
            raise SourceFinished(f"{self.description} ended")
        line = self._lines[-1]
        offset = _OFFSET.search(line) if self.realtime else None
        if offset is not None:
            due = self._started + float(offset.group(1))
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, timeout))
                if wait > timeout:
                    return []
        self._lines.pop()
        return [Chunk(None, line)]

    def close(self) -> None:
        self._lines = []


class SimulatorSource(Source):
    """Meters as a receiver: a hex line per telegram, every `interval` seconds per meter.

    With `realtime`, telegrams are spaced in wall-clock time; otherwise they come as fast as
    the reader takes them, with the meters' clocks advancing by `interval` each (bounded by
    `count` telegrams, then the input ends).
    """

    def __init__(
        self,
        meters: list[SimulatedMeter],
        *,
        interval: float = 5.0,
        realtime: bool = True,
        count: int | None = None,
    ) -> None:
        if not meters:
            raise ValueError("a simulator needs at least one meter")
        self.meters = meters
        self.interval = interval
        self.realtime = realtime
        self.count = count
        self.description = f"simulator ({len(meters)} meter{'s' if len(meters) > 1 else ''})"
        self.description_pl = f"symulator ({meters_pl(len(meters))})"
        self._sent = 0
        self._clock = datetime.now(UTC)
        self._due = 0.0

    def open(self) -> None:
        self._due = time.monotonic()

    def read(self, timeout: float) -> list[Chunk]:
        if self.count is not None and self._sent >= self.count:
            raise SourceFinished(f"{self.description}: all {self.count} telegrams sent")
        if self.realtime:
            wait = self._due - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, timeout))
                if wait > timeout:
                    return []
            now = datetime.now(UTC)
            self._due += self.interval / len(self.meters)
        else:
            self._clock += timedelta(seconds=self.interval / len(self.meters))
            now = self._clock
        meter = self.meters[self._sent % len(self.meters)]
        self._sent += 1
        frame, _ = meter.telegram(now)
        return [Chunk(None, frame.hex().upper().encode() + b"\n")]

    def close(self) -> None:
        return None
