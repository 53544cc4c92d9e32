"""I/O around the framers: serial ports, sockets, processes, files; reconnects and a watchdog.

A `Source` owns one file descriptor, socket or process and hands over chunks of bytes. A
`Receiver` runs one source in a thread: it opens it, runs the dialect's session (stick set to
T1, acknowledgement awaited, configuration read back), feeds a framer per stream, delivers
frames, and reopens with capped exponential backoff when the source vanishes or stays silent.
Every wait is a blocking read or select with a timeout: an idle receiver never spins.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import select
import shlex
import socket
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .receivers.base import Dialect, Frame, FrameError, Framer, LinkMode, Reply, Step

log = logging.getLogger(__name__)

READ_WAIT = 0.5  # longest single wait, so that stop() is honoured quickly


class SourceGone(Exception):
    """The device, connection or process went away; the receiver reopens it later."""


class SourceFinished(Exception):
    """The input ended for good (stdin, a replay file); the receiver stops."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes from one stream of a source; `ended` closes that stream (its framer is flushed)."""

    stream: Hashable
    data: bytes
    ended: bool = False


class Source(ABC):
    """Where bytes come from. `read` waits at most `timeout` seconds and may return nothing."""

    description: str

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self, timeout: float) -> list[Chunk]: ...

    def write(self, data: bytes) -> None:
        raise SourceGone(f"{self.description} cannot take commands")

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


class TcpServerSource(Source):
    """Listens for senders: ESPHome's socket_transmitter connects once per telegram, bridges
    stay connected; every connection is its own stream (its own framer)."""

    MAX_CLIENTS = 64

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.description = f"tcp listen {host}:{port}"
        self._server: socket.socket | None = None
        self._clients: dict[socket.socket, tuple[str, int]] = {}

    @property
    def port(self) -> int:
        """The bound port (useful when 0 asked the system for a free one)."""
        assert self._server is not None
        port: int = self._server.getsockname()[1]
        return port

    def open(self) -> None:
        try:
            self._server = socket.create_server(self.address, reuse_port=False)
        except OSError as error:
            raise SourceGone(
                f"cannot listen on {self.address[0]}:{self.address[1]}: {error}"
            ) from None

    def read(self, timeout: float) -> list[Chunk]:
        assert self._server is not None
        ready = _wait_readable([self._server, *self._clients], timeout)
        chunks: list[Chunk] = []
        for sock in ready:
            if sock is self._server:
                client, peer = self._server.accept()
                if len(self._clients) >= self.MAX_CLIENTS:
                    client.close()
                    log.warning("%s: too many connections, refused %s", self.description, peer)
                    continue
                self._clients[client] = peer
                continue
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data:
                chunks.append(Chunk(sock.fileno(), data))
            else:
                chunks.append(Chunk(sock.fileno(), b"", ended=True))
                del self._clients[sock]
                sock.close()
        return chunks

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        server, self._server = self._server, None
        if server is not None:
            server.close()


class UdpSource(Source):
    """UDP datagrams, one telegram (or line) each, from any sender."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.description = f"udp listen {host}:{port}"
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        assert self._socket is not None
        port: int = self._socket.getsockname()[1]
        return port

    def open(self) -> None:
        family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
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


class ProcessSource(Source):
    """A command's standard output, e.g. `rtl_sdr ... | rtl_wmbus` or `mosquitto_sub ...`.

    Run through the shell so pipelines work; its stderr goes to the log. When it exits, the
    receiver starts it again after the backoff.
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.description = f"command {shlex.split(command)[0] if command.strip() else '?'}"
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
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


class StreamSource(Source):
    """An already open binary stream, such as standard input; its end is the end."""

    def __init__(self, stream: IO[bytes], description: str = "stdin") -> None:
        self.stream = stream
        self.description = description

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
        self._lines: list[bytes] = []
        self._started = 0.0

    def open(self) -> None:
        try:
            self._lines = self.path.read_bytes().splitlines(keepends=True)
        except OSError as error:
            raise SourceFinished(f"cannot read {self.path}: {error}") from None
        self._lines.reverse()
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
        return [Chunk(None, line if line.endswith(b"\n") else line + b"\n")]

    def close(self) -> None:
        self._lines = []


class SessionFailed(Exception):
    """A stick did not accept its set-up; the message says which step and why."""


@dataclass
class ReceiverStats:
    """What one receiver did, for metrics and the status page (updated by its thread)."""

    name: str
    description: str
    frames: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    last_frame_at: float | None = None
    up: bool = False
    down_reason: str | None = "starting"

    def copy(self) -> ReceiverStats:
        return ReceiverStats(
            self.name,
            self.description,
            self.frames,
            Counter(self.errors),
            self.reconnects,
            self.last_frame_at,
            self.up,
            self.down_reason,
        )


