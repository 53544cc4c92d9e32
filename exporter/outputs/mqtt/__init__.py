"""MQTT and Home Assistant discovery (docs/contracts.md, section 7), in three rooms: the
documents (`documents.py`: entities from the field table, topics, state and discovery
payloads), the `Publisher` (`publisher.py`: what to send when, without threads or paho) and
`MqttOutput` (`output.py`: one thread that owns the paho client and its network loop)."""

from .documents import (
    Identity,
    Topics,
    entities,
    entity_keys,
    settled_keys,
    settlement_payload,
    state_payload,
)
from .output import MAX_PENDING, QUEUE_SIZE, MqttOutput
from .publisher import RESYNC_INTERVAL, Kind, Message, Publisher

__all__ = [
    "MAX_PENDING",
    "QUEUE_SIZE",
    "RESYNC_INTERVAL",
    "Identity",
    "Kind",
    "Message",
    "MqttOutput",
    "Publisher",
    "Topics",
    "entities",
    "entity_keys",
    "settled_keys",
    "settlement_payload",
    "state_payload",
]
