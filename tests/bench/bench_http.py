"""HTTP server benchmark: prints figures, asserts nothing.

    .venv/bin/python tests/bench/bench_http.py [--clients N] [--requests N] [--flood N]
        [--idle N] [--only latency|flood|idle]

The exporter runs as a subprocess on 127.0.0.1 (the built-in simulated meter), once in plain
HTTP and once with TLS (a throw-away CA and server certificate), and once with basic auth.

Figure 1: latency of `GET /metrics` from `--clients` concurrent clients (default 50),
`--requests` in all (default 2,000): p50, p90, p99, max and the share over 1 s, plain and TLS,
once with a keep-alive connection per client (as scrapers do) and once with a fresh connection
per request (many short-lived clients; with TLS a full handshake each time), and with TLS once
more with a fresh connection that resumes the thread's previous session ("new, resumed": a
client with a session cache). Also the CPU time per request of the exporter and of this client
process, which share the machine's cores. Fresh connections once more from ApacheBench ("new
(ab)", `apt-get install apache2-utils`): a C client that takes about half the CPU per TLS
request that this Python one takes, so that row shows more of the exporter. `--key rsa` gives
the server an RSA 2048 key instead of ECDSA P-256.
Target: p99 <= 100 ms on loopback. A shallow listen backlog shows as a tail of about 1 s (a SYN
dropped and sent again).

Figure 2: a real scrape (the right password, a fresh connection every 100 ms) while `--clients`
clients send `--flood` requests with a wrong password (default 300), once all with the same
wrong password (a misconfigured client) and once each with another (guessing): the scrape's
p50 and max during the flood, and how long the flood took. bcrypt cost 10.

Figure 3: `--idle` connections (default 1,000) opened and left idle: how long the exporter takes
to accept them all (its listen queue empty), then 20 scrapes (p50 and max) and the exporter's
threads, open files, resident memory and CPU while they stay open. The exporter runs with a
soft limit of 1,024 open files, the usual default. Target: every scrape within 1 s.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import re
import resource
import shlex
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import bcrypt  # noqa: E402

from tests.bench.provenance import source_state  # noqa: E402
from tests.conftest import basic_auth  # noqa: E402
from tests.servers import ExporterProcess, simulated_config  # noqa: E402
from tests.test_daemon import _certificates  # noqa: E402

P99_TARGET_MS = 100.0
AB = shutil.which("ab")  # ApacheBench, Debian's apache2-utils


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class ResumingConnection(http.client.HTTPSConnection):
    """An HTTPS connection that offers the TLS session of the thread's previous one (session
    resumption, as a client with a session cache does: browsers, curl, Go with a
    ClientSessionCache). The session is kept at close: TLS 1.3 sends its tickets after the
    handshake, so they have arrived once the answer was read. `HANDSHAKES` counts the
    handshakes and the resumed ones."""

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        session = getattr(_local, "session", None)
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            self.sock, server_hostname=self.host, session=session
        )
        with _counting:
            HANDSHAKES["all"] += 1
            HANDSHAKES["resumed"] += self.sock.session_reused

    def close(self) -> None:
        if isinstance(self.sock, ssl.SSLSocket):
            _local.session = self.sock.session
        super().close()


def connect(
    port: int, context: ssl.SSLContext | None, resume: bool = False
) -> http.client.HTTPConnection:
    if context:
        kind = ResumingConnection if resume else http.client.HTTPSConnection
        return kind("127.0.0.1", port, timeout=30, context=context)
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def get(
    port: int,
    path: str,
    *,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
    resume: bool = False,
) -> tuple[int, float]:
    """One GET, on `connection` (kept open) or a fresh one (resuming the thread's previous TLS
    session if asked): the status (0 when it failed) and the seconds it took."""
    started = time.perf_counter()
    kept = connection is not None
    connection = connection or connect(port, context, resume)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        status = response.status
    except OSError:
        status = 0
        connection.close()
    finally:
        if not kept:
            connection.close()
    return status, time.perf_counter() - started


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of a process, this one by default."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(
    port: int, context: ssl.SSLContext | None, keep_alive: bool, resume: bool, n: int
) -> tuple[int, float]:
    """The `n`th GET /metrics (every one alike), on the thread's kept connection if asked."""
    connection = None
    if keep_alive:
        connection = getattr(_local, "connection", None)
        if connection is None:
            connection = _local.connection = connect(port, context)
    return get(port, "/metrics", context=context, connection=connection, resume=resume)


_local = threading.local()
HANDSHAKES: Counter[str] = Counter()  # of ResumingConnection: all, and resumed
_counting = threading.Lock()


