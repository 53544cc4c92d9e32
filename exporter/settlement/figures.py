"""The one table of settlement figures: what a prosumer's ledger shows, described once.

As the field table does for readings, each row says how every output shows one figure: its key
(the attribute it is read from, its JSON key in `/api/status` and in the MQTT settlement
message, its Home Assistant entity), its labels for the status page, its unit, the schemes it
means something in, its Prometheus family, its InfluxDB field and Home Assistant's classes
(docs/contracts.md sections 4 to 8). A figure of the ledger **now** is an attribute of a
`LedgerView`; a figure of a **calendar period** an attribute of that period's `Totals`. A new
figure is one row here; every output follows, because each reads the table through `figure_table()`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..amiplus import JOULES_PER_KWH, HomeAssistant, Label, Metric, MetricType
from ..config import Scheme
from ..wmbus import Derives, TableViews

NET_BILLING = frozenset({Scheme.NET_BILLING})
NET_METERING = frozenset({Scheme.NET_METERING})
BOTH = NET_BILLING | NET_METERING


class Scope(enum.Enum):
    """What a figure is of, and so what it is read from."""

    NOW = "the ledger now"  # an attribute of `LedgerView`
    PERIOD = "a calendar period"  # an attribute of a period's `Totals`


@dataclass(frozen=True, slots=True)
class SettlementFigure:
    """One settlement figure. `unit` is `kWh`, `PLN` or `PLN/kWh`; a Prometheus family's
    `scale` turns it into the family's unit (kWh into joules). On the page a period's figure
    with `column` is a column of the periods' table and `detail` names a figure shown under it;
    a `warning` is shown only when it is not 0."""

    key: str
    scope: Scope
    label: Label
    unit: str
    schemes: frozenset[Scheme] = BOTH
    metric: Metric | None = None
    influx: str | None = None
    home_assistant: HomeAssistant | None = None
    column: bool = False
    detail: str = ""
    warning: bool = False

    def read(self, source: Any) -> float | None:
        """The figure's value in `source` (a `LedgerView` or a `Totals`, after `scope`)."""
        value: float | None = getattr(source, self.key)
        return value


PER_PERIOD = (
    "in a calendar period of the configured zone (period: day, week or month; start: its first "
    "local day), counted hour by hour as each hour ends"
)


def _now(
    key: str,
    label: Label,
    unit: str,
    schemes: frozenset[Scheme],
    *,
    metric: tuple[str, str] | None = None,
    home_assistant: HomeAssistant | None = None,
    counter: bool = False,
    warning: bool = False,
) -> SettlementFigure:
    """A figure of the ledger now: with a family, a gauge (or counter) per meter and an
    InfluxDB field of its key; a Home Assistant sensor when given; on the page always."""
    if metric is None:
        return SettlementFigure(key, Scope.NOW, label, unit, schemes, warning=warning)
    name, help_text = metric
    kind = MetricType.COUNTER if counter else MetricType.GAUGE
    family = Metric(name, kind, help_text, JOULES_PER_KWH if unit == "kWh" else 1.0)
    return SettlementFigure(
        key, Scope.NOW, label, unit, schemes, family, key, home_assistant, warning=warning
    )


def _period(
    key: str,
    label: Label,
    unit: str,
    schemes: frozenset[Scheme],
    *,
    metric: tuple[str, str] | None = None,
    detail: str = "",
) -> SettlementFigure:
    """A figure of a calendar period: a gauge per meter and period when given, a column of the
    page's table when it has a family, a detail under a column otherwise."""
    family = None
    if metric is not None:
        name, help_text = metric
        scale = JOULES_PER_KWH if unit == "kWh" else 1.0
        family = Metric(name, MetricType.GAUGE, f"{help_text} {PER_PERIOD}.", scale)
    return SettlementFigure(
        key, Scope.PERIOD, label, unit, schemes, family, column=family is not None, detail=detail
    )


MONEY = HomeAssistant("monetary", "total", "PLN", 2)
STORED = HomeAssistant("energy", "total", "kWh", 3)
PRICE = HomeAssistant(None, "measurement", "PLN/kWh", 3)
#: Totals that only grow: what Home Assistant's Energy dashboard takes as grid consumption and
#: return, in steps of whole hours.
SETTLED = HomeAssistant("energy", "total_increasing", "kWh", 3)

