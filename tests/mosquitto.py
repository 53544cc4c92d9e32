"""Debian's mosquitto for the MQTT tests, on 127.0.0.1 with a free port and a password file
(optionally TLS with client certificates), and a paho subscriber that records what arrives."""

from __future__ import annotations

import contextlib
import getpass
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .conftest import free_port, require, server_process, stop_process, wait_until

USER, PASSWORD = "amiplus", "broker-s3cret"


@dataclass(frozen=True)
class BrokerTls:
    """The broker's TLS files; `require_certificate` asks clients for one from `ca`."""

    ca: Path
    certificate: Path
    key: Path
    require_certificate: bool = False


class Mosquitto:
    """A mosquitto broker that only lets `USER` in; stop and start it again (same port) to stage
    an outage. No persistence: retained messages die with it, so whatever is there after a
    restart was published again."""

    def __init__(
        self, directory: Path, tls: BrokerTls | None = None, acl: str | None = None
    ) -> None:
        """`acl`: the text of an ACL file (mosquitto.conf(5), acl_file), else no ACL."""
        self.binary = require("mosquitto", "mosquitto")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls = tls
        passwords = directory / "passwd"
        passwords.touch(mode=0o600)
        subprocess.run(
            [require("mosquitto_passwd", "mosquitto"), "-b", str(passwords), USER, PASSWORD],
            check=True,
            capture_output=True,
            timeout=30,
        )
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {passwords}",
            "persistence false",
            f"log_dest file {directory / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            f"user {getpass.getuser()}",
        ]
        if acl is not None:
            (directory / "acl").write_text(acl)
            lines.append(f"acl_file {directory / 'acl'}")
        if tls is not None:
            lines += [
                f"cafile {tls.ca}",
                f"certfile {tls.certificate}",
                f"keyfile {tls.key}",
                f"require_certificate {'true' if tls.require_certificate else 'false'}",
            ]
        self.config = directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = server_process(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "mosquitto.stderr").open("ab"),
        )
        assert wait_until(self.listening, 20), self.log()

    def listening(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"mosquitto exited with {self.process.returncode}: {self.log()}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def log(self) -> str:
        texts = []
        for name in ("mosquitto.log", "mosquitto.stderr"):
            with contextlib.suppress(OSError):
                texts.append((self.directory / name).read_text(errors="replace"))
        return "\n".join(texts)[-4000:]

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    at: float


class Subscriber:
    """A paho client subscribed to `topics` that keeps every message, in order."""

    def __init__(
        self,
        broker: Mosquitto,
        *topics: str,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.username_pw_set(USER, PASSWORD)
        if context is not None:
            self.client.tls_set_context(context)
        self.topics = topics
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the test subscriber could not subscribe"

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(
                Message(message.topic, bytes(message.payload), bool(message.retain), time.time())
            )

    def on(self, topic: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def latest(self, topic: str) -> bytes | None:
        found = self.on(topic)
        return found[-1].payload if found else None

    def topics_under(self, prefix: str) -> dict[str, bytes]:
        """The latest payload of every topic starting with `prefix`."""
        with self._lock:
            return {m.topic: m.payload for m in self.messages if m.topic.startswith(prefix)}

    def wait(self, predicate: Callable[[], object], timeout: float = 20.0) -> bool:
        return wait_until(predicate, timeout)

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
