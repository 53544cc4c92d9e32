"""The status page at `/`: self-contained HTML, CSS, SVG and a little JavaScript.

No CDN and no build step: the page (`static/status.html`) carries the current status, so it
renders at once, then asks `api/status?history=1` every few seconds (and once a minute with
the 24-hour history, `history=1,day`). Polish or English, following the browser's language
until the page's switch says otherwise. Each card is one function of the page's `CARDS`.

Every URL of the page is relative, so it works under any prefix: Home Assistant's ingress
serves it at `/api/hassio_ingress/<token>/` (web/ingress.py), where `/metrics` is not served
and the page leaves its link out.

Its one script and one style sheet are inline; the Content-Security-Policy allows exactly
those two by their SHA-256 (`INLINE_SOURCES`, computed here from the file), nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from importlib import resources
from typing import Any

from .history import DAY_STEP, HISTORY_STEP

REFRESH_SECONDS = 5
#: The script's constants, filled in once (before the script's hash is taken).
CONSTANTS = {
    "__REFRESH__": REFRESH_SECONDS,
    "__HOUR_STEP__": HISTORY_STEP,
    "__DAY_STEP__": DAY_STEP,
}


def _page() -> str:
    page = resources.files(__package__).joinpath("static/status.html").read_text(encoding="utf-8")
    for name, value in CONSTANTS.items():
        page = page.replace(name, str(value))
    return page


PAGE = _page()
METRICS_LINK = '<a href="metrics" id="metrics">/metrics</a>'


def _hashes(element: str) -> str:
    """CSP sources for the page's inline `<element>`s without attributes (the status data is
    a `<script type="application/json">`, which is data, never run)."""
    bodies = re.findall(rf"<{element}>(.*?)</{element}>", PAGE, flags=re.DOTALL)
    digests = (base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() for body in bodies)
    return " ".join(f"'sha256-{digest}'" for digest in digests)


#: The page's inline script and style, as CSP sources.
INLINE_SOURCES = {"script-src": _hashes("script"), "style-src": _hashes("style")}


def render(status: dict[str, Any], *, metrics: bool = True) -> str:
    """The page, carrying the current status as JSON (safe inside its script element), with
    a link to `/metrics` where that is served too."""
    data = json.dumps(status, ensure_ascii=False, default=str).replace("<", "\\u003c")
    page = PAGE.replace("__METRICS_LINK__", METRICS_LINK if metrics else "")
    return page.replace("__STATUS__", data)  # last: the status may hold any of the names
