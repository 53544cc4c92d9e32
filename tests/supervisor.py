"""A stand-in for Home Assistant's Supervisor, the one part of Home Assistant OS that cannot run
here: a small HTTP server on 127.0.0.1 that answers `GET /services/mqtt` as the Supervisor's API
documentation says (docs/home-assistant.md, section 4): `{"result": "ok", "data": {...}}` with
the broker (its port as text, as the documentation's example gives it), 400 `{"result":
"error", "message": "Service not enabled"}` when no add-on provides MQTT, and 401 for a request
without the add-on's bearer token."""

from __future__ import annotations

import json
from email.message import Message
from typing import Any

from .conftest import Answer, Answering


class StandInSupervisor(Answering):
    """Answers with `broker` (None: no broker installed) to requests bearing `token`."""

    def __init__(self, token: str, broker: dict[str, Any] | None) -> None:
        self.token = token
        self.broker = broker
        super().__init__(self.answer)

    def answer(self, path: str, headers: Message) -> Answer:
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, [("Content-Type", "text/plain; charset=utf-8")], b"401: Unauthorized"
        if path != "/services/mqtt":
            return _json(404, {"result": "error", "message": "Service does not exist"})
        if self.broker is None:
            return _json(400, {"result": "error", "message": "Service not enabled"})
        data = {"addon": "core_mosquitto", "ssl": False, "protocol": "3.1.1", **self.broker}
        return _json(200, {"result": "ok", "data": data})


def _json(status: int, document: dict[str, Any]) -> Answer:
    return status, [("Content-Type", "application/json")], json.dumps(document).encode()
