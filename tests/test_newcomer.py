"""A newcomer's first hour (issue 24), item by item, as a user meets it: a stick this user may
not open, `listen` and the page while no receiver is up, the state directory of a user who is
not root, telegrams to copy for troubleshooting, the command line, where the page is reachable,
and docs that agree. Where it matters the commands run as a user who is not root (uid 65534,
tests/ordinary_user.py); the README walk is in test_readme_walk.py, its Docker block in
test_image.py, the page's layout in test_status_page_layout.py."""

from __future__ import annotations

import grp
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from exporter.amiplus import ADVICE, NOT_HEARD, NOT_HEARD_NO_RECEIVER, RECEIVER_NO_PERMISSION

from .conftest import free_port, http_get, require, stop_process, wait_until
from .emulators.imst import Im871aEmulator
from .emulators.pty_device import PtyDevice
from .ordinary_user import OrdinaryUser
from .servers import CONSOLE_SCRIPT, SIMULATED_KEY, Start, simulated_config

ROOT = Path(__file__).parent.parent
METER = f'meters:\n  - id: "12345678"\n    key: "{SIMULATED_KEY}"\n    name: home\n'


def cli(*args: str, **options: Any) -> subprocess.CompletedProcess[str]:
    """The command as root runs it; `stderr=subprocess.STDOUT` merges both in their order."""
    options.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *args],
        stdout=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
        **options,
    )


def status_of(port: int) -> dict[str, Any]:
    code, body = http_get(f"http://127.0.0.1:{port}/api/status", timeout=5)
    assert code == 200
    document: dict[str, Any] = json.loads(body)
    return document


