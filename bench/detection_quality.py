"""Detection quality of the anomaly core on the simulator's injected anomalies.

Runs simulated traffic with injected anomalies (store outages, pricing errors,
bot traffic, conversion collapses) through ``operators.anomalies.domain.Anomalies`` in-process (no
Kafka, no Bytewax: the same functional core the flow runs, one shard, the
watermark moved every window), once per detector, with the bundled config's
``[anomaly]`` settings (``--window`` overrides the window), and compares the alerts
with the simulator's ground truth. Prints, by anomaly kind:

* precision: alerts on the series that kind disturbs that match an injected
  anomaly of that kind / all alerts on those series;
* recall: injected anomalies with at least one matching alert / injected anomalies;
* delay: windows from the anomaly's start to its first matching alert (median, max).

An alert matches an anomaly when its series is one the ground truth names
(a pricing error: an alert on that SKU's price) and its window overlaps
``[start, end + grace)``; ``grace`` (default 10 windows) credits an alert
raised as the anomaly ends (a store's tills coming back). Also prints
overall precision over every alert and false alarms per simulated day.

Alerts are the ``alerts`` records the stage publishes, as a consumer sees them;
also prints every alert per simulated day (the volume a person gets).

Usage: ``python bench/detection_quality.py [--customers 30000] [--days 14] [--seeds 1 2]``; the demo's
size is ``--customers 2000`` (``channelflow demo``'s default), where only the alert volume is a target;
``--false-alarms`` lists the false alarms by series and kind.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from channelflow.config import load_config  # noqa: E402
from channelflow.simulator import DEFAULT_LOCATIONS, SimulationSettings, simulate  # noqa: E402
from flows.anomaly_wiring import anomaly_settings  # noqa: E402
from operators.anomalies.detectors import DETECTORS  # noqa: E402
from operators.anomalies.domain import Anomalies, AnomalySettings, StoreHours  # noqa: E402
from operators.contract.events import Event, event_of, parse_ts  # noqa: E402
from operators.time.shard import DomainShard  # noqa: E402
from operators.time.stream_items import Progress  # noqa: E402

KINDS = ("store_outage", "bot_traffic", "pricing_error", "conversion_collapse")


@dataclass(frozen=True)
class Alert:
    series: str
    start: int
    end: int
    kind: str


def simulator_store_hours() -> dict[str, StoreHours]:
    """Opening hours of the simulator's stores (what generated the traffic)."""
    return {loc.id: StoreHours(loc.timezone, loc.opens, loc.closes)
            for loc in DEFAULT_LOCATIONS if loc.is_store and loc.opens and loc.closes}


def simulated(seed: int, customers: int, days: float) -> tuple[list[Event], list[dict[str, Any]]]:
    truth: list[dict[str, Any]] = []
    settings = SimulationSettings(seed=seed, customers=customers, days=days, anomalies=True)
    events = [event_of(body) for body in simulate(settings, DEFAULT_LOCATIONS, truth.append)]
    return events, [r for r in truth if r.get("record") == "anomaly"]


def run_core(events: list[Event], settings: AnomalySettings) -> list[Alert]:
    """Feed the events (in event-time order) to one anomaly shard; the watermark follows them."""
    shard = DomainShard(Anomalies(settings), upstreams=1)
    window = settings.window_ms
    alerts = []
    next_progress = -1
    for event in events:
        if event.ts >= next_progress:
            outputs = shard.on_progress(Progress(0, event.ts))
            next_progress = event.ts - event.ts % window + window
        else:
            outputs = []
        outputs += shard.on_event(event)
        for out in outputs:
            v = out.value
            alerts.append(Alert(v["series"], parse_ts(v["window_start"]), parse_ts(v["window_end"]), v["kind"]))
    for out in shard.on_progress(Progress(0, events[-1].ts + window)):
        v = out.value
        alerts.append(Alert(v["series"], parse_ts(v["window_start"]), parse_ts(v["window_end"]), v["kind"]))
    return alerts


def family(kind: str, series: str) -> bool:
    """Is ``series`` one of the series anomalies of ``kind`` disturb?"""
    if kind == "store_outage":
        return series.startswith(("orders:store:", "revenue:store:"))
    if kind == "bot_traffic":
        return series in ("sessions:web", "conversion:web")
    if kind == "conversion_collapse":
        measure, _, channel = series.partition(":")
        return measure in ("checkout_conversion", "orders", "revenue", "conversion") and channel in ("web", "app")
    return series.startswith("price:")


