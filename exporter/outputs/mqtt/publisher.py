"""The MQTT output's decisions, without threads or paho (docs/contracts.md, section 7).

As h11's `Connection` does for HTTP, a `Publisher` is told what happened (a reading, a
connection accepted or lost, a look at the meters' silence, a reload, Home Assistant's birth
message, the clock) and answers with the messages to send; it remembers per meter what the
broker should hold (the latest state, a settled meter's latest settlement figures, the
entities announced on this connection, the availability, what could not be sent). Whoever sends
the messages tells it which were dropped (`dropped`), so that they are sent again later; every
clock reading is handed in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from ...config import MqttConfig
from ...net import Will
from ...pipeline import MeterUpdate
from .documents import (
    OFFLINE,
    ONLINE,
    Identity,
    Topics,
    entities,
    entity,
    entity_keys,
    settled_keys,
    settlement_payload,
    state_payload,
)

log = logging.getLogger(__name__)

#: Seconds between two resends of everything for Home Assistant's birth message: births within
#: them (a restarting Home Assistant, or a flood of `online` from anyone allowed to publish
#: there) are answered together, once, when they are over (docs/contracts.md, section 7).
RESYNC_INTERVAL = 5.0


class Kind(Enum):
    """What a message is about, so that a dropped one is sent again in the right way."""

    STATUS = "status"  # the exporter's own status and device
    DISCOVERY = "discovery"  # one entity of a meter
    AVAILABILITY = "availability"
    STATE = "state"
    SETTLEMENT = "settlement"  # a settled meter's figures
    REMOVAL = "removal"  # an empty retained message clearing a removed meter's topic


@dataclass(frozen=True, slots=True)
class Message:
    """One message to publish, and which meter (and entity) it is about."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: Kind = Kind.STATUS
    meter: str = ""
    entity: str = ""


class Silent(Protocol):
    """How long a meter has been silent against how long it may be (`State.silences()`)."""

    @property
    def key(self) -> str: ...
    @property
    def last_telegram_at(self) -> float | None: ...
    @property
    def stale_after(self) -> float: ...


@dataclass(slots=True)
class _Meter:
    """What the publisher knows of one meter."""

    key: str
    identity: Identity | None = None
    state: bytes | None = None
    entities: tuple[str, ...] = ()
    settlement: bytes | None = None  # the latest settlement message
    settled: tuple[str, ...] = ()  # the settlement entities of that message's scheme
    announced: set[str] = field(default_factory=set)  # discovery handed out on this connection
    online: bool | None = None  # the availability it should have (None: not decided yet)