def line_of(text: str, start: str) -> int:
    """The number of the first line of `text` that starts (indentation aside) with `start`."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.strip().startswith(start))


# --- 2. a stick this user may not open --------------------------------------------------------


@pytest.mark.integration
def test_a_stick_this_user_may_not_open_says_what_to_do(
    ordinary_user: OrdinaryUser, emulators: list[PtyDevice]
) -> None:
    """A pseudo-terminal only root may open: `listen`, `check-config`, the exporter's log and
    its page each say the group and the command, run as a user who is not root."""
    stick = Im871aEmulator()
    emulators.append(stick)
    os.chmod(stick.path, 0o600)
    group = os.stat(stick.path).st_gid
    exporter = str(ordinary_user.exporter())
    fix = "usermod -aG"

    done = ordinary_user.run(
        [exporter, "listen", "--receiver", f"im871a:{stick.path}", "--duration", "3"]
    )
    assert done.returncode == 1, done
    first = done.stderr.splitlines()[0]
    assert "permission denied: the user nobody may not open" in first, done.stderr
    assert f"{fix} " in first and "log out and in again" in first
    assert "No receiver is up" in done.stderr and "No telegram heard" not in done.stderr

    config = ordinary_user.home / "stick.yml"
    config.write_text(f"{METER}receivers:\n  - type: im871a\n    device: {stick.path}\n")
    ordinary_user.give(config)
    checked = ordinary_user.run([exporter, "check-config", str(config)])
    assert checked.returncode == 0, checked
    assert f"receiver im871a: im871a on {stick.path}" in checked.stdout
    assert "warning: receiver im871a: permission denied" in checked.stdout
    assert "warning: state directory" not in checked.stdout  # the default suits this user

    port = free_port()
    log = ordinary_user.root / "stick.log"
    process = ordinary_user.start(
        [exporter, "--config", str(config), "--listen", f"127.0.0.1:{port}"], log
    )
    try:
        assert wait_until(lambda: status_of(port)["receivers"][0]["down_code"] == "no_permission")
        status = status_of(port)
        (receiver,) = status["receivers"]
        group_name = grp.getgrgid(group).gr_name
        assert receiver["down_reason"] is None  # it names the device: a password's answer
        assert (
            f"(it belongs to the group {group_name}): sudo {fix} {group_name} $USER"
            in log.read_text()
        )
        assert receiver["advice"] == {
            "en": ADVICE[RECEIVER_NO_PERMISSION].en,
            "pl": ADVICE[RECEIVER_NO_PERMISSION].pl,
        }
        assert "usermod -aG dialout" in receiver["advice"]["pl"]
        assert receiver["what"]["pl"] == "Brak uprawnień, by go otworzyć."
        assert status["meters"][0]["not_heard"]["what"]["en"] == "Not heard: no receiver is up."
        assert status["warnings"] == []
        assert "permission denied: the user nobody may not open" in log.read_text()
    finally:
        stop_process(process)
    assert process.returncode == 0, log.read_text()


# --- 3. listen and the page while no receiver is up -------------------------------------------


@pytest.mark.integration
def test_listen_says_first_that_no_receiver_is_up_and_exits_1(tmp_path: Path) -> None:
    stick = tmp_path / "ttyUSB0"
    done = cli(
        "listen", "--receiver", f"im871a:{stick}", "--duration", "2", stderr=subprocess.STDOUT
    )
    assert done.returncode == 1, done.stdout
    lines = done.stdout.splitlines()
    said = lines.index("No receiver is up, so nothing can be heard:")
    assert said < next(n for n, line in enumerate(lines) if line.startswith("ID "))
    assert f"{stick} does not exist: plug the stick in" in lines[said + 1]
    assert "868.95 MHz" not in done.stdout  # no advice about the radio: nothing was received


@pytest.mark.integration
def test_listen_with_a_receiver_that_works_exits_0() -> None:
    done = cli("listen", "--receiver", "simulator:interval=0.2", "--duration", "2")
    assert done.returncode == 0, done.stderr
    assert "No receiver is up" not in done.stderr and "12345678" in done.stdout


@pytest.mark.integration
def test_the_page_blames_no_id_while_no_receiver_is_up(
    start_exporter: Start, tmp_path: Path
) -> None:
    down = start_exporter(f"{METER}receivers:\n  - type: im871a\n    device: {tmp_path / 'x'}\n")
    assert wait_until(lambda: down.status()["receivers"][0]["down_code"] == "unavailable")
    (meter,) = down.status()["meters"]
    assert meter["not_heard"] == ADVICE[NOT_HEARD_NO_RECEIVER].as_json()
    assert "listen" not in json.dumps(meter["not_heard"])  # not "check the ID"
    up = start_exporter(
        f'{METER}  - id: "87654321"\n    key: "{SIMULATED_KEY}"\n    name: elsewhere\n'
        "receivers:\n  - type: simulator\n    interval: 0.5\n"
    )
    assert wait_until(lambda: up.status()["receivers"][0]["up"])
    elsewhere = next(m for m in up.status()["meters"] if m["name"] == "elsewhere")
    assert elsewhere["not_heard"] == ADVICE[NOT_HEARD].as_json()  # a receiver is up: the ID


# --- 4. the state directory of a user who is not root -----------------------------------------

DEFAULTS = """
import os, sys
from exporter.config.places import default_state_directory
print(default_state_directory(os.environ))
"""


@pytest.mark.integration
def test_a_user_who_is_not_root_keeps_state_where_it_can_write(
    ordinary_user: OrdinaryUser,
) -> None:
    python = str(ordinary_user.exporter().parent / "python")
    home = ordinary_user.home

    def default(**env: str) -> str:
        done = ordinary_user.run([python, "-c", DEFAULTS], env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert default() == f"{home}/.local/state/amiplus-exporter"
    assert default(XDG_STATE_HOME="/srv/state") == "/srv/state/amiplus-exporter"
    assert default(XDG_STATE_HOME="relative") == f"{home}/.local/state/amiplus-exporter"
    # systemd's StateDirectory= (the unit) and the image say it through $STATE_DIRECTORY
    assert default(STATE_DIRECTORY="/var/lib/amiplus-exporter") == "/var/lib/amiplus-exporter"
    as_root = subprocess.run(  # the tests run as root (setpriv needs it): root keeps /var/lib
        [sys.executable, "-c", DEFAULTS],
        env={k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert as_root.stdout.strip() == "/var/lib/amiplus-exporter"

    # The README's InfluxDB v1 example has no spool: it goes where this user can write.
    config = home / "influx.yml"
    config.write_text(
        simulated_config(1)
        + "influxdb:\n  url: http://localhost:8086\n  api: v1\n  database: amiplus\n"
    )
    ordinary_user.give(config)
    checked = ordinary_user.run([str(ordinary_user.exporter()), "check-config", str(config)])
    assert checked.returncode == 0 and "warning" not in checked.stdout, checked


@pytest.mark.integration
@pytest.mark.parametrize("place", ["system", "closed"])
def test_an_unwritable_state_directory_is_said_at_start_and_by_check_config(
    ordinary_user: OrdinaryUser, place: str
) -> None:
    """ "system": the system's place, there or not (root's services make it 0700). "closed":
    a state directory with root's files in a directory this user may not even look into
    (finding out whether a file is there is refused too: that must not stop the exporter)."""
    directory = Path("/var/lib/amiplus-exporter")
    if place == "closed":
        directory = ordinary_user.root / "closed" / "state"
        directory.mkdir(parents=True)
        directory.parent.chmod(0o700)
        (directory / "calendar.json").write_text('{"format": 2, "meters": {}}')
    text = simulated_config(0.5, f"state:\n  directory: {directory}\n")
    config = ordinary_user.home / "system-state.yml"
    config.write_text(text)
    ordinary_user.give(config)
    exporter = str(ordinary_user.exporter())
    checked = ordinary_user.run([exporter, "check-config", str(config)])
    line = line_of(text, "directory:")
    assert checked.returncode == 0, checked
    warning = next(w for w in checked.stdout.splitlines() if "warning:" in w)
    assert warning.startswith(f"{config}:{line}: warning: state directory {directory}: ")
    assert "not writable for this user (uid 65534)" in warning
    assert warning.endswith("set state: directory: to a directory that is")

    port = free_port()
    log = ordinary_user.root / "state.log"
    process = ordinary_user.start(
        [exporter, "--config", str(config), "--listen", f"127.0.0.1:{port}"], log
    )
    try:
        assert wait_until(lambda: status_of(port)["meters"][0]["telegrams"] > 0)
        assert warning.partition("warning: ")[2] in log.read_text()  # at start, not at stop
        (shown,) = status_of(port)["warnings"]
        assert (shown["code"], shown["line"]) == ("state_unwritable", line)
        assert shown["path"] is None and shown["advice"]["pl"]  # the log (above) names it
    finally:
        stop_process(process)


# --- 5. telegrams to copy for troubleshooting -------------------------------------------------


@pytest.mark.integration
def test_listen_json_carries_the_telegram_that_decode_reads() -> None:
    done = cli("listen", "--receiver", "simulator:interval=0.2", "--json", "--duration", "1")
    heard = json.loads(done.stdout.splitlines()[0])
    decoded = cli("decode", "--key", SIMULATED_KEY, heard["telegram"])
    assert decoded.returncode == 0, decoded
    reading = json.loads(decoded.stdout)
    assert reading["ok"] and reading["meter_id"] == heard["meter_id"] == "12345678"


@pytest.mark.integration
def test_the_debug_log_shows_every_telegram_that_decode_reads(start_exporter: Start) -> None:
    exporter = start_exporter(simulated_config(0.3, "log:\n  level: debug\n"))
    found = re.compile(r"receiver simulator: telegram ([0-9A-F]+)$", re.MULTILINE)
    assert wait_until(lambda: len(found.findall(exporter.log())) >= 2, 10), exporter.log()
    decoded = cli("decode", "--key", SIMULATED_KEY, *found.findall(exporter.log())[:2])
    assert decoded.returncode == 0, decoded
    assert [json.loads(line)["meter_id"] for line in decoded.stdout.splitlines()] == [
        "12345678"
    ] * 2


# --- 7. the command line ----------------------------------------------------------------------


@pytest.mark.integration
def test_config_comes_before_or_after_the_command_or_from_the_environment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "amiplus.yml"
    path.write_text(simulated_config(0.2))
    other = {**os.environ, "AMIPLUS_CONFIG": str(path)}
    for args, env in (
        (["--config", str(path), "check-config"], None),
        (["check-config", "--config", str(path)], None),
        (["check-config", str(path)], None),
        (["check-config"], other),
    ):
        done = cli(*args, env=env)
        assert done.returncode == 0 and f"{path}: OK" in done.stdout, (args, done)
    for args in (["listen", "--config", str(path)], ["--config", str(path), "listen"]):
        done = cli(*args, "--duration", "1.5")
        assert done.returncode == 0 and "12345678" in done.stdout, (args, done)
    lost = cli("check-config", env={k: v for k, v in os.environ.items() if k != "AMIPLUS_CONFIG"})
    assert lost.returncode == 2 and "check-config FILE" in lost.stderr


@pytest.mark.integration
@pytest.mark.parametrize(
    ("receiver", "yaml", "says"),
    [
        ("im871", "type: im871\n    device: /dev/ttyUSB0", "did you mean 'im871a'?"),
        (
            "simulator:famly=nes",
            "type: simulator\n    famly: nes",
            "did you mean 'family'?",
        ),
        (
            "simulator:family=otsu",
            "type: simulator\n    family: otsu",
            "did you mean 'otus'?",
        ),
    ],
)
def test_the_command_line_suggests_as_the_file_does(
    tmp_path: Path, receiver: str, yaml: str, says: str
) -> None:
    on_line = cli("listen", "--receiver", receiver, "--duration", "0.1")
    assert on_line.returncode == 2 and says in on_line.stderr, on_line
    path = tmp_path / "amiplus.yml"
    path.write_text(f"{METER}receivers:\n  - {yaml}\n")
    in_file = cli("check-config", str(path))
    assert in_file.returncode == 2 and says in in_file.stderr, in_file


@pytest.mark.integration
def test_a_bare_device_keeps_its_case_and_gets_its_type_suggested() -> None:
    done = cli("listen", "--receiver", "/dev/ttyUSB0", "--duration", "0.1")
    assert done.returncode == 2
    assert "did you mean im871a:/dev/ttyUSB0?" in done.stderr and "ttyusb0" not in done.stderr
    done = cli("listen", "--receiver", "udp://0.0.0.0:9011")
    assert "did you mean lines:listen=udp://0.0.0.0:9011?" in done.stderr


@pytest.mark.integration
@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("meters:\n\t- id: 1\n", 2, "a tab character: YAML indents with spaces only"),
        (f"{METER}web:\n\tlisten: :9264\n", 6, "a tab character"),
        ('meters:\n  - id: "123\n    key: x\n', 2, "a quotation mark that is never closed"),
        ("meters:\n  - name: a: b\n", 2, "a ':' where none can be: write 'key: value'"),
        ("meters:\n  - id: 1\n   key: x\n", 3, "the indentation does not line up"),
    ],
    ids=["tab", "tab-in-web", "quote", "colon", "indentation"],
)
def test_yaml_syntax_errors_in_plain_words_with_the_line(
    tmp_path: Path, text: str, line: int, says: str
) -> None:
    path = tmp_path / "amiplus.yml"
    path.write_text(text)
    done = cli("check-config", str(path))
    assert done.returncode == 2
    assert f"{path}:{line}: not valid YAML: {says}" in done.stderr, done.stderr
    assert "cannot start any token" not in done.stderr


# --- 8. where the page is reachable -----------------------------------------------------------

#: A network namespace of the test's own: loopback and a bridge with a LAN-like address, so a
#: listener on every interface is reachable from nowhere but the namespace.
NAMESPACE = (
    "ip link set lo up && ip link add lan0 type bridge && ip addr add 10.99.0.1/24 dev lan0 "
    '&& ip link set lan0 up && exec "$@"'
)


@pytest.mark.integration
def test_it_says_every_address_the_page_is_reachable_on(tmp_path: Path) -> None:
    unshare, nsenter = require("unshare", "util-linux"), require("nsenter", "util-linux")
    require("ip", "iproute2")
    port = free_port()
    out = tmp_path / "out.txt"
    with out.open("wb") as sink:
        process = subprocess.Popen(
            [
                unshare,
                "--net",
                "sh",
                "-c",
                NAMESPACE,
                "sh",
                str(CONSOLE_SCRIPT),
                "--listen",
                f":{port}",
            ],
            stdout=sink,
            stderr=subprocess.DEVNULL,
        )
    try:
        assert wait_until(lambda: "Listening on every interface" in out.read_text(), 20)
        said = out.read_text()
        assert f"Status page: http://localhost:{port}/" in said
        urls = re.findall(r"http://[\d.]+:\d+/", said.partition("Listening")[2])
        assert urls == [f"http://10.99.0.1:{port}/"], said
        assert "without a password: --listen 127.0.0.1:9264 keeps them to this machine" in said
        for url in (*urls, f"http://127.0.0.1:{port}/"):
            fetched = subprocess.run(
                [
                    nsenter,
                    f"--net=/proc/{process.pid}/ns/net",
                    sys.executable,
                    "-c",
                    f"import urllib.request; urllib.request.urlopen('{url}healthz', timeout=5)",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            assert fetched.returncode == 0, (url, fetched.stderr)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def test_the_readme_says_who_can_open_the_page_outside_the_docker_section() -> None:
    """Not only where compose publishes ports: where a newcomer installs, and in the HTTP
    section, the page and /metrics are open to the network unless told otherwise."""
    readme = (ROOT / "README.md").read_text()
    sections = dict(re.findall(r"^## (.+?)\n(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL))
    for name in ("Install with pip", "HTTP and metrics"):
        text = " ".join(sections[name].split())
        assert "every interface" in text and "`/metrics`" in text, name
        assert "--listen 127.0.0.1:9264" in text and "password" in text, name


@pytest.mark.integration
def test_one_address_is_said_as_it_is(start_exporter: Start) -> None:
    exporter = start_exporter(None)
    said = f"Status page: http://127.0.0.1:{exporter.port}/"
    assert wait_until(lambda: said in exporter.log(), 10), exporter.log()  # printed after serving
    assert "every interface" not in exporter.log()


# --- 9. docs that agree -----------------------------------------------------------------------

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEPLOY = [p for p in sorted((ROOT / "deploy").rglob("*")) if p.is_file() and p.suffix != ".png"]
DASHBOARDS = sorted((ROOT / "grafana").rglob("*.json")) + sorted((ROOT / "grafana").rglob("*.yml"))


def test_every_word_on_how_often_a_meter_sends_says_about_30_seconds() -> None:
    said = re.compile(r"(?:meters?|it) sends?(?: a telegram| one)? (?:about )?every ([\w ]+)")
    found = {
        (path.relative_to(ROOT), claim)
        for path in (*DOCS, *DEPLOY, *DASHBOARDS)
        for claim in said.findall(path.read_text(errors="replace"))
    }
    assert found, "the interval is said somewhere"
    assert {(p, c) for p, c in found if not c.startswith("30 seconds")} == set()


def test_nothing_installs_from_a_package_index_that_has_no_release() -> None:
    sources = [*DOCS, *DEPLOY, *sorted((ROOT / "exporter").rglob("*.py"))]
    offenders = [p for p in sources if "install 'amiplus-exporter[" in p.read_text()]
    assert offenders == []


def test_the_unit_checks_the_configuration_as_its_own_user() -> None:
    unit = (ROOT / "deploy" / "systemd" / "amiplus-exporter.service").read_text()
    check = next(line for line in unit.splitlines() if "check-config" in line)
    assert "-u amiplus-exporter" in check and "STATE_DIRECTORY=/var/lib/amiplus-exporter" in check
    assert "StateDirectory=amiplus-exporter" in unit and "calendar" in unit
