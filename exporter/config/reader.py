"""Reading a YAML configuration: the node walker that converts values and collects every
problem with its line, `${ENV}` substitution and `*_file` secrets. Values of secrets are never
echoed in a message, nor anything else that could be a key (`shown`: a fingerprint instead)."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..plumbing import did_you_mean
from ..wmbus import shown

if TYPE_CHECKING:
    from yaml import Node

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
T = TypeVar("T")


#: Unicode categories a name may not hold: controls (line breaks, tabs, NUL) and the line and
#: paragraph separators. They cannot be written in an InfluxDB tag and break labels and logs.
_CONTROLS = frozenset({"Cc", "Zl", "Zp"})


def unfit_name(text: str) -> str | None:
    """What is wrong with a meter's name or site (None: nothing): a control character, or a
    backslash (InfluxDB's line protocol cannot always write one in a tag)."""
    for position, character in enumerate(text, start=1):
        if unicodedata.category(character) in _CONTROLS:
            return (
                f"holds a control character (U+{ord(character):04X}) at character {position}: "
                "names go into InfluxDB tags and metric labels, which cannot hold line breaks "
                "or tabs; remove it"
            )
        if character == "\\":
            return (
                f"holds a backslash at character {position}: names go into InfluxDB tags, "
                "where a backslash cannot always be written; use another character"
            )
    return None


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the configuration, with its line (1-based) when known, or the
    add-on option it is about."""

    line: int | None
    message: str
    source: str | None = None  # another file than the configuration (a meters CSV file)
    option: str | None = None  # the add-on option it is about, e.g. meters[1].key (no line)

    def format(self, source: str) -> str:
        where = self.source or source
        if self.option:
            return f"{where}: {self.option}: {self.message}"
        return f"{where}:{self.line}: {self.message}" if self.line else f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """Something the exporter can run with but the user should mend (a directory it cannot
    write): `code` is the advice of `amiplus.explain`, `path` what it is about."""

    line: int | None
    message: str
    code: str
    path: str

    def format(self, source: str) -> str:
        return Problem(self.line, f"warning: {self.message}").format(source)


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every reason at once."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.format(source) for p in problems))


TAB = "a tab character: YAML indents with spaces only; replace the tab with spaces"
#: PyYAML's and libyaml's words for the usual slips (in their problem or context), ours, and
#: whether the line to name is where the trouble began (an unclosed quote) rather than found.
_YAML_SLIPS: tuple[tuple[tuple[str, ...], str, bool], ...] = (
    (("tab character",), TAB, False),
    (
        ("mapping values are not allowed",),
        "a ':' where none can be: write 'key: value' with a space after the colon, and put a "
        "value that holds ': ' in quotes",
        False,
    ),
    (
        ("while scanning a quoted scalar",),
        "a quotation mark that is never closed: close it on the same line",
        True,
    ),
    (
        ("expected '-' indicator", "expected <block end>"),
        "the indentation does not line up: the keys of one entry, and the '-' of one list, "
        "start in the same column",
        False,
    ),
    (("',' or ']'",), "a '[' that is never closed with ']'", True),
    (("',' or '}'",), "a '{' that is never closed with '}'", True),
)


def yaml_problem(error: Exception, text: str) -> Problem:
    """A YAML syntax error in plain words, with the line to look at."""
    found = getattr(error, "problem_mark", None)
    began = getattr(error, "context_mark", None)
    words = f"{getattr(error, 'context', '') or ''} {getattr(error, 'problem', '') or error}"
    lines = text.splitlines()
    if found is not None and found.line < len(lines):
        line = lines[found.line]
        indent = line[: len(line) - len(line.lstrip())]
        if "\t" in indent or line[found.column : found.column + 1] == "\t":
            return Problem(found.line + 1, f"not valid YAML: {TAB}")
    for clues, message, at_start in _YAML_SLIPS:
        if any(clue in words for clue in clues):
            mark = began if at_start and began is not None else found
            return Problem(mark.line + 1 if mark else None, f"not valid YAML: {message}")
    problem = getattr(error, "problem", None) or error
    return Problem(
        found.line + 1 if found else None,
        f"not valid YAML: {problem} (check the indentation and quotes of this line and the one "
        "before)",
    )


class Reader:
    """Walks the YAML node tree, converting values and collecting problems with lines; or,
    with `names`, with the add-on options the nodes came from (a node's line is then the index
    of its option's name: config/addon.py)."""

    def __init__(
        self, env: Mapping[str, str] | None, base: Path, names: Sequence[str] | None = None
    ) -> None:
        """`env`: what `${VAR}` in a value is replaced with; None: values are taken as written
        (the add-on's options are not templates)."""
        import yaml  # noqa: PLC0415 (only when a file is read: the built-in setup needs none)

        self.yaml = yaml
        self.env = env
        self.base = base
        self.names = names
        self.problems: list[Problem] = []
        self.warnings: list[ConfigWarning] = []

    @property
    def environment(self) -> Mapping[str, str]:
        """Where defaults come from (`$STATE_DIRECTORY`, `$HOME`): `env`, or the process's own
        when values are taken as written."""
        return os.environ if self.env is None else self.env

    def compose(self, text: str) -> Node | None:
        """The YAML node tree, with libyaml's parser where PyYAML has it (ten times faster on a
        fleet's configuration) and the pure-Python one otherwise."""
        loader = getattr(self.yaml, "CSafeLoader", self.yaml.SafeLoader)
        root: Node | None = self.yaml.compose(text, Loader=loader)
        return root

    def problem(self, node: Node | None, message: str) -> None:
        if node is None:
            self.problems.append(Problem(None, message))
        elif self.names is not None:  # the line orders the problems as the options come
            line = node.start_mark.line + 1
            self.problems.append(Problem(line, message, option=self.place(node)))
        else:
            self.problems.append(Problem(node.start_mark.line + 1, message))

    def place(self, node: Node) -> str:
        """Where a node is, for a message that names it: its line, or its add-on option."""
        line: int = node.start_mark.line
        return self.names[line] if self.names is not None else f"line {line + 1}"

    def warn(self, node: Node | None, message: str, code: str, path: str) -> None:
        line = node.start_mark.line + 1 if node else None
        self.warnings.append(ConfigWarning(line, message, code, path))

    def mapping(self, node: Node, where: str, allowed: tuple[str, ...]) -> dict[str, Node]:
        if not isinstance(node, self.yaml.MappingNode):
            self.problem(node, f"{where} must be a mapping (key: value lines)")
            return {}
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in out:
                self.problem(key_node, f"{where}: {shown(key)} is given twice")
            elif key not in allowed:
                self.problem(
                    key_node, f"{where}: unknown key {shown(key)}{did_you_mean(key, allowed)}"
                )
            else:
                out[key] = value_node
        return out

    def text(self, node: Node, where: str, *, secret: bool = False) -> str | None:
        if not isinstance(node, self.yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.problem(node, f"{where} must be a single value")
            return None
        missing: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            value = (self.env or {}).get(match.group(1), match.group(2))
            if value is None:
                missing.append(match.group(1))
                return ""
            return value

        value = str(node.value) if self.env is None else _ENV.sub(substitute, str(node.value))
        for name in missing:
            self.problem(node, f"{where}: the environment variable {name} is not set")
        if missing:
            return None
        return value if secret else value.strip()

    def number(self, node: Node, where: str, low: float, high: float) -> float | None:
        value = self.text(node, where)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            self.problem(node, f"{where} must be a number, not {shown(value)}")
            return None
        if not low <= number <= high:
            self.problem(node, f"{where} must be between {low:g} and {high:g}, not {number:g}")
            return None
        return number

    def boolean(self, node: Node, where: str) -> bool | None:
        value = self.text(node, where)
        if value is None:
            return None
        lowered = value.lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        self.problem(node, f"{where} must be true or false, not {shown(value)}")
        return None

    def choice(self, node: Node, where: str, choices: tuple[str, ...]) -> str | None:
        value = self.text(node, where)
        if value is not None and value.lower() not in choices:
            hint = did_you_mean(value, choices, or_list=False)
            self.problem(
                node, f"{where} must be one of {', '.join(choices)}, not {shown(value)}{hint}"
            )
            return None
        return value.lower() if value is not None else None

    def path(self, node: Node, where: str) -> Path | None:
        value = self.text(node, where)
        return None if value is None else (self.base / value).expanduser()

    def secret(
        self, fields: dict[str, Node], name: str, where: str
    ) -> tuple[Node | None, str | None]:
        """`name` given inline (or from ${ENV}), or `name_file` read from a file (Docker
        secrets); never both. The value is never echoed."""
        inline, from_file = fields.get(name), fields.get(f"{name}_file")
        if inline is not None and from_file is not None:
            self.problem(from_file, f"{where}: give either {name} or {name}_file, not both")
            return inline, None
        if inline is not None:
            return inline, self.text(inline, f"{where} {name}", secret=True)
        if from_file is not None:
            path = self.path(from_file, f"{where} {name}_file")
            if path is None:
                return from_file, None
            try:
                return from_file, path.read_text().strip()
            except OSError as error:
                self.problem(
                    from_file, f"{where}: cannot read {name}_file {path}: {error.strerror}"
                )
                return from_file, None
        return None, None

    def optional(
        self,
        fields: dict[str, Node],
        key: str,
        convert: Callable[[Node, str], T | None],
        where: str,
    ) -> T | None:
        node = fields.get(key)
        return None if node is None else convert(node, f"{where} {key}")