class Publisher:
    """What to send to the broker, and what it should hold, for one `mqtt:` configuration."""

    def __init__(self, config: MqttConfig, configured: Iterable[str], started: float) -> None:
        """`configured`: the meters' addresses; `started`: the wall clock at the start (a meter
        not heard since counts its silence from it)."""
        self.config = config
        self.topics = Topics(config)
        self.started = started
        self.connected = False
        self.stated = 0  # meters with a state (the status page's count)
        self._configured = set(configured)
        self._meters: dict[str, _Meter] = {}
        self._dirty: set[str] = set()  # meters whose availability or state was dropped
        self._removed: set[str] = set()  # meters whose retained messages are to be cleared
        self._resynced: float | None = None  # when everything was last handed out
        self._resync_due = False  # a birth message came within RESYNC_INTERVAL of it

    # --- what the connection needs

    @property
    def will(self) -> Will:
        """`offline` on the status topic, published by the broker if the exporter vanishes."""
        return Will(self.topics.status, OFFLINE.encode(), self.config.qos, self.config.retain)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """Topics to subscribe to after a connect: Home Assistant's birth, with discovery on."""
        return (self.topics.home_assistant_status,) if self.topics.prefix else ()

    def goodbye(self) -> Message:
        """`offline` on the status topic before a clean disconnect (the will is not sent then),
        at QoS 1 so that the sender can wait for the broker to have it."""
        return self._message(self.topics.status, OFFLINE, qos=1)

    # --- events

    def connect(self, now: float) -> list[Message]:
        """A connection was accepted: `online`, removals still owed, and everything again (a
        broker that restarted without persistence has it all back). `now`: a monotonic clock."""
        self.connected = True
        return self._everything(now)

    def disconnected(self) -> None:
        """The connection is gone, and with it whatever it had not sent: the next connect sends
        everything again."""
        self.connected = False
        self._resync_due = False

    def reading(self, update: MeterUpdate) -> list[Message]:
        """A meter's accepted reading: its new entities (all of them when its device entry
        changed), `online` when it was not, and its state."""
        key = update.meter_id
        if key not in self._configured:
            return []  # removed by a reload while it was queued
        meter = self._meter(key)
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
        if meter.state is None:
            self.stated += 1
        meter.state = state_payload(update)
        cleared = self._settle(meter, update)
        was_online, meter.online = meter.online, True
        if not self.connected:
            return []
        messages = [*cleared, *self._announce(meter)]
        if was_online is not True or key in self._dirty:
            messages.append(self._availability(meter))
        messages.append(self._state(meter))
        if update.settlement is not None or key in self._dirty:
            messages += self._settlement(meter)
        self._dirty.discard(key)
        return messages

    def _settle(self, meter: _Meter, update: MeterUpdate) -> list[Message]:
        """Keep a settled meter's latest figures; when its scheme changed, or it is no longer
        settled, clear the entities (and the settlement message) it no longer has."""
        keys = settled_keys(update.scheme)
        gone = [key for key in meter.settled if key not in keys]
        topics = self.topics
        cleared = [topics.discovery(meter.key, key) for key in gone] if topics.prefix else []
        if update.scheme is None and meter.settlement is not None:
            cleared.append(topics.settlement(meter.key))
        if update.settlement is not None:
            meter.settlement, meter.settled = settlement_payload(update), keys
        elif gone or update.scheme is None:
            meter.settlement, meter.settled = None, ()
        meter.announced.difference_update(gone)
        if not self.connected:
            return []
        qos = self.config.qos
        return [Message(topic, b"", qos, True, Kind.REMOVAL, meter.key) for topic in cleared]

    def silence(self, now: float, silences: Iterable[Silent]) -> list[Message]:
        """`offline` for meters silent longer than their `stale_after` (`now`: the wall clock,
        as the state's times are); a configured meter not heard since the start counts its
        silence from the start."""
        messages = []
        for silence in silences:
            last = silence.last_telegram_at
            since = last if last is not None else self.started
            if silence.key not in self._configured or now - since <= silence.stale_after:
                continue
            meter = self._meter(silence.key)
            if meter.online is False:
                continue
            meter.online = False
            if self.connected:
                messages.append(self._availability(meter))
        return messages

    def meters_changed(self, configured: Iterable[str]) -> list[Message]:
        """After a reload: forget removed meters; their retained messages (discovery, state,
        availability) are cleared now, or after the next connect."""
        configured = set(configured)
        removed = self._configured - configured
        self._configured = configured
        for key in removed:
            meter = self._meters.pop(key, None)
            if meter is not None and meter.state is not None:
                self.stated -= 1
            self._dirty.discard(key)
        self._removed = (self._removed | removed) - configured
        return self._clear_removed()

    def home_assistant(self, payload: bytes, retained: bool, now: float) -> list[Message]:
        """A message on Home Assistant's status topic. A non-retained `online` (its birth; a
        retained one is only the broker remembering it) asks for everything again: at once, or,
        within RESYNC_INTERVAL of the last time, once when that interval is over (`due`)."""
        if payload != ONLINE.encode() or retained or not self.connected:
            return []
        if self._resynced is not None and now - self._resynced < RESYNC_INTERVAL:
            self._resync_due = True
            return []
        return self._everything(now)

    def due(self, now: float) -> list[Message]:
        """Everything again if a birth message is waiting for its interval and it is over."""
        if not self._resync_due or self._resynced is None or not self.connected:
            return []
        if now - self._resynced < RESYNC_INTERVAL:
            return []
        return self._everything(now)

    def retry(self, room: int) -> list[Message]:
        """Availability and state of meters whose latest ones were dropped, as many as `room`
        messages allow."""
        messages: list[Message] = []
        if not self.connected:
            return messages
        for key in sorted(self._dirty):
            meter = self._meters.get(key)
            owed = [] if meter is None or meter.state is None else self._owed(meter)
            if len(messages) + len(owed) > room:
                break
            self._dirty.discard(key)
            messages += owed
        return messages

    def _owed(self, meter: _Meter) -> list[Message]:
        """A meter's availability, state and settlement figures."""
        return [self._availability(meter), self._state(meter), *self._settlement(meter)]

    def dropped(self, message: Message) -> None:
        """`message` was not sent: remember to send what it carried again (a connection lost
        before it went sends everything again anyway)."""
        key = message.meter
        meter = self._meters.get(key)
        if message.kind is Kind.DISCOVERY and meter is not None:
            meter.announced.discard(message.entity)  # with the meter's next reading
        elif message.kind in (Kind.AVAILABILITY, Kind.STATE, Kind.SETTLEMENT) and meter is not None:
            self._dirty.add(key)  # by `retry`
        elif message.kind is Kind.REMOVAL and key not in self._configured:
            self._removed.add(key)  # with the next removals or the next connect

    # --- the messages

    def _everything(self, now: float) -> list[Message]:
        """`online`, removals still owed, the exporter's device, and every meter's discovery,
        availability and state."""
        self._resynced, self._resync_due = now, False
        topics = self.topics
        messages = [self._message(topics.status, ONLINE), *self._clear_removed()]
        if topics.prefix:
            messages.append(self._message(topics.exporter_discovery, topics.exporter()))
        for meter in self._meters.values():
            meter.announced.clear()
            messages += self._announce(meter)
            if meter.online is not None:
                messages.append(self._availability(meter))
            if meter.state is not None:
                messages.append(self._state(meter))
                messages += self._settlement(meter)
                self._dirty.discard(meter.key)
        return messages

    def _announce(self, meter: _Meter) -> list[Message]:
        """Discovery for the meter's entities not yet announced on this connection (those of
        its settlement once there are figures to show)."""
        if not self.topics.prefix or meter.identity is None:
            return []
        messages = []
        for key in (*meter.entities, *(meter.settled if meter.settlement else ())):
            if key in meter.announced:
                continue
            meter.announced.add(key)
            document = self.topics.sensor(meter.key, meter.identity, entity(key))
            topic = self.topics.discovery(meter.key, key)
            messages.append(self._message(topic, document, Kind.DISCOVERY, meter.key, key))
        return messages

    def _clear_removed(self) -> list[Message]:
        """Empty retained messages on every topic a removed meter could have."""
        if not self.connected:
            return []
        messages = []
        topics = self.topics
        for key in sorted(self._removed):
            cleared = [topics.state(key), topics.availability(key), topics.settlement(key)]
            if topics.prefix:
                cleared += [topics.discovery(key, name) for name in entities()]
            messages += [
                Message(topic, b"", self.config.qos, True, Kind.REMOVAL, key) for topic in cleared
            ]
            log.info("MQTT: meter %s is no longer configured; its messages are removed", key)
        self._removed.clear()
        return messages

    def _availability(self, meter: _Meter) -> Message:
        online = ONLINE if meter.online else OFFLINE
        topic = self.topics.availability(meter.key)
        return self._message(topic, online, Kind.AVAILABILITY, meter.key)

    def _state(self, meter: _Meter) -> Message:
        assert meter.state is not None
        return self._message(self.topics.state(meter.key), meter.state, Kind.STATE, meter.key)

    def _settlement(self, meter: _Meter) -> list[Message]:
        """The meter's settlement message, if it has one."""
        if meter.settlement is None:
            return []
        topic = self.topics.settlement(meter.key)
        return [self._message(topic, meter.settlement, Kind.SETTLEMENT, meter.key)]

    def _message(
        self,
        topic: str,
        payload: bytes | str,
        kind: Kind = Kind.STATUS,
        meter: str = "",
        entity: str = "",
        *,
        qos: int | None = None,
    ) -> Message:
        """A message with the configured QoS and retain flag."""
        data = payload.encode() if isinstance(payload, str) else payload
        level = self.config.qos if qos is None else qos
        return Message(topic, data, level, self.config.retain, kind, meter, entity)

    def _meter(self, key: str) -> _Meter:
        meter = self._meters.get(key)
        if meter is None:
            meter = self._meters[key] = _Meter(key)
        return meter
