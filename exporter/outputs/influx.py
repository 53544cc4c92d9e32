"""InfluxDB output (docs/contracts.md, section 5): one point per decoded telegram, spooled on
disk, sent in batches by a thread that backs off while the server is away.

`api: v2` writes to `/api/v2/write` with influxdb-client (InfluxDB 1.8+, 2.x, 3.x; for 1.8 the
token is `username:password` and the bucket `database/retention_policy`). `api: v1` writes to
`/write?db=&rp=` with basic auth, for InfluxDB 1.7 and older (Debian's and Raspberry Pi OS's).
influxdb-client is imported only when an `api: v2` output is configured.
"""

from __future__ import annotations

import base64
import http.client
import logging
import math
import re
import ssl
import threading
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..amiplus import MeterReading, Shape, table
from ..config import InfluxConfig
from ..pipeline import Cost, MeterUpdate, Output
from ..plumbing import Backoff, import_extra
from ..settlement import LedgerView, figure_table
from .lineprotocol import line
from .spool import DISK_FULL, SPOOL_ERROR, SPOOL_FULL, Segment, Spool

log = logging.getLogger(__name__)

MEASUREMENT = "amiplus"
BACKOFF = Backoff(first=1.0, cap=120.0)
PROBE_EVERY = 2.0  # seconds between `/ping` probes while InfluxDB does not answer
PROBE_TIMEOUT = 2.0
#: Seconds `stop` may take in all (the process has 5 s from SIGTERM; receivers stop first).
STOP_BUDGET = 3.0
UNREACHABLE = frozenset({"connection", "timeout"})  # outcomes after which a probe is worth it


def _numbers(reading: MeterReading) -> Iterator[tuple[str, float]]:
    """(field name, value) of every field of the table that the reading carries (meter units)."""
    values = reading.values
    for row in table().rows:
        if row.influx is None:
            continue
        value = values.get(row.key)
        if row.shape is Shape.TIME:
            if value is not None:
                yield row.influx, float(int(value.timestamp()))
        elif row.shape is Shape.PHASES:
            for phase, number in sorted((value or {}).items()):
                yield row.influx.format(phase.lower()), float(number)
        else:
            if value is not None:
                yield row.influx, float(value)
            if row.influx_tariff:
                for tariff, number in sorted(values.get(row.tariff_key, {}).items()):
                    yield row.influx_tariff.format(tariff), float(number)


def _fields(reading: MeterReading) -> dict[str, float]:
    """The reading's numbers; a value InfluxDB cannot store (an infinity or NaN from a meter's
    float record) is left out rather than failing the whole batch."""
    return {name: number for name, number in _numbers(reading) if math.isfinite(number)}


def _cost_fields(money: Mapping[str, float]) -> Iterator[tuple[str, float]]:
    """The meter's running cost (pipeline/calendar.py): a register in PLN per tariff zone
    (energy and distribution) and for the exported energy; a period's cost is a difference."""
    cost = Cost.of(money)
    for zone, (energy, distribution) in cost.zones.items():
        yield f"cost_t{zone}_pln", float(energy + distribution)
    if "export" in money:
        yield "export_value_pln", float(cost.export)


def _settlement_fields(view: LedgerView) -> Iterator[tuple[str, float]]:
    """A settled meter's figures of the ledger now (the figure table's InfluxDB fields of its
    scheme), those that are known."""
    for row in figure_table().now:
        if row.influx is not None and view.scheme in row.schemes:
            value = row.read(view)
            if value is not None:
                yield row.influx, float(value)


