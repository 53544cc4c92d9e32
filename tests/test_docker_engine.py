"""The Debian mirror the image tests' stand-in base is made from: read from the host's apt
sources in both formats (tests/docker_engine.py), so a local mirror or a caching proxy works."""

from __future__ import annotations

from pathlib import Path

from .docker_engine import FALLBACK_MIRROR, AptSource, deb822_sources, debian_mirror

ONE_LINE = """\
# deb http://deb.debian.org/debian bookworm main     (commented out)
deb-src http://mirror.lan/debian bookworm main
deb http://mirror.lan/debian-security bookworm-security main
deb [arch=amd64 signed-by=/etc/apt/keyrings/d.gpg] http://mirror.lan/debian/ bookworm main # LAN
"""

DEB822 = """\
Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

# switched off
Enabled: no
Types: deb
URIs: http://old.example/debian
Suites: bookworm
Components: main

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main

Types: deb deb-src
URIs:
 http://apt-cache.lan:3142/deb.debian.org/debian
 http://deb.debian.org/debian
Suites: trixie trixie-updates
Components: main non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def apt(tmp_path: Path, files: dict[str, str]) -> Path:
    """An /etc/apt of these files (paths relative to it)."""
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "sources.list.d").mkdir(exist_ok=True)
    return tmp_path


def test_a_sources_list_names_the_mirror(tmp_path: Path) -> None:
    assert debian_mirror(apt(tmp_path, {"sources.list": ONE_LINE})) == "http://mirror.lan/debian"


def test_a_deb822_file_names_the_mirror_or_the_proxy(tmp_path: Path) -> None:
    security, source_code, cache = deb822_sources(DEB822)  # the disabled one is left out
    assert cache == AptSource(
        ("deb", "deb-src"),
        ("http://apt-cache.lan:3142/deb.debian.org/debian", "http://deb.debian.org/debian"),
        ("trixie", "trixie-updates"),
        ("main", "non-free-firmware"),
    )
    assert security.suites == ("bookworm-security",) and source_code.types == ("deb-src",)
    folder = apt(tmp_path, {"sources.list.d/debian.sources": DEB822})
    assert debian_mirror(folder) == "http://apt-cache.lan:3142/deb.debian.org/debian"


def test_other_archives_are_passed_over_in_apt_s_order(tmp_path: Path) -> None:
    folder = apt(
        tmp_path,
        {
            "sources.list": "",
            "sources.list.d/a-node.list": "deb https://deb.nodesource.com/node_20.x nodistro main",
            "sources.list.d/b.list.disabled": "deb http://ignored.lan/debian bookworm main\n",
            "sources.list.d/c-docker.sources": (
                "Types: deb\nURIs: https://download.docker.com/linux/debian\n"
                "Suites: bookworm\nComponents: stable\n"
            ),
            "sources.list.d/d-debian.sources": DEB822,
        },
    )
    assert debian_mirror(folder) == "http://apt-cache.lan:3142/deb.debian.org/debian"


def test_a_host_without_a_debian_source_uses_deb_debian_org(tmp_path: Path) -> None:
    ubuntu = "deb http://archive.ubuntu.com/ubuntu noble main restricted\n"
    assert debian_mirror(apt(tmp_path, {"sources.list": ubuntu})) == FALLBACK_MIRROR
    assert debian_mirror(tmp_path / "nothing-here") == FALLBACK_MIRROR
