"""The `web:` section: where the HTTP server listens, its web config file (TLS, basic auth,
headers) and the extra names it answers to (docs/contracts.md, sections 3 and 6)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..plumbing import parse_listen
from ..wmbus import shown
from .reader import Reader

if TYPE_CHECKING:
    from yaml import Node

DEFAULT_LISTEN = ":9264"
_WEB = ("listen", "config_file", "allowed_hosts")
#: A host name: labels of letters, digits and '-' separated by dots (a trailing dot allowed).
HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


@dataclass(frozen=True, slots=True)
class WebConfig:
    listen: str = DEFAULT_LISTEN
    config_file: Path | None = None  # exporter-toolkit web config: TLS, basic auth, headers
    #: Names the server answers to besides its own (with no basic auth, a request for any other
    #: name is refused: a web page may not read the status through a name it controls).
    allowed_hosts: tuple[str, ...] = ()


def _listen(reader: Reader, node: Node) -> str | None:
    text = reader.text(node, "web listen")
    if text is None:
        return None
    try:
        parse_listen(text)
    except ValueError as error:
        reader.problem(node, f"web listen {shown(text)}: {error}")
        return None
    return text


def _hosts(reader: Reader, node: Node) -> tuple[str, ...]:
    if not isinstance(node, reader.yaml.SequenceNode):
        reader.problem(node, "web allowed_hosts must be a list of host names, e.g. [amiplus.lan]")
        return ()
    names = []
    for item in node.value:
        name = reader.text(item, "web allowed_hosts")
        if name is not None and not HOST_NAME.fullmatch(name):
            reader.problem(
                item,
                f"web allowed_hosts: {shown(name)} is not a host name (letters, digits, '-' "
                "and dots; no port, no scheme)",
            )
        elif name is not None:
            names.append(name.lower().rstrip("."))
    return tuple(names)


def web_section(reader: Reader, node: Node) -> WebConfig:
    web = reader.mapping(node, "web", _WEB)
    listen = reader.optional(web, "listen", lambda n, _: _listen(reader, n), "web")
    config_file = reader.optional(web, "config_file", reader.path, "web")
    hosts = _hosts(reader, web["allowed_hosts"]) if "allowed_hosts" in web else ()
    return WebConfig(listen or DEFAULT_LISTEN, config_file, hosts)
