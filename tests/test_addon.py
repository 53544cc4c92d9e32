"""The Home Assistant add-on's folder against Home Assistant's documented rules, and its options
read into a configuration (docs/home-assistant.md): config.yaml against the keys' JSON schema
(Draft-07) with no key at its default, every option type in the Supervisor's grammar, options
that satisfy the schema, translations for every option and port, the one config
file of the repository, the pictures, the AppArmor profile; then options.json through the one
configuration reader, the Supervisor's answers, and the ingress listener's rules."""

from __future__ import annotations

import json
import re
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from exporter.commands.addon import NOT_ENABLED, NoBroker, broker_from_answer, read_options
from exporter.config import ConfigError, ServiceBroker, parse_options, wants_broker
from exporter.receivers import DEFAULT_TOPICS
from exporter.receivers.grammar import TYPES
from exporter.web.ingress import SERVED, SUPERVISOR, Ingress
from exporter.web.page import render
from exporter.web.server import Routes

from .conftest import DATA, require
from .servers import SIMULATED_KEY

ROOT = Path(__file__).parent.parent
FOLDER = ROOT / "deploy" / "home-assistant" / "amiplus-exporter"
CONFIG = yaml.safe_load((FOLDER / "config.yaml").read_text())
KEY_SCHEMA = json.loads((DATA / "home-assistant-addon.schema.json").read_text())
#: The option types the add-on documentation lists (`?`: optional).
OPTION_TYPE = re.compile(
    r"(?:(str|int|float)(\((-?[0-9.]*),(-?[0-9.]*)\))?"
    r"|bool|email|url|password|port|match\(.+\)|list\([^|()]+(\|[^|()]+)*\)"
    r"|device(\(subsystem=[a-z]+\))?"
    r")\??"
)


# --- config.yaml ------------------------------------------------------------------------------


def test_config_yaml_follows_the_documented_keys() -> None:
    errors = [error.message for error in Draft7Validator(KEY_SCHEMA).iter_errors(CONFIG)]
    assert errors == []


def test_no_key_is_set_to_its_default() -> None:
    """The add-on linter refuses a key written with the value it has anyway."""
    defaults = {k: v["default"] for k, v in KEY_SCHEMA["properties"].items() if "default" in v}
    assert [key for key, value in defaults.items() if CONFIG.get(key, object()) == value] == []


def test_what_the_issue_asks_of_config_yaml() -> None:
    assert CONFIG["arch"] == ["aarch64", "amd64"]
    assert CONFIG["ingress"] is True and CONFIG["panel_icon"].startswith("mdi:")
    assert CONFIG["panel_title"] and CONFIG["uart"] is True
    assert CONFIG["services"] == ["mqtt:want"]
    assert CONFIG["ports"] == {"9264/tcp": None, "9011/udp": None, "9022/tcp": None}
    assert CONFIG["schema"]["receivers"][0]["device"] == "device(subsystem=tty)?"
    assert CONFIG["schema"]["meters"][0]["key"].startswith("password")


def test_the_image_is_pulled_so_the_folder_builds_nothing() -> None:
    """With `image` the Supervisor pulls `image:version` and never builds the folder: a
    Dockerfile or build.yaml there would never be read."""
    assert re.fullmatch(r"[a-z0-9.-]+(/[a-z0-9._-]+)+", CONFIG["image"]), "no tag: version is it"
    assert not [p.name for p in FOLDER.iterdir() if p.name.startswith(("Dockerfile", "build."))]
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert 'io.hass.arch="' + "|".join(CONFIG["arch"]) + '"' in dockerfile


