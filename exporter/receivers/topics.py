"""MQTT topic filters as a receiver uses them: which are valid, and which gateway a message came
from. Sans-I/O.

A gateway is named by the topic level that the first single-level wildcard (`+`) of the matching
filter stood for: `wmbus/+/telegram` hears the gateway `kitchen` in `wmbus/kitchen/telegram`, and
`rtl_433/+/devices/+/Wireless-MBus/+/data` hears the host rtl_433 runs on. A filter without `+`
names no gateway (its messages count under the receiver itself).
"""

from __future__ import annotations

#: Every gateway forwarder of docs/receivers.md, "ESP32 gateways": ESPHome's `wmbus_radio` and
#: Kustonium's bridge (`wmbus/<name>/telegram`), ESPHome's `version_4` raw output
#: (`<name>/wmbus/raw[/<meter>]`), rtl_433's `data` key of every Wireless-MBus device.
DEFAULT_TOPICS = (
    "wmbus/+/telegram",
    "+/wmbus/raw/#",
    "rtl_433/+/devices/+/Wireless-MBus/+/data",
)
MAX_FILTER = 200  # characters; far beyond any gateway's topic
_CACHE_LIMIT = 1024  # topics whose gateway is remembered; beyond it the memory starts again


def filter_problem(text: str) -> str | None:
    """What is wrong with a topic filter (None: nothing), in words a user can act on."""
    if not text or len(text) > MAX_FILTER or "\x00" in text:
        return f"a topic filter is 1-{MAX_FILTER} characters, not {text[:MAX_FILTER]!r}"
    levels = text.split("/")
    for number, level in enumerate(levels, start=1):
        if "#" in level and (level != "#" or number != len(levels)):
            return f"in the topic filter {text!r}, '#' stands alone as its last level"
        if "+" in level and level != "+":
            return f"in the topic filter {text!r}, '+' stands alone as a level"
    return None


def _gateway(levels: list[str], filters: tuple[tuple[str, ...], ...]) -> str | None:
    """The level the first `+` of the first matching filter stood for (None: no such)."""
    for parts in filters:
        gateway: str | None = None
        for at, part in enumerate(parts):
            if part == "#":
                return gateway
            if at >= len(levels):
                break
            if part == "+":
                if levels[0].startswith("$") and at == 0:
                    break  # wildcards do not match the broker's own `$` topics
                gateway = levels[at] if gateway is None else gateway
            elif part != levels[at]:
                break
        else:
            if len(parts) == len(levels):
                return gateway
    return None


class TopicFilters:
    """A receiver's filters; `gateway(topic)` names the gateway a message came from."""

    def __init__(self, filters: tuple[str, ...]) -> None:
        self.filters = filters
        self._parts = tuple(tuple(f.split("/")) for f in filters)
        self._named = any("+" in parts for parts in self._parts)
        self._cache: dict[str, str | None] = {}

    def gateway(self, topic: str) -> str | None:
        """The gateway named by `topic` (None: none, or no filter matches)."""
        if not self._named:
            return None
        if topic in self._cache:
            return self._cache[topic]
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()  # made-up topics must not grow it
        found = self._cache[topic] = _gateway(topic.split("/"), self._parts)
        return found
