"""One grammar of receivers: `--receiver TYPE:...` and the YAML file describe the same thing in
the same words, and reading a configuration builds and opens nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import parse_config
from exporter.receivers import DEFAULT_TOPICS
from exporter.receivers.base import LinkMode
from exporter.receivers.grammar import RECEIVER_TYPES, ReceiverSpec, ReceiverSpecError, parse_spec

from .emulators.imst import Im871aEmulator
from .emulators.pty_device import PtyDevice

METER = 'meters:\n  - id: "12345678"\n    key: "000102030405060708090A0B0C0D0E0F"\n'

#: The same receiver on the command line and in YAML.
SAME = [
    ("im871a:/dev/ttyUSB0", "type: im871a\n    device: /dev/ttyUSB0"),
    (
        "amber:socket://10.0.0.5:2000,baudrate=57600,mode=c1+t1",
        "type: amber\n    device: socket://10.0.0.5:2000\n    baudrate: 57600\n    mode: c1+t1",
    ),
    (
        "lines:command=rtl_sdr -f 868.95M -s 1.6e6 - 2>/dev/null | rtl_wmbus -a, -b",
        'type: lines\n    command: "rtl_sdr -f 868.95M -s 1.6e6 - 2>/dev/null | rtl_wmbus -a, -b"',
    ),
    ("lines:listen=udp://0.0.0.0:9011", "type: lines\n    listen: udp://0.0.0.0:9011"),
    ("lines:connect=tcp://192.0.2.1:8888", "type: lines\n    connect: tcp://192.0.2.1:8888"),
    ("lines:stdin", "type: lines\n    stdin: true"),
    (
        "replay:/tmp/captures.txt,realtime",
        "type: replay\n    file: /tmp/captures.txt\n    realtime: yes",
    ),
    (
        "simulator:meters=3,family=nes,interval=1.5,realtime=no",
        "type: simulator\n    meters: 3\n    family: nes\n    interval: 1.5\n    realtime: no",
    ),
    (
        "cul:/dev/ttyACM0,silence_timeout=60,name=attic",
        "type: cul\n    device: /dev/ttyACM0\n    silence_timeout: 60\n    name: attic",
    ),
    ("mqtt:192.168.1.10", "type: mqtt\n    host: 192.168.1.10"),
    (
        "mqtt:[::1]:1884/wmbus/+/telegram,username=amiplus,qos=1,tls,name=gw",
        "type: mqtt\n    name: gw\n    host: '::1'\n    port: 1884\n    tls: true\n"
        "    username: amiplus\n    qos: 1\n    topics: wmbus/+/telegram",
    ),
]


def from_yaml(receiver: str) -> ReceiverSpec:
    config = parse_config(f"{METER}receivers:\n  - {receiver}\n", base=Path("/"))
    (spec,) = config.receivers
    return spec


@pytest.mark.parametrize(("cli", "yaml"), SAME, ids=[cli.split(",")[0] for cli, _ in SAME])
def test_the_command_line_and_yaml_say_the_same(cli: str, yaml: str) -> None:
    assert parse_spec(cli) == from_yaml(yaml)


def test_values_are_converted_by_the_grammar() -> None:
    spec = parse_spec("amber:/dev/ttyUSB1,baudrate=57600,mode=c1+t1")
    assert (spec.device, spec.baudrate, spec.mode) == ("/dev/ttyUSB1", 57600, LinkMode.C1_T1)
    assert parse_spec("replay:x.txt").silence_timeout is None  # a file ends: no watchdog
    assert parse_spec("simulator").realtime is None and parse_spec("simulator").meters == 1


@pytest.mark.parametrize(
    ("cli", "message"),
    [
        ("pigeon:/dev/x", "unknown receiver type 'pigeon'"),
        ("im871a", "the im871a receiver needs a device"),
        ("im871a:/dev/x,baudrate=fast", "baudrate must be a number"),
        ("im871a:/dev/x,mode=s1", r"mode must be one of t1, c1\+t1"),
        ("lines", "a lines receiver needs command, listen, connect or stdin"),
        ("lines:listen=udp://nowhere", "listen must look like udp://0.0.0.0:9011"),
        ("lines:connect=udp://127.0.0.1:5", "connect takes tcp://HOST:PORT"),
        ("simulator:meters=0", "meters must be between 1 and 100000"),
        ("simulator:family=tesla", "family must be one of"),
        ("simulator:device=/dev/x", "a simulator receiver takes no device"),
        ("simulator:colour=red", "unknown option 'colour'"),
        ("simulator:keys=00", "unknown option 'keys'"),
        ("mqtt", r"an mqtt receiver is written mqtt:HOST\[:PORT\]\[/FILTER\]"),
        ("mqtt:broker/wmbus/kitchen+/telegram", r"'\+' stands alone as a level"),
        ("mqtt:broker/wmbus/#/telegram", "'#' stands alone as its last level"),
        ("mqtt:broker:70000", "port must be between 1 and 65535"),
        ("mqtt:broker,qos=3", "qos must be between 0 and 2"),
        ("mqtt:broker,password=s3cret", "unknown option 'password'"),  # never on a command line
        ("mqtt:broker,topics=a/b", "unknown option 'topics'"),
        ("mqtt:broker,password_file=/nonexistent", "cannot read password_file /nonexistent"),
    ],
)
def test_command_line_mistakes_are_explained(cli: str, message: str) -> None:
    with pytest.raises(ReceiverSpecError, match=message):
        parse_spec(cli)


def test_an_mqtt_receiver_takes_its_password_from_a_file_and_topics_by_default(
    tmp_path: Path,
) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    spec = parse_spec(f"mqtt:broker.lan,username=amiplus,password_file={tmp_path / 'pw'}")
    assert spec.broker is not None
    assert (spec.broker.host, spec.broker.port, spec.broker.password) == (
        "broker.lan",
        1883,
        "s3cret",
    )
    assert "s3cret" not in repr(spec)
    assert spec.topics == DEFAULT_TOPICS
    assert parse_spec("mqtt:broker,tls").broker.port == 8883  # type: ignore[union-attr]


def test_every_type_has_an_example_in_both_forms() -> None:
    assert {cli.partition(":")[0] for cli, _ in SAME} | {"iu891a", "rc1180"} == set(RECEIVER_TYPES)


PROBE = """
import gc, json, sys
from pathlib import Path
from exporter.amiplus import SimulatedMeter
from exporter.config import parse_config
text = sys.stdin.read()
opened = []
sys.addaudithook(lambda event, args: event == "open" and opened.append(str(args[0])))
config = parse_config(text, base=Path(sys.argv[1]))
print(json.dumps({
    "meters": config.receivers[0].meters,
    "built": sum(isinstance(o, SimulatedMeter) for o in gc.get_objects()),
    "opened": [path for path in opened if not path.endswith((".py", ".pyc", ".so"))],
}))
"""


def test_reading_a_configuration_builds_and_opens_nothing(
    tmp_path: Path, emulators: list[PtyDevice]
) -> None:
    """A 100,000-meter simulator and a stick: the configuration is read without building a
    single simulated meter or opening anything, the stick included."""
    stick = Im871aEmulator()
    emulators.append(stick)
    text = (
        f"{METER}receivers:\n  - type: simulator\n    meters: 100000\n"
        f"  - type: im871a\n    device: {stick.path}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["meters"] == 100_000
    assert result["built"] == 0
    assert result["opened"] == []
    assert stick.mode is None  # nothing spoke to the stick