def _types(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        return [t for value in schema.values() for t in _types(value)]
    if isinstance(schema, list):
        assert len(schema) == 1, "a list option has one element type"
        return _types(schema[0])
    return [schema]


def test_every_option_type_is_in_the_supervisors_grammar() -> None:
    types = _types(CONFIG["schema"])
    assert len(types) > 30
    assert [t for t in types if not OPTION_TYPE.fullmatch(t)] == []


def test_options_nest_two_deep_at_most() -> None:
    """The Supervisor's forms take a list of mappings or a mapping of values, no deeper."""
    for name, schema in CONFIG["schema"].items():
        inner = schema[0] if isinstance(schema, list) else schema
        if isinstance(inner, dict):
            assert all(isinstance(t, str) for t in inner.values()), name


def _satisfies(value: Any, schema: Any, where: str) -> list[str]:
    """What in `value` does not satisfy `schema`, as the add-on documentation states its rules."""
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{where} is not a list"]
        return [p for n, item in enumerate(value) for p in _satisfies(item, schema[0], where)]
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return [f"{where} is not a mapping"]
        problems = [f"{where}.{key} is not in the schema" for key in value if key not in schema]
        for key, kind in schema.items():
            if key in value:
                problems += _satisfies(value[key], kind, f"{where}.{key}")
            elif not (isinstance(kind, str) and kind.endswith("?")) and not isinstance(kind, list):
                problems.append(f"{where}.{key} is required")
        return problems
    kind = schema.rstrip("?")
    choices = re.fullmatch(r"list\((.+)\)", kind)
    checks = {
        "str": isinstance(value, str),
        "password": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "port": isinstance(value, int) and 0 < value < 65536,
        "url": isinstance(value, str) and "://" in value,
    }
    if choices:
        ok = value in choices.group(1).split("|")
    else:
        ok = checks.get(kind.partition("(")[0], isinstance(value, str))
    return [] if ok else [f"{where}: {value!r} is not {schema}"]


def test_the_default_options_satisfy_the_schema() -> None:
    assert _satisfies(CONFIG["options"], CONFIG["schema"], "options") == []


def test_every_list_or_mapping_option_has_an_empty_default() -> None:
    for name, schema in CONFIG["schema"].items():
        if isinstance(schema, list | dict):
            assert CONFIG["options"][name] == type(schema)(), name


def test_the_receiver_types_are_the_exporters() -> None:
    kinds = re.fullmatch(r"list\((.+)\)", CONFIG["schema"]["receivers"][0]["type"])
    assert kinds and set(kinds.group(1).split("|")) <= set(TYPES)


@pytest.mark.parametrize("language", ["en", "pl"])
def test_every_option_and_port_is_explained(language: str) -> None:
    translation = yaml.safe_load((FOLDER / "translations" / f"{language}.yaml").read_text())
    explained = translation["configuration"]
    for name, schema in CONFIG["schema"].items():
        assert explained[name]["name"] and explained[name]["description"], name
        inner = schema[0] if isinstance(schema, list) else schema
        if isinstance(inner, dict):
            fields = explained[name]["fields"]
            assert set(fields) == set(inner), name
            assert all(f["name"] and f["description"] for f in fields.values()), name
    assert set(explained) == set(CONFIG["schema"])
    assert set(translation["network"]) == set(CONFIG["ports"])


# --- the repository and the folder's other files ----------------------------------------------


@pytest.mark.integration  # runs git
def test_the_add_ons_config_is_the_only_config_file() -> None:
    """The Supervisor takes every config.json, config.yaml or config.yml for an add-on."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
    ).stdout.splitlines()
    named = [f for f in files if Path(f).name in ("config.json", "config.yaml", "config.yml")]
    assert named == [str((FOLDER / "config.yaml").relative_to(ROOT))]


def test_repository_yaml() -> None:
    repository = yaml.safe_load((ROOT / "repository.yaml").read_text())
    assert set(repository) == {"name", "url", "maintainer"}
    assert repository["url"] == CONFIG["url"]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_pictures() -> None:
    assert _png_size(FOLDER / "icon.png") == (128, 128)
    width, height = _png_size(FOLDER / "logo.png")
    assert (width, height) == (250, 100)


def test_the_changelog_is_the_projects() -> None:
    assert (FOLDER / "CHANGELOG.md").resolve() == (ROOT / "CHANGELOG.md").resolve()


@pytest.mark.integration  # runs apparmor_parser
def test_the_apparmor_profile_compiles() -> None:
    """One `profile` line (the Supervisor renames it to the add-on's), and apparmor_parser
    compiles it (without loading it: this kernel has no AppArmor)."""
    profile = FOLDER / "apparmor.txt"
    names = re.findall(r"^profile (\S+)", profile.read_text(), re.MULTILINE)
    assert names == [CONFIG["slug"]]
    parser = require("apparmor_parser", "apparmor")
    done = subprocess.run(
        [parser, "--skip-kernel-load", "--skip-cache", str(profile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# --- options.json into a configuration ---------------------------------------------------------

METER = {"id": "12345678", "key": SIMULATED_KEY, "name": "dom"}
SIMULATOR = {"type": "simulator"}


def options(**changes: Any) -> dict[str, Any]:
    """The defaults of config.yaml with a meter and the simulator, and `changes`."""
    return {**CONFIG["options"], "meters": [METER], "receivers": [SIMULATOR], **changes}


def problems(given: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_options(given, tmp_path)
    return [p.format(raised.value.source) for p in raised.value.problems]


def test_the_schemas_fields_are_the_readers(tmp_path: Path) -> None:
    """No field of the schema is unknown to the configuration reader."""
    for name in ("meters", "receivers", "mqtt", "influxdb"):
        inner = CONFIG["schema"][name]
        fields = inner[0] if isinstance(inner, list) else inner
        for field in fields:
            given = {field: "1"}
            document = options(**{name: [given] if isinstance(inner, list) else given})
            try:
                parse_options(document, tmp_path)
            except ConfigError as error:
                assert "unknown key" not in str(error), (name, field, str(error))


def test_good_options_become_the_configuration(tmp_path: Path) -> None:
    broker = ServiceBroker("core-mosquitto", 1883, False, "addons", "broker-s3cret")
    given = options(
        mqtt={"base_topic": "dom"},
        influxdb={"url": "http://influx:8086", "bucket": "b", "token": "t"},
        prices=[{"from": "2026-01-01", "energy_1": 0.62, "distribution_1": 0.3, "energy_2": 0.4}],
        log_level="debug",
    )
    assert _satisfies(given, CONFIG["schema"], "options") == []  # the Supervisor takes them
    config = parse_options(given, tmp_path, broker)
    assert [(m.name, m.meter_id) for m in config.meters] == [("dom", "12345678")]
    assert [spec.type for spec in config.receivers] == ["simulator"]
    assert config.mqtt is not None
    assert (config.mqtt.broker.host, config.mqtt.broker.port, config.mqtt.broker.username) == (
        "core-mosquitto",
        1883,
        "addons",
    )
    assert (config.mqtt.broker.password, config.mqtt.base_topic) == ("broker-s3cret", "dom")
    assert config.influxdb is not None and config.influxdb.spool == tmp_path / "spool"
    assert config.state_directory == tmp_path and config.log_level == "debug"
    entry = config.prices.entries[0]
    prices = [(z, p.energy, p.distribution) for z, p in entry.tariffs]
    assert prices == [(1, 0.62, 0.3), (2, 0.4, 0.0)]


def test_the_options_own_broker_wins(tmp_path: Path) -> None:
    given = options(mqtt={"host": "192.168.1.10", "username": "u", "password": "p"})
    assert not wants_broker(given)
    config = parse_options(given, tmp_path, ServiceBroker("core-mosquitto", 1883))
    assert config.mqtt is not None and (config.mqtt.broker.host, config.mqtt.broker.port) == (
        "192.168.1.10",
        1883,
    )


def test_esp32_gateways_through_home_assistants_broker(tmp_path: Path) -> None:
    """An mqtt receiver without a host subscribes at the broker the Supervisor offers, with a
    client ID of its own; `topics` takes one filter."""
    broker = ServiceBroker("core-mosquitto", 1883, False, "addons", "broker-s3cret")
    given = options(receivers=[{"type": "mqtt"}, {"type": "mqtt", "name": "sdr", "topics": "x/+"}])
    assert _satisfies(given, CONFIG["schema"], "options") == []
    gateways, sdr = parse_options(given, tmp_path, broker).receivers
    assert gateways.broker is not None and sdr.broker is not None
    assert (gateways.broker.host, gateways.broker.username, gateways.broker.password) == (
        "core-mosquitto",
        "addons",
        "broker-s3cret",
    )
    assert gateways.broker.client_id == ""  # the receiver makes its own, never the output's
    assert gateways.topics == DEFAULT_TOPICS and sdr.topics == ("x/+",)
    with pytest.raises(ConfigError, match=r"receivers\[1\]: receiver 1: give the broker's host"):
        parse_options(options(receivers=[{"type": "mqtt"}]), tmp_path)  # no broker at all


def test_without_a_broker_there_is_no_mqtt(tmp_path: Path) -> None:
    assert wants_broker(options()) and parse_options(options(), tmp_path).mqtt is None


def test_option_values_are_taken_as_written(tmp_path: Path) -> None:
    """`${...}` in a password is part of it (the YAML file would read an environment variable)."""
    given = options(mqtt={"host": "broker", "username": "u", "password": "pa${ss}"})
    config = parse_options(given, tmp_path)
    assert config.mqtt is not None and config.mqtt.broker.password == "pa${ss}"


def test_options_left_blank_are_not_given(tmp_path: Path) -> None:
    blank = options(
        mqtt={"host": "", "base_topic": None}, influxdb={"url": "", "token": None}, prices=[]
    )
    assert wants_broker(blank)
    config = parse_options(blank, tmp_path)
    assert (config.mqtt, config.influxdb, config.prices.entries) == (None, None, ())


def test_every_problem_names_its_option(tmp_path: Path) -> None:
    """What the Supervisor accepts and the exporter does not: all at once, option by option,
    in the YAML file's words; no key echoed."""
    bad_key = "0011223344556677889900112233445Z"
    found = problems(
        options(
            meters=[
                {"id": "1234567", "key": SIMULATED_KEY},
                {"id": "22334455", "key": bad_key, "name": "garage"},
                {"id": "12345678", "key": SIMULATED_KEY},
                {"id": "78563412", "key": SIMULATED_KEY},
            ],
            receivers=[{"type": "antenna"}, {"type": "simulator", "device": "/dev/ttyUSB0"}],
            prices=[{"from": "1 January", "energy_1": 0.5}],
        ),
        tmp_path,
    )
    where = [line.split(": ")[1] for line in found]
    assert where == [
        "meters[1].id",
        "meters[2].key",
        "meters[4]",
        "receivers[1].type",
        "receivers[2].device",
        "prices[1].from",
    ], found
    assert all(line.startswith("add-on configuration: ") for line in found)
    assert "8 digits" in found[0] and "'1234567'" in found[0]
    assert "meter 'garage'" in found[1] and "32 hexadecimal digits" in found[1]
    assert "already meter 3's (meters[3])" in found[2]
    assert "not 'antenna'" in found[3] and "takes no 'device'" in found[4]
    assert bad_key not in "\n".join(found) and SIMULATED_KEY not in "\n".join(found)


def test_no_receivers_is_a_problem_of_the_receivers_option(tmp_path: Path) -> None:
    found = problems(options(receivers=[]), tmp_path)
    assert len(found) == 1 and found[0].startswith("add-on configuration: receivers: no receivers")


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "cannot read it: No such file or directory"),
        (
            "{meters: []",
            "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
            "(char 1)",
        ),
        ("[]", "the options must be a JSON object"),
    ],
)
def test_options_json_that_cannot_be_read(tmp_path: Path, content: str | None, said: str) -> None:
    path = tmp_path / "options.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as raised:
        read_options(path)
    assert [p.format(raised.value.source) for p in raised.value.problems] == [f"{path}: {said}"]


