"""A real Docker engine for the image tests and benchmarks, on a machine without an image
registry: Debian's dockerd (started with its own directories when no engine answers, stopped
again by whoever started it) and stand-in base images built from Debian packages.

A stand-in is a Debian bookworm root made by debootstrap (for a foreign architecture through
qemu-user-static and binfmt_misc) from the Debian mirror of the host's apt sources (a local
mirror or a caching proxy works), with Python, venv and the Python headers as the official
`python:*-slim` images have them, and the host's CA bundle so that pip inside a build trusts
what the host trusts. It is imported under the name the Dockerfile builds `FROM` (or any other
name) with the platform recorded, and built only when no image of that name exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest

from .conftest import require, wait_until

ROOT = Path(__file__).parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
#: Debian's client: a newer `docker` earlier in PATH may need a buildx plugin to build at all.
DEBIAN_CLIENT = Path("/usr/bin/docker")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "amiplus-exporter"
#: The host's apt sources, in both formats: one-line `deb URI SUITE COMPONENT...` (.list) and
#: deb822 stanzas (.sources).
APT = Path("/etc/apt")
#: Debian's releases, by code name and by suite name: a source for one of them is a Debian
#: mirror, which serves bookworm too (the security and updates suites are other archives).
DEBIAN_SUITES = frozenset(
    {"buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid"}
    | {"oldoldstable", "oldstable", "stable", "testing", "unstable"}
)
#: Only when the host's sources name no Debian mirror (an Ubuntu host, say).
FALLBACK_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
#: What the stand-in adds to a minimal Debian: the parts of python:*-slim the build uses.
STAND_IN_PACKAGES = ("python3", "python3-venv", "libpython3.11-dev")
#: Left out of the stand-in, as the slim images leave them out.
STAND_IN_TRIM = (
    "var/cache/apt/archives/*.deb",
    "var/lib/apt/lists/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/locale/*",
    "usr/lib/**/libpython3.11*.a",
)
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class Platform:
    """A platform as Docker names it, Debian's architecture, and qemu's name for it."""

    docker: str
    debian: str
    qemu: str
    machine: str  # what `uname -m` says inside

    @property
    def architecture(self) -> str:
        return self.docker.split("/")[1]

    @property
    def variant(self) -> str | None:
        parts = self.docker.split("/")
        return parts[2] if len(parts) > 2 else None

    @property
    def tag(self) -> str:
        return self.docker.removeprefix("linux/").replace("/", "")


PLATFORMS = {
    p.docker: p
    for p in (
        Platform("linux/amd64", "amd64", "x86_64", "x86_64"),
        Platform("linux/arm64", "arm64", "aarch64", "aarch64"),
        Platform("linux/arm/v7", "armhf", "arm", "armv7l"),
    )
}


@dataclass(frozen=True)
class AptSource:
    """One entry of the apt sources: what debootstrap needs of it."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]


def one_line_sources(text: str) -> Iterator[AptSource]:
    """The entries of a sources.list: `deb [OPTIONS] URI SUITE [COMPONENT...]`, `#` comments."""
    for line in text.splitlines():
        kind, _, rest = line.split("#", 1)[0].strip().partition(" ")
        rest = rest.strip()
        if rest.startswith("["):
            rest = rest.partition("]")[2]
        fields = rest.split()
        if len(fields) >= 2:
            yield AptSource((kind,), (fields[0],), (fields[1],), tuple(fields[2:]))


def deb822_sources(text: str) -> Iterator[AptSource]:
    """The enabled stanzas of a .sources file: `Types:`, `URIs:`, `Suites:`, `Components:`
    (values may go on over indented lines)."""
    for stanza in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        name = ""
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and name:
                fields[name] += " " + line.strip()
                continue
            key, colon, value = line.partition(":")
            if colon:
                name = key.strip().lower()
                fields[name] = value.strip()
        if fields.get("enabled", "yes").lower() != "no" and "uris" in fields:
            values = (fields.get(key, "").split() for key in ("types", "uris", "suites"))
            types, uris, suites = (tuple(value) for value in values)
            yield AptSource(types, uris, suites, tuple(fields.get("components", "").split()))


