"""The `mqtt:` section: the broker that Home Assistant and other MQTT consumers read
(docs/contracts.md, section 7). Every value is checked here, files included, so `check-config`
lists every problem at once; the password never appears in a message or a repr. The broker's
part (`broker_settings`, giving a `net.Broker`) serves every section that connects to one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..net import DEFAULT_PORT, DEFAULT_TLS_PORT, Broker, TlsFiles
from ..wmbus import shown
from .reader import Reader

if TYPE_CHECKING:
    from yaml import Node

#: The keys of a broker's settings, in every section that connects to one.
BROKER_KEYS = ("host", "port", "tls", "username", "password", "password_file", "client_id")
_MQTT = (*BROKER_KEYS, "base_topic", "discovery_prefix", "qos", "retain")
_TLS = ("ca_file", "cert_file", "key_file")
DEFAULT_BASE_TOPIC = "amiplus"
DEFAULT_DISCOVERY_PREFIX = "homeassistant"
#: A topic: levels of letters, digits, '_', '-' and '.', separated by single '/'.
TOPIC = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*")
TOPIC_MAX = 200
#: A client ID: printable ASCII without spaces (brokers accept longer IDs than MQTT 3.1.1's 23).
CLIENT_ID = re.compile(r"[!-~]{1,128}")
HOST = re.compile(r"[A-Za-z0-9_.:-]+")


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """Where the MQTT output publishes (docs/contracts.md, section 7): the broker, and the
    topics and flags of its messages; used by `outputs.mqtt`."""

    broker: Broker  # its client_id empty: amiplus-exporter-<base topic>
    base_topic: str = DEFAULT_BASE_TOPIC
    discovery_prefix: str | None = DEFAULT_DISCOVERY_PREFIX  # None: no Home Assistant discovery
    qos: int = 1
    retain: bool = True

    @property
    def client_name(self) -> str:
        """The client ID given, or one derived from the base topic (unique on a broker as long
        as the topics are)."""
        return self.broker.client_id or "amiplus-exporter-" + self.base_topic.replace("/", "-")


def _topic(reader: Reader, node: Node, where: str) -> str | None:
    value = reader.text(node, where)
    if value is None:
        return None
    if len(value) > TOPIC_MAX or not TOPIC.fullmatch(value):
        reader.problem(
            node,
            f"{where} must be letters, digits, '_', '-' and '.' in levels separated by single "
            f"'/' (no wildcards, no '/' at either end, at most {TOPIC_MAX} characters), "
            f"not {shown(value)}",
        )
        return None
    return value


def _readable(reader: Reader, node: Node, where: str) -> Path | None:
    path = reader.path(node, where)
    if path is None:
        return None
    try:
        with path.open("rb") as opened:
            opened.read(1)
    except OSError as error:
        reader.problem(node, f"{where}: cannot read {path}: {error.strerror}")
        return None
    return path


def _tls(reader: Reader, node: Node, where: str) -> TlsFiles | None:
    """`tls: true` (the system's roots), `false`, or a mapping of files."""
    if isinstance(node, reader.yaml.ScalarNode):
        on = reader.boolean(node, f"{where} tls")
        return TlsFiles() if on else None
    fields = reader.mapping(node, f"{where} tls", _TLS)
    files = {key: _readable(reader, fields[key], f"{where} tls {key}") for key in fields}
    if ("cert_file" in fields) != ("key_file" in fields):
        reader.problem(node, f"{where} tls: a client certificate needs both cert_file and key_file")
    return TlsFiles(**files)


def broker_settings(
    reader: Reader, node: Node, fields: dict[str, Node], where: str
) -> Broker | None:
    """The broker's part (`BROKER_KEYS`) of the section `where`, whose keys are `fields`."""
    if "host" not in fields:
        reader.problem(node, f"{where}: give the broker's host, e.g. 127.0.0.1 or mosquitto")
        return None
    host = reader.text(fields["host"], f"{where} host") or ""
    if "://" in host or not HOST.fullmatch(host):
        reader.problem(
            fields["host"], f"{where} host must be a host name or address only, not {shown(host)}"
        )
    options: dict[str, Any] = {"host": host}
    if "tls" in fields:
        options["tls"] = _tls(reader, fields["tls"], where)
    port = reader.optional(fields, "port", partial(reader.number, low=1, high=65535), where)
    if port is not None and port != int(port):
        reader.problem(fields["port"], f"{where} port must be a whole number, not {port:g}")
    options["port"] = (
        int(port) if port else DEFAULT_TLS_PORT if options.get("tls") else DEFAULT_PORT
    )
    username = reader.optional(fields, "username", reader.text, where)
    if username is not None:
        options["username"] = username
    password_node, password = reader.secret(fields, "password", where)
    if password is not None:
        options["password"] = password
        if username is None:
            reader.problem(password_node, f"{where}: a password needs a username")
    client_id = reader.optional(fields, "client_id", reader.text, where)
    if client_id is not None:
        if CLIENT_ID.fullmatch(client_id):
            options["client_id"] = client_id
        else:
            reader.problem(
                fields["client_id"],
                f"{where} client_id must be 1-128 printable characters without spaces, "
                f"not {shown(client_id)}",
            )
    return Broker(**options)


def mqtt_section(reader: Reader, node: Node) -> MqttConfig | None:
    where = "mqtt"
    fields = reader.mapping(node, where, _MQTT)
    broker = broker_settings(reader, node, fields, where)
    if broker is None:
        return None
    options: dict[str, Any] = {}
    base = reader.optional(fields, "base_topic", partial(_topic, reader), where)
    if base is not None:
        options["base_topic"] = base
    prefix = fields.get("discovery_prefix")
    if prefix is not None:
        off = isinstance(prefix, reader.yaml.ScalarNode) and str(prefix.value).lower() == "false"
        options["discovery_prefix"] = (
            None if off else _topic(reader, prefix, "mqtt discovery_prefix")
        )
    qos = reader.optional(fields, "qos", partial(reader.choice, choices=("0", "1", "2")), where)
    if qos is not None:
        options["qos"] = int(qos)
    retain = reader.optional(fields, "retain", reader.boolean, where)
    if retain is not None:
        options["retain"] = retain
    config = MqttConfig(broker, **options)
    if config.discovery_prefix == config.base_topic:
        reader.problem(node, "mqtt: base_topic and discovery_prefix must differ")
    return config