# --- the Supervisor's answers -----------------------------------------------------------------


def _answer(status: int, document: Any) -> ServiceBroker | NoBroker:
    return broker_from_answer(status, json.dumps(document).encode())


def test_the_supervisors_broker() -> None:
    data = {"addon": "core_mosquitto", "host": "172.30.33.0", "port": "1883", "ssl": False}
    answer = _answer(200, {"result": "ok", "data": {**data, "username": "u", "password": "p"}})
    assert answer == ServiceBroker("172.30.33.0", 1883, False, "u", "p")
    assert "p" not in repr(answer).replace("port", "")


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (400, {"result": "error", "message": NOT_ENABLED}, "install the Mosquitto broker add-on"),
        (401, "401: Unauthorized", "refused this add-on's token (HTTP 401)"),
        (403, "403: Forbidden", "refused this add-on's token (HTTP 403)"),
        (500, {"result": "error", "message": "boom"}, "answered HTTP 500 (boom)"),
        (200, {"result": "ok", "data": {"host": "", "port": 1883}}, "names no broker"),
        (200, {"result": "ok", "data": {"host": "h", "port": "x"}}, "names no broker"),
    ],
)
def test_no_broker_says_why(status: int, body: Any, said: str) -> None:
    answer = _answer(status, body)
    assert isinstance(answer, NoBroker) and said in answer.reason, answer


