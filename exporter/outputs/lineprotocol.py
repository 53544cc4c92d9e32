r"""InfluxDB line protocol: one point as one line, each element escaped as InfluxDB's line
protocol reference says, so that no name can end a point early or start another.

- measurement: comma and space;
- tag keys, tag values and field keys: comma, equals sign and space;
- string field values: double quote and backslash (inside their double quotes).

Elsewhere a backslash is taken literally (InfluxDB 1.x keeps `\\` as two), so a backslash
before one of the escaped characters, or at the end of a name, cannot be written at all; nor
can a line break. The configuration refuses names that hold either (config/reader.py), and
meter IDs are hex digits.
"""

from __future__ import annotations

from collections.abc import Mapping


def _escapes(special: str) -> dict[int, str]:
    return str.maketrans({character: "\\" + character for character in special})


_MEASUREMENT = _escapes(", ")
_KEY = _escapes(",= ")  # tag keys, tag values, field keys
_STRING = _escapes('\\"')  # string field values

FieldValue = float | str


def _value(value: FieldValue) -> str:
    """A float as Python's shortest round-trip form, a string quoted and escaped."""
    if isinstance(value, str):
        return '"' + value.translate(_STRING) + '"'
    return repr(float(value))


def line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue],
    timestamp: int,
) -> str:
    """One point; tags with an empty value are left out (the line protocol has none)."""
    head = measurement.translate(_MEASUREMENT) + "".join(
        f",{key.translate(_KEY)}={value.translate(_KEY)}" for key, value in tags.items() if value
    )
    values = ",".join(f"{key.translate(_KEY)}={_value(value)}" for key, value in fields.items())
    return f"{head} {values} {timestamp}"
