"""exporter/net: an MQTT connection's start against Debian's mosquitto and against plain
loopback sockets that misbehave (silent, closing, absent), and every failure in plain words
with the reason that labels it."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from exporter.net import (
    CONNECT_REASONS,
    STOPPED,
    Broker,
    Problem,
    TlsFiles,
    Will,
    connect,
    connect_problem,
    lost,
    refusal,
)

from .conftest import free_port, wait_until
from .mosquitto import PASSWORD, USER, Mosquitto, Subscriber


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback TCP socket that accepts connections and says nothing."""
    server = socket.create_server(("127.0.0.1", 0))
    yield server
    server.close()


def login(broker: Mosquitto, **changes: object) -> Broker:
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": broker.port,
        "username": USER,
        "password": PASSWORD,
        "client_id": "net-test",
    }
    return Broker(**(settings | changes))  # type: ignore[arg-type]


def test_an_accepted_connection_gives_a_client_whose_will_the_broker_keeps(
    broker: Mosquitto,
) -> None:
    watcher = Subscriber(broker, "net/will")
    try:
        will = Will("net/will", b"gone", 1, False)
        client = connect(login(broker), will=will, stop=threading.Event())
        assert isinstance(client, mqtt.Client), client
        assert client.is_connected()
        assert client.on_connect is None and client.on_disconnect is None
        opened = client.socket()
        assert isinstance(opened, socket.socket)
        assert opened.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        opened.close()  # vanish without a goodbye: the broker publishes the will
        assert watcher.wait(lambda: watcher.latest("net/will") == b"gone")
    finally:
        watcher.close()


def test_prepare_runs_before_the_connection_opens(broker: Mosquitto) -> None:
    seen: list[bool] = []

    def prepare(client: mqtt.Client) -> None:
        seen.append(client.is_connected())
        client.max_inflight_messages_set(7)  # paho refuses this once connected

    client = connect(login(broker), prepare=prepare, stop=threading.Event())
    assert isinstance(client, mqtt.Client), client
    assert seen == [False]
    client.disconnect()


def test_a_wrong_password_is_unauthorized_and_named(broker: Mosquitto) -> None:
    found = connect(login(broker, password="wrong-Passw0rd"), stop=threading.Event())
    assert found == Problem(
        "unauthorized", f"mqtt://127.0.0.1:{broker.port} refused the connection: Not authorized"
    )
    assert "wrong-Passw0rd" not in repr(found)


@pytest.mark.integration
def test_no_broker_on_the_port_is_a_refused_connection() -> None:
    where = f"mqtt://127.0.0.1:{(port := free_port())}"
    found = connect(Broker("127.0.0.1", port), stop=threading.Event())
    assert found == Problem(
        "connection", f"{where} refused the connection (is the broker running?)"
    )


def test_a_silent_server_is_a_timeout_and_stop_cuts_the_wait_short(
    listener: socket.socket,
) -> None:
    port = listener.getsockname()[1]
    began = time.monotonic()
    found = connect(Broker("127.0.0.1", port), stop=threading.Event(), timeout=0.5)
    assert found == Problem(
        "timeout", f"mqtt://127.0.0.1:{port} did not answer the connection request"
    )
    assert time.monotonic() - began < 5

    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    began = time.monotonic()
    found = connect(Broker("127.0.0.1", port), stop=stop, timeout=60)
    assert isinstance(found, Problem) and found.reason == STOPPED
    assert time.monotonic() - began < 5


def test_a_server_that_closes_at_once_is_named_with_the_likely_causes(
    listener: socket.socket,
) -> None:
    port = listener.getsockname()[1]

    def close_at_once() -> None:
        peer, _ = listener.accept()
        peer.recv(1024)  # the CONNECT packet
        peer.close()

    closer = threading.Thread(target=close_at_once, daemon=True)
    closer.start()
    found = connect(Broker("127.0.0.1", port), stop=threading.Event())
    closer.join(timeout=10)
    assert isinstance(found, Problem) and found.reason == "connection"
    assert found.message.startswith(f"mqtt://127.0.0.1:{port} closed the connection before")
    assert "a TLS port spoken to without tls:" in found.message