#: Every figure, in the order of the page, the messages and the exposition.
FIGURES: tuple[SettlementFigure, ...] = (
    _now(
        "deposit_pln",
        Label("Deposit", "Depozyt prosumencki"),
        "PLN",
        NET_BILLING,
        metric=(
            "amiplus_settlement_deposit_pln",
            "The net-billing deposit: what can pay for energy now (credits of months that are "
            "over, within their 12 months), PLN.",
        ),
        home_assistant=MONEY,
    ),
    _now(
        "deposit_expiring_pln",
        Label("Deposit expiring within 30 days", "Depozyt wygasający w ciągu 30 dni"),
        "PLN",
        NET_BILLING,
        metric=(
            "amiplus_settlement_deposit_expiring_pln",
            "Of the deposit, what expires within 30 days, PLN.",
        ),
        home_assistant=MONEY,
    ),
    _now(
        "deposit_waiting_pln",
        Label(
            "Credited this month (pays from the next)", "Zasilenie z tego miesiąca (od następnego)"
        ),
        "PLN",
        NET_BILLING,
        metric=(
            "amiplus_settlement_deposit_waiting_pln",
            "Deposit credits of months not over yet: they can pay from the next month, PLN.",
        ),
        home_assistant=MONEY,
    ),
    _now(
        "bank_kwh",
        Label("Energy to take back", "Energia do odebrania"),
        "kWh",
        NET_METERING,
        metric=(
            "amiplus_settlement_bank_joules",
            "The net-metering bank: energy fed in that can still be taken back.",
        ),
        home_assistant=STORED,
    ),
    _now(
        "bank_expiring_kwh",
        Label("Energy expiring within 30 days", "Energia wygasająca w ciągu 30 dni"),
        "kWh",
        NET_METERING,
        metric=(
            "amiplus_settlement_bank_expiring_joules",
            "Of the net-metering bank, what expires within 30 days.",
        ),
        home_assistant=STORED,
    ),
    _now(
        "export_price_pln_per_kwh",
        Label("Export price this hour", "Cena oddanej energii w tej godzinie"),
        "PLN/kWh",
        NET_BILLING,
        metric=(
            "amiplus_settlement_export_price_pln_per_kwh",
            "What a kWh of net export earns in the hour counting now (RCE with negative prices "
            "as 0, RCEm or the fixed price), PLN per kWh; absent while not known.",
        ),
        home_assistant=PRICE,
    ),
    _now(
        "market_price_pln_per_kwh",
        Label("Market price (RCE) this hour", "Cena rynkowa (RCE) w tej godzinie"),
        "PLN/kWh",
        BOTH,
        metric=(
            "amiplus_settlement_market_price_pln_per_kwh",
            "The market price (RCE, the mean of its quarter-hours, negatives kept) of the hour "
            "counting now, PLN per kWh; absent while not known.",
        ),
        home_assistant=PRICE,
    ),
    _now(
        "hour_balanced_imported_kwh",
        Label("This hour so far: net import", "Ta godzina: pobór po bilansowaniu"),
        "kWh",
        BOTH,
    ),
    _now(
        "hour_balanced_exported_kwh",
        Label("This hour so far: net export", "Ta godzina: oddanie po bilansowaniu"),
        "kWh",
        BOTH,
    ),
    _now(
        "balanced_imported_total_kwh",
        Label("Balanced import, all hours", "Pobór po bilansowaniu, łącznie"),
        "kWh",
        BOTH,
        metric=(
            "amiplus_settlement_balanced_energy_imported_joules",
            "Net import of every hour settled since the ledger began (per hour: import minus "
            "export when positive); grows as each hour ends.",
        ),
        home_assistant=SETTLED,
        counter=True,
    ),
    _now(
        "balanced_exported_total_kwh",
        Label("Balanced export, all hours", "Oddanie po bilansowaniu, łącznie"),
        "kWh",
        BOTH,
        metric=(
            "amiplus_settlement_balanced_energy_exported_joules",
            "Net export of every hour settled since the ledger began (per hour: export minus "
            "import when positive); grows as each hour ends.",
        ),
        home_assistant=SETTLED,
        counter=True,
    ),
    _now(
        "unpriced_export_kwh",
        Label("Export waiting for its price", "Oddanie czekające na cenę"),
        "kWh",
        NET_BILLING,
        metric=(
            "amiplus_settlement_unpriced_export_joules",
            "Net export of settled hours whose price is not known yet (never valued at 0).",
        ),
        warning=True,
    ),
    _now(
        "unpriced_import_kwh",
        Label("Import waiting for its price", "Pobór czekający na cenę"),
        "kWh",
        NET_BILLING,
        metric=(
            "amiplus_settlement_unpriced_import_joules",
            "Net import of settled hours whose market price is not known yet (a dynamic tariff).",
        ),
        warning=True,
    ),
    _period(
        "balanced_imported_kwh",
        Label("Net import", "Pobór po bilansowaniu"),
        "kWh",
        BOTH,
        metric=(
            "amiplus_settlement_balanced_energy_imported_period_joules",
            "Net import (per hour: import minus export when positive)",
        ),
        detail="imported_kwh",
    ),
    _period(
        "balanced_exported_kwh",
        Label("Net export", "Oddanie po bilansowaniu"),
        "kWh",
        BOTH,
        metric=(
            "amiplus_settlement_balanced_energy_exported_period_joules",
            "Net export (per hour: export minus import when positive)",
        ),
        detail="exported_kwh",
    ),
    _period(
        "deposit_credit_pln",
        Label("Into the deposit", "Na depozyt"),
        "PLN",
        NET_BILLING,
        metric=(
            "amiplus_settlement_deposit_credit_period_pln",
            "Value of net export times the coefficient, credited to the deposit, PLN,",
        ),
        detail="export_value_pln",
    ),
    _period(
        "from_deposit_pln",
        Label("Paid from the deposit", "Zapłacono z depozytu"),
        "PLN",
        NET_BILLING,
        metric=(
            "amiplus_settlement_deposit_paid_period_pln",
            "The energy part of net import paid from the deposit, PLN,",
        ),
        detail="to_pay_pln",
    ),
    _period(
        "bank_credit_kwh",
        Label("Into the bank", "Do odebrania"),
        "kWh",
        NET_METERING,
        metric=(
            "amiplus_settlement_bank_credit_period_joules",
            "Net export times the ratio, into the net-metering bank,",
        ),
    ),
    _period(
        "from_bank_kwh",
        Label("Taken from the bank", "Odebrano"),
        "kWh",
        NET_METERING,
        metric=(
            "amiplus_settlement_bank_taken_period_joules",
            "Net import covered by the net-metering bank,",
        ),
        detail="billed_import_kwh",
    ),
    _period("imported_kwh", Label("meter", "licznik"), "kWh", BOTH),
    _period("exported_kwh", Label("meter", "licznik"), "kWh", BOTH),
    _period("export_value_pln", Label("worth", "wartość"), "PLN", NET_BILLING),
    _period("to_pay_pln", Label("to pay", "do zapłaty"), "PLN", NET_BILLING),
    _period("billed_import_kwh", Label("billed", "do zapłaty"), "kWh", NET_METERING),
)


@dataclass(frozen=True, eq=False)
class FigureTable(Derives):
    """The figure table as its readers need it: the rows in order, by scope, and views of them
    that a reader works out once (`derived`), so that no reader copies the table."""

    rows: tuple[SettlementFigure, ...]
    now: tuple[SettlementFigure, ...] = field(init=False)
    period: tuple[SettlementFigure, ...] = field(init=False)

    def __post_init__(self) -> None:
        views = {
            "now": tuple(row for row in self.rows if row.scope is Scope.NOW),
            "period": tuple(row for row in self.rows if row.scope is Scope.PERIOD),
        }
        for name, view in views.items():
            object.__setattr__(self, name, view)


_TABLES = TableViews("settlement figure views", FigureTable)


def figure_table() -> FigureTable:
    """The one way to read the figure table (tests may swap `FIGURES` and `clear_caches()`)."""
    return _TABLES.of(FIGURES)
