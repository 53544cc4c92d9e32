"""The MQTT output: one thread around the publisher and one paho client (docs/contracts.md,
section 7).

How the work is shared: `submit` (a receiver's thread) only puts the update into a bounded
queue and `meters_changed` (the daemon's thread) only notes the new meters; neither waits on
the network. One thread, the output's own, does everything else in turns. It connects and waits
for the broker's answer (`net.connect`); it takes the queued updates (gathering for 20 ms after
a wake-up, so one wake-up serves many), asks the `Publisher` what to send and hands that to
paho; it alone drives paho's network loop (`client.loop`: reading acknowledgements and Home
Assistant's birth, writing, keeping alive), so paho starts no thread and its callbacks run in
this thread, inside `loop`; once a second it looks at the meters' silence. When a connection is
refused or lost, it waits out the backoff still taking updates, so that the states sent after
the next connect are the latest. A new paho client serves each connection; nothing queued for
a lost one survives it, and the publisher sends everything again after the next connect.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ...config import MqttConfig
from ...net import CONNACK_TIMEOUT, CONNECT_REASONS, STOPPED, Problem, connect, lost, paho_client
from ...pipeline import MeterUpdate, Output
from ...plumbing import Backoff
from .publisher import Message, Publisher

if TYPE_CHECKING:
    import paho.mqtt.client as paho

    from ...pipeline import State

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # updates waiting for the thread; beyond it they are dropped and counted
MAX_PENDING = 500  # messages handed to paho and not yet sent (QoS 0) or acknowledged
MAX_INFLIGHT = 100
BACKOFF = Backoff(first=1.0, cap=60.0)
STALE_CHECK = 1.0  # seconds between looks at the meters' silence
GATHER = 0.02  # seconds the thread waits after a wake-up for more updates (thread switches cost)
SERVICE = 0.1  # seconds at most between the thread's looks at the connection
PATIENCE = 30.0  # seconds a message waits for room among the pending ones before it is dropped
GOODBYE_TIMEOUT = 2.0
#: The reasons of `amiplus_mqtt_errors_total`, all shown from the start.
ERROR_REASONS = (*CONNECT_REASONS, "connection_lost", "queue_full", "publish")


class MqttOutput(Output):
    """Publishes every accepted reading to an MQTT broker, with Home Assistant discovery."""

    name = "mqtt"

    def __init__(self, config: MqttConfig, state: State) -> None:
        self.mqtt = paho_client("the mqtt output")  # a clear error now if paho-mqtt is missing
        self.config = config
        self.state = state
        self.broker = replace(config.broker, client_id=config.client_name)
        self.publisher = Publisher(config, state.keys(), time.time())
        self._queue: queue.Queue[MeterUpdate | None] = queue.Queue(QUEUE_SIZE)
        self._reloads: deque[set[str]] = deque()  # the configured meters after each reload
        self._outbox: list[Message] = []  # what paho's callbacks asked the publisher for
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._lost: Problem | None = None  # why the current connection ended
        self._lock = threading.Lock()  # guards `errors`
        self.errors: Counter[str] = Counter(dict.fromkeys(ERROR_REASONS, 0))
        self.published = 0  # written by the output's thread only (paho's callback)
        self._sent = 0  # handed to paho on this connection
        self._done = 0  # of them sent or acknowledged
        self.problem: Problem | None = None
        self._logged: Problem | None = None
        self.since = time.time()  # of the current state: connected, or failing
        self.retry_at: float | None = None
        self._next_check = time.monotonic() + STALE_CHECK
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)

    # --- the Output interface (any thread)

    def start(self) -> None:
        self._thread.start()
        log.info(
            "MQTT output to %s, base topic %s, Home Assistant discovery %s",
            self.broker.where,
            self.config.base_topic,
            self.config.discovery_prefix or "off",
        )

    def submit(self, update: MeterUpdate) -> None:
        """Queue a reading for the thread; when the queue is full it is dropped and counted."""
        try:
            self._queue.put_nowait(update)
        except queue.Full:
            self._count("queue_full")

    def meters_changed(self, meters: Mapping[str, str]) -> None:
        self._reloads.append(set(meters))
        self._wake()

    def stop(self) -> None:
        """Say `offline` on the status topic, disconnect and end the thread (a few seconds)."""
        self._stopping.set()
        self._wake()
        self._thread.join(timeout=CONNACK_TIMEOUT)

    def status(self) -> dict[str, Any]:
        problem = self.problem
        return {
            "broker": self.broker.where,
            "client_id": self.broker.client_id,
            "base_topic": self.config.base_topic,
            "discovery_prefix": self.config.discovery_prefix,
            "connected": self._connected.is_set(),
            "since": self.since,
            "last_error": problem.message if problem else "",
            "error_reason": problem.reason if problem else "",
            "retry_at": self.retry_at,
            "messages_published": self.published,
            "updates_dropped": self.errors["queue_full"],
            "queued_updates": self._queue.qsize(),
            "meters": self.publisher.stated,
            "errors": {k: v for k, v in dict(self.errors).items() if v},
        }

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "amiplus_mqtt_connected",
            "1 while the MQTT output is connected to its broker.",
            value=1 if self._connected.is_set() else 0,
        )
        yield CounterMetricFamily(
            "amiplus_mqtt_messages_published",
            "MQTT messages the broker took (QoS 1 and 2: acknowledged; QoS 0: sent).",
            value=self.published,
        )
        errors = CounterMetricFamily(
            "amiplus_mqtt_errors",
            "MQTT connection failures and messages not sent, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(dict(self.errors).items()):
            errors.add_metric([reason], count)
        yield errors

    def _count(self, reason: str) -> None:
        with self._lock:
            self.errors[reason] += 1

    def _wake(self) -> None:
        with contextlib.suppress(queue.Full):  # a full queue: the thread is busy anyway
            self._queue.put_nowait(None)

    # --- the output's thread: connections

    def _run(self) -> None:
        """Connect, serve the connection until it ends, wait out the backoff; until stopped.
        The backoff starts again from its first delay after a connection the broker accepted."""
        attempt = 0
        while not self._stopping.is_set():
            try:
                opened = connect(
                    self.broker,
                    will=self.publisher.will,
                    prepare=self._prepare,
                    stop=self._stopping,
                )
                problem: Problem | None
                if isinstance(opened, Problem):
                    attempt += 1
                    problem = None if opened.reason == STOPPED else opened
                else:
                    attempt = 0
                    problem = self._serve(opened)
            except Exception as error:  # a bug here must not end the output
                log.exception("MQTT output: unexpected error")
                attempt += 1
                problem = Problem("connection", f"unexpected {type(error).__name__}; see the log")
            if problem is None or self._stopping.is_set():
                break
            self._count(problem.reason)
            delay = BACKOFF.delay(attempt - 1)
            self.retry_at = time.time() + delay
            self._failed(problem, delay)
            until = time.monotonic() + delay
            while not self._stopping.is_set() and time.monotonic() < until:
                self._turn(None, until)
        self.retry_at = None

    def _serve(self, client: paho.Client) -> Problem | None:
        """One accepted connection until it is lost (why) or the output stops (None); it ends
        with a clean disconnect (no will), which a lost connection no longer needs."""
        try:
            self._up(client)
            self._send(client, self.publisher.connect(time.monotonic()))
            while self._lost is None and not self._stopping.is_set():
                self._turn(client, time.monotonic() + SERVICE)
            if self._stopping.is_set():
                self._goodbye(client)
                return None
            return self._lost
        finally:
            self._connected.clear()
            self.publisher.disconnected()
            self._outbox.clear()
            with contextlib.suppress(Exception):
                client.disconnect()

    def _prepare(self, client: paho.Client) -> None:
        """Callbacks and limits of a new client, before it connects."""
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.max_queued_messages_set(MAX_PENDING)

    def _up(self, client: paho.Client) -> None:
        """The broker accepted the connection: subscribe, say so, count from here."""
        client.on_disconnect = self._on_disconnect
        for topic in self.publisher.subscriptions:
            client.subscribe(topic, qos=1)
        self._lost = None
        self._sent = self._done = 0
        again = " again" if self.problem is not None else ""
        log.info("MQTT: connected to %s%s", self.broker.where, again)
        self.problem = self._logged = None
        self.since = time.time()
        self.retry_at = None
        self._connected.set()

    def _failed(self, problem: Problem, delay: float) -> None:
        if self.problem is None:
            self.since = time.time()
        self.problem = problem
        if problem != self._logged:
            log.warning(
                "MQTT: %s; retrying in %.0f s, then at growing intervals up to %.0f s (said "
                "again when the reason changes)",
                problem.message,
                delay,
                BACKOFF.cap,
            )
            self._logged = problem

    def _goodbye(self, client: paho.Client) -> None:
        """`offline` on the status topic, acknowledged (up to 2 s) before the clean disconnect:
        the broker sends no will then."""
        message = self.publisher.goodbye()
        info = client.publish(message.topic, message.payload, message.qos, message.retain)
        deadline = time.monotonic() + GOODBYE_TIMEOUT
        while info.rc == self.mqtt.MQTT_ERR_SUCCESS and not info.is_published():
            if self._lost is not None or time.monotonic() > deadline:
                break
            self._loop(client, 0.05)

    # --- the output's thread: turns

    def _turn(self, client: paho.Client | None, until: float) -> None:
        """Wait for updates until `until` at most (or the next look at the meters' silence),
        then do what they and the connection ask. Without a client nothing is sent: the
        publisher only remembers."""
        wait = min(until, self._next_check) - time.monotonic()
        try:
            first = self._queue.get(timeout=max(0.0, wait))
        except queue.Empty:
            first = None
        if first is not None:
            self._stopping.wait(GATHER)  # let a few come: one wake-up for them all
        try:
            self._work(client, first)
        except Exception:  # a bug here must not end the output
            log.exception("MQTT output: unexpected error")

    def _work(self, client: paho.Client | None, first: MeterUpdate | None) -> None:
        publisher = self.publisher
        while self._reloads:
            self._send(client, publisher.meters_changed(self._reloads.popleft()))
        outbox, self._outbox = self._outbox, []
        self._send(client, outbox)
        self._send(client, publisher.due(time.monotonic()))
        for update in self._gathered(first):
            self._send(client, publisher.reading(update))
        if time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + STALE_CHECK
            self._send(client, publisher.silence(time.time(), self.state.silences()))
            self._send(client, publisher.retry(MAX_PENDING - (self._sent - self._done)))
        if client is not None and self._lost is None:
            self._loop(client, 0.0)

    def _gathered(self, first: MeterUpdate | None) -> Iterator[MeterUpdate]:
        """`first` and whatever else is queued now."""
        update = first
        while True:
            if update is not None:
                yield update
            try:
                update = self._queue.get_nowait()
            except queue.Empty:
                return

    def _send(self, client: paho.Client | None, messages: Iterable[Message]) -> None:
        """Hand the messages to paho; tell the publisher which were dropped."""
        for message in messages:
            if client is None or not self._publish(client, message):
                self.publisher.dropped(message)

    def _publish(self, client: paho.Client, message: Message) -> bool:
        """Hand one message to paho, waiting up to PATIENCE for room among the pending ones;
        a message without room is dropped and counted. Waiting holds up only this thread: the
        queue in front of it is the bound, and what it drops is counted."""
        deadline = time.monotonic() + PATIENCE
        while self._sent - self._done >= MAX_PENDING and self._lost is None:
            if time.monotonic() > deadline or self._stopping.is_set():
                self._count("queue_full")
                return False
            self._loop(client, 0.01)
        if self._lost is not None:
            return False
        info = client.publish(message.topic, message.payload, message.qos, message.retain)
        if info.rc == self.mqtt.MQTT_ERR_SUCCESS:
            self._sent += 1
            return True
        if info.rc == self.mqtt.MQTT_ERR_QUEUE_SIZE:
            self._count("queue_full")
        elif info.rc != self.mqtt.MQTT_ERR_NO_CONN:
            self._count("publish")
        return False

    def _loop(self, client: paho.Client, timeout: float) -> None:
        """Let paho read (acknowledgements, Home Assistant's birth), write and keep alive."""
        if client.loop(timeout) != self.mqtt.MQTT_ERR_SUCCESS and self._lost is None:
            self._lost = lost(None, self.broker.where)

    # --- paho's callbacks (in the output's thread, inside `client.loop`)

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, code: Any, _: Any
    ) -> None:
        self._connected.clear()
        if self._lost is None:
            self._lost = lost(code, self.broker.where)

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, code: Any, _: Any) -> None:
        self._done += 1
        self.published += 1

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        """Home Assistant's status: what the publisher answers is sent after `loop` returns."""
        answer = self.publisher.home_assistant(
            bytes(message.payload), bool(message.retain), time.monotonic()
        )
        self._outbox += answer
