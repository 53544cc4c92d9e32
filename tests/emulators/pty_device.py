"""A serial device emulator on a pseudo-terminal, base of every stick emulator in the tests.

The exporter opens `emulator.path` (the slave side) like a USB tty; the emulator thread reads
the master side, hands complete host commands to `handle`, and writes replies and telegrams.
`unplug()` closes the master (reads on the slave then fail, as with a pulled USB stick).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from abc import ABC, abstractmethod
from collections.abc import Callable


class PtyDevice(ABC):
    """One emulated stick on one pseudo-terminal; a re-plug is a new instance (a new tty)."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.received = bytearray()  # every byte the host sent, for assertions
        self.commands: list[bytes] = []  # every complete command, in order
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pty {self.path}", daemon=True)
        self._thread.start()

    @abstractmethod
    def split_commands(self, buffer: bytearray) -> list[bytes]:
        """Remove and return the complete host commands at the start of `buffer`."""

    @abstractmethod
    def handle(self, command: bytes) -> None:
        """React to one host command (reply with `send`, change mode, or stay silent)."""

    def send(self, data: bytes, *, byte_by_byte: bool = False, pause: float = 0.002) -> None:
        """Write bytes towards the host, optionally one at a time with small pauses."""
        with self._lock:
            if self._closed.is_set():
                return
            if not byte_by_byte:
                os.write(self.master, data)
                return
            for byte in data:
                os.write(self.master, bytes((byte,)))
                time.sleep(pause)

    def unplug(self) -> None:
        """Close the master side: the host's next read fails like a removed USB stick."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            os.close(self.master)
        self._thread.join(timeout=5)

    def close(self) -> None:
        """Unplug and release the slave side too (fixture teardown)."""
        self.unplug()
        with contextlib.suppress(OSError):
            os.close(self.slave)

    def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0) -> bool:
        """Wait until `predicate()` is true (polling every 10 ms, bounded by `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return False

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self.master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            self.received += data
            self._buffer += data
            for command in self.split_commands(self._buffer):
                self.commands.append(command)
                self.handle(command)
