"""Alert delivery delay: prints figures, asserts nothing.

    .venv/bin/python tests/bench/bench_alerts.py [--time-scale 60] [--runs 3]

A meter's L1 voltage steps from 231 V to 258 V and its import from 2 kW to 16 kW (contracted:
14 kW), after a full averaging window at the normal values, then steps back. Figures: seconds
from the first telegram over the limits to the webhook receiving AmiplusOvervoltage and
AmiplusPowerAboveContracted firing, and from the first telegram back under them to the
resolved notifications, through the exporter, Prometheus (deploy/prometheus/rules) and
Alertmanager (deploy/alertmanager/alertmanager.yml) as tests/test_alerts.py runs them.

`--time-scale 60` is the test's clock (the rules' minutes pass as seconds, 1-second scrapes
and evaluations, Alertmanager's group_wait and group_interval 1 s). `--time-scale 1` runs the
shipped rules and intervals unchanged: about 30 minutes a run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.alerting import deliver, pipeline  # noqa: E402
from tests.bench.provenance import source_state  # noqa: E402

WINDOW = 600  # seconds: the 10-minute average of the overvoltage rule


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--time-scale", type=float, default=60)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {' '.join(sys.argv)}")
    print(source_state())
    timeout = 3600 / args.time_scale + 600
    for run in range(1, args.runs + 1):
        with (
            tempfile.TemporaryDirectory(prefix="bench-alerts-") as folder,
            pipeline(Path(folder), args.time_scale) as (radio, webhook, prometheus),
        ):
            delivery = deliver(
                radio, webhook, prometheus, settle=WINDOW / args.time_scale, timeout=timeout
            )
        for name, (firing, resolved) in sorted(delivery.delays().items()):
            print(f"  run {run}: {name:28} firing {firing:7.1f} s   resolved {resolved:7.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