FrameSink = Callable[[str, Frame], None]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter: 1, 2, 4 ... seconds, at most `cap`."""

    first: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.first * 2.0**attempt) * random.uniform(0.5, 1.0)


DEFAULT_BACKOFF = Backoff()


class Receiver:
    """One source, its dialect and its thread: frames to `sink`, statistics in `stats`."""

    SESSION_ATTEMPTS = 3

    def __init__(
        self,
        name: str,
        source: Source,
        dialect: Dialect,
        sink: FrameSink,
        *,
        mode: LinkMode = LinkMode.T1,
        silence_timeout: float | None = 600.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        reply_timeout: float | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.dialect = dialect
        self.sink = sink
        self.mode = mode
        self.silence_timeout = silence_timeout
        self.backoff = backoff
        self.reply_timeout = reply_timeout  # overrides the steps' own waits (tests, slow links)
        self._lock = threading.Lock()
        self._stats = ReceiverStats(name, source.description)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"receiver {name}", daemon=True)
        self._framers: dict[Hashable, Framer] = {}
        self.finished = threading.Event()

    @property
    def stats(self) -> ReceiverStats:
        with self._lock:
            return self._stats.copy()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        attempt = 0
        try:
            while not self._stop.is_set():
                try:
                    self._open_and_receive()
                    return
                except SourceFinished as end:
                    self._down(str(end))
                    log.info(
                        "receiver %s finished: %s (%d frames)", self.name, end, self._stats.frames
                    )
                    return
                except (SourceGone, SessionFailed, OSError) as error:
                    reason = str(error)
                    self._down(reason)
                finally:
                    self.source.close()
                delay = self.backoff.delay(attempt)
                attempt += 1
                log.warning("receiver %s down: %s; retrying in %.1f s", self.name, reason, delay)
                if self._stop.wait(delay):
                    return
                with self._lock:
                    self._stats.reconnects += 1
        finally:
            self.finished.set()

    def _down(self, reason: str) -> None:
        with self._lock:
            self._stats.up = False
            self._stats.down_reason = reason

    def _open_and_receive(self) -> None:
        self._framers = {}
        self.source.open()
        self._run_session()
        with self._lock:
            self._stats.up = True
            self._stats.down_reason = None
        log.info("receiver %s up: %s", self.name, self.source.description)
        heard = time.monotonic()
        while not self._stop.is_set():
            if self._receive(READ_WAIT, None)[0]:
                heard = time.monotonic()
            elif self.silence_timeout is not None:
                silent = time.monotonic() - heard
                if silent > self.silence_timeout:
                    raise SourceGone(
                        f"heard nothing for {silent:.0f} s (watchdog at "
                        f"{self.silence_timeout:.0f} s); reopening"
                    )

    def _receive(self, timeout: float, waiting_for: Step | None) -> tuple[bool, Reply | None]:
        """Read once and deliver the frames: whether any arrived, and the awaited reply."""
        heard = False
        reply: Reply | None = None
        chunks = self.source.read(timeout)
        now = time.time()
        for chunk in chunks:
            framer = self._framers.get(chunk.stream)
            if framer is None:
                framer = self._framers[chunk.stream] = self.dialect.framer()
            events = framer.feed(chunk.data, now) if chunk.data else []
            if chunk.ended:
                events += framer.end(now)
                del self._framers[chunk.stream]
            for event in events:
                if isinstance(event, Frame):
                    self._deliver(event)
                    heard = True
                elif isinstance(event, FrameError):
                    with self._lock:
                        self._stats.errors[event.reason.value] += 1
                    log.debug("receiver %s: %s: %s", self.name, event.reason.value, event.detail)
                elif waiting_for is not None and reply is None and waiting_for.accepts(event):
                    reply = event
        return heard, reply

    def _deliver(self, frame: Frame) -> None:
        with self._lock:
            self._stats.frames += 1
            self._stats.last_frame_at = frame.received_at
        self.sink(self.name, frame)

    def _run_session(self) -> None:
        steps = self.dialect.session(self.mode)
        problem = ""
        for _ in range(self.SESSION_ATTEMPTS):
            problem = self._try_session(steps)
            if not problem:
                return
            log.info("receiver %s: %s; trying again", self.name, problem)
        raise SessionFailed(problem)

    def _try_session(self, steps: list[Step]) -> str:
        """Run every step once; '' when all were acknowledged, else what went wrong."""
        for step in steps:
            self.source.write(step.command)
            if not step.timeout:
                continue
            timeout = self.reply_timeout or step.timeout
            deadline = time.monotonic() + timeout
            reply: Reply | None = None
            while reply is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return f"no answer to '{step.description}' within {timeout:g} s"
                reply = self._receive(min(remaining, READ_WAIT), step)[1]
            verdict = step.verdict(reply)
            if verdict:
                return f"'{step.description}' refused: {verdict}"
        return ""
