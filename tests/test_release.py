"""A release a user can install: one version everywhere, the image's labels, and the sdist and
wheel of `make dist` (checked by twine) installed into a clean virtual environment outside this
tree and run from there: `--version`, `decode`, `check-config`, the exporter on its simulator."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import exporter
from exporter import cli
from exporter.daemon import Exporter, default_config

from .conftest import (
    assert_matches,
    free_port,
    http_get,
    server_process,
    stop_process,
    vector,
    wait_until,
)

ROOT = Path(__file__).parent.parent
VERSION = exporter.__version__
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
#: What a Python virtual environment of this machine is made with (not this tree's .venv).
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


def make(*arguments: str, cwd: Path = ROOT) -> str:
    """What make prints for these arguments (with -n: the commands it would run)."""
    done = subprocess.run(
        ["make", "--no-print-directory", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"make {' '.join(arguments)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def image_build_args(cwd: Path = ROOT) -> dict[str, str]:
    """The build arguments `make image` gives `docker build`."""
    return dict(re.findall(r"--build-arg (\w+)=(\S*)", make("-n", "image", cwd=cwd)))


ADDON_CONFIG = ROOT / "deploy" / "home-assistant" / "amiplus-exporter" / "config.yaml"


def printed_version(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    program, version = capsys.readouterr().out.split()
    assert program == "amiplus-exporter"
    return version


def newest_changelog_version() -> str:
    found = re.search(r"^## \[(.+?)\]", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert found, "CHANGELOG.md has no '## [VERSION] - DATE' section"
    return found.group(1)


@pytest.mark.integration  # runs make
def test_one_version_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    """exporter.__version__ is the one place; everything that shows a version shows it, and a
    file that has to repeat it (the add-on's config.yaml) is one more line here. (The installed
    metadata is written at install: `make` reinstalls when exporter/__init__.py changes.)"""
    shown = {
        "amiplus-exporter --version": printed_version(capsys),
        "the installed package's metadata": importlib.metadata.version("amiplus-exporter"),
        "/api/status (the page's footer)": Exporter(default_config()).status()["version"],
        "the image's label (make image)": image_build_args()["VERSION"],
        "the newest section of CHANGELOG.md": newest_changelog_version(),
        "the add-on's config.yaml": yaml.safe_load(ADDON_CONFIG.read_text())["version"],
    }
    assert shown == dict.fromkeys(shown, VERSION)


def dockerfile_labels() -> dict[str, str]:
    """The OCI labels of the exporter's runtime stage, as written in the Dockerfile."""
    runtime = DOCKERFILE.read_text().split(" AS exporter\n", 1)[1].split("\nFROM ", 1)[0]
    label = re.search(r"^LABEL (.*?[^\\])$", runtime, re.MULTILINE | re.DOTALL)
    assert label, "the runtime stage has no LABEL instruction"
    pairs = re.findall(r'org\.opencontainers\.image\.([\w.]+)="([^"]*)"', label.group(1))
    return dict(pairs)


def test_the_image_labels_come_from_the_build_and_the_package() -> None:
    labels = dockerfile_labels()
    assert labels["version"] == "${VERSION}"
    assert labels["revision"] == "${REVISION}"
    assert labels["source"] == "${SOURCE}"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert labels["licenses"] == pyproject["project"]["license"]