def host_sources(apt: Path = APT) -> Iterator[AptSource]:
    """Every entry of the host's apt sources, in apt's order of files."""
    main = apt / "sources.list"
    if main.exists():
        yield from one_line_sources(main.read_text(errors="replace"))
    for path in sorted((apt / "sources.list.d").glob("*.list")):
        yield from one_line_sources(path.read_text(errors="replace"))
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        yield from deb822_sources(path.read_text(errors="replace"))


def debian_mirror(apt: Path = APT) -> str:
    """Where the host gets Debian's packages (the first binary source of a Debian release with
    `main`, over http, https or file), else deb.debian.org."""
    for source in host_sources(apt):
        debian = "deb" in source.types and "main" in source.components
        if debian and DEBIAN_SUITES.intersection(source.suites):
            for uri in source.uris:
                if uri.startswith(("http://", "https://", "file:/")):
                    return uri.rstrip("/")
    return FALLBACK_MIRROR


def native_platform() -> Platform:
    machine = os.uname().machine
    return next(p for p in PLATFORMS.values() if p.machine == machine)


def dockerfile_base() -> str:
    """The image the Dockerfile builds FROM by default (its PYTHON_IMAGE argument)."""
    found = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert found, f"{DOCKERFILE} declares ARG PYTHON_IMAGE=<image> before its first FROM"
    return found.group(1)


def client() -> str:
    if DEBIAN_CLIENT.exists():
        return str(DEBIAN_CLIENT)
    return require("docker", "docker.io")


class DockerEngine:
    """Talks to a running engine (DOCKER_HOST, or the default socket), or starts Debian's
    dockerd with its data under CACHE (images and build cache survive between runs) and its
    sockets in a temporary directory; `close()` stops only an engine it started."""

    def __init__(self, timeout: float = 600) -> None:
        self.client = client()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self._lock: IO[bytes] | None = None
        self._run_dir: Path | None = None
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        self.env = {**os.environ, "DOCKER_HOST": host}
        if not self._answers():
            if "DOCKER_HOST" in os.environ:
                pytest.fail(f"no Docker engine answers at DOCKER_HOST={host}", pytrace=False)
            self._start(timeout)

    def _answers(self) -> bool:
        with contextlib.suppress(subprocess.TimeoutExpired):
            done = self.docker(
                "version", "--format", "{{.Server.Version}}", check=False, timeout=20
            )
            return done.returncode == 0
        return False

    def _start(self, timeout: float) -> None:
        dockerd = require("dockerd", "docker.io")
        data = CACHE / "docker"
        data.mkdir(parents=True, exist_ok=True)
        # One engine per data directory: another test run waits for this one to finish.
        self._lock = (CACHE / "docker.lock").open("wb")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test run holds {data} for longer than {timeout} s")
                time.sleep(1)
        for pid in orphans(data):
            pytest.fail(
                f"dockerd {pid}, left by an earlier run, still uses {data}: stop it "
                f"(kill {pid}) or point DOCKER_HOST at it",
                pytrace=False,
            )
        self._run_dir = Path(tempfile.mkdtemp(prefix="amiplus-dockerd-"))
        socket = self._run_dir / "docker.sock"
        self.log_path = self._run_dir / "dockerd.log"
        self.env["DOCKER_HOST"] = f"unix://{socket}"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    dockerd,
                    f"--data-root={data}",
                    f"--exec-root={self._run_dir / 'exec'}",
                    f"--pidfile={self._run_dir / 'dockerd.pid'}",
                    f"--host=unix://{socket}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = self.process
        wait_until(lambda: process.poll() is not None or self._answers(), 60, every=0.5)
        if process.poll() is not None or not self._answers():
            log_text = self.log()
            self.close()
            pytest.fail(f"dockerd did not start:\n{log_text[-3000:]}", pytrace=False)

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def docker(
        self,
        *arguments: str,
        check: bool = True,
        timeout: float = 120,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the client; with `check`, a failure is an AssertionError with its output."""
        done = subprocess.run(
            [self.client, *arguments],
            env={**self.env, **(env or {})},
            capture_output=True,
            timeout=timeout,
            check=False,
            input=input,
        )
        result = subprocess.CompletedProcess(
            done.args,
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )
        if check:
            assert done.returncode == 0, (
                f"docker {' '.join(arguments)}: exit {done.returncode}\n"
                f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        return result

    def exists(self, image: str) -> bool:
        return self.docker("image", "inspect", image, check=False).returncode == 0

    def inspect(self, name: str) -> dict[str, Any]:
        """`docker inspect`'s JSON document of an image or a container."""
        document: list[dict[str, Any]] = json.loads(self.docker("inspect", name).stdout)
        return document[0]

    def close(self) -> None:
        """Stop dockerd if this object started it (its containers stop with it)."""
        if self.process is not None:
            process, self.process = self.process, None
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        if self._run_dir is not None:
            # dockerd leaves its default network namespace mounted in the exec root.
            for mountpoint in mounts_under(self._run_dir):
                subprocess.run(["umount", str(mountpoint)], check=False, timeout=30)
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None


def mounts_under(directory: Path) -> list[Path]:
    """Mount points inside `directory`, deepest first."""
    points = [
        Path(line.split()[1])
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1].startswith(f"{directory}/")
    ]
    return sorted(points, key=lambda point: len(point.parts), reverse=True)


