"""The status page at `/`: plain HTML from the status data, refreshed every few seconds."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

VOLTAGE_BAND = (207.0, 253.0)  # EN 50160: 230 V +-10 %
REFRESH_SECONDS = 5


def _time(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _number(value: Any, unit: str, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f} {unit}".replace(",", " ")


def _band(volts: float) -> str:
    return "ok" if VOLTAGE_BAND[0] <= volts <= VOLTAGE_BAND[1] else "bad"


def _meter(meter: dict[str, Any]) -> str:
    values = meter["values"]
    imported = values.get("power_imported_w")
    exported = values.get("power_exported_w")
    net = None if imported is None or exported is None else imported - exported
    flow = "-" if net is None else ("importing" if net > 0 else "exporting" if net < 0 else "idle")
    voltages = "".join(
        f'<li>{escape(phase)}: <b class="{_band(v)}">{v:.1f} V</b></li>'
        for phase, v in sorted(values.get("voltage_v", {}).items())
    )
    tariffs = "".join(
        f"<li>T{escape(t)}: {_number(v, 'kWh', 3)}</li>"
        for t, v in sorted(values.get("energy_imported_tariff_kwh", {}).items())
    )
    failure = meter.get("last_failure")
    problem = (
        f'<p class="bad">{escape(failure["message"])}<br>'
        f"<i>{escape(failure['likely_cause'])}</i></p>"
        if failure
        else ""
    )
    skew = meter.get("clock_skew_seconds")
    return f"""
<section class="meter">
  <h2>{escape(meter["name"])} <small>{escape(meter["meter_id"])} {escape(meter["manufacturer"])}
  {'<span class="bad">silent</span>' if meter["stale"] else ""}</small></h2>
  <p class="flow">{flow}: import {_number(imported, "W")}, export {_number(exported, "W")},
  net {_number(net, "W")}</p>
  <div class="columns">
    <div><h3>Voltage</h3><ul>{voltages or "<li>-</li>"}</ul></div>
    <div><h3>Registers</h3><ul>
      <li>imported: {_number(values.get("energy_imported_kwh"), "kWh", 3)}</li>
      <li>exported: {_number(values.get("energy_exported_kwh"), "kWh", 3)}</li>{tariffs}
      <li>maximum demand: {_number(values.get("power_imported_max_w"), "W")}</li></ul></div>
    <div><h3>Telegrams</h3><ul>
      <li>{meter["telegrams"]} received, last {_time(meter["last_telegram_at"])}</li>
      <li>meter clock: {escape(meter.get("meter_time", "-"))}
      {"" if skew is None else f"({skew:+.0f} s against receive time)"}</li>
      <li>RSSI: {_number(meter["rssi_dbm"], "dBm")}</li>
      <li>decrypt failures: {meter["decrypt_failures"]}</li></ul></div>
  </div>{problem}
</section>"""


def _receiver_row(receiver: dict[str, Any]) -> str:
    state = "up" if receiver["up"] else f"down: {receiver['down_reason']}"
    errors = ", ".join(f"{k} {v}" for k, v in receiver["errors"].items()) or "-"
    css = "ok" if receiver["up"] else "bad"
    return (
        f"<tr><td>{escape(receiver['name'])}</td><td>{escape(receiver['description'])}</td>"
        f'<td class="{css}">{escape(state)}</td><td>{receiver["frames"]}</td>'
        f"<td>{escape(errors)}</td><td>{receiver['reconnects']}</td>"
        f"<td>{_time(receiver['last_frame_at'])}</td></tr>"
    )


def _heard_row(meter: dict[str, Any]) -> str:
    add = "configured" if meter["configured"] else f"<pre>{escape(meter['yaml'])}</pre>"
    return (
        f"<tr><td>{escape(meter['meter_id'])}</td><td>{escape(meter['manufacturer'])}</td>"
        f"<td>{escape(meter['device_type'])}</td><td>{_number(meter['rssi_dbm'], 'dBm')}</td>"
        f"<td>{meter['count']}</td><td>{add}</td></tr>"
    )


def render(status: dict[str, Any]) -> str:
    """The whole page."""
    meters = "".join(_meter(m) for m in status["meters"]) or "<p>No meter configured.</p>"
    receivers = "".join(_receiver_row(r) for r in status["receivers"])
    heard = "".join(_heard_row(h) for h in status["heard"][:50])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>amiplus-exporter</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1rem; color: #111; background: #fff; }}
.columns {{ display: flex; flex-wrap: wrap; gap: 2rem; }}
.meter {{ border: 1px solid #ccc; border-radius: 6px; padding: 0 1rem; margin-bottom: 1rem; }}
.ok {{ color: #05620f; }} .bad {{ color: #a40000; }}
table {{ border-collapse: collapse; }} td, th {{ border-bottom: 1px solid #ddd; padding: 4px 8px; }}
pre {{ margin: 0; }}
</style></head><body>
<h1>amiplus-exporter</h1>
{meters}
<h2>Receivers</h2>
<table><tr><th>name</th><th>source</th><th>state</th><th>frames</th><th>errors</th>
<th>reconnects</th><th>last frame</th></tr>{receivers}</table>
<h2>Meters heard on the air</h2>
<p>{status["unconfigured_telegrams"]} telegrams from meters that are not configured.</p>
<table><tr><th>ID</th><th>maker</th><th>type</th><th>RSSI</th><th>telegrams</th><th>add it</th></tr>
{heard}</table>
<p><a href="/metrics">/metrics</a> · <a href="/api/status">/api/status</a></p>
</body></html>
"""
