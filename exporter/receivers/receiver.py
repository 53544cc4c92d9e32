"""The receiver thread: one source, its dialect's session and framers, reconnects and a watchdog.

A `Receiver` opens its source, runs the dialect's session (stick set to T1, acknowledgement
awaited, configuration read back), feeds a framer per stream, delivers frames, and reopens with
capped exponential backoff when the source vanishes or stays silent. The backoff starts again
from its first step after a session that delivered frames, or that the far end accepted (an MQTT
broker), so a stick pulled out a second time, a broker restarted, or a source reopened by the
watchdog, is retried within a second or two. Statistics are kept per view (`views.py`): the
receiver's own, and one per gateway its source names.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable

from ..amiplus import (
    RECEIVER_BROKER,
    RECEIVER_FINISHED,
    RECEIVER_NO_ANSWER,
    RECEIVER_NO_PERMISSION,
    RECEIVER_SILENT,
    RECEIVER_UNAVAILABLE,
)
from ..plumbing import Backoff
from .base import Dialect, Frame, FrameError, Framer, LinkMode, Reply, SessionStep
from .sources import READ_WAIT, BrokerGone, NoPermission, Source, SourceFinished, SourceGone
from .views import ReceiverStats, Views

log = logging.getLogger(__name__)


class SessionFailed(Exception):
    """A stick did not accept its set-up; the message says which step and why."""


class Silent(SourceGone):
    """The watchdog's verdict: nothing heard for `silence_timeout`."""


#: Why a receiver is down, by what stopped it (the codes of `amiplus.explain`).
DOWN_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (SourceFinished, RECEIVER_FINISHED),
    (Silent, RECEIVER_SILENT),
    (SessionFailed, RECEIVER_NO_ANSWER),
    (NoPermission, RECEIVER_NO_PERMISSION),
    (BrokerGone, RECEIVER_BROKER),
    (OSError, RECEIVER_UNAVAILABLE),
    (SourceGone, RECEIVER_UNAVAILABLE),
)


FrameSink = Callable[[str, Frame], None]


DEFAULT_BACKOFF = Backoff()  # 1, 2, 4 ... seconds, at most a minute


class Receiver:
    """One source, its dialect and its thread: frames to `sink`, statistics in `views()` (the
    receiver's own first, then one per gateway for a source whose chunks name one)."""

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
        refused = 0 if source.names_gateways else None
        base = ReceiverStats(
            name, source.description, description_pl=source.description_pl, gateways_refused=refused
        )
        self._views = Views(base)
        self._stats = self._views.base
        self._delivered = 0  # frames of every view, written by the thread only
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"receiver {name}", daemon=True)
        self._framers: dict[Hashable, Framer] = {}
        self.finished = threading.Event()

    @property
    def stats(self) -> ReceiverStats:
        """The receiver's own view."""
        return self.views()[0]

    def views(self) -> list[ReceiverStats]:
        """Every view: the receiver's own first, then its gateways'."""
        with self._lock:
            views = self._views.snapshot()
        closed = self.source.closed_connections
        if closed is not None:
            views[0].closed_connections = Counter(closed)
        views[0].dropped = self.source.dropped
        return views

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (one that has not said it runs yet ends at its first look)."""
        self._stop.set()
        self.source.interrupt()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        attempt = 0
        try:
            while not self._stop.is_set():
                frames = self._delivered
                try:
                    self._open_and_receive()
                    return
                except SourceFinished as end:
                    self._down(end)
                    log.info(
                        "receiver %s finished: %s (%d frames)", self.name, end, self._delivered
                    )
                    return
                except (SourceGone, SessionFailed, OSError) as error:
                    reason = str(error)
                    self._down(error)
                finally:
                    accepted = self.source.accepted()
                    self.source.close()
                if self._delivered > frames or accepted:
                    attempt = 0  # a good session (frames, or a broker's yes): a new failure
                delay = self.backoff.delay(attempt)
                attempt += 1
                log.warning("receiver %s down: %s; retrying in %.1f s", self.name, reason, delay)
                if self._stop.wait(delay):
                    return
                with self._lock:
                    self._stats.reconnects += 1
        finally:
            self.finished.set()

    def _down(self, error: BaseException) -> None:
        code = next(code for kind, code in DOWN_CODES if isinstance(error, kind))
        with self._lock:
            self._stats.up = False
            self._stats.down_reason = str(error)
            self._stats.down_code = code

    def _open_and_receive(self) -> None:
        self._framers = {}
        self.source.open()
        self._run_session()
        with self._lock:
            self._stats.up = True
            self._stats.down_reason = self._stats.down_code = None
        log.info("receiver %s up: %s", self.name, self.source.description)
        heard = time.monotonic()
        while not self._stop.is_set():
            if self._receive(READ_WAIT, None)[0]:
                heard = time.monotonic()
            elif self.silence_timeout is not None:
                silent = time.monotonic() - heard
                if silent > self.silence_timeout:
                    raise Silent(
                        f"heard nothing for {silent:.0f} s (watchdog at "
                        f"{self.silence_timeout:.0f} s); reopening"
                    )

    def _receive(
        self, timeout: float, waiting_for: SessionStep | None
    ) -> tuple[bool, Reply | None]:
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
                    self._deliver(event, chunk.gateway)
                    heard = True
                elif isinstance(event, FrameError):
                    with self._lock:
                        view = self._views.of(chunk.gateway, time.monotonic())
                        view.errors[event.reason.value] += 1
                    log.debug("receiver %s: %s: %s", view.name, event.reason.value, event.detail)
                elif waiting_for is not None and reply is None and waiting_for.accepts(event):
                    reply = event
        return heard, reply

    def _deliver(self, frame: Frame, gateway: str | None) -> None:
        with self._lock:
            view = self._views.of(gateway, time.monotonic())
            view.frames += 1
            view.last_frame_at = frame.received_at
            name = view.name
        self._delivered += 1
        self.sink(name, frame)

    def _run_session(self) -> None:
        steps = self.dialect.session(self.mode)
        problem = ""
        for _ in range(self.SESSION_ATTEMPTS):
            problem = self._try_session(steps)
            if not problem:
                return
            log.info("receiver %s: %s; trying again", self.name, problem)
        raise SessionFailed(problem)

    def _try_session(self, steps: list[SessionStep]) -> str:
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