def orphans(data: Path) -> list[int]:
    """dockerd processes that use `data` as their data root."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            arguments = cmdline.read_bytes().split(b"\0")
            if f"--data-root={data}".encode() in arguments:
                found.append(int(cmdline.parent.name))
    return found


# --- foreign architectures ---------------------------------------------------------------------

BINFMT = Path("/proc/sys/fs/binfmt_misc")


def enable_emulation(platform: Platform) -> None:
    """Let this kernel run the platform's binaries through qemu-user-static (as root): mount
    binfmt_misc if needed and register the interpreter with the fix-binary flag, so that it
    also works inside containers and chroots."""
    if platform.machine == os.uname().machine:
        return
    require(f"qemu-{platform.qemu}-static", "qemu-user-static")
    if not (BINFMT / "register").exists():
        subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=True, timeout=30
        )
    if (BINFMT / f"qemu-{platform.qemu}").exists():
        return
    rule = Path(f"/usr/lib/binfmt.d/qemu-{platform.qemu}.conf")
    assert rule.exists(), f"{rule} is missing: apt-get install qemu-user-static"
    (BINFMT / "register").write_text(rule.read_text().strip())


# --- stand-in base images ---------------------------------------------------------------------


def load_root(engine: DockerEngine, root: Path, name: str, platform: Platform, layer: Path) -> None:
    """Load a root directory as a one-layer image recorded for `platform`: a `docker save`
    archive made here (`docker import` records the engine's own architecture)."""
    subprocess.run(
        ["tar", "--numeric-owner", "-C", str(root), "-cf", str(layer), "."], check=True, timeout=600
    )
    digest = hashlib.sha256()
    with layer.open("rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "architecture": platform.architecture,
        **({"variant": platform.variant} if platform.variant else {}),
        "os": "linux",
        "created": created,
        "config": {
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "PIP_CERT=/etc/ssl/certs/ca-certificates.crt",  # the host's bundle, inside
            ],
            "Cmd": ["python3"],
            "Labels": {
                "org.opencontainers.image.description": (
                    f"stand-in for {name}: Debian {SUITE} and its python3 (tests/docker_engine.py)"
                )
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest.hexdigest()}"]},
        "history": [{"created": created, "created_by": f"debootstrap {SUITE}"}],
    }
    config_bytes = json.dumps(config).encode()
    config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    manifest = [{"Config": config_name, "RepoTags": [name], "Layers": ["layer.tar"]}]
    with subprocess.Popen(
        [engine.client, "load", "--quiet"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=engine.env,
    ) as load:
        assert load.stdin is not None and load.stdout is not None
        with tarfile.open(fileobj=load.stdin, mode="w|") as archive:
            for member, content in (
                (config_name, config_bytes),
                ("manifest.json", json.dumps(manifest).encode()),
            ):
                info = tarfile.TarInfo(member)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
            archive.add(layer, arcname="layer.tar")
        load.stdin.close()
        output = load.stdout.read().decode(errors="replace")
        assert load.wait(timeout=600) == 0, f"docker load: {output}"


def ensure_stand_in(engine: DockerEngine, name: str, platform: Platform) -> float | None:
    """Make sure an image called `name` exists; if not, build the stand-in for `platform`.
    Returns the seconds it took to build, or None when the image was there."""
    if engine.exists(name):
        return None
    started = time.monotonic()
    debootstrap = require("debootstrap", "debootstrap")
    assert HOST_CA_BUNDLE.exists(), f"{HOST_CA_BUNDLE} is missing: apt-get install ca-certificates"
    enable_emulation(platform)
    CACHE.mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    with tempfile.TemporaryDirectory(prefix=f"stand-in-{platform.debian}-", dir=CACHE) as folder:
        root = Path(folder) / "root"
        log = Path(folder) / "debootstrap.log"
        with log.open("wb") as output:
            done = subprocess.run(
                [
                    debootstrap,
                    f"--arch={platform.debian}",
                    "--variant=minbase",
                    f"--include={','.join(STAND_IN_PACKAGES)}",
                    SUITE,
                    str(root),
                    mirror,
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=1800,
                check=False,
            )
        assert done.returncode == 0, f"debootstrap from {mirror} failed:\n{log.read_text()[-3000:]}"
        for pattern in STAND_IN_TRIM:
            for path in root.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        shutil.copyfile(HOST_CA_BUNDLE, root / "etc/ssl/certs/ca-certificates.crt")
        (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")  # as python:*-slim
        load_root(engine, root, name, platform, Path(folder) / "layer.tar")
    recorded = engine.inspect(name)
    assert (recorded["Architecture"], recorded.get("Variant") or None) == (
        platform.architecture,
        platform.variant,
    ), f"{name} is recorded as {recorded['Architecture']}, not {platform.docker}"
    return time.monotonic() - started


# --- images and containers ---------------------------------------------------------------------


def build_image(engine: DockerEngine, tag: str, *extra: str, timeout: float = 900) -> float:
    """deploy/Dockerfile built from the repository by the engine's classic builder (what compose
    v1 and a client without buildx use) on the stand-in base (made once, then cached); `extra`:
    more `docker build` options (`--target=addon`). Returns the seconds it took."""
    ensure_stand_in(engine, dockerfile_base(), native_platform())
    started = time.monotonic()
    engine.docker(
        "build",
        "--quiet",
        f"--file={DOCKERFILE}",
        f"--tag={tag}",
        *extra,
        str(ROOT),
        env={"DOCKER_BUILDKIT": "0"},
        timeout=timeout,
    )
    return time.monotonic() - started


class Container:
    """One `docker run -d` container; `remove()` (always called by `run`) deletes it."""

    def __init__(self, engine: DockerEngine, name: str) -> None:
        self.engine = engine
        self.name = name

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.engine.inspect(self.name)["State"]
        return state

    def logs(self) -> str:
        done = self.engine.docker("logs", self.name, check=False)
        return done.stdout + done.stderr

    def port(self, inside: int = 9264) -> int:
        """The host port published for `inside` (on 127.0.0.1)."""
        address = self.engine.docker("port", self.name, f"{inside}/tcp").stdout.split()[0]
        host, _, port = address.rpartition(":")
        assert host == "127.0.0.1", address
        return int(port)

    def running(self) -> bool:
        state = self.state()
        assert state["Status"] in ("created", "running"), f"{state}\n{self.logs()}"
        return True

    def stop(self, grace: int = 10) -> tuple[float, int]:
        """`docker stop -t grace`: the seconds it took and the exit code (137: killed)."""
        started = time.monotonic()
        self.engine.docker("stop", f"--time={grace}", self.name, timeout=grace + 60)
        return time.monotonic() - started, int(self.state()["ExitCode"])

    def remove(self) -> None:
        self.engine.docker("rm", "--force", "--volumes", self.name, check=False)


@contextmanager
def run(engine: DockerEngine, *arguments: str) -> Iterator[Container]:
    """`docker run -d` with these arguments; the container is removed afterwards."""
    name = f"amiplus-test-{uuid.uuid4().hex[:12]}"
    engine.docker("run", "--detach", f"--name={name}", *arguments)
    container = Container(engine, name)
    try:
        yield container
    finally:
        container.remove()
