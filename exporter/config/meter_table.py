"""Meters from CSV files (`meters_file:`): a fleet's thousands of meters as rows of ID, key,
name and site, checked row by row with their line numbers like the YAML file's meters."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from ..amiplus import CredentialsError, id_variants, normalise_meter_id, parse_key
from .meters import MeterConfig
from .reader import Problem, Reader, unfit_name

if TYPE_CHECKING:
    from yaml import Node

COLUMNS = ("id", "key", "name", "site")
REQUIRED = ("id", "key")


def _files(reader: Reader, node: Node) -> list[Node]:
    """`meters_file:` is one path or a list of paths."""
    if isinstance(node, reader.yaml.SequenceNode):
        return list(node.value)
    return [node]


def _blank(row: list[str]) -> bool:
    return not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#")


def meters_from_files(reader: Reader, node: Node) -> list[MeterConfig]:
    """Every valid row of the CSV files; each bad row is a problem with its file and line."""
    meters: list[MeterConfig] = []
    for file_node in _files(reader, node):
        path = reader.path(file_node, "meters_file")
        if path is None:
            continue
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            reader.problem(file_node, f"meters_file: cannot read {path}: {reason}")
            continue
        meters.extend(_table(reader, str(path), text))
    return meters


def _table(reader: Reader, source: str, text: str) -> list[MeterConfig]:
    """The meters of one CSV text: a header naming the columns in any order, then a row each."""
    lines = csv.reader(io.StringIO(text))
    rows = ((lines.line_num, row) for row in lines if not _blank(row))
    first = next(rows, None)
    if first is None:
        reader.problems.append(Problem(None, f"no header: write {','.join(COLUMNS)}", source))
        return []
    header = [cell.strip().lower() for cell in first[1]]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing or unknown:
        reader.problems.append(
            Problem(
                first[0],
                f"the header names the columns {', '.join(COLUMNS)} (id and key required); "
                f"missing: {', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'}",
                source,
            )
        )
        return []
    meters: list[MeterConfig] = []
    seen: dict[str, int] = {}
    for line, cells in rows:
        row = dict(zip(header, (cell.strip() for cell in cells), strict=False))
        meter = _row(reader, source, line, row)
        if meter is None:
            continue
        clash = next((seen[i] for i in meter.ids if i in seen), None)
        if clash is not None:
            reader.problems.append(
                Problem(line, f"the address {meter.meter_id} is already on line {clash}", source)
            )
            continue
        seen.update(dict.fromkeys(meter.ids, line))
        meters.append(meter)
    return meters


def _row(reader: Reader, source: str, line: int, row: dict[str, str]) -> MeterConfig | None:
    found: list[str] = []
    meter_id = key = None
    try:
        meter_id = normalise_meter_id(row.get("id", ""))
    except CredentialsError as error:
        found.append(str(error))
    try:
        key = parse_key(row.get("key", ""))
    except CredentialsError as error:
        found.append(str(error))
    for column in ("name", "site"):
        wrong = unfit_name(row.get(column, ""))
        if wrong is not None:
            found.append(f"the {column} {wrong}")
    reader.problems.extend(Problem(line, message, source) for message in found)
    if meter_id is None or key is None or found:
        return None
    name = row.get("name") or meter_id
    return MeterConfig(name, meter_id, id_variants(meter_id), key, site=row.get("site", ""))
