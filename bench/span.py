"""Does a long event-time span cost more per event than a dense one?

The same simulator, the same number of events, different numbers of customers:
with fewer customers the same events spread over more days of event time (200,000
events are about two weeks at 20,000 customers and over a year at 500). Every
domain stage runs in-process (:class:`flows.local.LocalFlow`: the real stages,
routing, signals and watermark, no Kafka and no Bytewax), the watermark held
``time.allowed_lateness`` behind, as the flow holds it. What grows with event
time rather than with events (KPI windows, timers, daily churn ticks, sessions
that end) shows here as CPU per event that grows with the span.

Each run is a fresh process; CPU per event is the marginal between ``--events / 5``
and ``--events`` (start-up cancels, and so does the simulator's opening burst of
customer records, about two per customer, which must fit in the smaller size: 40,000
events at the default), from the median of
``--repeat`` runs at each size, the densities interleaved so a slow spell of the
machine touches all of them. The densest is the baseline of the ratio column.

    .venv/bin/python bench/span.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(customers: int, events: int) -> dict[str, float]:
    """One run: ``events`` simulated events of ``customers`` customers through every stage."""
    sys.path.insert(0, str(ROOT))
    from channelflow.config import load_config, load_promotions
    from channelflow.runner import tune_gc
    from channelflow.simulator import DEFAULT_LOCATIONS, SimulationSettings, simulate
    from flows.local import LocalFlow
    from flows.main import domain_specs
    from operators.contract.events import event_of

    config = load_config()
    settings = SimulationSettings(seed=11, customers=customers, days=None)
    log = [event_of(body) for body in islice(simulate(settings, DEFAULT_LOCATIONS), events)]
    flow = LocalFlow(domain_specs(config, load_promotions()), config.flow.shards)
    tune_gc()  # as `channelflow run` does before its flow starts
    before = os.times()
    flow.run(log, lateness_ms=config.time.allowed_lateness_ms)
    after = os.times()
    return {
        "cpu": after.user - before.user + after.system - before.system,
        "days": (log[-1].ts - log[0].ts) / 86_400_000,
        "outputs": len(flow.outputs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", default="20000,2000,500", help="comma-separated; the first is the baseline")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, type=int, metavar=("CUSTOMERS", "EVENTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    densities = [int(c) for c in args.customers.split(",")]
    sizes = (args.events // 5, args.events)
    results: dict[tuple[int, int], list[dict[str, float]]] = {}
    started = time.monotonic()
    for _ in range(args.repeat):
        for size in sizes:
            for customers in densities:
                out = subprocess.run([sys.executable, __file__, "--child", str(customers), str(size)],
                                     check=True, capture_output=True, text=True).stdout  # fmt: skip
                results.setdefault((customers, size), []).append(json.loads(out.strip().splitlines()[-1]))

    def median(customers: int, size: int, field: str) -> float:
        return statistics.median(r[field] for r in results[customers, size])

    small, large = sizes
    marginal = {c: (median(c, large, "cpu") - median(c, small, "cpu")) / (large - small) for c in densities}
    base = marginal[densities[0]]
    print(f"every domain stage in-process; CPU per event marginal between {small:,} and {large:,} events, "
          f"median of {args.repeat} runs each ({time.monotonic() - started:.0f} s in all)\n")
    print(f"| customers | event-time span of {large:,} events (days) | events per day | CPU µs per event "
          "(marginal) | against the densest | outputs |")
    print("|---:|---:|---:|---:|---:|---:|")
    for c in densities:
        days = median(c, large, "days")
        print(f"| {c:,} | {days:.0f} | {large / days:,.0f} | {marginal[c] * 1e6:.1f} | {marginal[c] / base:.2f} | "
              f"{median(c, large, 'outputs'):,.0f} |")
    print("\nCPU seconds of each run:")
    for c in densities:
        print(f"- {c:,} customers: " + "; ".join(
            f"{size:,}: " + ", ".join(f"{r['cpu']:.2f}" for r in results[c, size]) for size in sizes))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
