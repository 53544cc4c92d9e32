"""A stand-in for Home Assistant's Supervisor, the one part of Home Assistant OS that cannot run
here: a small HTTP server on 127.0.0.1 that answers `GET /services/mqtt` as the Supervisor's API
documentation says (docs/home-assistant.md, section 2): `{"result": "ok", "data": {...}}` with
the broker (its port as text, as the documentation's example gives it), 400 `{"result":
"error", "message": "Service not enabled"}` when no add-on provides MQTT, and 401 for a request
without the add-on's bearer token."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StandInSupervisor:
    """Answers with `broker` (None: no broker installed) to requests bearing `token`."""

    def __init__(self, token: str, broker: dict[str, Any] | None) -> None:
        self.token = token
        self.broker = broker
        self.requests: list[tuple[str, str | None]] = []  # path, Authorization header
        supervisor = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                authorization = self.headers.get("Authorization")
                supervisor.requests.append((self.path, authorization))
                status, body, kind = supervisor.answer(self.path, authorization)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, authorization: str | None) -> tuple[int, bytes, str]:
        if authorization != f"Bearer {self.token}":
            return 401, b"401: Unauthorized", "text/plain; charset=utf-8"
        if path != "/services/mqtt":
            return _json(404, {"result": "error", "message": "Service does not exist"})
        if self.broker is None:
            return _json(400, {"result": "error", "message": "Service not enabled"})
        data = {"addon": "core_mosquitto", "ssl": False, "protocol": "3.1.1", **self.broker}
        return _json(200, {"result": "ok", "data": data})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _json(status: int, document: dict[str, Any]) -> tuple[int, bytes, str]:
    return status, json.dumps(document).encode(), "application/json"
