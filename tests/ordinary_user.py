"""An ordinary user, not root, for the tests that follow a newcomer (tests run as root in CI; a
newcomer does not): uid and gid 65534 (nobody), a home of its own in a new temporary directory,
the repository as a fresh clone has it, and commands run through `setpriv` with that user's
environment. The Python is the system's `python3` (the tests' own may live where this user
cannot read)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from .conftest import require, server_process

ROOT = Path(__file__).parent.parent
UID = GID = 65534
PATH = "/usr/local/bin:/usr/bin:/bin"
#: What the machine's own set-up gives every user: how pip reaches its index, proxies.
PASSED_ON = ("PIP_", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY")


def fresh_clone(target: Path) -> Path:
    """The repository's files as a fresh clone has them (the working tree's tracked and new
    files, nothing that .gitignore leaves out: no .venv, no caches)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


class OrdinaryUser:
    """uid 65534 with a home in `root` (a new directory, removed by `remove`)."""

    def __init__(self) -> None:
        self.setpriv = require("setpriv", "util-linux")
        if shutil.which("python3", path=PATH) is None:
            pytest.fail("python3 is not installed: sudo apt-get install python3-venv")
        self.root = Path(tempfile.mkdtemp(prefix="amiplus-newcomer-"))
        self.root.chmod(0o755)
        self.home = self.root / "home"
        self.home.mkdir()
        self.give(self.home)
        self._venv: Path | None = None

    def give(self, path: Path) -> None:
        """Make `path` (and everything in it) this user's."""
        os.chown(path, UID, GID)
        for parent, directories, files in os.walk(path):
            for name in (*directories, *files):
                os.chown(os.path.join(parent, name), UID, GID, follow_symlinks=False)

    def clone(self, name: str = "amiplus-exporter") -> Path:
        """A fresh clone in this user's home."""
        target = fresh_clone(self.home / name)
        self.give(target)
        return target

    @property
    def env(self) -> dict[str, str]:
        passed = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ON)}
        user = {"HOME": str(self.home), "USER": "nobody", "LOGNAME": "nobody"}
        return {**passed, **user, "PATH": PATH, "LANG": "C.UTF-8"}

    def command(self, args: list[str]) -> list[str]:
        return [self.setpriv, f"--reuid={UID}", f"--regid={GID}", "--clear-groups", "--", *args]

    def run(self, args: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
        """Run a command as this user (in its home unless `cwd` says otherwise)."""
        options.setdefault("cwd", self.home)
        options.setdefault("timeout", 120)
        env = {**self.env, **options.pop("env", {})}
        return subprocess.run(
            self.command(args), env=env, capture_output=True, text=True, check=False, **options
        )

    def start(
        self, args: list[str], log: Path, *, private_network: bool = False, **options: Any
    ) -> subprocess.Popen[bytes]:
        """Start a command as this user in its own process group, its output to `log`; the
        session's end stops it if the test does not. With `private_network`, in a network
        namespace of its own with only loopback (`nsenter --net=/proc/PID/ns/net` reaches it):
        a listener on every interface is then reachable from nowhere else."""
        env = {**self.env, **options.pop("env", {})}
        command = self.command(args)
        if private_network:
            require("ip", "iproute2")
            inner = 'ip link set lo up && exec "$@"'
            command = [require("unshare", "util-linux"), "--net", "sh", "-c", inner, "sh", *command]
        with log.open("ab") as out:
            return server_process(
                command,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=options.pop("cwd", self.home),
                start_new_session=True,
                **options,
            )

    def exporter(self) -> Path:
        """`amiplus-exporter` installed by this user from a fresh clone (once per user)."""
        if self._venv is None:
            clone = self.clone("installed-from")
            venv = self.home / "venv"
            for step in (
                ["python3", "-m", "venv", str(venv)],
                [str(venv / "bin" / "pip"), "install", "--quiet", str(clone)],
            ):
                done = self.run(step, timeout=600)
                assert done.returncode == 0, f"{step}: {done.stdout}{done.stderr}"
            self._venv = venv
        return self._venv / "bin" / "amiplus-exporter"

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
