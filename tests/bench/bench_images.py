"""Container images for the Raspberry Pi and the PC: builds, sizes, start-up. Prints figures,
asserts nothing (a failed build or smoke run stops it with the engine's message).

    .venv/bin/python tests/bench/bench_images.py [--platform linux/arm64 ...] [--no-cold]

For each platform (linux/amd64, linux/arm64, linux/arm/v7; foreign ones under qemu-user-static
through binfmt_misc) on the stand-in base of tests/docker_engine.py (debootstrap, built once
and cached): the time to make the stand-in when it was missing; deploy/Dockerfile built by the
engine's classic builder with no layer cache (cold), again with every layer cached, and after a
change to exporter/ only; the image's size, its base's, and the exporter's own layers; a smoke
run (`decode` of exporter/examples/telegrams.txt); the seconds from `docker run` to the health
check's `healthy`, with the Dockerfile's own 30 s interval and with a 1 s interval (about when
the exporter answers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench.provenance import source_state  # noqa: E402
from tests.docker_engine import (  # noqa: E402
    PLATFORMS,
    DockerEngine,
    Platform,
    dockerfile_base,
    enable_emulation,
    ensure_stand_in,
    native_platform,
)

CONTEXT = ("pyproject.toml", "README.md", "exporter", "deploy/Dockerfile", ".dockerignore")
KEY = "FBA95687613B73604C320A16AA8892EA"  # the published key of exporter/examples/telegrams.txt


def base_name(target: Platform) -> str:
    """The stand-in's name: the Dockerfile's own base on this machine's platform (as the tests
    use it), a name of its own for the others."""
    if target == native_platform():
        return dockerfile_base()
    return f"amiplus-stand-in/python:bookworm-{target.tag}"


def megabytes(engine: DockerEngine, image: str) -> float:
    return int(engine.docker("image", "inspect", "--format={{.Size}}", image).stdout) / 1e6


def build(engine: DockerEngine, context: Path, target: Platform, tag: str, *extra: str) -> float:
    started = time.monotonic()
    engine.docker(
        "build",
        "--quiet",
        f"--platform={target.docker}",
        f"--build-arg=PYTHON_IMAGE={base_name(target)}",
        "--file=deploy/Dockerfile",
        f"--tag={tag}",
        *extra,
        str(context),
        env={"DOCKER_BUILDKIT": "0"},
        timeout=7200,
    )
    return time.monotonic() - started


def until_healthy(engine: DockerEngine, target: Platform, image: str, *options: str) -> float:
    """Seconds from `docker run` to the health status `healthy`."""
    name = f"amiplus-bench-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    engine.docker(
        "run", "--detach", f"--name={name}", f"--platform={target.docker}", *options, image
    )
    try:
        deadline = started + 600
        while time.monotonic() < deadline:
            state = json.loads(engine.docker("inspect", "--format={{json .State}}", name).stdout)
            if state["Health"]["Status"] == "healthy":
                return time.monotonic() - started
            if state["Status"] != "running":
                raise RuntimeError(f"{image} stopped:\n{engine.docker('logs', name).stderr}")
            time.sleep(0.2)
        raise RuntimeError(f"{image} not healthy within 600 s")
    finally:
        engine.docker("rm", "--force", name, check=False)


def measure(engine: DockerEngine, target: Platform, cold: bool) -> None:
    print(f"\n{target.docker}")
    enable_emulation(target)
    made = ensure_stand_in(engine, base_name(target), target)
    if made is not None:
        print(f"  stand-in base made (debootstrap): {made:7.1f} s")
    tag = f"amiplus-exporter:bench-{target.tag}"
    with tempfile.TemporaryDirectory(prefix="bench-images-") as folder:
        context = Path(folder)
        for name in CONTEXT:
            source = REPO / name
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(
                    source, context / name, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(source, context / name)
        if cold:
            seconds = build(engine, context, target, tag, "--no-cache")
            print(f"  build, no layer cache           : {seconds:7.1f} s")
        print(f"  build, every layer cached       : {build(engine, context, target, tag):7.1f} s")
        with (context / "exporter" / "__init__.py").open("a") as changed:
            changed.write(f"# changed for the benchmark {uuid.uuid4()}\n")
        print(f"  build after a change to exporter: {build(engine, context, target, tag):7.1f} s")
    size, base = megabytes(engine, tag), megabytes(engine, base_name(target))
    print(f"  image size                      : {size:7.1f} MB")
    print(f"  base (stand-in) size            : {base:7.1f} MB")
    print(f"  the exporter's own layers       : {size - base:7.1f} MB")
    examples = (REPO / "exporter" / "examples" / "telegrams.txt").read_bytes()
    started = time.monotonic()
    decoded = engine.docker(
        "run",
        "--rm",
        "--interactive",
        f"--platform={target.docker}",
        tag,
        "decode",
        f"--key={KEY}",
        input=examples,
        timeout=600,
    ).stdout
    assert decoded.count('"ok": true') == 4, decoded
    print(f"  smoke run (decode, 4 telegrams) : {time.monotonic() - started:7.1f} s")
    print(f"  docker run -> healthy (30 s)    : {until_healthy(engine, target, tag):7.1f} s")
    fast = until_healthy(engine, target, tag, "--health-interval=1s")
    print(f"  docker run -> healthy (1 s)     : {fast:7.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS))
    parser.add_argument("--no-cold", action="store_true", help="skip the build without cache")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {' '.join(sys.argv)}")
    print(source_state())
    engine = DockerEngine()
    try:
        print(f"engine {engine.docker('version', '--format={{.Server.Version}}').stdout.strip()}")
        for name in args.platform or list(PLATFORMS):
            measure(engine, PLATFORMS[name], cold=not args.no_cold)
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
