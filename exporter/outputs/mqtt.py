"""MQTT output and Home Assistant discovery (docs/contracts.md, section 7).

Per meter, one retained JSON state message with the meter's merged values, an availability
topic that turns `offline` while the meter is stale, and Home Assistant discovery for every
entity the meter has sent, derived from the field table. The exporter's own availability is
the broker's last will.

Two threads and no waiting in `submit`: receivers put updates into a bounded queue; a
connection thread connects, reads the broker's answer and reconnects with capped backoff, saying
why (once, then on change); once a connection is accepted, the worker alone uses it: it turns
updates into messages, writes them and reads the acknowledgements (no paho thread, so a message
costs no thread switches). A new paho client serves each connection, so nothing queued for a
lost one survives it: after a reconnect the worker republishes the latest state and discovery
of every meter. paho-mqtt is imported only when an `mqtt:` section is configured.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .. import __version__
from ..amiplus import (
    MAKERS,
    PHASES,
    TARIFFS,
    Field,
    FieldTable,
    HomeAssistant,
    Shape,
    model_of,
    table,
    values_as_json,
)
from ..config import DEFAULT_BASE_TOPIC, MqttConfig
from ..pipeline import MeterUpdate, Output
from ..plumbing import Backoff, import_extra

if TYPE_CHECKING:
    import paho.mqtt.client as paho

    from ..pipeline import State

log = logging.getLogger(__name__)

ONLINE, OFFLINE = "online", "offline"
QUEUE_SIZE = 1000  # updates waiting for the worker; beyond it they are dropped and counted
MAX_PENDING = 500  # messages handed to paho and not yet sent (QoS 0) or acknowledged
MAX_INFLIGHT = 100
KEEPALIVE = 60
CONNACK_TIMEOUT = 10.0
BACKOFF = Backoff(first=1.0, cap=60.0)
STALE_CHECK = 1.0  # seconds between looks at the meters' silence
GATHER = 0.02  # seconds the worker waits after a wake-up for more updates (thread switches cost)
SERVICE = 0.1  # seconds at most between the worker's looks at the connection
RESYNC_PATIENCE = 30.0  # seconds a republish waits for room among the pending messages
GOODBYE_TIMEOUT = 2.0
#: The reasons of `amiplus_mqtt_errors_total`, all shown from the start.
ERROR_REASONS = (
    "connection",
    "timeout",
    "tls",
    "unauthorized",
    "refused",
    "connection_lost",
    "queue_full",
    "publish",
)
ORIGIN = {"name": "amiplus-exporter", "sw_version": __version__}
RECEIVED_AT = "received_at"  # the state's receive time, besides the reading's keys

# --- entities and payloads: plain data, no I/O ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Entity:
    """One Home Assistant sensor of a meter: a field's total, tariff or phase."""

    key: str  # the last part of its unique_id and discovery topic
    name: str  # English, without the device name (Home Assistant puts that in front)
    template: str  # value_template over the state message
    classes: HomeAssistant


def _part_key(row: Field, part: str) -> str:
    """`energy_imported_kwh` + `t1` -> `energy_imported_t1_kwh` (the InfluxDB field names)."""
    suffix = f"_{row.unit.lower()}"
    return f"{row.key.removesuffix(suffix)}_{part}{suffix}"


def _row_entities(row: Field, ha: HomeAssistant) -> Iterator[Entity]:
    name, key = row.label.en, row.key
    if row.shape is Shape.PHASES:
        for phase in PHASES:
            yield Entity(
                _part_key(row, phase.value.lower()),
                f"{name} {phase.value}",
                f"{{{{ value_json.{key}.{phase.value} }}}}",
                ha,
            )
        return
    yield Entity(key, name, f"{{{{ value_json.{key} }}}}", ha)
    if row.shape is Shape.TARIFFS:
        for tariff in TARIFFS:
            yield Entity(
                _part_key(row, f"t{tariff}"),
                f"{name} tariff {tariff}",
                f"{{{{ value_json.{row.tariff_key}['{tariff}'] }}}}",
                ha,
            )


LAST_TELEGRAM = Entity(
    "last_telegram",
    "Last telegram",
    f"{{{{ value_json.{RECEIVED_AT} }}}}",
    HomeAssistant("timestamp", None, None, diagnostic=True),
)
#: A field's entity keys: its own key if it is one (not for per-phase fields), and where its
#: parts are (the tariff or phase map) with the key of each part.
Probe = tuple[str | None, str, dict[Any, str]]
SHARED_LAYOUTS = 256


