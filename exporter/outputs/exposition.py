"""The `/metrics` body (docs/contracts.md, section 4): rendered at most once a second and kept
only gzip-compressed, as Prometheus asks for it. A scrape that finds the body due but not too
old (`served_while_rendering`) is answered with it at once and a render starts in a thread of
its own, so under many scrapers none waits for a render; a scrape that finds it older (one
Prometheus every 15 s) renders, and the scrapes that come meanwhile wait for that render.

A fleet's body is large (3 KB a meter), so nothing holds it whole. Each meter's samples are
formatted when the meter changed (prometheus.py says how) and kept compressed: zlib with the
families' names as a shared dictionary turns a meter's 3 KB into about 0.4 KB. A render expands
the meters one at a time, groups their parts by family and compresses the body family by family,
so neither the whole text nor an encoded copy of it is ever made; a plain answer expands the
gzip body. Meters whose lines are unchanged cost a decompression, not a formatting.
"""

from __future__ import annotations

import logging
import math
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest

from ..amiplus import FieldTable, table
from ..pipeline import Calendar, MeterState, State, local_day, midnight
from ..plumbing import give_back_memory
from .prometheus import (
    HEALTH,
    MetricFamily,
    families_of,
    health_lines,
    measurement_lines,
    period_lines,
)

log = logging.getLogger(__name__)

MAX_AGE = 1.0  # seconds a rendered body is served to further scrapes
GZIP_LEVEL = 5  # of the body; about 20 times smaller than the text
METER_LEVEL = 6  # of each meter's kept lines, 3 KB to 0.4 KB with the dictionary
GZIP = 31  # zlib's wbits for a gzip stream (16 + a 32 KB window)


def served_while_rendering(took: float) -> float:
    """Seconds old the last body may be to answer a scrape while a newer one is rendered: two
    renders' worth (the one running and the one that made the body) after `MAX_AGE`."""
    return 2 * (MAX_AGE + took)


@dataclass(frozen=True, slots=True)
class Layout:
    """The per-meter families of one field table in body order, their headers, the
    dictionary each meter's lines are compressed with (the text every meter repeats), and
    how a meter's text begins: where the part of each family ends in it."""

    families: tuple[MetricFamily, ...]
    headers: tuple[bytes, ...]
    dictionary: bytes
    ends: struct.Struct


def layout_of(fields: FieldTable) -> Layout:
    """The layout of a field table: measurements, calendar periods, then the health group."""
    known = families_of(fields)
    ordered = (*known.measurements, *known.calendar, *HEALTH)
    common = ('",period="day",start="', '",period="week",start="', '",period="month",start="')
    names = "".join(f'{family.name}{{meter_id="' for family in reversed(ordered))
    return Layout(
        ordered,
        tuple(family.header().encode() for family in ordered),
        (",".join(common) + '",tariff="",phase="L"} 0.0\n' + names).encode(),
        struct.Struct(f"<{len(ordered)}I"),
    )


def layout() -> Layout:
    """The layout of the current field table (worked out once per table)."""
    return table().derived(layout_of)


@dataclass(slots=True)
class Kept:
    """A meter's samples as the last render left them: what they were made from (the state's
    revision and staleness, the calendar's revision) and the text, compressed, behind where the
    part of each family of the layout ends in it (`Layout.ends`)."""

    revision: int
    stale: bool
    calendar: int
    data: bytes