def matches(alert: Alert, anomaly: dict[str, Any], grace_ms: int) -> bool:
    if not (alert.end > anomaly["start"] and alert.start < anomaly["end"] + grace_ms):
        return False
    if anomaly["kind"] == "pricing_error":
        return alert.series == "price:" + anomaly["sku"]
    return alert.series in anomaly["series"]


def evaluate(alerts: list[Alert], anomalies: list[dict[str, Any]], window_ms: int, grace_windows: int) -> dict[str, Any]:
    grace = grace_windows * window_ms
    result: dict[str, Any] = {}
    for kind in KINDS:
        truth = [a for a in anomalies if a["kind"] == kind]
        in_family = [a for a in alerts if family(kind, a.series)]
        true_alerts = [a for a in in_family if any(matches(a, t, grace) for t in truth)]
        delays = []
        for anomaly in truth:
            hits = [a for a in alerts if matches(a, anomaly, grace)]
            if hits:
                first = min(a.start for a in hits)
                delays.append(max(0, (first - anomaly["start"]) // window_ms))
        result[kind] = {
            "anomalies": len(truth),
            "detected": len(delays),
            "alerts": len(in_family),
            "true_alerts": len(true_alerts),
            "delays": delays,
        }
    matched = [a for a in alerts if any(matches(a, t, grace) for t in anomalies)]
    result["all"] = {"alerts": len(alerts), "true_alerts": len(matched)}
    false = [a for a in alerts if not any(matches(a, t, grace) for t in anomalies)]
    result["false"] = dict(Counter(f"{':'.join(a.series.split(':')[:2])} {a.kind}" for a in false))
    return result


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for result in results:
        for key, value in result.items():
            into = total.setdefault(key, {})
            for k, v in value.items():
                into[k] = into.get(k, [] if isinstance(v, list) else 0) + v
    return total


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def report(name: str, total: dict[str, Any], days: float) -> list[str]:
    rows = []
    for kind in KINDS:
        k = total[kind]
        delays = k["delays"]
        delay = f"{statistics.median(delays):.0f} / {max(delays)}" if delays else "n/a"
        rows.append(f"| {name} | {kind} | {k['anomalies']} | {_ratio(k['true_alerts'], k['alerts'])} "
                    f"({k['true_alerts']}/{k['alerts']}) | {_ratio(k['detected'], k['anomalies'])} | {delay} |")
    everything = total["all"]
    false_alarms = everything["alerts"] - everything["true_alerts"]
    rows.append(f"| {name} | all alerts | | {_ratio(everything['true_alerts'], everything['alerts'])} "
                f"({everything['true_alerts']}/{everything['alerts']}) | | {everything['alerts'] / days:.1f} alerts/day, "
                f"{false_alarms / days:.1f} false alarms/day |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=30_000)
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--window", type=int, default=None, help="window length in ms (default: the config's)")
    parser.add_argument("--grace", type=int, default=10, help="windows after an anomaly's end still credited")
    parser.add_argument("--false-alarms", action="store_true", help="also print the false alarms by series and kind")
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=list(DETECTORS))
    args = parser.parse_args()

    base = replace(anomaly_settings(load_config(environ={})), store_hours=simulator_store_hours())
    if args.window:
        base = replace(base, window_ms=args.window)
    args.window = base.window_ms
    runs = {name: replace(base, detector=name, threshold=DETECTORS[name]) for name in args.detectors}
    data = []
    started = time.perf_counter()
    for seed in args.seeds:
        data.append(simulated(seed, args.customers, args.days))
    events = sum(len(e) for e, _ in data)
    print(f"{len(args.seeds)} seeds x {args.days:g} days x {args.customers} customers: {events} events, "
          f"{sum(len(t) for _, t in data)} injected anomalies ({sum(len(t) for _, t in data) / (args.days * len(args.seeds)):.1f}/day) (simulated in {time.perf_counter() - started:.0f}s); "
          f"window {args.window // 1000}s, grace {args.grace} windows\n")
    print("| detector | anomaly kind | injected | precision | recall | delay in windows (median / max) |")
    print("|---|---|---:|---:|---:|---:|")
    for name, settings in runs.items():
        results = [evaluate(run_core(events_, settings), truth, args.window, args.grace) for events_, truth in data]
        total = merge(results)
        for row in report(name, total, args.days * len(args.seeds)):
            print(row, flush=True)
        if args.false_alarms:
            print("false alarms by series and kind:", dict(sorted(total["false"].items(), key=lambda kv: -kv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