@dataclass(frozen=True, slots=True)
class Entities:
    """The entities of one field table: every one by key, the probes that find a meter's, and
    the layouts seen (one tuple for every meter of one layout)."""

    every: dict[str, Entity]
    probes: tuple[Probe, ...]
    layouts: dict[tuple[str, ...], tuple[str, ...]]


def entities_of(fields: FieldTable) -> Entities:
    every: dict[str, Entity] = {}
    probes: list[Probe] = []
    for row in fields.rows:
        if row.home_assistant is None:
            continue
        every |= {entity.key: entity for entity in _row_entities(row, row.home_assistant)}
        if row.shape is Shape.PHASES:
            probes.append(
                (None, row.key, {p.value: _part_key(row, p.value.lower()) for p in PHASES})
            )
        elif row.shape is Shape.TARIFFS:
            parts = {t: _part_key(row, f"t{t}") for t in TARIFFS}
            probes.append((row.key, row.tariff_key, parts))
        else:
            probes.append((row.key, "", {}))
    every[LAST_TELEGRAM.key] = LAST_TELEGRAM
    return Entities(every, tuple(probes), {})


def entities() -> dict[str, Entity]:
    """Every entity a meter can have, by key, in the order of the field table."""
    return table().derived(entities_of).every


def entity_keys(values: Mapping[str, Any]) -> tuple[str, ...]:
    """The entities of the fields a meter has sent (its merged values), in table order; meters
    that sent the same fields share the tuple."""
    known = table().derived(entities_of)
    keys: list[str] = []
    for key, parts_key, parts in known.probes:
        if key is not None and values.get(key) is not None:
            keys.append(key)
        present = values.get(parts_key) if parts_key else None
        if present:
            keys.extend(parts[part] for part in sorted(present) if part in parts)
    keys.append(LAST_TELEGRAM.key)
    found = tuple(keys)
    layouts = known.layouts
    return layouts.setdefault(found, found) if len(layouts) < SHARED_LAYOUTS else found


