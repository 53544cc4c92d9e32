"""The prosumer settlement in Prometheus (docs/contracts.md, sections 4 and 8): a collector of
the exporter's registry whose families come from the figure table (`settlement/figures.py`).

Per settled meter, every figure of its scheme that has a family: the ledger now (`meter_id`)
and each kept calendar period (`meter_id`, `period`, `start`, as the calendar's families), with
`amiplus_settlement_period_partial` for the partial ones. A figure not known (the hour's price
before it is published) has no sample. Meters without `settlement:` cost nothing: without a
settled meter the collector yields no family.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..amiplus import MetricType
from ..pipeline import Settlements, State
from ..settlement import FigureTable, LedgerView, SettlementFigure, figure_table

METER = ["meter_id"]
PERIOD = ["meter_id", "period", "start"]
PARTIAL = (
    "amiplus_settlement_period_partial",
    "1 when a calendar period's settlement is partial: an hour of it was partial (the meter "
    "was not heard across its start or end) or missing (absent when complete).",
)


@dataclass(frozen=True, slots=True)
class Families:
    """The figures of one table that have a Prometheus family: of the ledger now, of periods."""

    now: tuple[SettlementFigure, ...]
    period: tuple[SettlementFigure, ...]


def families_of(figures: FigureTable) -> Families:
    return Families(
        tuple(row for row in figures.now if row.metric is not None),
        tuple(row for row in figures.period if row.metric is not None),
    )


def _family(row: SettlementFigure, labels: list[str]) -> GaugeMetricFamily | CounterMetricFamily:
    metric = row.metric
    assert metric is not None
    if metric.type is MetricType.COUNTER:
        return CounterMetricFamily(metric.name, metric.help, labels=labels)
    return GaugeMetricFamily(metric.name, metric.help, labels=labels)


class SettlementCollector(Collector):
    """The settled meters' figures at scrape time."""

    def __init__(
        self, settlements: Settlements, state: State, clock: Callable[[], float] = time.time
    ) -> None:
        self.settlements = settlements
        self.state = state
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        keys = self.settlements.keys()
        if not keys:
            return
        now = self.clock()
        known = figure_table().derived(families_of)
        now_families = {row.key: _family(row, METER) for row in known.now}
        period_families = {row.key: _family(row, PERIOD) for row in known.period}
        partial = GaugeMetricFamily(*PARTIAL, labels=PERIOD)
        meter_ids = self.state.meter_ids(keys)
        for key in keys:
            view = self.settlements.view(key, now)
            if view is None:
                continue
            meter_id = meter_ids.get(key, key)
            for row in known.now:
                value = row.read(view) if view.scheme in row.schemes else None
                if value is not None:
                    now_families[row.key].add_metric([meter_id], _scaled(row, value))
            self._periods(view, meter_id, known, period_families, partial)
        for family in (*now_families.values(), *period_families.values(), partial):
            if family.samples:
                yield family

    @staticmethod
    def _periods(
        view: LedgerView,
        meter_id: str,
        known: Families,
        families: dict[str, GaugeMetricFamily | CounterMetricFamily],
        partial: GaugeMetricFamily,
    ) -> None:
        rows = [row for row in known.period if view.scheme in row.schemes]
        for period in view.periods:
            labels = [meter_id, period.period.kind, period.start.isoformat()]
            for row in rows:
                value = row.read(period.totals)
                if value is not None:
                    families[row.key].add_metric(labels, _scaled(row, value))
            if period.partial:
                partial.add_metric(labels, 1)


def _scaled(row: SettlementFigure, value: float) -> float:
    """A figure in its family's unit (kWh in joules)."""
    assert row.metric is not None
    return round(value * row.metric.scale, 6)
