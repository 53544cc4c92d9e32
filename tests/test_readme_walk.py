"""The README as a newcomer follows it (issue 24): its command blocks, read from README.md (a
change to the README is a change to this walk), run in order as written, on a fresh clone, by a
user who is not root (tests/ordinary_user.py); and its Docker block in order on a real engine
that has never built the image (in test_image.py, on its engine and stand-in base).

A command the walk meets must be in STEPS, which says how to run it: to the end, as a server
until its page answers (then Ctrl-C), as `listen` on a stick that is not there (until it says
why, then Ctrl-C), or not here, and why. Commands run through `sh -c`, so `~` and `<` work as in
a terminal."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import wait_until
from .ordinary_user import OrdinaryUser

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
#: The sections of a newcomer's first hour, in the README's order; Docker is walked on its own.
WALKED = ("Two commands", "Install with pip", "Your own meter", "Decode a telegram")
EXPORTER = "~/amiplus-exporter/bin/amiplus-exporter"
PORT = 9264  # the README's commands serve where a user's would: the default port


@dataclass(frozen=True)
class Block:
    section: str
    language: str
    text: str


def blocks(readme: Path = README) -> Iterator[Block]:
    """The fenced blocks of the README (also those indented in a list), with their section."""
    section = ""
    fence = re.compile(r"^(\s*)```(\w+)\s*$")
    lines = readme.read_text(encoding="utf-8").splitlines()
    n = 0
    while n < len(lines):
        if lines[n].startswith("## "):
            section = lines[n][3:].strip()
        opened = fence.match(lines[n])
        if opened:
            indent, language = len(opened.group(1)), opened.group(2)
            end = next(m for m in range(n + 1, len(lines)) if lines[m].strip() == "```")
            text = "\n".join(line[indent:] for line in lines[n + 1 : end])
            yield Block(section, language, text + "\n")
            n = end
        n += 1


def commands(block: Block) -> list[str]:
    """The commands of a shell block, comments cut."""
    found = []
    for line in block.text.splitlines():
        command = re.sub(r"\s+#\s.*$", "", line).strip()
        if command and not command.startswith("#"):
            found.append(command)
    return found


def section(name: str) -> list[Block]:
    found = [block for block in blocks() if block.section == name]
    assert found, f"README.md has no section '## {name}' with blocks"
    return found


# --- how the walk runs a command ----------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """How to run a README command: `how` is run, serve, no-stick or skip."""

    how: str
    why: str = ""  # for skip: why not here
    says: str = ""  # what its output must hold


STEPS: tuple[tuple[str, Step], ...] = (
    ("make test", Step("skip", "the test suite itself")),
    ("make run", Step("serve", says=f"Status page: http://127.0.0.1:{PORT}/")),
    (
        "sudo usermod -aG dialout",
        Step("skip", "changes the machine's groups; test_newcomer.py has a stick for this user"),
    ),
    ("python3 -m venv ~/amiplus-exporter", Step("run")),
    ("~/amiplus-exporter/bin/pip install", Step("run")),
    (f"{EXPORTER} listen --receiver simulator", Step("run", says="12345678")),
    (f"{EXPORTER} listen --receiver im871a:", Step("no-stick")),
    (f"{EXPORTER} check-config amiplus.yml", Step("run", says="amiplus.yml: OK")),
    (f"{EXPORTER} --config amiplus.yml", Step("serve", says="Status page: http://localhost")),
    (f"{EXPORTER} decode", Step("run")),
)


def step_for(command: str) -> Step:
    found = [step for start, step in STEPS if command.startswith(start)]
    assert found, f"the walk does not know how to run `{command}`: add it to STEPS"
    return found[0]


def answered(url: str, namespace_of: int | None = None) -> bool:
    """Whether `url` answers 200 (from inside the network namespace of a process, if given)."""
    code = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=3)"
    prefix = [] if namespace_of is None else ["nsenter", f"--net=/proc/{namespace_of}/ns/net"]
    done = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, check=False)
    return done.returncode == 0


def fetched(url: str, namespace_of: int) -> str:
    code = (
        f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    )
    done = subprocess.run(
        ["nsenter", f"--net=/proc/{namespace_of}/ns/net", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


class Walk:
    """One newcomer's terminal: a fresh clone as the current directory, commands in order."""

    def __init__(self, user: OrdinaryUser) -> None:
        self.user = user
        self.clone = user.clone()
        self.log = user.root / "walk.log"
        self.done: list[tuple[str, str]] = []  # (command, how), in order

    def run(self, command: str, step: Step) -> None:
        if step.how == "skip":
            self.done.append((command, f"not here: {step.why}"))
            return
        if step.how == "run":
            finished = self.user.run(["sh", "-c", command], cwd=self.clone, timeout=900)
            output = finished.stdout + finished.stderr
            assert finished.returncode == 0, f"`{command}`: exit {finished.returncode}\n{output}"
            assert step.says in output, f"`{command}` does not say {step.says!r}:\n{output}"
            self.check(command, output)
        elif step.how == "serve":
            self.serve(command, step)
        else:
            self.without_stick(command)
        self.done.append((command, step.how))

    def start(self, command: str, *, private_network: bool) -> subprocess.Popen[bytes]:
        """Start a command that runs until stopped, its output in the walk's log."""
        self.log.write_bytes(b"")
        return self.user.start(  # exec: Ctrl-C reaches the command as in a terminal
            ["sh", "-c", f"exec {command}"],
            self.log,
            cwd=self.clone,
            private_network=private_network,
        )

    def interrupt(self, process: subprocess.Popen[bytes]) -> int:
        """Ctrl-C, as in a terminal: SIGINT to the whole process group."""
        os.killpg(process.pid, signal.SIGINT)
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            raise AssertionError(f"Ctrl-C did not stop it:\n{self.output()}") from None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def serve(self, command: str, step: Step) -> None:
        """Until the page answers, then Ctrl-C; the exporter stops cleanly."""
        every_interface = command.startswith(f"{EXPORTER} --config")  # web.listen's default
        if not every_interface:
            assert port_is_free(PORT), f"port {PORT} is taken: the README's `{command}` needs it"
        process = self.start(command, private_network=every_interface)
        namespace = process.pid if every_interface else None
        try:
            page = f"http://127.0.0.1:{PORT}/"
            ready = wait_until(lambda: process.poll() is None and answered(page, namespace), 600)
            assert ready, f"`{command}`: the page never answered:\n{self.output()}"
            assert step.says in self.output(), self.output()
            if every_interface:
                status = json.loads(fetched(f"{page}api/status", process.pid))
                assert {m["name"] for m in status["meters"]} == {"home", "garage"}
                assert status["warnings"] == []  # the state directory suits this user
                assert status["receivers"][0]["down_code"] == "unavailable"  # no stick here
        finally:
            self.interrupt(process)
        assert "Traceback" not in self.output(), self.output()
        assert "stopping" in self.output(), f"`{command}` did not stop cleanly:\n{self.output()}"

    def without_stick(self, command: str) -> None:
        """`listen` on /dev/ttyUSB0 of a machine without the stick: it says why, first."""
        process = self.start(command, private_network=False)
        try:
            said = ("does not exist: plug the stick in", "permission denied")
            assert wait_until(lambda: any(s in self.output() for s in said), 30), self.output()
        finally:
            code = self.interrupt(process)
        output = self.output()
        assert code == 1, f"`{command}` after Ctrl-C: exit {code}\n{output}"
        assert output.index("No receiver is up") < output.index("ID  maker"), output

    def check(self, command: str, output: str) -> None:
        """What particular commands must say beyond their exit status."""
        if " check-config " in command:
            assert "warning: receiver im871a: /dev/serial/by-id/" in output, output
            assert "warning: state directory" not in output, output
        if " decode " in command:
            readings = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
            assert len(readings) >= 4 and all(r["ok"] for r in readings), output