def run_clients(
    clients: int, requests: int, one: Callable[[int], tuple[int, float]]
) -> list[tuple[int, float]]:
    """`requests` calls of `one(n)` spread over `clients` threads: (status, seconds) each."""
    results: list[tuple[int, float]] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                kept = getattr(_local, "connection", None)
                if kept is not None:
                    kept.close()
                    _local.connection = None
                return
            result = one(n)
            with lock:
                results.append(result)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def latency_line(label: str, results: list[tuple[int, float]], cpu: tuple[float, float]) -> str:
    times = sorted(seconds * 1000 for _, seconds in results)
    failed = sum(1 for status, _ in results if status != 200)
    slow = sum(1 for t in times if t > 1000)
    return figures_line(
        label,
        (percentile(times, 0.5), percentile(times, 0.99), times[-1]),
        f"over 1 s: {slow / len(times):.1%}; failed: {failed}",
        cpu,
        ok=not failed,
    )


def figures_line(
    label: str, ms: tuple[float, float, float], counts: str, cpu: tuple[float, float], ok: bool
) -> str:
    """One row of figure 1: p50, p99 and max in ms, what failed, the CPU per request."""
    p50, p99, longest = ms
    verdict = "target met" if p99 <= P99_TARGET_MS and ok else "ABOVE TARGET"
    return (
        f"  {label:<22}: p50 {p50:6.1f} ms, p99 {p99:6.1f} ms, max {longest:7.1f} ms; {counts}; "
        f"CPU per request: exporter {cpu[0] * 1000:.2f} ms, client {cpu[1] * 1000:.2f} ms  "
        f"[{verdict}]"
    )


def ab_line(label: str, pid: int, url: str, *, clients: int, requests: int, directory: Path) -> str:
    """A row measured with ApacheBench (`ab`, C, a fresh connection per request): a client
    that costs a fraction of this Python one, so the row shows what the exporter can do when
    the client does not take half of the cores."""
    if AB is None:
        return f"  {label:<22}: ab not found (apt-get install apache2-utils)"
    table = directory / "ab.csv"
    command = [AB, "-q", "-l", "-c", str(clients), "-e", str(table)]  # -l: bodies change
    subprocess.run([*command, "-n", str(clients), url], capture_output=True, check=False)
    before = cpu_seconds(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [*command, "-n", str(requests), url], capture_output=True, text=True, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        return f"  {label:<22}: ab failed: {done.stderr.strip()[-300:]}"
    rows = [line.split(",") for line in table.read_text().splitlines()[1:]]
    served_within = {int(float(percent)): float(ms) for percent, ms in rows}
    failed = sum(
        int(found[1])
        for found in re.finditer(r"(?:Failed requests|Non-2xx responses):\s+(\d+)", done.stdout)
    )
    client = after.ru_utime + after.ru_stime - before[1].ru_utime - before[1].ru_stime
    return figures_line(
        label,
        (served_within[50], served_within[99], served_within[100]),
        f"failed: {failed}",
        ((cpu_seconds(pid) - before[0]) / requests, client / requests),
        ok=not failed,
    )


def figure_latency(directory: Path, clients: int, requests: int, server_rsa: bool) -> None:
    print(f"\nFigure 1: GET /metrics, {clients} concurrent clients, {requests:,} requests")
    key = "RSA 2048" if server_rsa else "ECDSA P-256"
    print(f"  TLS: a server certificate with an {key} key, the exporter's default settings")
    certs = directory / "certs"
    certs.mkdir()
    _certificates(certs, server_rsa=server_rsa)
    (certs / "web.yml").write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
    )
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    for label, web, tls in (
        ("plain", "", None),
        ("TLS", f"web:\n  config_file: {certs / 'web.yml'}\n", context),
    ):
        (directory / label).mkdir()
        exporter = ExporterProcess(directory / label, simulated_config(2, web), ssl_context=tls)
        assert exporter.process is not None
        try:
            modes = [("keep-alive", True, False), ("new connections", False, False)]
            if tls:
                modes.append(("new, resumed", False, True))
            for how, keep_alive, resume in modes:
                one = partial(scrape, exporter.port, tls, keep_alive, resume)
                run_clients(clients, clients, one)  # warm-up
                HANDSHAKES.clear()
                before = cpu_seconds(exporter.process.pid), cpu_seconds()
                results = run_clients(clients, requests, one)
                cpu = (
                    (cpu_seconds(exporter.process.pid) - before[0]) / requests,
                    (cpu_seconds() - before[1]) / requests,
                )
                line = latency_line(f"{label}, {how}", results, cpu)
                if resume:
                    line += (
                        f"\n    {HANDSHAKES['resumed']:,} of {HANDSHAKES['all']:,} "
                        "handshakes resumed"
                    )
                print(line)
            scheme = "https" if tls else "http"
            url = f"{scheme}://127.0.0.1:{exporter.port}/metrics"
            row = f"{label}, new (ab)"
            pid = exporter.process.pid
            print(ab_line(row, pid, url, clients=clients, requests=requests, directory=directory))
        finally:
            exporter.stop()