def point(
    reading: MeterReading,
    name: str | None,
    received_at: float,
    money: Mapping[str, float] | None = None,
    contracted_power: float | None = None,
    *,
    settlement: LedgerView | None = None,
) -> str | None:
    """The line-protocol point of one reading: float fields only, millisecond precision, so two
    readings in one second are two points (None when the telegram named no field at all);
    `money`, the running cost, the configured contracted power and a settled meter's figures
    (with the readings that changed them) add their fields."""
    found = _fields(reading)
    if not found:
        return None
    if money:
        found.update(_cost_fields(money))
    if contracted_power is not None:
        found["contracted_power_w"] = float(contracted_power)
    if settlement is not None:
        found.update(_settlement_fields(settlement))
    tags = {"meter_id": reading.meter_id, "name": name or ""}
    return line(MEASUREMENT, tags, found, round(received_at * 1000))


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a write went: accepted; try again later (`retry_after` if the server said); or
    refused as invalid (never retried)."""

    accepted: bool = False
    reason: str = ""  # an error label: connection, timeout, server_error, rate_limited, ...
    message: str = ""
    retry_after: float | None = None
    invalid: bool = False
    refused_lines: int | None = None  # a partial write: the lines the server did not store

    def refused(self, points: int) -> int:
        """Points of an invalid batch of `points` that the server did not store."""
        if self.refused_lines is None:
            return points
        return min(points, self.refused_lines)


#: HTTP status -> (error label, whether the batch itself is at fault).
STATUS_MEANINGS = {
    400: ("rejected", True),
    413: ("too_large", True),
    422: ("rejected", True),
    401: ("unauthorized", False),
    403: ("unauthorized", False),
    404: ("not_found", False),
    408: ("timeout", False),
    429: ("rate_limited", False),
}


_DROPPED = re.compile(r"dropped=(\d+)")


def refused_in_partial_write(body: str) -> int | None:
    """Lines an InfluxDB 1.x "partial write" answer says it did not store: those it could not
    parse plus `dropped=N` (type conflicts, outside the retention policy); None when the
    answer is no partial write (then the whole batch was refused)."""
    if "partial write" not in body:
        return None
    return body.count("unable to parse") + sum(int(n) for n in _DROPPED.findall(body))


def outcome_of(status: int, body: str, retry_after: str | None) -> Outcome:
    """Classify an HTTP answer; only a batch the server calls invalid is set aside."""
    if 200 <= status < 300:
        return Outcome(accepted=True)
    reason, invalid = STATUS_MEANINGS.get(
        status, ("server_error" if status >= 500 else "http_error", False)
    )
    after = None
    if retry_after:
        try:
            after = float(retry_after)
        except ValueError:
            after = None
    return Outcome(
        reason=reason,
        message=f"HTTP {status}: {body.strip()[:300]}",
        retry_after=after,
        invalid=invalid,
        refused_lines=refused_in_partial_write(body) if invalid else None,
    )


def ping(config: InfluxConfig, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether InfluxDB answers at all (`GET /ping`: no credentials, no work for the server)."""
    parts = urllib.parse.urlsplit(config.url)
    https = parts.scheme == "https"
    host, port = parts.hostname or "localhost", parts.port or (443 if https else 8086)
    connection = (
        http.client.HTTPSConnection(host, port, timeout=timeout, context=_ssl_context(config))
        if https
        else http.client.HTTPConnection(host, port, timeout=timeout)
    )
    try:
        connection.request("GET", f"{parts.path.rstrip('/')}/ping")
        connection.getresponse().read()
    except OSError:
        return False
    finally:
        connection.close()
    return True


class Sender(ABC):
    """Sends one batch of line protocol."""

    description: str

    @abstractmethod
    def send(self, body: bytes, timeout: float | None = None) -> Outcome:
        """Write a batch; `timeout` (seconds) shortens the configured one (when stopping)."""

    def close(self) -> None:
        return None


def _ssl_context(config: InfluxConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    if not config.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class V1Sender(Sender):
    """`POST /write?db=&rp=&precision=ms` with basic auth (InfluxDB 1.x)."""

    def __init__(self, config: InfluxConfig) -> None:
        parts = urllib.parse.urlsplit(config.url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.https else 8086)
        query = {"db": config.database, "precision": "ms"}
        if config.retention_policy:
            query["rp"] = config.retention_policy
        self.path = f"{parts.path.rstrip('/')}/write?{urllib.parse.urlencode(query)}"
        self.headers = {"Content-Type": "text/plain; charset=utf-8"}
        if config.username:
            credentials = f"{config.username}:{config.password}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        self.timeout = config.timeout
        self.context = _ssl_context(config) if self.https else None
        self.description = f"{config.where} database {config.database}"

    def send(self, body: bytes, timeout: float | None = None) -> Outcome:
        connection: http.client.HTTPConnection
        seconds = min(self.timeout, timeout or self.timeout)
        if self.https:
            connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=seconds, context=self.context
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=seconds)
        try:
            connection.request("POST", self.path, body, self.headers)
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
            return outcome_of(response.status, text, response.getheader("Retry-After"))
        except TimeoutError as error:
            return Outcome(reason="timeout", message=str(error))
        except OSError as error:
            return Outcome(reason="connection", message=str(error))
        finally:
            connection.close()


