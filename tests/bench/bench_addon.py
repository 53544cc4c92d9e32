"""The Home Assistant add-on's image: what it adds to the exporter's image, and the seconds from
`docker run` to the first retained MQTT state of the simulated meter. Prints figures, asserts
nothing (a failed build or run stops it with the engine's message).

    .venv/bin/python tests/bench/bench_addon.py [--runs N]

Both images are built from deploy/Dockerfile by the engine's classic builder on the stand-in
base of tests/docker_engine.py (the exporter's default target, then `--target addon`). Each
run starts the add-on's container as the image tests do (host network, /data with options.json
naming the simulator, `mqtt: {}`), with a real mosquitto and the stand-in Supervisor of
tests/supervisor.py offering it; an MQTT v5 subscriber that keeps the retain flag as published
waits on `amiplus/+/state`. Targets (issue 19): at most 5 MB over the exporter's image; at most
10 s to the first retained state.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench.provenance import source_state  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.docker_engine import (  # noqa: E402
    DockerEngine,
    build_image,
    dockerfile_base,
    ensure_stand_in,
    native_platform,
    run,
)
from tests.mosquitto import PASSWORD, USER, Mosquitto  # noqa: E402
from tests.servers import SIMULATED_KEY  # noqa: E402
from tests.supervisor import StandInSupervisor  # noqa: E402

EXPORTER, ADDON = "amiplus-exporter:bench-addon-base", "amiplus-exporter-addon:bench"
TOKEN = "bench-token"


def size(engine: DockerEngine, image: str) -> tuple[int, int]:
    """Bytes and layers of an image."""
    document = engine.inspect(image)
    layers = document["RootFS"]["Layers"]
    return int(document["Size"]), len(layers)


class FirstRetained:
    """An MQTT v5 subscriber to `amiplus/+/state` that notes when the first message with the
    retain flag (as published) arrives."""

    def __init__(self, broker: Mosquitto) -> None:
        self.at: float | None = None
        self._arrived = threading.Event()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(USER, PASSWORD)
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        options = SubscribeOptions(qos=1, retainAsPublished=True)
        self.client.subscribe("amiplus/+/state", options=options)
        if not subscribed.wait(10):
            raise RuntimeError("the subscriber could not subscribe")

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.retain and self.at is None:
            self.at = time.monotonic()
            self._arrived.set()

    def wait(self, timeout: float) -> float | None:
        self._arrived.wait(timeout)
        return self.at

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_to_state(engine: DockerEngine, folder: Path) -> tuple[float, float]:
    """Seconds from `docker run` to its return, and to the first retained state (a new broker
    each time: no retained state of an earlier run)."""
    broker = Mosquitto(Path(tempfile.mkdtemp(prefix="mosquitto-", dir=folder)))
    supervisor = StandInSupervisor(
        TOKEN,
        {"host": "127.0.0.1", "port": str(broker.port), "username": USER, "password": PASSWORD},
    )
    data = Path(tempfile.mkdtemp(prefix="data-", dir=folder))
    options = {
        "meters": [{"id": "12345678", "key": SIMULATED_KEY, "name": "bench"}],
        "receivers": [{"type": "simulator"}],
        "mqtt": {},
        "prices": [],
        "influxdb": {},
        "log_level": "info",
    }
    (data / "options.json").write_text(json.dumps(options))
    try:
        subscriber = FirstRetained(broker)
        try:
            started = time.monotonic()
            with run(
                engine,
                "--network=host",
                f"--volume={data}:/data",
                f"--env=SUPERVISOR_TOKEN={TOKEN}",
                f"--env=SUPERVISOR_URL={supervisor.url}",
                ADDON,
                f"--listen=127.0.0.1:{free_port()}",
                f"--ingress-listen=127.0.0.1:{free_port()}",
                "--ingress-allow=127.0.0.1",
            ) as container:
                returned = time.monotonic() - started
                at = subscriber.wait(60)
                if at is None:
                    raise RuntimeError(f"no retained state within 60 s:\n{container.logs()}")
                return returned, at - started
        finally:
            subscriber.close()
    finally:
        supervisor.close()
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="container starts to time")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {' '.join(sys.argv)}")
    print(source_state())
    engine = DockerEngine()
    try:
        print(f"engine {engine.docker('version', '--format={{.Server.Version}}').stdout.strip()}")
        made = ensure_stand_in(engine, dockerfile_base(), native_platform())
        if made is not None:
            print(f"stand-in base made (debootstrap): {made:.1f} s")
        print(f"exporter image built (cache allowed): {build_image(engine, EXPORTER):.1f} s")
        addon_seconds = build_image(engine, ADDON, "--target=addon", "--build-arg=VERSION=bench")
        print(f"add-on image built after it        : {addon_seconds:.1f} s")
        (exporter_bytes, exporter_layers), (addon_bytes, addon_layers) = (
            size(engine, EXPORTER),
            size(engine, ADDON),
        )
        print(f"exporter image: {exporter_bytes / 1e6:.2f} MB, {exporter_layers} layers")
        print(f"add-on image  : {addon_bytes / 1e6:.2f} MB, {addon_layers} layers")
        added = (addon_bytes - exporter_bytes) / 1e6
        layers = addon_layers - exporter_layers
        print(f"the add-on adds {added:.3f} MB, {layers} layers (target: at most 5 MB)")
        with tempfile.TemporaryDirectory(prefix="bench-addon-") as folder:
            runs = [start_to_state(engine, Path(folder)) for _ in range(args.runs)]
        returned = [r for r, _ in runs]
        state = [s for _, s in runs]
        print(f"docker run returned after      : median {statistics.median(returned):.2f} s")
        print(
            f"first retained MQTT state after: median {statistics.median(state):.2f} s, "
            f"max {max(state):.2f} s over {len(state)} starts (target: 10 s)"
        )
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