def test_tls_to_a_server_that_speaks_no_tls_is_a_tls_problem(listener: socket.socket) -> None:
    port = listener.getsockname()[1]

    def answer_in_plain_text() -> None:
        peer, _ = listener.accept()
        peer.recv(1024)  # the TLS ClientHello
        peer.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        peer.close()

    server = threading.Thread(target=answer_in_plain_text, daemon=True)
    server.start()
    found = connect(Broker("127.0.0.1", port, TlsFiles()), stop=threading.Event(), timeout=5)
    server.join(timeout=10)
    assert isinstance(found, Problem) and found.reason == "tls", found
    assert found.message.startswith(f"TLS handshake with mqtts://127.0.0.1:{port} failed (")
    assert found.message.endswith("is it a TLS port, and are the certificate files right?")


@pytest.mark.integration
def test_unreadable_tls_files_are_a_connection_problem(tmp_path: Path) -> None:
    files = TlsFiles(ca_file=tmp_path / "absent.crt")
    found = connect(Broker("127.0.0.1", free_port(), tls=files), stop=threading.Event())
    assert isinstance(found, Problem) and found.reason == "connection", found
    assert found.message.startswith("cannot connect to mqtts://127.0.0.1:")


# --- the words, without a network ------------------------------------------------------------

WHERE = "mqtt://broker.lan:1883"


def untrusted() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate"
    return error


@pytest.mark.parametrize(
    ("error", "reason", "words"),
    [
        (untrusted(), "tls", "presented a certificate that is not trusted (self-signed"),
        (ssl.SSLError(1, "wrong version number"), "tls", "TLS handshake with mqtt://broker"),
        (socket.gaierror(-2, "Name or service not known"), "connection", "cannot resolve"),
        (TimeoutError(), "timeout", "did not answer in time"),
        (ConnectionRefusedError(111, "Connection refused"), "connection", "is the broker running"),
        (OSError(113, "No route to host"), "connection", "cannot connect to mqtt://broker.lan"),
    ],
)
def test_every_connect_failure_has_a_reason_and_words(
    error: OSError, reason: str, words: str
) -> None:
    found = connect_problem(error, WHERE)
    assert found.reason == reason and found.reason in CONNECT_REASONS
    assert words in found.message


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Bad user name or password", "unauthorized"),
        ("Not authorized", "unauthorized"),
        ("Server unavailable", "refused"),
        ("Client identifier not valid", "refused"),
    ],
)
def test_a_refusal_says_the_brokers_words(name: str, reason: str) -> None:
    code = ReasonCode(PacketTypes.CONNACK, name)
    assert refusal(code, WHERE) == Problem(reason, f"{WHERE} refused the connection: {name}")


def test_a_lost_connection_says_why_when_paho_knows() -> None:
    assert lost(None, WHERE).message == f"the connection to {WHERE} was lost"
    code = ReasonCode(PacketTypes.DISCONNECT, "Keep alive timeout")
    assert lost(code, WHERE) == Problem(
        "connection_lost", f"the connection to {WHERE} was lost (Keep alive timeout)"
    )


def test_the_broker_settings_name_the_broker_without_the_password() -> None:
    assert Broker("::1", 8883, TlsFiles()).where == "mqtts://[::1]:8883"
    assert Broker("broker.lan").where == WHERE
    assert "s3cret" not in repr(Broker("h", username="u", password="s3cret"))


def test_a_connection_is_served_by_its_owner_alone(broker: Mosquitto) -> None:
    """The caller drives the loop: the client starts no thread of its own."""
    before = threading.active_count()
    client = connect(login(broker), stop=threading.Event())
    assert isinstance(client, mqtt.Client)
    assert threading.active_count() == before
    info = client.publish("net/owner", b"x", qos=1)
    assert wait_until(lambda: client.loop(0.05) == 0 and info.is_published(), 10)
    client.disconnect()