class V2Sender(Sender):
    """`/api/v2/write?precision=ms` through influxdb-client (InfluxDB 1.8+, 2.x, 3.x)."""

    def __init__(self, config: InfluxConfig) -> None:
        import_extra("influxdb_client", "the InfluxDB output with api: v2")
        from influxdb_client.client.influxdb_client import InfluxDBClient  # noqa: PLC0415
        from influxdb_client.domain.write_precision import WritePrecision  # noqa: PLC0415
        from influxdb_client.service.write_service import WriteService  # noqa: PLC0415

        self.precision = WritePrecision.MS
        self.timeout = config.timeout

        self.client = InfluxDBClient(
            url=config.url,
            token=config.token,
            org=config.org or "-",
            timeout=int(config.timeout * 1000),
            verify_ssl=config.verify_tls,
            ssl_ca_cert=str(config.ca_file) if config.ca_file else None,
            retries=False,
        )
        self.service = WriteService(self.client.api_client)  # type: ignore[no-untyped-call]
        self.bucket = config.bucket
        self.org = config.org or "-"
        self.description = f"{config.where} bucket {config.bucket}"

    def send(self, body: bytes, timeout: float | None = None) -> Outcome:
        from influxdb_client.rest import ApiException  # noqa: PLC0415
        from urllib3.exceptions import HTTPError, ReadTimeoutError  # noqa: PLC0415

        seconds = min(self.timeout, timeout or self.timeout)
        try:
            self.service.post_write(  # type: ignore[no-untyped-call]
                org=self.org,
                bucket=self.bucket,
                body=body,
                precision=self.precision,
                content_type="text/plain; charset=utf-8",
                _request_timeout=seconds * 1000,  # milliseconds
            )
        except ApiException as error:
            headers: Any = error.headers or {}
            return outcome_of(
                int(error.status or 0), str(error.body or error.reason), headers.get("Retry-After")
            )
        except ReadTimeoutError as error:
            return Outcome(reason="timeout", message=str(error))
        except (HTTPError, OSError) as error:
            return Outcome(reason="connection", message=str(error))
        return Outcome(accepted=True)

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]


