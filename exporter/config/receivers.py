"""The `receivers:` section, read with the receiver grammar (`exporter/receivers/grammar.py`)
that `--receiver` uses too."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..receivers import (
    COMMON,
    OPTIONS,
    TYPES,
    Kind,
    ReceiverSpec,
    ReceiverSpecError,
    build_spec,
    convert,
    unknown_options,
)
from ..wmbus import shown
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


def _receiver(reader: Reader, node: Node, number: int) -> ReceiverSpec | None:
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


def receivers_section(reader: Reader, node: Node | None, root: Node) -> list[ReceiverSpec]:
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
        if (spec := _receiver(reader, item, number)) is not None
    ]
    names = [spec.label for spec in receivers]
    for name in sorted({n for n in names if names.count(n) > 1}):
        reader.problem(node, f"two receivers are called {shown(name)}: give each a name")
    return receivers