@pytest.mark.integration  # git and make
@pytest.mark.parametrize(
    "origin",
    [
        "https://builder:s3cret-token@git.example/amiplus/amiplus-exporter.git",
        "git@git.example:amiplus/amiplus-exporter.git",
        "https://git.example/amiplus/amiplus-exporter",
    ],
)
def test_make_image_labels_the_commit_and_a_source_without_credentials(
    tmp_path: Path, origin: str
) -> None:
    for name in ("Makefile", "exporter/__init__.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for command in (["init", "-q"], ["add", "."], ["commit", "-qm", "x"]):
        subprocess.run([*git, *command], check=True, capture_output=True)
    subprocess.run([*git, "remote", "add", "origin", origin], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert image_build_args(tmp_path) == {
        "VERSION": VERSION,
        "REVISION": commit,
        "SOURCE": "https://git.example/amiplus/amiplus-exporter",
    }


# --- make dist, and the wheel installed where no source tree is -------------------------------


@dataclass(frozen=True)
class Dist:
    sdist: Path
    wheel: Path


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """`make dist` into a directory of its own, once per session, with this interpreter's build
    and twine (the virtual environment is taken as installed)."""
    out = tmp_path_factory.mktemp("dist")
    binaries = Path(sys.executable).parent
    make("-o", ".venv/.test-installed", f"BIN={binaries}", f"DIST={out}", "dist")
    (sdist,) = out.glob("*.tar.gz")
    (built,) = out.glob("*.whl")
    return Dist(sdist, built)


def test_the_sdist_and_the_wheel_hold_what_a_user_needs(wheel: Dist) -> None:
    assert wheel.wheel.name == f"amiplus_exporter-{VERSION}-py3-none-any.whl"
    assert wheel.sdist.name == f"amiplus_exporter-{VERSION}.tar.gz"
    with zipfile.ZipFile(wheel.wheel) as archive:
        inside = set(archive.namelist())
        metadata = archive.read(f"amiplus_exporter-{VERSION}.dist-info/METADATA").decode()
    assert {"exporter/web/static/status.html", "exporter/examples/telegrams.txt"} <= inside
    page = ROOT / "exporter" / "web" / "static" / "status.html"
    with zipfile.ZipFile(wheel.wheel) as archive:
        assert archive.read("exporter/web/static/status.html") == page.read_bytes()
    assert f"amiplus_exporter-{VERSION}.dist-info/licenses/LICENSE" in inside
    assert {name.split("/")[0] for name in inside} == {
        "exporter",
        f"amiplus_exporter-{VERSION}.dist-info",
    }  # no dashboards, deploy files or tests
    assert f"\nVersion: {VERSION}\n" in metadata
    with tarfile.open(wheel.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    top = {name.split("/")[0] for name in names}
    assert {"README.md", "LICENSE", "CHANGELOG.md", "pyproject.toml", "exporter"} <= top
    assert not top & {"tests", "grafana", "deploy", "docs"}, top


@pytest.fixture(scope="session")
def installed(wheel: Dist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean virtual environment outside the source tree with the wheel installed: its bin."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([BASE_PYTHON, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    done = subprocess.run(
        [*pip, "install", str(wheel.wheel)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return venv / "bin"


def run_installed(installed: Path, cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The installed command, run from a directory without the source tree in reach."""
    return subprocess.run(
        [str(installed / "amiplus-exporter"), *arguments],
        cwd=cwd,
        env={"PATH": f"{installed}:/usr/bin:/bin", "HOME": str(cwd)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_installed_wheel_runs(installed: Path, tmp_path: Path) -> None:
    where = run_installed(installed, tmp_path, "--version")
    assert (where.returncode, where.stdout) == (0, f"amiplus-exporter {VERSION}\n")
    code = "import exporter, pathlib; print(pathlib.Path(exporter.__file__).parent)"
    package = subprocess.run(
        [str(installed / "python"), "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(package).is_relative_to(installed.parent), package  # not this source tree

    b2 = vector("B2")
    decoded = run_installed(installed, tmp_path, "decode", "--key", b2["key_hex"], b2["frame_hex"])
    assert decoded.returncode == 0, decoded.stderr
    assert_matches(json.loads(decoded.stdout), b2["expect"])

    config = tmp_path / "amiplus.yml"
    shutil.copy(ROOT / "deploy" / "amiplus.example.yml", config)
    checked = run_installed(installed, tmp_path, "check-config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{config}: OK\n") and "meter home" in checked.stdout


def test_the_installed_exporter_serves_its_simulated_meter(installed: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "exporter.log"
    with log.open("wb") as output:
        process = server_process(
            [str(installed / "amiplus-exporter"), "--listen", f"127.0.0.1:{port}"],
            cwd=tmp_path,
            env={"PATH": f"{installed}:/usr/bin:/bin", "HOME": str(tmp_path)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"

        def scraped() -> bool:
            code, body = http_get(f"{url}/metrics", timeout=2)
            return (
                code == 200 and b'amiplus_energy_imported_joules_total{meter_id="12345678"}' in body
            )

        assert wait_until(scraped, 30), log.read_text()
        code, page = http_get(f"{url}/", timeout=5)
        assert code == 200 and b'"meter_id": "12345678"' in page and b'id="version"' in page
        status = json.loads(http_get(f"{url}/api/status", timeout=5)[1])
        assert status["version"] == VERSION and status["meters"][0]["telegrams"] >= 1
    finally:
        stop_process(process)  # SIGTERM: a clean stop
    assert process.returncode == 0, log.read_text()
