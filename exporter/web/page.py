"""The status page at `/`: self-contained HTML, CSS, SVG and a little JavaScript.

No CDN and no build step: the page (`static/status.html`) carries the current status, so it
renders at once, then asks `/api/status?history=1` every few seconds (and once a minute with
the 24-hour history, `history=1,day`). Polish or English, following the browser's language
until the page's switch says otherwise. Each card is one function of the page's `CARDS`.

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

REFRESH_SECONDS = 5
PAGE = (
    resources.files(__package__)
    .joinpath("static/status.html")
    .read_text(encoding="utf-8")
    .replace("__REFRESH__", str(REFRESH_SECONDS))
)


def _hashes(element: str) -> str:
    """CSP sources for the page's inline `<element>`s without attributes (the status data is
    a `<script type="application/json">`, which is data, never run)."""
    bodies = re.findall(rf"<{element}>(.*?)</{element}>", PAGE, flags=re.DOTALL)
    digests = (base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() for body in bodies)
    return " ".join(f"'sha256-{digest}'" for digest in digests)


#: The page's inline script and style, as CSP sources.
INLINE_SOURCES = {"script-src": _hashes("script"), "style-src": _hashes("style")}


def render(status: dict[str, Any]) -> str:
    """The page, carrying the current status as JSON (safe inside its script element)."""
    data = json.dumps(status, ensure_ascii=False, default=str).replace("<", "\\u003c")
    return PAGE.replace("__STATUS__", data)
