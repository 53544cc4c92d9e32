"""The `receivers:` section, read with the receiver grammar (`exporter/receivers/grammar.py`)
that `--receiver` uses too; an mqtt receiver's broker with the mqtt: section's rules
(`broker_settings`), or, when it gives no host, the mqtt: section's broker itself."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..net import Broker
from ..receivers import (
    BROKER_OPTIONS,
    COMMON,
    OPTIONS,
    TYPES,
    Kind,
    ReceiverSpec,
    ReceiverSpecError,
    build_spec,
    convert,
    filter_problem,
    unknown_options,
)
from ..wmbus import shown
from .mqtt import broker_settings
from .reader import Reader

if TYPE_CHECKING:
    from yaml import Node

_KEY_BYTES = 16


def _simulator_keys(reader: Reader, node: Node, where: str) -> tuple[bytes, ...] | None:
    """The simulated meters' keys, in meter order (32 hex digits each)."""
    if not isinstance(node, reader.yaml.SequenceNode):
        reader.problem(node, f"{where} keys must be a list of 32-digit hex keys, one per meter")
        return None
    keys = []
    for item in node.value:
        text = reader.text(item, f"{where} keys", secret=True)
        try:
            key = bytes.fromhex(text or "")
        except ValueError:
            key = b""
        if len(key) != _KEY_BYTES:
            reader.problem(item, f"{where}: each simulator key is 32 hex digits")
        keys.append(key)
    return tuple(keys)


def _topics(reader: Reader, node: Node, where: str) -> tuple[str, ...] | None:
    """Topic filters: a list, or one filter."""
    items = node.value if isinstance(node, reader.yaml.SequenceNode) else [node]
    if not items:
        reader.problem(node, f"{where} topics: give at least one topic filter, or leave it out")
    topics = []
    for item in items:
        topic = reader.text(item, f"{where} topics")
        problem = None if topic is None else filter_problem(topic)
        if problem is not None:
            reader.problem(item, f"{where} topics: {problem}")
        topics.append(None if problem else topic)
    return tuple(t for t in topics if t is not None) if items and None not in topics else None


def _broker(
    reader: Reader, node: Node, fields: dict[str, Node], where: str, shared: Broker | None
) -> Broker | None:
    """An mqtt receiver's broker: its own (`host` and the rest), or the mqtt: section's (its
    client ID left out: the receiver takes one of its own)."""
    own = {name: fields[name] for name in BROKER_OPTIONS if name in fields}
    if own:
        return broker_settings(reader, node, own, where)
    if shared is None:
        reader.problem(
            node, f"{where}: give the broker's host, or an mqtt: section whose broker it shares"
        )
        return None
    return replace(shared, client_id="")


def _receiver(
    reader: Reader, node: Node, number: int, shared: Broker | None
) -> ReceiverSpec | None:
    where = f"receiver {number}"
    fields = reader.mapping(node, where, ("type", *OPTIONS))
    if "type" not in fields:
        reader.problem(node, f"{where}: say its type: one of {', '.join(TYPES)}")
        return None
    kind = reader.choice(fields["type"], f"{where} type", TYPES)
    if kind is None:
        return None
    options = {name: value for name, value in fields.items() if name != "type"}
    for name in unknown_options(kind, set(options)):
        reader.problem(fields[name], f"{where}: a {kind} receiver takes no '{name}'")
    values: dict[str, Any] = {}
    failed = False
    if kind == "mqtt":
        values["broker"] = _broker(reader, node, fields, where, shared)
        if "topics" in fields:
            values["topics"] = _topics(reader, fields["topics"], where)
        failed = values["broker"] is None or values.get("topics", ()) is None
        options = {k: v for k, v in options.items() if k not in (*BROKER_OPTIONS, "topics")}
    for name, value_node in options.items():
        option = OPTIONS[name]
        if name not in COMMON and name in unknown_options(kind, {name}):
            continue
        if option.kind is Kind.KEYS:
            keys = _simulator_keys(reader, value_node, where)
            failed = failed or keys is None
            values[name] = keys or ()
            continue
        text = reader.text(value_node, f"{where} {name}")
        if text is None:
            failed = True
            continue
        try:
            value = convert(option, text)
        except ReceiverSpecError as error:
            reader.problem(value_node, f"{where} {error}")
            failed = True
            continue
        if option.kind is Kind.PATH:
            value = str((reader.base / value).expanduser())
        values[name] = value
    if failed:
        return None
    try:
        return build_spec(kind, values)
    except ReceiverSpecError as error:
        reader.problem(node, f"{where}: {error}")
        return None


def receivers_section(
    reader: Reader, node: Node | None, root: Node, shared: Broker | None = None
) -> list[ReceiverSpec]:
    """The receivers; `shared`: the mqtt: section's broker, for mqtt receivers without a host."""
    if not isinstance(node, reader.yaml.SequenceNode) or not node.value:
        reader.problem(
            node or root,
            "no receivers: add at least one: a stick with its device, a network radio (type "
            f"lines), or type simulator for a first look (types: {', '.join(TYPES)})",
        )
        return []
    receivers = [
        spec
        for number, item in enumerate(node.value, start=1)
        if (spec := _receiver(reader, item, number, shared)) is not None
    ]
    names = [spec.label for spec in receivers]
    for name in sorted({n for n in names if names.count(n) > 1}):
        reader.problem(node, f"two receivers are called {shown(name)}: give each a name")
    return receivers