# --- the ingress listener ---------------------------------------------------------------------


def test_the_ingress_listener_answers_the_supervisor_only() -> None:
    listener = Ingress.parse("0.0.0.0:8099", [SUPERVISOR]).listener
    assert listener.answers(SUPERVISOR) and listener.answers(f"::ffff:{SUPERVISOR}")
    assert not listener.answers("172.30.32.1") and not listener.answers("192.168.1.20")
    assert Ingress.parse(":8099", ["172.30.32.0/23"]).listener.answers("172.30.33.7")
    with pytest.raises(ValueError, match="--ingress-allow 'supervisor' is not an address"):
        Ingress.parse(":8099", ["supervisor"])


def test_the_ingress_listener_serves_the_page_and_its_data_only() -> None:
    routes = Routes(
        lambda gz: b"metrics", lambda h, private: {"now": 1}, render, lambda p: (True, "")
    )
    ingress = Ingress.parse(":8099", [SUPERVISOR]).routes(routes)
    assert [ingress.get(path).status for path in ("/metrics", "/healthz", "/x")] == [404] * 3
    assert all(ingress.get(path).status == 200 for path in SERVED)
    assert 'href="metrics"' in routes.get("/").body.decode()
    assert 'href="metrics"' not in ingress.get("/").body.decode()


def test_every_url_of_the_page_is_relative() -> None:
    """Under ingress the page lives at /api/hassio_ingress/<token>/: an absolute URL leaves it."""
    page = render({})
    urls = re.findall(r"""(?:href|src|action)=["']([^"']*)["']|fetch\(`([^`]*)`""", page)
    found = [a or b for a, b in urls]
    assert "api/status?history=${history}" in found and "metrics" in found
    assert [url for url in found if url.startswith("/") or "//" in url] == []