def received_at_text(moment: float) -> str:
    """The receive time: ISO 8601, UTC, milliseconds."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


def state_payload(update: MeterUpdate) -> bytes:
    """The state message: the reading's identity, the meter's merged values as `decode` prints
    them, and the receive time; compact JSON."""
    out = update.reading.identity()
    out.update(values_as_json(update.values))
    out[RECEIVED_AT] = received_at_text(update.received_at)
    return _dumps(out)


def _dumps(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _slug(text: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in text)


@dataclass(frozen=True, slots=True)
class Identity:
    """What the device entry of a meter says about it."""

    name: str
    manufacturer: str  # the 3-letter code
    version: int
    device_type: int
    serial_number: str | None


class Topics:
    """Every topic of one configuration and the discovery documents that name them."""

    def __init__(self, config: MqttConfig) -> None:
        self.base = config.base_topic
        self.prefix = config.discovery_prefix
        self.qos = config.qos
        self.status = f"{self.base}/status"
        self.exporter_id = f"amiplus_exporter_{_slug(self.base)}"
        suffix = "" if self.base == DEFAULT_BASE_TOPIC else f" {self.base}"
        self.exporter_name = f"amiplus-exporter{suffix}"

    def state(self, meter: str) -> str:
        return f"{self.base}/{meter}/state"

    def availability(self, meter: str) -> str:
        return f"{self.base}/{meter}/availability"

    def discovery(self, meter: str, entity: str) -> str:
        return f"{self.prefix}/sensor/amiplus_{_slug(meter)}/{entity}/config"

    @property
    def exporter_discovery(self) -> str:
        return f"{self.prefix}/binary_sensor/{self.exporter_id}/status/config"

    @property
    def home_assistant_status(self) -> str:
        return f"{self.prefix}/status"

    def device(self, meter: str, identity: Identity) -> dict[str, Any]:
        code = identity.manufacturer
        model = model_of(code, identity.version, identity.device_type)
        device: dict[str, Any] = {
            "identifiers": [f"amiplus_{meter}"],
            "name": identity.name,
            "manufacturer": MAKERS.get(code, code),
            "model": model or f"{code} version {identity.version}",
        }
        if identity.serial_number:
            device["serial_number"] = identity.serial_number
        device["via_device"] = self.exporter_id
        return device

    def sensor(self, meter: str, identity: Identity, entity: Entity) -> bytes:
        """The discovery document of one sensor of a meter."""
        ha = entity.classes
        document: dict[str, Any] = {
            "name": entity.name,
            "unique_id": f"amiplus_{meter}_{entity.key}",
            "state_topic": self.state(meter),
            "value_template": entity.template,
        }
        if ha.device_class:
            document["device_class"] = ha.device_class
        if ha.state_class:
            document["state_class"] = ha.state_class
        if ha.unit:
            document["unit_of_measurement"] = ha.unit
        if ha.precision is not None:
            document["suggested_display_precision"] = ha.precision
        if ha.diagnostic:
            document["entity_category"] = "diagnostic"
        document["availability"] = [{"topic": self.status}, {"topic": self.availability(meter)}]
        document["availability_mode"] = "all"
        document["qos"] = self.qos
        document["device"] = self.device(meter, identity)
        document["origin"] = ORIGIN
        return _dumps(document)

    def exporter(self) -> bytes:
        """The exporter's own device (the meters' `via_device`) with its connectivity."""
        return _dumps(
            {
                "name": "Status",
                "unique_id": f"{self.exporter_id}_status",
                "state_topic": self.status,
                "payload_on": ONLINE,
                "payload_off": OFFLINE,
                "device_class": "connectivity",
                "entity_category": "diagnostic",
                "qos": self.qos,
                "device": {
                    "identifiers": [self.exporter_id],
                    "name": self.exporter_name,
                    "manufacturer": "amiplus-exporter",
                    "model": "wireless M-Bus receiver",
                    "sw_version": __version__,
                },
                "origin": ORIGIN,
            }
        )


# --- the output ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """Why the output is not connected: an error label and plain words."""

    reason: str
    message: str


def _connect_problem(error: OSError, where: str) -> Problem:
    """What a failed `connect` means, in words a user can act on."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return Problem(
            "tls",
            f"TLS: {where} presented a certificate that is not trusted "
            f"({error.verify_message}); check tls ca_file",
        )
    if isinstance(error, ssl.SSLError):
        return Problem(
            "tls",
            f"TLS handshake with {where} failed ({error.reason or error}); "
            "is it a TLS port, and are the certificate files right?",
        )
    if isinstance(error, socket.gaierror):
        return Problem("connection", f"cannot resolve the broker's host in {where}")
    if isinstance(error, TimeoutError):
        return Problem("timeout", f"{where} did not answer in time")
    if isinstance(error, ConnectionRefusedError):
        return Problem("connection", f"{where} refused the connection (is the broker running?)")
    return Problem("connection", f"cannot connect to {where}: {error.strerror or error}")


@dataclass(slots=True)
class _Meter:
    """What the worker knows of one meter."""

    key: str
    identity: Identity | None = None
    state: bytes | None = None
    entities: tuple[str, ...] = ()
    announced: set[str] = field(default_factory=set)  # discovery sent on this connection
    online: bool | None = None  # the availability it should have (None: not decided yet)


