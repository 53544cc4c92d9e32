"""What Grafana sends to Prometheus for a panel: range queries with the start and end aligned to
the step in the dashboard's UTC offset (as Grafana's `AlignTimeRange` does, the offset taken at
the end of the range), and the duration of a panel's relative time."""

from __future__ import annotations

import json
import re
import urllib.parse
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .conftest import http_get

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400, "y": 365 * 86400}


def seconds(span: str) -> int:
    """A Grafana duration such as `31d`, `12w` or `13M` in seconds (a month is 30 days, as in
    Grafana's `$__range` of a relative time)."""
    match = re.fullmatch(r"(\d+)([smhdwMy])", span)
    assert match, span
    return int(match.group(1)) * UNITS[match.group(2)]


def utc_offset(zone: ZoneInfo, moment: float) -> int:
    offset = datetime.fromtimestamp(moment, zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def align(moment: float, step: int, offset: int) -> int:
    """Grafana's alignment: down to a multiple of the step, counted in the dashboard's time."""
    return int((moment + offset) // step * step - offset)


def query_range(
    url: str, expression: str, start: float, end: float, *, step: int, offset: int
) -> list[dict[str, Any]]:
    """A range query as Grafana sends it for a panel; the result matrix."""
    parameters = {
        "query": expression,
        "start": str(align(start, step, offset)),
        "end": str(align(end, step, offset)),
        "step": str(step),
    }
    code, body = http_get(f"{url}/api/v1/query_range?" + urllib.parse.urlencode(parameters))
    document = json.loads(body)
    assert code == 200 and document["status"] == "success", (expression, document)
    result: list[dict[str, Any]] = document["data"]["result"]
    return result