def figure_flood(directory: Path, clients: int, flood: int) -> None:
    print(
        f"\nFigure 2: a scrape every 100 ms during {flood} wrong-password requests from "
        f"{clients} clients (bcrypt cost 10)"
    )
    hashed = bcrypt.hashpw(b"right password", bcrypt.gensalt(rounds=10)).decode()
    web = directory / "auth.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    (directory / "auth").mkdir()
    exporter = ExporterProcess(
        directory / "auth",
        simulated_config(2, f"web:\n  config_file: {web}\n"),
        headers=basic_auth("prometheus", "right password"),
    )
    try:
        for label, password in (
            ("one wrong password", lambda n: "wrong"),
            ("a new one each time", lambda n: f"wrong {n}"),
        ):
            flood_once(exporter.port, label, clients, flood, password)
    finally:
        exporter.stop()


def flood_once(
    port: int, label: str, clients: int, flood: int, password: Callable[[int], str]
) -> None:
    """Scrape every 100 ms with the right password while the wrong ones pour in."""
    scrapes: list[float] = []
    done = threading.Event()

    def scraper() -> None:
        while not done.is_set():
            status, seconds = get(
                port, "/metrics", headers=basic_auth("prometheus", "right password")
            )
            scrapes.append(seconds * 1000 if status == 200 else float("inf"))
            time.sleep(0.1)

    thread = threading.Thread(target=scraper)
    started = time.perf_counter()
    thread.start()
    answers = run_clients(
        clients,
        flood,
        lambda n: get(port, "/metrics", headers=basic_auth("prometheus", password(n))),
    )
    took = time.perf_counter() - started
    done.set()
    thread.join()
    statuses = sorted({status for status, _ in answers})
    print(
        f"  {label:<20}: scrape p50 {statistics.median(scrapes):6.1f} ms, "
        f"max {max(scrapes):7.1f} ms ({len(scrapes)} scrapes); flood took "
        f"{took:.1f} s, answered {statuses}"
    )


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return -1


def accept_queue(port: int) -> int:
    """Connections the kernel holds for the listener on `port` that it has not accepted yet."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            return int(fields[4].split(":")[1], 16)
    return -1


def figure_idle(directory: Path, idle: int) -> None:
    print(f"\nFigure 3: scrapes while {idle:,} idle connections are open")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, soft), hard))  # for the exporter
    (directory / "idle").mkdir()
    try:
        exporter = ExporterProcess(directory / "idle", simulated_config(2))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, idle + 500), hard))
    assert exporter.process is not None
    pid = exporter.process.pid
    held: list[socket.socket] = []
    try:
        started = time.perf_counter()
        for _ in range(idle):
            held.append(socket.create_connection(("127.0.0.1", exporter.port), timeout=10))
        while accept_queue(exporter.port) and time.perf_counter() - started < 60:
            time.sleep(0.01)
        accepted = time.perf_counter() - started
        before = cpu_seconds(pid), time.perf_counter()
        times = sorted(get(exporter.port, "/metrics")[1] * 1000 for _ in range(20))
        time.sleep(2)
        cpu = (cpu_seconds(pid) - before[0]) / (time.perf_counter() - before[1])
        verdict = "target met" if times[-1] <= 1000 else "ABOVE TARGET"
        print(
            f"  opened and accepted in {accepted:.2f} s (queue left: "
            f"{accept_queue(exporter.port)}); "
            f"scrapes: p50 {percentile(times, 0.5):.1f} ms, max {times[-1]:.1f} ms; exporter: "
            f"{proc_status(pid, 'Threads')} threads, {len(os.listdir(f'/proc/{pid}/fd'))} open "
            f"files, RSS {proc_status(pid, 'VmRSS') / 1024:.1f} MB, CPU {cpu:.0%}  [{verdict}]"
        )
    finally:
        for sock in held:
            sock.close()
        exporter.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--flood", type=int, default=300)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument(
        "--only", choices=("latency", "flood", "idle"), help="run only this figure (1, 2 or 3)"
    )
    parser.add_argument(
        "--key", choices=("ec", "rsa"), default="ec", help="the server key of figure 1's TLS"
    )
    args = parser.parse_args(argv)
    print("amiplus-exporter HTTP benchmark")
    print(f"  command line : {shlex.join(sys.orig_argv)}")
    print(f"  python       : {platform.python_implementation()} {platform.python_version()}")
    print(f"  platform     : {platform.platform()}")
    print(f"  source       : {source_state()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-http-") as temporary:
        directory = Path(temporary)
        if args.only in (None, "latency"):
            figure_latency(directory, args.clients, args.requests, args.key == "rsa")
        if args.only in (None, "flood"):
            figure_flood(directory, args.clients, args.flood)
        if args.only in (None, "idle"):
            figure_idle(directory, args.idle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
