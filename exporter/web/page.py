"""The status page at `/`: self-contained HTML, CSS, SVG and a little JavaScript.

No CDN and no build step: the page (`static/status.html`) carries the current status, so it
renders at once, then asks `api/status?history=1` every few seconds (and once a minute with
the 24-hour history, `history=1,day`). Polish or English, following the browser's language
until the page's switch says otherwise. Each card is one function of the page's `CARDS`.

Every URL of the page is relative, so it works under any prefix: Home Assistant's ingress
serves it at `/api/hassio_ingress/<token>/` (web/ingress.py), where `/metrics` is not served
and the page leaves its link out.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from .history import DAY_STEP, HISTORY_STEP

REFRESH_SECONDS = 5
PAGE = resources.files(__package__).joinpath("static/status.html").read_text(encoding="utf-8")
METRICS_LINK = '<a href="metrics" id="metrics">/metrics</a>'


def render(status: dict[str, Any], *, metrics: bool = True) -> str:
    """The page, carrying the current status as JSON (safe inside its script element), with
    a link to `/metrics` where that is served too."""
    data = json.dumps(status, ensure_ascii=False, default=str).replace("<", "\\u003c")
    filled = {
        "__METRICS_LINK__": METRICS_LINK if metrics else "",
        "__REFRESH__": REFRESH_SECONDS,
        "__HOUR_STEP__": HISTORY_STEP,
        "__DAY_STEP__": DAY_STEP,
        "__STATUS__": data,  # last: the status may hold any of the other names
    }
    page = PAGE
    for name, value in filled.items():
        page = page.replace(name, str(value))
    return page
