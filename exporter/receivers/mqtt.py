"""An MQTT broker as a receiver's source: subscribe to topic filters and take each message as one
telegram in any form of the line grammar, or a binary frame (docs/receivers.md, "ESP32 gateways").

The receiver's thread owns the paho client, as the MQTT output's thread owns its own: `open`
connects (`net.connect`: the broker's answer waited for) and subscribes, waiting for the broker's
answer again; `read` drives paho's one network loop (waiting on its socket, then its reads,
writes and keep-alive). A message that finds it idle is followed by a wait of `GATHER` for more
(one wake-up then serves many: a cold pass through paho costs more than the message); then, for
at most `DRAIN` seconds, it takes whatever has arrived. Messages wait in the inbox for the
receiver's framers; it holds at most `INBOX_LIMIT`, beyond which a message is dropped and
counted (`dropped`), so a gateway's flood costs bounded memory and never stops the receiver. Each
message is a stream of its own that ends with it, named by its gateway (`TopicFilters`); a
retained message, which the broker kept from before the subscription, is an old telegram and is
skipped. A lost connection is `BrokerGone` once the messages taken before it are handed over; the
receiver reconnects after its backoff and subscribes again (a broker that restarted has
forgotten us).
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from typing import TYPE_CHECKING, Any

from ..net import CONNACK_TIMEOUT, Broker, Problem, connect, lost, paho_client
from .sources import BrokerGone, Chunk, Source
from .topics import TopicFilters

if TYPE_CHECKING:
    import paho.mqtt.client as paho

log = logging.getLogger(__name__)

INBOX_LIMIT = 1000  # messages taken and not yet handed to the receiver; beyond it, dropped
GATHER = 0.01  # seconds a read waits after a message for more, so that one wake-up serves many
DRAIN = 0.02  # seconds a read goes on taking messages that have already arrived
STEP = 0.1  # seconds between looks at the broker's answer (and at a stop) while subscribing
MISC_EVERY = 1.0  # seconds between paho's keep-alive looks (its own loop makes one per turn)


class MqttSource(Source):
    """Messages of the topics `topics` (filters) on `broker`, with subscription QoS `qos`."""

    names_gateways = True

    def __init__(
        self,
        broker: Broker,
        topics: tuple[str, ...],
        qos: int = 0,
        *,
        inbox_limit: int = INBOX_LIMIT,
    ) -> None:
        self.mqtt = paho_client("the mqtt receiver")
        self.broker = broker
        self.topics = topics
        self.qos = qos
        self.inbox_limit = inbox_limit
        self.description = f"{broker.where} {' '.join(topics)}"
        self.dropped: int = 0  # written by the receiver's thread only
        self._filters = TopicFilters(topics)
        self._client: paho.Client | None = None
        self._inbox: list[tuple[str, bytes]] = []
        self._granted: list[Any] | None = None  # the broker's answer to the subscription
        self._lost: Problem | None = None
        self._accepted = False
        self._stopping = threading.Event()
        self._next_misc = 0.0

    def open(self) -> None:
        self._inbox, self._granted, self._lost, self._accepted = [], None, None, False
        opened = connect(self.broker, prepare=self._prepare, stop=self._stopping)
        if isinstance(opened, Problem):
            raise BrokerGone(opened.message)
        self._client = opened
        opened.on_disconnect = self._on_disconnect
        self._subscribe(opened)
        self._accepted = True

    def _prepare(self, client: paho.Client) -> None:
        """Callbacks of a new client, before it connects (messages may come with the answer)."""
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe

    def _subscribe(self, client: paho.Client) -> None:
        """Subscribe to every filter and wait for the broker's answer; raises BrokerGone."""
        where = self.broker.where
        result, _ = client.subscribe([(topic, self.qos) for topic in self.topics])
        deadline = time.monotonic() + CONNACK_TIMEOUT
        while result == self.mqtt.MQTT_ERR_SUCCESS and self._granted is None:
            if self._lost is not None:
                raise BrokerGone(self._lost.message)
            if time.monotonic() > deadline or self._stopping.is_set():
                raise BrokerGone(f"{where} did not answer the subscription in time")
            self._loop(client, STEP)
        if self._granted is None:
            raise BrokerGone(f"cannot subscribe at {where}: {self.mqtt.error_string(result)}")
        granted = zip(self.topics, self._granted, strict=False)
        refused = [topic for topic, code in granted if code.is_failure]
        if refused:
            raise BrokerGone(
                f"{where} refused the subscription to {', '.join(refused)}: is the user allowed "
                "to read these topics (the broker's ACL)?"
            )

    def read(self, timeout: float) -> list[Chunk]:
        """Wait up to `timeout` for the socket, then take what has arrived. paho's loop is driven
        piece by piece, as its documentation offers an outside event loop: `loop_read` when the
        socket is readable, `loop_write` when paho has something to send, `loop_misc` (the
        keep-alive) once a second; cheaper per message than `client.loop`."""
        client = self._client
        assert client is not None
        sock = client.socket()
        if sock is None:
            self._check(self.mqtt.MQTT_ERR_NO_CONN)
        elif not self._inbox and self._lost is None:
            if getattr(sock, "pending", lambda: 0)():  # TLS: decrypted bytes wait in the socket
                timeout = 0.0
            descriptor = sock.fileno()
            writing = [descriptor] if client.want_write() else []
            readable, writable, _ = select.select([descriptor], writing, [], timeout)
            if writable:
                self._check(client.loop_write())
            if readable or not timeout:
                self._check(client.loop_read())
            if self._inbox and not select.select([descriptor], [], [], 0)[0]:
                self._stopping.wait(GATHER)  # idle till now: let a few more come, one wake-up
        now = time.monotonic()
        if now >= self._next_misc:
            self._next_misc = now + MISC_EVERY
            self._check(client.loop_misc())
        deadline = now + DRAIN
        while self._lost is None and time.monotonic() < deadline:
            taken = len(self._inbox) + self.dropped
            self._check(client.loop_read())
            if len(self._inbox) + self.dropped == taken:
                break  # nothing more has arrived
        inbox, self._inbox = self._inbox, []
        if not inbox and self._lost is not None:
            raise BrokerGone(self._lost.message)
        named = self._filters.gateway
        return [Chunk(None, data, ended=True, gateway=named(topic)) for topic, data in inbox]

    def _loop(self, client: paho.Client, timeout: float) -> None:
        """Let paho wait up to `timeout`, then read, write and keep alive."""
        self._check(client.loop(timeout))

    def _check(self, result: int) -> None:
        """A failed paho step means the connection is gone (its callback may say why first)."""
        if result != self.mqtt.MQTT_ERR_SUCCESS and self._lost is None:
            self._lost = lost(None, self.broker.where)

    def accepted(self) -> bool:
        return self._accepted

    def interrupt(self) -> None:
        self._stopping.set()

    def close(self) -> None:
        client, self._client = self._client, None
        self._accepted = False
        if client is not None:
            with contextlib.suppress(Exception):  # a clean goodbye where the socket still works
                client.disconnect()

    # --- paho's callbacks (in the receiver's thread, inside `loop`)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.retain:  # kept by the broker from before we subscribed: an old telegram
            return
        if len(self._inbox) >= self.inbox_limit:
            self.dropped += 1
            return
        try:
            topic = message.topic
        except UnicodeDecodeError:  # brokers check topics; this one did not
            topic = ""
        self._inbox.append((topic, bytes(message.payload)))

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, codes: list[Any], _: Any
    ) -> None:
        self._granted = codes

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, code: Any, _: Any
    ) -> None:
        if self._lost is None:
            self._lost = lost(code, self.broker.where)