class Exposition:
    """The `/metrics` body: fresh at most `MAX_AGE` old, rendered one at a time (by a scrape,
    or in the background for the scrapes to come). `periods`: whether the meters' calendar
    periods are in it (`prometheus: periods:`); `clock` gives the samples' time, `timer` a
    body's age."""

    def __init__(
        self,
        state: State,
        collectors: CollectorRegistry,
        clock: Callable[[], float] = time.time,
        calendar: Calendar | None = None,
        *,
        periods: bool = True,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.collectors = collectors
        self.clock = clock
        self.calendar = calendar
        self.periods = periods
        self.timer = timer  # measures a body's age
        self._kept: dict[str, Kept] = {}  # by meter
        self._basis: tuple[object, ...] = ()  # what every meter's periods were rendered for
        self._lock = threading.Lock()  # held while a body renders
        self._last: tuple[float, bytes] = (-math.inf, b"")  # when rendering began, the body
        self._took = 0.0  # seconds the last render took

    def reconfigure(self, *, periods: bool) -> None:
        """Take a configuration (`prometheus: periods:`); the next scrape renders anew."""
        with self._lock:
            self.periods = periods
            self._last = (-math.inf, b"")

    def body(self, *, compressed: bool = False) -> bytes:
        """The exposition (gzip-compressed if asked), rendered again when older than a second."""
        gzipped = self._current()
        return gzipped if compressed else zlib.decompress(gzipped, GZIP)

    def _current(self) -> bytes:
        """The gzip body: the last one while it is fresh, and while it is not too old (a new
        one then rendered in the background); otherwise a new one, rendered here or by the
        scrape this one waits for."""
        rendered_at, gzipped = self._last
        age = self.timer() - rendered_at
        if age < MAX_AGE:
            return gzipped
        if age < served_while_rendering(self._took):
            if self._lock.acquire(blocking=False):  # else a render runs already
                threading.Thread(
                    target=self._render_in_background, args=(rendered_at,), name="metrics"
                ).start()
            return gzipped
        with self._lock:
            if self._last[0] != rendered_at:  # rendered while this scrape waited
                return self._last[1]
            return self._render()

    def _render_in_background(self, rendered_at: float) -> None:
        """A render for the scrapes to come, in its own thread, which holds the lock."""
        try:
            if self._last[0] == rendered_at:  # not rendered since the scrape looked
                self._render()
        except Exception:
            log.exception("/metrics not rendered; the next scrape tries again")
        finally:
            self._lock.release()

    def _render(self) -> bytes:
        """A new body, kept with when it began and how long it took (the lock held)."""
        begun = self.timer()
        gzipped = self._render_gzipped()
        self._last, self._took = (begun, gzipped), self.timer() - begun
        give_back_memory()  # the render's transient text, for the next one
        return gzipped

    def _render_gzipped(self) -> bytes:
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP)
        out = [compressor.compress(chunk) for chunk in self._chunks()]
        out.append(compressor.compress(generate_latest(self.collectors)))
        out.append(compressor.flush())
        return b"".join(out)

    def render(self) -> str:
        """The per-meter families (the registry's follow them in `body`) as text."""
        with self._lock:
            return b"".join(self._chunks()).decode()

    def _chunks(self) -> Iterator[bytes]:
        """The per-meter families, a family at a time; a meter's lines are formatted again
        only when it changed."""
        now = self.clock()
        shape = layout()
        calendar = self.calendar if self.periods else None
        revisions: dict[str, int] = {}
        priced = False
        basis: tuple[object, ...] = (shape, self.periods)
        if calendar is not None:
            revisions, priced = calendar.revisions(), calendar.priced
            basis += (midnight(local_day(now, calendar.zone), calendar.zone), priced)
        if basis != self._basis:  # a new day, prices or table: every meter's lines again
            self._kept.clear()
            self._basis = basis
        held = {
            key: (kept.revision, kept.stale)
            for key, kept in self._kept.items()
            if kept.calendar == revisions.get(key, -1)
        }
        scraped = self.state.scrape(now, held)
        kept = self._kept
        if len(kept) > len(scraped):  # meters removed by a reload
            for key in set(kept) - {meter.key for meter in scraped}:
                del kept[key]
        # The changed meters' lines first, then the parts of this body: the parts (briefly the
        # whole text) then lie after everything kept in memory, and go back to the system whole.
        for meter in scraped:
            copy = self.state.copy(meter.key) if meter.changed else None
            if copy is not None:
                revision = revisions.get(meter.key, -1)
                kept[meter.key] = self._format(
                    copy, meter.stale, revision, now=now, priced=priced, shape=shape
                )
        parts: list[list[bytes]] = [[] for _ in shape.families]
        for meter in scraped:
            each = kept.get(meter.key)
            if each is None:  # removed by a reload while this render ran
                continue
            text = zlib.decompressobj(zdict=shape.dictionary).decompress(each.data)
            start = shape.ends.size
            for index, end in enumerate(shape.ends.unpack_from(text)):
                if end > start:
                    parts[index].append(text[start:end])
                    start = end
        for header, lines in zip(shape.headers, parts, strict=True):
            if lines:
                yield header + b"".join(lines)
                lines.clear()

    def _format(
        self,
        meter: MeterState,
        stale: bool,
        revision: int,
        *,
        now: float,
        priced: bool,
        shape: Layout,
    ) -> Kept:
        """A changed meter's samples, compressed, with the end of each family's part."""
        lines = health_lines(meter, stale)
        if not stale:
            lines.update(measurement_lines(meter))
            calendar = self.calendar if self.periods else None
            if calendar is not None:
                figures = calendar.figures(meter.key, now)
                active = calendar.active_tariff(meter.key)
                lines.update(period_lines(meter.meter_id, figures, active, priced))
        ends = []
        pieces = []
        end = shape.ends.size
        for family in shape.families:
            part = lines.get(family.name)
            if part:
                data = part.encode()
                pieces.append(data)
                end += len(data)
            ends.append(end)
        compressor = zlib.compressobj(METER_LEVEL, zdict=shape.dictionary)
        text = shape.ends.pack(*ends) + b"".join(pieces)
        return Kept(meter.revision, stale, revision, compressor.compress(text) + compressor.flush())