@pytest.mark.integration
def test_the_readme_walks_in_order_for_a_user_who_is_not_root(
    ordinary_user: OrdinaryUser,
) -> None:
    walk = Walk(ordinary_user)
    started = time.monotonic()
    for name in WALKED:
        for block in section(name):
            if block.language == "yaml" and block.text.startswith("meters:"):
                # "Write a configuration (say amiplus.yml)"
                (walk.clone / "amiplus.yml").write_text(block.text)
                ordinary_user.give(walk.clone / "amiplus.yml")
            if block.language == "sh":
                for command in commands(block):
                    walk.run(command, step_for(command))
    hows = [how for _, how in walk.done]
    assert hows.count("serve") == 2 and "no-stick" in hows and hows.count("run") >= 5, walk.done
    print(f"README walk: {len(walk.done)} commands in {time.monotonic() - started:.0f} s")


def test_every_walked_command_is_known_and_every_step_is_met() -> None:
    """The table and the README agree both ways: no step stands for a command that is gone."""
    met = [
        command
        for name in WALKED
        for block in section(name)
        if block.language == "sh"
        for command in commands(block)
    ]
    used = {start for start, _ in STEPS if any(command.startswith(start) for command in met)}
    assert all(step_for(command) for command in met)
    assert used == {start for start, _ in STEPS}