class MqttOutput(Output):
    """Publishes every accepted reading to an MQTT broker, with Home Assistant discovery."""

    name = "mqtt"

    def __init__(self, config: MqttConfig, state: State) -> None:
        self.mqtt = import_extra("paho.mqtt.client", "the mqtt output")
        self.config = config
        self.state = state
        self.topics = Topics(config)
        self._queue: queue.Queue[MeterUpdate | None] = queue.Queue(QUEUE_SIZE)
        self._commands: deque[tuple[str, Any]] = deque()
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._meters: dict[str, _Meter] = {}
        self._dirty: set[str] = set()  # meters whose latest state could not be sent
        self._removed: set[str] = set()  # meters whose retained messages are to be cleared
        self._configured = state.keys()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._resync = threading.Event()
        self._client: paho.Client | None = None
        self._lock = threading.Lock()  # guards `errors`
        self.errors: Counter[str] = Counter(dict.fromkeys(ERROR_REASONS, 0))
        self.published = 0  # written by the worker only (paho's callback)
        self._sent = 0  # handed to paho on this connection
        self._done = 0  # of them sent or acknowledged
        self.problem: Problem | None = None
        self._logged: Problem | None = None
        self.since = time.time()  # of the current state: connected, or failing
        self.retry_at: float | None = None
        self.started = time.time()
        self._worker = threading.Thread(target=self._work, name="mqtt", daemon=True)
        self._connection = threading.Thread(target=self._connect, name="mqtt-connect", daemon=True)

    # --- the Output interface

    def start(self) -> None:
        self._worker.start()
        self._connection.start()
        discovery = self.topics.prefix or "off"
        log.info(
            "MQTT output to %s, base topic %s, Home Assistant discovery %s",
            self.config.where,
            self.topics.base,
            discovery,
        )

    def submit(self, update: MeterUpdate) -> None:
        """Queue a reading for the worker; when the queue is full it is dropped and counted."""
        try:
            self._queue.put_nowait(update)
        except queue.Full:
            self._count("queue_full")

    def meters_changed(self, meters: Mapping[str, str]) -> None:
        removed = self._configured - set(meters)
        self._configured = set(meters)
        self._commands.append(("meters", (set(meters), removed)))
        self._wake()

    def stop(self) -> None:
        """Say `offline` on the status topic, disconnect and end the threads (a few seconds)."""
        self._stopping.set()
        self._wake()
        self._worker.join(timeout=5)
        self._events.put(("stop", None))
        self._connection.join(timeout=CONNACK_TIMEOUT)

    def status(self) -> dict[str, Any]:
        problem = self.problem
        return {
            "broker": self.config.where,
            "client_id": self.config.client_name,
            "base_topic": self.topics.base,
            "discovery_prefix": self.topics.prefix,
            "connected": self._connected.is_set(),
            "since": self.since,
            "last_error": problem.message if problem else "",
            "error_reason": problem.reason if problem else "",
            "retry_at": self.retry_at,
            "messages_published": self.published,
            "updates_dropped": self.errors["queue_full"],
            "queued_updates": self._queue.qsize(),
            "meters": sum(1 for meter in list(self._meters.values()) if meter.state),
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

    # --- shared helpers

    def _count(self, reason: str) -> None:
        with self._lock:
            self.errors[reason] += 1

    def _wake(self) -> None:
        with contextlib.suppress(queue.Full):  # a full queue: the worker is busy anyway
            self._queue.put_nowait(None)

    # --- the connection thread

    def _connect(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            problem, accepted = self._session()
            if problem is None:
                return
            attempt = 0 if accepted else attempt + 1
            self._count(problem.reason)
            delay = BACKOFF.delay(attempt - 1)
            self.retry_at = time.time() + delay
            self._failed(problem, delay)
            self._stopping.wait(delay)
        self.retry_at = None

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

    def _new_client(self) -> paho.Client:
        mqtt = self.mqtt
        client: paho.Client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.config.client_name,
            reconnect_on_failure=False,
        )
        config = self.config
        if config.username:
            client.username_pw_set(config.username, config.password or None)
        if config.tls is not None:
            context = ssl.create_default_context(
                cafile=str(config.tls.ca_file) if config.tls.ca_file else None
            )
            if config.tls.cert_file and config.tls.key_file:
                context.load_cert_chain(config.tls.cert_file, config.tls.key_file)
            client.tls_set_context(context)
        client.will_set(self.topics.status, OFFLINE, qos=config.qos, retain=config.retain)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.max_queued_messages_set(MAX_PENDING)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _session(self) -> tuple[Problem | None, bool]:
        """One connection from connect to its end: why it ended (None: the output stops) and
        whether the broker had accepted it. This thread connects and reads the broker's
        answer; from then on the worker alone uses the client (no paho thread: one thread
        writes and reads, so a message costs no thread switches)."""
        while not self._events.empty():
            self._events.get_nowait()
        if self._stopping.is_set():
            return None, False
        where = self.config.where
        try:
            client = self._new_client()
            client.connect(self.config.host, self.config.port, keepalive=KEEPALIVE)
        except OSError as error:  # ssl.SSLError is an OSError
            return _connect_problem(error, where), False
        connected = client.socket()
        if isinstance(connected, socket.socket):  # each message at once, not after an ACK
            connected.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.monotonic() + CONNACK_TIMEOUT
        while self._events.empty() and time.monotonic() < deadline:
            if self._stopping.is_set() or client.loop(0.1) != self.mqtt.MQTT_ERR_SUCCESS:
                break
        try:
            kind, code = self._events.get_nowait()
        except queue.Empty:
            kind, code = ("stop", None) if self._stopping.is_set() else ("timeout", None)
        if kind != "connack" or code.is_failure:
            with contextlib.suppress(Exception):  # the socket of a refused attempt
                client.disconnect()
            if kind == "stop":
                return None, False
            if kind == "timeout":
                return Problem("timeout", f"{where} did not answer the connection request"), False
            if kind == "disconnect":
                return Problem(
                    "connection",
                    f"{where} closed the connection before accepting it ({code}); a TLS port "
                    "spoken to without tls:, or the client ID used by another client?",
                ), False
            reason = "unauthorized" if code.value in (4, 5, 134, 135) else "refused"
            return Problem(reason, f"{where} refused the connection: {code}"), False
        self._sent = self._done = 0
        self._client = client
        self._up()
        try:
            while True:
                try:
                    kind, code = self._events.get(timeout=1.0)
                except queue.Empty:
                    kind = "stop" if self._stopping.is_set() else "quiet"
                if kind == "stop" or (kind == "disconnect" and self._stopping.is_set()):
                    return None, True
                if kind == "disconnect":
                    said = "" if str(code) in ("None", "Unspecified error") else f" ({code})"
                    return Problem(
                        "connection_lost", f"the connection to {where} was lost{said}"
                    ), True
        finally:
            self._connected.clear()

    def _up(self) -> None:
        if self.problem is not None:
            log.info("MQTT: connected to %s again", self.config.where)
        else:
            log.info("MQTT: connected to %s", self.config.where)
        self.problem = self._logged = None
        self.since = time.time()
        self.retry_at = None
        self._resync.set()
        self._connected.set()
        self._wake()

    # --- paho's callbacks (in the thread that calls its loop)

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, code: Any, _: Any
    ) -> None:
        if not code.is_failure and self.topics.prefix:
            client.subscribe(self.topics.home_assistant_status, qos=1)
        self._events.put(("connack", code))

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, code: Any, _: Any
    ) -> None:
        self._connected.clear()
        self._events.put(("disconnect", code))

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, code: Any, _: Any) -> None:
        self._done += 1
        self.published += 1

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        """Home Assistant announced itself: send discovery and states again (not for a
        retained announcement, which is only the broker remembering it)."""
        if message.payload == ONLINE.encode() and not message.retain:
            self._resync.set()
            self._wake()

    # --- the worker

    def _work(self) -> None:
        next_check = time.monotonic() + STALE_CHECK
        while not self._stopping.is_set():
            wait = next_check - time.monotonic()
            if self._connected.is_set():
                wait = min(wait, SERVICE)
            try:
                first = self._queue.get(timeout=max(0.0, wait))
            except queue.Empty:
                first = None
            if first is not None:
                self._stopping.wait(GATHER)  # let a few come: one wake-up for them all
            try:
                while self._commands:
                    kind, argument = self._commands.popleft()
                    if kind == "meters":
                        self._reconfigure(*argument)
                if self._resync.is_set() and self._connected.is_set():
                    self._resync.clear()
                    self._republish()
                for update in self._gathered(first):
                    self._take(update)
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + STALE_CHECK
                    self._check_silence()
                    self._retry_dirty()
                self._service()
            except Exception:  # a bug here must not end the output
                log.exception("MQTT output: unexpected error")
        self._goodbye()

    def _service(self, timeout: float = 0.0) -> None:
        """Let paho read (acknowledgements, Home Assistant's birth), write and keep alive."""
        client = self._client
        if client is not None and self._connected.is_set():
            client.loop(timeout)

    def _goodbye(self) -> None:
        """`offline` on the status topic before a clean disconnect (the will is not sent then)."""
        client = self._client
        if client is None or not self._connected.is_set():
            return
        info = client.publish(self.topics.status, OFFLINE, qos=1, retain=self.config.retain)
        deadline = time.monotonic() + GOODBYE_TIMEOUT
        while not info.is_published() and time.monotonic() < deadline:
            if client.loop(0.05) != self.mqtt.MQTT_ERR_SUCCESS:
                break
        client.disconnect()

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

    def _publish(
        self, topic: str, payload: bytes | str, *, retain: bool | None = None, patient: bool = False
    ) -> bool:
        """Hand one message to paho if connected and there is room; `patient` waits for room
        (republishing), otherwise a message without room is dropped and counted."""
        client = self._client
        if client is None or not self._connected.is_set():
            return False
        deadline = time.monotonic() + RESYNC_PATIENCE
        while self._sent - self._done >= MAX_PENDING:
            if not patient or time.monotonic() > deadline or self._stopping.is_set():
                self._count("queue_full")
                return False
            client.loop(0.01)
        retained = self.config.retain if retain is None else retain
        info = client.publish(topic, payload, qos=self.config.qos, retain=retained)
        if info.rc == self.mqtt.MQTT_ERR_SUCCESS:
            self._sent += 1
            return True
        if info.rc == self.mqtt.MQTT_ERR_QUEUE_SIZE:
            self._count("queue_full")
        elif info.rc != self.mqtt.MQTT_ERR_NO_CONN:
            self._count("publish")
        return False

    def _meter(self, key: str) -> _Meter:
        meter = self._meters.get(key)
        if meter is None:
            meter = self._meters[key] = _Meter(key)
        return meter

    def _take(self, update: MeterUpdate) -> None:
        if update.meter_id not in self._configured:
            return  # removed by a reload while it was queued
        meter = self._meter(update.meter_id)
        reading, values = update.reading, update.values
        identity = Identity(
            update.name,
            reading.manufacturer,
            reading.version,
            reading.device_type,
            values.get("serial_number"),
        )
        if identity != meter.identity:
            meter.identity = identity
            meter.announced.clear()  # the device entry changed: announce it again
        meter.entities = entity_keys(values)
        meter.state = state_payload(update)
        was_online, meter.online = meter.online, True
        if not self._connected.is_set():
            return
        # Waiting for room here holds up only this worker: the queue in front of it is the
        # bound, and what it drops is counted.
        self._announce(meter, patient=True)
        availability = self.topics.availability(meter.key)
        sent = was_online is True or self._publish(availability, ONLINE, patient=True)
        if self._publish(self.topics.state(meter.key), meter.state, patient=True) and sent:
            self._dirty.discard(meter.key)
        else:
            self._dirty.add(meter.key)

    def _announce(self, meter: _Meter, *, patient: bool = False) -> None:
        """Discovery for the meter's entities not yet announced on this connection."""
        if not self.topics.prefix or meter.identity is None:
            return
        for key in meter.entities:
            if key in meter.announced:
                continue
            document = self.topics.sensor(meter.key, meter.identity, entities()[key])
            if self._publish(self.topics.discovery(meter.key, key), document, patient=patient):
                meter.announced.add(key)

    def _republish(self) -> None:
        """Everything again, after a (re)connect or Home Assistant's birth message."""
        topics = self.topics
        self._publish(topics.status, ONLINE, patient=True)
        self._clear_removed()
        if topics.prefix:
            self._publish(topics.exporter_discovery, topics.exporter(), patient=True)
        for meter in list(self._meters.values()):
            meter.announced.clear()
            self._announce(meter, patient=True)
            if meter.online is not None:
                self._publish(
                    topics.availability(meter.key),
                    ONLINE if meter.online else OFFLINE,
                    patient=True,
                )
            if meter.state is not None and self._publish(
                topics.state(meter.key), meter.state, patient=True
            ):
                self._dirty.discard(meter.key)

    def _retry_dirty(self) -> None:
        """Meters whose latest availability or state found no room: send them now."""
        for key in list(self._dirty):
            meter = self._meters.get(key)
            if meter is None or meter.state is None:
                self._dirty.discard(key)
                continue
            online = ONLINE if meter.online else OFFLINE
            if not (
                self._publish(self.topics.availability(key), online)
                and self._publish(self.topics.state(key), meter.state)
            ):
                return
            self._dirty.discard(key)

    def _check_silence(self) -> None:
        """Meters silent longer than the state's `stale_after` turn `offline`; a configured
        meter not heard since the start counts its silence from the start."""
        now = time.time()
        for silence in self.state.silences():
            last = silence.last_telegram_at
            if now - (last if last is not None else self.started) <= silence.stale_after:
                continue
            key = silence.key
            meter = self._meter(key)
            if meter.online is False:
                continue
            meter.online = False
            self._publish(self.topics.availability(key), OFFLINE)

    def _reconfigure(self, configured: set[str], removed: set[str]) -> None:
        """After a reload: forget removed meters; their retained messages (discovery, state,
        availability) leave the broker now, or after the next connect."""
        for key in removed:
            self._meters.pop(key, None)
            self._dirty.discard(key)
        self._removed = (self._removed | removed) - configured
        self._clear_removed()

    def _clear_removed(self) -> None:
        for key in sorted(self._removed):
            cleared = [self.topics.state(key), self.topics.availability(key)]
            if self.topics.prefix:
                cleared += [self.topics.discovery(key, entity) for entity in entities()]
            if not all(self._publish(topic, b"", retain=True, patient=True) for topic in cleared):
                return
            self._removed.discard(key)
            log.info("MQTT: meter %s is no longer configured; its messages were removed", key)
