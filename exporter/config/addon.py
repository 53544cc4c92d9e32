"""The Home Assistant add-on's options as a configuration (docs/home-assistant.md, section 3).

The Supervisor keeps the options a user set in `<data>/options.json`, shaped by the add-on's
schema (deploy/home-assistant/amiplus-exporter/config.yaml): the YAML file's sections, flattened
where the Supervisor's forms nest no deeper than a list of mappings (a price entry's zones are
`energy_1`, `distribution_1`, ...). `OptionsTree` turns them into the node tree a YAML file
gives, so the one reader checks them with the one set of messages. A node's mark carries, where
a file's carries its line, the index of the option it came from; the reader, given `names`,
names that option instead of a line (`meters[1].key`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from yaml import Mark, Node

ADDON_SOURCE = "add-on configuration"
#: A price entry's zone fields: `energy_N` and `distribution_N` (N: the tariff zone).
ZONE_FIELD = re.compile(r"(energy|distribution)_(\d+)")
#: What the MQTT broker the Supervisor offers fills in (the options may set the rest).
BROKER_KEYS = ("host", "port", "tls", "username", "password")
SUPERVISOR_BROKER = "mqtt (the broker the Supervisor offers)"
_STR, _BOOL = "tag:yaml.org,2002:str", "tag:yaml.org,2002:bool"
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


@dataclass(frozen=True, slots=True)
class ServiceBroker:
    """The MQTT broker the Supervisor offers to add-ons: its `/services/mqtt` answer."""

    host: str
    port: int
    ssl: bool = False
    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def where(self) -> str:
        """Its address for the log (no credentials)."""
        return f"{'mqtts' if self.ssl else 'mqtt'}://{self.host}:{self.port}"


def wants_broker(options: Mapping[str, Any]) -> bool:
    """Whether the options leave the MQTT broker to the Supervisor (they name no host)."""
    return _broker_host(options.get("mqtt")) is None


def _broker_host(mqtt: Any) -> Any:
    """The host an `mqtt` option names, or None."""
    host = mqtt.get("host") if isinstance(mqtt, Mapping) else None
    return None if _absent(host) else host


def _absent(value: Any) -> bool:
    """An option left empty: null or empty text (as forms keep optional fields), or a mapping
    of nothing else (an `influxdb` left blank)."""
    if isinstance(value, Mapping):
        return all(_absent(item) for item in value.values())
    return value is None or value == ""


class OptionsTree:
    """Builds the YAML node tree of a configuration from the add-on's options; `names[i]` is
    the option of every node whose mark says line i."""

    def __init__(self, data: Path) -> None:
        import yaml  # noqa: PLC0415 (as the reader: only when options are read)

        self.yaml = yaml
        self.data = data
        self.names: list[str] = []

    def configuration(self, options: Mapping[str, Any], broker: ServiceBroker | None) -> Node:
        """The whole configuration: the options as the YAML file's sections, the Supervisor's
        broker when the options name none, and the state directory in `data`."""
        entries: list[tuple[str, Node]] = []
        for name, value in options.items():
            section = _SECTIONS.get(name)
            entries += section(self, name, value) if section else [(name, self.node(value, name))]
        mqtt = self._mqtt(options.get("mqtt"), broker)
        if mqtt is not None:
            entries.append(("mqtt", mqtt))
        state = self.mapping([("directory", self.scalar(str(self.data), "state"))], "state")
        return self.mapping([*entries, ("state", state)], "options")

    # --- nodes ----------------------------------------------------------------------------

    def _mark(self, name: str) -> Mark:
        self.names.append(name)
        mark: Mark = self.yaml.Mark(ADDON_SOURCE, 0, len(self.names) - 1, 0, None, 0)
        return mark

    def scalar(self, value: Any, name: str) -> Node:
        mark = self._mark(name)
        if isinstance(value, bool):
            return self.yaml.ScalarNode(_BOOL, "true" if value else "false", mark, mark)
        node: Node = self.yaml.ScalarNode(_STR, str(value), mark, mark)
        return node

    def _pair(self, key: str, value: Node) -> tuple[Node, Node]:
        return self.yaml.ScalarNode(_STR, key, value.start_mark, value.start_mark), value

    def mapping(self, entries: list[tuple[str, Node]], name: str) -> Node:
        mark = self._mark(name)
        pairs = [self._pair(key, value) for key, value in entries]
        node: Node = self.yaml.MappingNode(_MAP, pairs, mark, mark)
        return node

    def sequence(self, items: list[Node], name: str) -> Node:
        mark = self._mark(name)
        node: Node = self.yaml.SequenceNode(_SEQ, items, mark, mark)
        return node

    def node(self, value: Any, name: str) -> Node:
        """Any option value: a mapping (empty fields left out), a list, or a single value."""
        if isinstance(value, Mapping):
            return self.mapping(
                [
                    (str(key), self.node(item, f"{name}.{key}"))
                    for key, item in value.items()
                    if not _absent(item)
                ],
                name,
            )
        if isinstance(value, list):
            return self.sequence(
                [self.node(item, f"{name}[{n}]") for n, item in enumerate(value, start=1)], name
            )
        return self.scalar(value, name)

    # --- the sections that differ from the YAML file -----------------------------------------

    def _log_level(self, name: str, value: Any) -> list[tuple[str, Node]]:
        return [("log", self.mapping([("level", self.node(value, name))], name))]

    def _influxdb(self, name: str, value: Any) -> list[tuple[str, Node]]:
        """InfluxDB when its options are filled in, its spool in `data`."""
        if _absent(value):
            return []
        section = self.node(value, name)
        if isinstance(value, Mapping):
            spool = self.scalar(str(self.data / "spool"), name)
            section.value.append(self._pair("spool", spool))
        return [(name, section)]

    def _prices(self, name: str, value: Any) -> list[tuple[str, Node]]:
        if not isinstance(value, list):
            return [(name, self.node(value, name))]  # the reader says what it must be
        entries = [self._price(entry, f"{name}[{n}]") for n, entry in enumerate(value, start=1)]
        return [(name, self.sequence(entries, name))]

    def _price(self, entry: Any, name: str) -> Node:
        """A price entry: its `energy_N` and `distribution_N` fields become tariff zone N."""
        if not isinstance(entry, Mapping):
            return self.node(entry, name)
        fields: list[tuple[str, Node]] = []
        zones: dict[str, list[tuple[str, Node]]] = {}
        for key, value in entry.items():
            if _absent(value):
                continue
            found = ZONE_FIELD.fullmatch(str(key))
            if found is None:
                fields.append((str(key), self.node(value, f"{name}.{key}")))
            else:
                part, zone = found.groups()
                zones.setdefault(zone, []).append((part, self.node(value, f"{name}.{key}")))
        if zones:
            tariffs = [
                (zone, self.mapping(parts, f"{name}.energy_{zone}"))
                for zone, parts in sorted(zones.items())
            ]
            fields.append(("tariffs", self.mapping(tariffs, name)))
        return self.mapping(fields, name)

    def _mqtt(self, value: Any, broker: ServiceBroker | None) -> Node | None:
        """The options' broker; or, when they name no host, the Supervisor's with the options'
        other settings (topics); or none."""
        if _broker_host(value) is not None:
            return self.node(value, "mqtt")
        if broker is None:
            return None
        offered = {
            "host": broker.host,
            "port": broker.port,
            "tls": broker.ssl,
            "username": broker.username,
            "password": broker.password,
        }
        fields = [
            (key, self.scalar(item, SUPERVISOR_BROKER))
            for key, item in offered.items()
            if not _absent(item) and (key != "tls" or item)
        ]
        own = value if isinstance(value, Mapping) else {}
        fields += [
            (str(key), self.node(item, f"mqtt.{key}"))
            for key, item in own.items()
            if key not in BROKER_KEYS and not _absent(item)
        ]
        return self.mapping(fields, "mqtt")


def _with_the_broker(tree: OptionsTree, name: str, value: Any) -> list[tuple[str, Node]]:
    return []  # read after the others, with the Supervisor's broker (`_mqtt`)


#: The options that are not the YAML file's section of the same name, and how they become one.
_SECTIONS: dict[str, Callable[[OptionsTree, str, Any], list[tuple[str, Node]]]] = {
    "log_level": OptionsTree._log_level,
    "prices": OptionsTree._prices,
    "influxdb": OptionsTree._influxdb,
    "mqtt": _with_the_broker,
}
