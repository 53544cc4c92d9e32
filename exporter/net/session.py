"""The start of an MQTT connection: a paho client built from `Broker` settings (TLS context,
credentials, last will), connected, and the broker's answer (CONNACK) waited for; every failure
in plain words a user can act on, with the reason that labels it in metrics.

paho-mqtt is imported here only when a client is built, so a configuration without MQTT never
loads it. The caller owns the client it gets: it alone drives its network loop afterwards."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..plumbing import import_extra
from .broker import Broker

if TYPE_CHECKING:
    import paho.mqtt.client as paho

CONNACK_TIMEOUT = 10.0  # seconds the broker has to answer a connection request
STEP = 0.1  # seconds between looks at the answer (and at `stop`) while waiting
#: The reasons a connection attempt fails (`Problem.reason`), as metrics label them.
CONNECT_REASONS = ("connection", "timeout", "tls", "unauthorized", "refused")
#: CONNACK codes that mean the login was refused: MQTT 3.1.1's 4 and 5, MQTT 5's 134 and 135
#: (bad user name or password, not authorized); any other refusal is `refused`.
UNAUTHORIZED = frozenset({4, 5, 134, 135})
#: The answers the caller ignores when it stopped the attempt itself.
STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a client is not connected: a reason (a metric label) and plain words."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes for a client that vanishes without saying goodbye."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


def paho_client(needed_for: str = "MQTT") -> ModuleType:
    """paho-mqtt's client module, or `MissingExtra` saying how to install it."""
    return import_extra("paho.mqtt.client", needed_for)


#: What a failed TCP or TLS connect means, most specific first: the error's type, the reason,
#: and the words (from the error and the broker's address).
FAILURES: tuple[tuple[type[OSError], str, Callable[[Any, str], str]], ...] = (
    (
        ssl.SSLCertVerificationError,
        "tls",
        lambda error, where: (
            f"TLS: {where} presented a certificate that is not trusted "
            f"({error.verify_message}); check tls ca_file"
        ),
    ),
    (
        ssl.SSLError,
        "tls",
        lambda error, where: (
            f"TLS handshake with {where} failed ({getattr(error, 'reason', None) or error}); "
            "is it a TLS port, and are the certificate files right?"
        ),
    ),
    (
        socket.gaierror,
        "connection",
        lambda error, where: f"cannot resolve the broker's host in {where}",
    ),
    (TimeoutError, "timeout", lambda error, where: f"{where} did not answer in time"),
    (
        ConnectionRefusedError,
        "connection",
        lambda error, where: f"{where} refused the connection (is the broker running?)",
    ),
    (
        OSError,
        "connection",
        lambda error, where: f"cannot connect to {where}: {error.strerror or error}",
    ),
)


def connect_problem(error: OSError, where: str) -> Problem:
    """What a failed connect (TCP, TLS, or the TLS files) means, in words a user can act on."""
    for kind, reason, words in FAILURES:
        if isinstance(error, kind):
            return Problem(reason, words(error, where))
    raise AssertionError("OSError is the last row")  # pragma: no cover


def refusal(code: Any, where: str) -> Problem:
    """The broker answered the connection request with a failure code."""
    reason = "unauthorized" if code.value in UNAUTHORIZED else "refused"
    return Problem(reason, f"{where} refused the connection: {code}")


def lost(code: Any, where: str) -> Problem:
    """An accepted connection ended without the client asking (paho's reason, when it has one)."""
    said = "" if str(code) in ("None", "Unspecified error") else f" ({code})"
    return Problem("connection_lost", f"the connection to {where} was lost{said}")


def new_client(broker: Broker, will: Will | None = None) -> paho.Client:
    """A paho client (MQTT 3.1.1, no reconnecting of its own) with the broker's credentials, TLS
    context and `will`; raises OSError (ssl.SSLError included) for unusable TLS files."""
    mqtt = paho_client()
    client: paho.Client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=broker.client_id,
        reconnect_on_failure=False,
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password or None)
    if broker.tls is not None:
        files = broker.tls
        context = ssl.create_default_context(cafile=str(files.ca_file) if files.ca_file else None)
        if files.cert_file and files.key_file:
            context.load_cert_chain(files.cert_file, files.key_file)
        client.tls_set_context(context)
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    return client


def connect(
    broker: Broker,
    *,
    will: Will | None = None,
    prepare: Callable[[paho.Client], None] | None = None,
    stop: threading.Event,
    timeout: float = CONNACK_TIMEOUT,
) -> paho.Client | Problem:
    """A client the broker has accepted, or why not. `prepare` sets the caller's callbacks and
    limits before the connection opens (paho takes limits only then, and messages may come with
    the broker's answer). Blocks for the TCP and TLS handshakes (paho's connect timeout) and
    then up to `timeout` for the answer, which `stop` cuts short (the Problem's reason is then
    `STOPPED`). `on_connect` and `on_disconnect` are this function's: the caller sets its
    `on_disconnect` once it has the client."""
    mqtt = paho_client()
    where = broker.where
    answers: list[tuple[str, Any]] = []
    try:
        client = new_client(broker, will)
        if prepare is not None:
            prepare(client)
        client.on_connect = lambda c, data, flags, code, _: answers.append(("connack", code))
        client.on_disconnect = lambda c, data, flags, code, _: answers.append(("closed", code))
        client.connect(broker.host, broker.port, keepalive=broker.keepalive)
    except OSError as error:  # ssl.SSLError is an OSError
        return connect_problem(error, where)
    opened = client.socket()
    if isinstance(opened, socket.socket):  # each message leaves at once, not after an ACK
        opened.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    deadline = time.monotonic() + timeout
    while not answers and time.monotonic() < deadline and not stop.is_set():
        if client.loop(STEP) != mqtt.MQTT_ERR_SUCCESS:
            break
    client.on_connect = client.on_disconnect = None
    problem = _answer(answers, where, stop)
    if problem is None:
        return client
    with contextlib.suppress(Exception):  # the socket of a refused attempt
        client.disconnect()
    return problem


def _answer(answers: list[tuple[str, Any]], where: str, stop: threading.Event) -> Problem | None:
    """What the broker's answer (or its absence) means; None: accepted."""
    if not answers:
        if stop.is_set():
            return Problem(STOPPED, f"stopped before {where} answered")
        return Problem("timeout", f"{where} did not answer the connection request")
    kind, code = answers[0]
    if kind == "closed":
        return Problem(
            "connection",
            f"{where} closed the connection before accepting it ({code}); a TLS port spoken to "
            "without tls:, or the client ID used by another client?",
        )
    return refusal(code, where) if code.is_failure else None