class InfluxOutput(Output):
    """Appends readings to the spool at once; a thread sends the sealed segments in order.

    Neither a fault of the disk under the spool nor of InfluxDB reaches the receivers: readings
    that cannot be spooled are dropped and counted, and the writer carries on until it can.
    """

    name = "influxdb"

    def __init__(
        self, config: InfluxConfig, sender: Sender | None = None, backoff: Backoff = BACKOFF
    ) -> None:
        self.config = config
        self.spool = Spool(
            config.spool,
            max_bytes=int(config.spool_max_mb * 1_000_000),
            batch_size=config.batch_size,
        )
        self.sender = sender or (V2Sender(config) if config.api == "v2" else V1Sender(config))
        self.backoff = backoff
        self.written = 0
        self.rejected_points = 0
        self.errors: Counter[str] = Counter()
        self.last_error = ""
        self.error_reason = ""  # of the latest failed write, until one succeeds
        self.retry_at = 0.0
        self._warned_full = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="influxdb", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info(
            "InfluxDB output to %s (%d points spooled from before)",
            self.sender.description,
            self.spool.points,
        )

    def submit(self, update: MeterUpdate) -> None:
        """Spool a reading (from a receiver's thread); it is accepted once this returns."""
        line = point(
            update.reading,
            update.name,
            update.received_at,
            update.cost,
            update.contracted_power,
            settlement=update.settlement,
        )
        if line is None:
            return
        self.spool.append([line], update.received_at)
        full = self.spool.dropped[SPOOL_FULL]
        if full > self._warned_full:
            log.warning(
                "InfluxDB spool full (%.0f MB): dropped the %d oldest points so far",
                self.config.spool_max_mb,
                full,
            )
            self._warned_full = full

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                attempt = self._step(attempt)
            except Exception:  # the writer must outlive any surprise; the spool keeps the data
                log.exception("InfluxDB writer: unexpected error; carrying on in 1 s")
                self._stop.wait(1.0)

    def _step(self, attempt: int) -> int:
        """Send the oldest sealed segment, or wait; the next backoff attempt number."""
        self.spool.seal_if_older(self.config.flush_interval)
        self.spool.tidy()
        segment = self.spool.oldest()
        if segment is None:
            self._wake.wait(min(self.config.flush_interval, 1.0))
            self._wake.clear()
            return attempt
        outcome = self._send(segment)
        if outcome.accepted or outcome.invalid:
            return 0
        delay = outcome.retry_after or self.backoff.delay(attempt)
        self.retry_at = time.time() + delay
        log.warning(
            "InfluxDB write failed (%s): %s; retrying in %.1f s",
            outcome.reason,
            outcome.message,
            delay,
        )
        self._back_off(delay, probe=outcome.reason in UNREACHABLE and not outcome.retry_after)
        return attempt + 1

    def _back_off(self, delay: float, *, probe: bool) -> None:
        """Wait `delay` seconds; while InfluxDB was unreachable, ask `/ping` every
        `PROBE_EVERY` seconds and stop waiting as soon as it answers."""
        deadline = time.monotonic() + delay
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(remaining, PROBE_EVERY) if probe else remaining):
                return
            if probe and deadline - time.monotonic() > 0 and ping(self.config):
                log.info("InfluxDB answers again at %s; sending now", self.config.where)
                self.retry_at = 0.0
                return

    def _send(self, segment: Segment, timeout: float | None = None) -> Outcome:
        body = self.spool.read(segment)
        if body is None:  # unreadable for now (or gone, which the spool counted)
            return Outcome(reason="spool", message=f"cannot read {segment.path}")
        if not body:
            self.spool.remove(segment)
            return Outcome(accepted=True)
        outcome = self.sender.send(body, timeout)
        if outcome.accepted:
            self.spool.remove(segment)
            self.written += segment.points
            self.last_error = self.error_reason = ""
            self.retry_at = 0.0
            return outcome
        self.errors[outcome.reason] += 1
        self.last_error, self.error_reason = outcome.message, outcome.reason
        if outcome.invalid:
            refused = outcome.refused(segment.points)
            where = self.spool.reject(segment)
            self.rejected_points += refused
            self.written += segment.points - refused
            log.error(
                "InfluxDB refused %d of %d points as invalid (%s); the batch is kept in %s, "
                "not retried",
                refused,
                segment.points,
                outcome.message,
                where,
            )
        return outcome

    def stop(self) -> None:
        """Stop within `STOP_BUDGET` seconds, sending what the spool holds meanwhile; the rest
        waits on disk for the next start (a batch cut off mid-send is sent again then, which
        InfluxDB takes as the same points)."""
        deadline = time.monotonic() + STOP_BUDGET
        self._stop.set()
        self._wake.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=STOP_BUDGET)
        self.spool.close()
        if not self._thread.is_alive():
            while (remaining := deadline - time.monotonic()) > 0.1 and (
                segment := self.spool.oldest()
            ) is not None:
                outcome = self._send(segment, remaining)
                if not outcome.accepted and not outcome.invalid:
                    break
        left = self.spool.points
        if left:
            log.info("%d points stay in the InfluxDB spool for the next start", left)
        self.sender.close()

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "amiplus_influxdb_points_written", "Points InfluxDB accepted.", value=self.written
        )
        errors = CounterMetricFamily(
            "amiplus_influxdb_write_errors", "Failed write requests, by reason.", labels=["reason"]
        )
        for reason, count in sorted(self.errors.items()):
            errors.add_metric([reason], count)
        yield errors
        dropped = CounterMetricFamily(
            "amiplus_influxdb_points_dropped",
            "Points given up: the spool was full, its disk full or failing, or InfluxDB "
            "refused them.",
            labels=["reason"],
        )
        for reason in (SPOOL_FULL, DISK_FULL, SPOOL_ERROR):
            dropped.add_metric([reason], self.spool.dropped[reason])
        dropped.add_metric(["rejected"], self.rejected_points)
        yield dropped
        yield GaugeMetricFamily(
            "amiplus_influxdb_spool_points",
            "Points waiting on disk for InfluxDB.",
            value=self.spool.points,
        )
        yield GaugeMetricFamily(
            "amiplus_influxdb_spool_bytes", "Size of the spool on disk.", value=self.spool.size
        )
        oldest = self.spool.oldest_timestamp
        if oldest is not None:
            yield GaugeMetricFamily(
                "amiplus_influxdb_oldest_point_age_seconds",
                "Age of the oldest point waiting in the spool.",
                value=max(0.0, time.time() - oldest),
            )

    def status(self) -> dict[str, Any]:
        """The writer's state for the status page."""
        oldest = self.spool.oldest_timestamp
        dropped = self.spool.dropped
        return {
            "target": self.sender.description,
            "points_written": self.written,
            "spool_points": self.spool.points,
            "spool_bytes": self.spool.size,
            "oldest_point_age_seconds": None if oldest is None else max(0.0, time.time() - oldest),
            "dropped_points": sum(dropped.values()),
            "dropped": dict(dropped),
            "spool_problem": self.spool.problem,
            "rejected_points": self.rejected_points,
            "errors": dict(self.errors),
            "last_error": self.last_error,
            "error_reason": self.error_reason,
            "retry_at": self.retry_at or None,
        }
