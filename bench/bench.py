"""Throughput of the real flow against a Bytewax Kafka decode-and-count baseline.

Both read the same simulated events from the same embedded broker, in the same
run, each in a fresh child process (so each has its own peak RSS), at two log
sizes (``--events`` and a fifth of it): the steady-state rate is the marginal
rate between the two, so start-up (imports, connecting, building the flow)
cancels out; CPU time per event is marginal too. Each measurement runs
``--repeat`` times (3), interleaved with the others, and the median is used:
the floor's marginal time is a fraction of a second, the size of start-up's
spread between runs.

* baseline: the engine's floor for one stateful pass, Bytewax ``KafkaSource`` ->
  ``orjson.loads`` -> key -> ``stateful_map`` counter;
* channelflow: the real flow (validation, dead letters, dedupe, watermark,
  every domain) writing its outputs back to Kafka.

``--traffic inventory`` keeps only the events that move stock (sales,
returns, orders, receipts, counts, transfers). The script also folds the
stock events through one inventory shard in-process and reports its pickled
state bytes per SKU-location (what a restore rebuilds).

Usage: ``python bench/bench.py --events 200000 [--traffic inventory] [--processes 2]``.
``--processes 2`` also runs the flow as a Bytewax cluster of two processes
(``channelflow run -i/-a``) on the same topics and reports it against one.
Prints a Markdown table.

``--promotions`` instead runs every domain stage in-process (``LocalFlow``, no
Kafka) over ``--events`` simulated events twice, with and without the
promotions stage, and reports promotion decisions per second and the
promotions stage's share of flow time, ``(t_all - t_without) / t_all``.

``--state-days 120`` runs every domain stage in-process over 120 simulated days
of ``--customers`` and prints each stage's pickled state (domains and timers,
the state a restore rebuilds) per account or card with a profile.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from channelflow.broker import EmbeddedBroker  # noqa: E402
from channelflow.config import load_config  # noqa: E402
from channelflow.kafka_io import create_topics, event_records, produce  # noqa: E402


def _baseline(brokers: str, topics: list[str]) -> int:
    """The engine's floor for one stateful pass: KafkaSource -> orjson -> key -> a counter per key."""
    from datetime import timedelta

    import bytewax.operators as op
    import orjson
    from bytewax.connectors.kafka import operators as kop
    from bytewax.dataflow import Dataflow
    from bytewax.run import cli_main

    counted = [0]

    def key(msg: object) -> str:
        return str(orjson.loads(msg.value)["event_id"])[-2:]  # type: ignore[attr-defined]

    def count(total: int | None, _item: object) -> tuple[int, int]:
        counted[0] += 1
        total = (total or 0) + 1
        return total, total

    flow = Dataflow("baseline")
    source = kop.input("kafka_in", flow, brokers=[brokers], topics=topics, tail=False)
    counts = op.stateful_map("count", op.key_on("key", source.oks, key), count)
    op.inspect("sink", counts, lambda *_: None)
    config = load_config()
    cli_main(flow, epoch_interval=timedelta(milliseconds=config.flow.snapshot_interval_ms))
    return counted[0]


def _channelflow(process_id: int | None = None, addresses: list[str] | None = None) -> int:
    """The flow as ``channelflow run --until-end`` runs it: Bytewax's runner, epochs of
    ``flow.snapshot_interval`` (recovery off, as configured by the parent); with ``addresses``,
    process ``process_id`` of a cluster (``channelflow run -i/-a``); the events this process read."""
    from datetime import timedelta

    from bytewax.run import cli_main

    from channelflow.pipeline import make_flow
    from channelflow.runner import tune_gc
    from flows import metrics

    config = load_config()
    flow = make_flow(config, tail=False, process_id=process_id, addresses=addresses)
    if os.environ.get("BENCH_GC") != "default":
        tune_gc()  # as `channelflow run` does
    cli_main(flow, process_id=process_id, addresses=addresses,
             epoch_interval=timedelta(milliseconds=config.flow.snapshot_interval_ms))  # fmt: skip
    return int(sum(s.value for s in metrics.EVENTS.collect()[0].samples if s.name.endswith("_total")))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(kind: str, brokers: str, topics: list[str], process_id: int | None, addresses: list[str] | None) -> None:
    """Run one measurement in this process and print it as JSON."""
    started, cpu = time.perf_counter(), _cpu_seconds()
    count = _baseline(brokers, topics) if kind == "baseline" else _channelflow(process_id, addresses)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"kind": kind, "events": count, "seconds": seconds, "cpu": cpu, "rss_mb": rss_mb}))


def measure(kind: str, env: dict[str, str], brokers: str, topics: list[str], processes: int = 1) -> dict[str, float]:
    """One measurement in fresh child processes: ``processes`` > 1 runs the flow as a Bytewax
    cluster on loopback; events and CPU are summed over the processes, wall time and peak RSS
    are the largest."""
    command = [sys.executable, __file__, "--child", kind, "--brokers", brokers, "--topics", ",".join(topics)]
    if processes > 1:
        from channelflow.broker import free_port

        addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
        commands = [[*command, "--process-id", str(i), "--addresses", addresses] for i in range(processes)]
    else:
        commands = [command]
    children = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, text=True) for c in commands]
    results = []
    for proc in children:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{kind} child exited {proc.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return {
        "events": sum(r["events"] for r in results),
        "seconds": max(r["seconds"] for r in results),
        "cpu": sum(r["cpu"] for r in results),
        "rss_mb": max(r["rss_mb"] for r in results),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--traffic", choices=["mixed", "inventory"], default="mixed")
    parser.add_argument("--promotions", action="store_true", help="promotion decisions/s and share of flow time")
    parser.add_argument("--state-days", type=int, metavar="DAYS", help="pickled state per customer after DAYS simulated days")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each measurement; the median is reported (the floor's marginal is a fraction "
                             "of a second, within start-up's spread)")
    parser.add_argument("--processes", type=int, default=1,
                        help="also run the flow as a cluster of this many processes (-i/-a) and compare")
    parser.add_argument("--child", choices=["baseline", "channelflow"], help=argparse.SUPPRESS)
    parser.add_argument("--brokers", help=argparse.SUPPRESS)
    parser.add_argument("--topics", help=argparse.SUPPRESS)
    parser.add_argument("--process-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--addresses", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        addresses = args.addresses.split(";") if args.addresses else None
        child(args.child, args.brokers, args.topics.split(","), args.process_id, addresses)
        return 0
    if args.state_days:
        return state_bench(args.customers, args.state_days)
    if args.promotions:
        return promotions_bench(args.events, args.customers)

    from channelflow.simulator import DEFAULT_LOCATIONS, SimulationSettings, simulate
    from operators.inventory.domain import STOCK_EVENTS

    config = load_config()
    sizes = sorted({args.events // 5, args.events})
    settings = SimulationSettings(seed=11, customers=args.customers, days=None)
    stream = simulate(settings, DEFAULT_LOCATIONS)
    if args.traffic == "inventory":
        stream = (e for e in stream if e["type"] in STOCK_EVENTS)
    events = list(islice(stream, args.events))
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    runs = [("baseline", 1), ("channelflow", 1)] + ([("channelflow", args.processes)] if args.processes > 1 else [])
    with EmbeddedBroker() as broker:
        for size in sizes:
            # Topics of their own per size: the same first events, more of them.
            names = {k: f"{v}-{size}" for k, v in config.kafka.topics.items()}
            create_topics(broker.bootstrap, names.values(), args.partitions)
            produce(broker.bootstrap, event_records(events[:size], names))
            env = dict(os.environ)
            env.update({f"CHANNELFLOW_KAFKA__TOPICS__{k.upper()}": v for k, v in names.items()})
            env.update(
                {
                    "CHANNELFLOW_KAFKA__BROKERS": broker.bootstrap,
                    "CHANNELFLOW_FLOW__RECOVERY_DIR": "none",
                    "CHANNELFLOW_METRICS__PORT": "0",
                    "PYTHONPATH": str(ROOT),
                }
            )
            inputs = [names[k] for k in ("clickstream", "pos", "inventory", "customers")]
            for _ in range(args.repeat):  # interleaved, so a slow spell of the machine touches every kind
                for kind, processes in runs:
                    result = measure(kind, env, broker.bootstrap, inputs, processes)
                    if result["events"] != size:
                        raise SystemExit(f"{kind} on {processes} processes saw {result['events']} events, not {size}")
                    results.setdefault((_run_name(kind, processes), size), []).append(result)
    small, large = sizes[0], sizes[-1]

    def median(kind: str, size: int, field: str) -> float:
        return statistics.median(r[field] for r in results[kind, size])

    def marginal(kind: str, field: str) -> float:
        return (median(kind, large, field) - median(kind, small, field)) / (large - small)

    base_s, real_s = marginal("baseline", "seconds"), marginal("channelflow", "seconds")
    bytes_per_position, positions = inventory_state_bytes(events, config)
    print(f"{args.traffic} simulated events, {args.partitions} partitions per topic, 1 worker; steady-state rates are "
          f"marginal between {small:,} and {large:,} events (startup cancels), from the median of {args.repeat} "
          "runs at each size\n")
    print("| run | events/s (marginal) | CPU µs per event (marginal) | ratio to baseline | "
          f"events/s at {large:,} (whole run) | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = [("baseline", "floor: Kafka -> orjson -> key -> stateful counter"),
            ("channelflow", "channelflow flow, all stages")]  # fmt: skip
    if args.processes > 1:
        rows.append((_run_name("channelflow", args.processes), f"channelflow flow, {args.processes} processes"))
    for name, label in rows:
        seconds = marginal(name, "seconds")
        print(f"| {label} | {1 / seconds:,.0f} | {marginal(name, 'cpu') * 1e6:,.0f} | {base_s / seconds:.3f} | "
              f"{large / median(name, large, 'seconds'):,.0f} | {max(r['rss_mb'] for r in results[name, large]):.0f} |")
    if args.processes > 1:
        cluster_s = marginal(_run_name("channelflow", args.processes), "seconds")
        print(f"\n{args.processes} processes against 1 (marginal events/s): {real_s / cluster_s:.2f}x "
              f"(CPU summed over the processes; peak RSS of the largest)")
    print(f"\nwall seconds of each run ({args.repeat} per size; the rates above are from their medians):")
    for name, _ in rows:
        runs_text = "; ".join(f"{size:,}: " + ", ".join(f"{r['seconds']:.2f}" for r in results[name, size]) for size in sizes)
        print(f"- {name}: {runs_text}")
    print(f"\ninventory state: {bytes_per_position:.0f} bytes per SKU-location ({positions} SKU-locations)")
    return 0


def _run_name(kind: str, processes: int) -> str:
    return kind if processes == 1 else f"{kind}-{processes}p"


class _Sink:
    """A domain that ignores everything: the promotions stage taken out of the timing."""

    def on_event(self, _item: object, _shard: object) -> list[object]:
        return []

    def on_timer(self, _timer: object, _shard: object) -> list[object]:
        return []

    def on_watermark(self, _shard: object) -> list[object]:
        return []


def promotions_bench(n_events: int, customers: int) -> int:
    """LocalFlow over simulated events with and without the promotion stages (customer shards and the
    gate); print a Markdown table."""
    from channelflow.config import load_promotions
    from channelflow.simulator import DEFAULT_LOCATIONS, SimulationSettings, simulate
    from flows.local import LocalFlow
    from flows.main import domain_specs
    from flows.topology import PROMOTION_GATE, PROMOTIONS
    from operators.contract.events import event_of
    from operators.promotions.domain import OUTCOMES

    config = load_config()
    stream = simulate(SimulationSettings(seed=11, customers=customers, days=None, anomalies=False), DEFAULT_LOCATIONS)
    events = []
    for body in islice(stream, n_events):
        events.append(event_of(body))
    events.sort(key=lambda e: (e.ts, e.event_id))
    days = (events[-1].ts - events[0].ts) / 86_400_000
    not_final = {"cancelled", "waitlist_full", OUTCOMES[2]}  # quiet_hours_delayed is decided again later

    def timed(with_promotions: bool) -> tuple[float, int, int]:
        # Without: promotion stages that drop what reaches them (the upstream stages still emit their inputs).
        stubbed = {PROMOTIONS, PROMOTION_GATE}
        specs = [s if with_promotions or s.name not in stubbed else replace(s, make=lambda _: _Sink(), ordered=False)
                 for s in domain_specs(config, load_promotions())]
        flow = LocalFlow(specs, config.flow.shards)
        started = time.perf_counter()
        flow.run(events, lateness_ms=config.time.allowed_lateness_ms)
        flow.advance(events[-1].ts + 1)
        seconds = time.perf_counter() - started
        decisions = records = 0
        if with_promotions:
            for domain in flow.domains(PROMOTION_GATE):  # the gate takes every decision
                counts = domain.drain().outcomes
                decisions += sum(n for (_, outcome), n in counts.items() if outcome not in not_final)
            records = sum(1 for o in flow.outputs if o.topic == "promotions")
        return seconds, decisions, records

    t_without, _, _ = timed(False)
    t_all, decisions, records = timed(True)
    share = (t_all - t_without) / t_all
    print(f"{n_events} simulated events ({days:.1f} days, {customers} customers), LocalFlow, "
          f"{config.flow.shards} shards, 1 process\n")
    print("| run | seconds | events/s | promotion decisions | decisions/s | promotions records |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| all domain stages | {t_all:.2f} | {n_events / t_all:,.0f} | {decisions} | {decisions / t_all:,.1f} "
          f"| {records} |")
    print(f"| without promotions | {t_without:.2f} | {n_events / t_without:,.0f} | | | |")
    print(f"\npromotions stage: {share:.1%} of flow time; {decisions / max(t_all - t_without, 1e-9):,.0f} "
          "decisions per second of promotions-stage time")
    return 0


def state_bench(customers: int, days: int) -> int:
    """Every domain stage in-process over ``days`` simulated days; pickled state per stage, per customer."""
    import pickle
    from collections import Counter

    from channelflow.config import load_promotions
    from channelflow.simulator import DEFAULT_LOCATIONS, SimulationSettings, simulate
    from flows.customer_wiring import customer_profiles
    from flows.local import LocalFlow
    from flows.main import domain_specs
    from operators.contract.events import event_of
    from operators.customers.book import is_scored

    config = load_config()
    settings = SimulationSettings(seed=11, customers=customers, days=days, anomalies=False)
    events = sorted((event_of(body) for body in simulate(settings, DEFAULT_LOCATIONS)), key=lambda e: (e.ts, e.event_id))
    flow = LocalFlow(domain_specs(config, load_promotions()), config.flow.shards)
    flow.run(events, lateness_ms=config.time.allowed_lateness_ms)
    flow.advance(events[-1].ts + 1)
    scored = Counter(is_scored(key) for key in customer_profiles(flow))[True]
    print(f"{len(events)} simulated events over {days} days, {customers} simulated customers; {scored} accounts and "
          f"cards with a profile; pickled domains and timers of each stage (the state a restore rebuilds)\n")
    print("| stage | bytes | bytes per customer |")
    print("|---|---:|---:|")
    total = 0
    for spec in flow.specs:
        size = len(pickle.dumps([flow.domains(spec.name), [shard.timers for shard in flow.shards[spec.name]]],
                                protocol=pickle.HIGHEST_PROTOCOL))  # fmt: skip
        total += size
        print(f"| {spec.name} | {size:,} | {size / max(scored, 1):,.0f} |")
    print(f"| every stage | {total:,} | {total / max(scored, 1):,.0f} |")
    return 0


def inventory_state_bytes(events: list[dict[str, object]], config: object) -> tuple[float, int]:
    """Fold the stock events through one inventory shard; pickled bytes per SKU-location."""
    from flows.inventory_wiring import inventory_settings
    from operators.contract.events import event_of
    from operators.inventory.domain import STOCK_EVENTS, Inventory
    from operators.time.shard import DomainShard
    from operators.time.stream_items import Progress

    shard = DomainShard(Inventory(inventory_settings(config)), upstreams=1)  # type: ignore[arg-type]
    last = 0
    for body in events:
        if body["type"] in STOCK_EVENTS:
            event = event_of(body)
            shard.on_event(event)
            last = max(last, event.ts)
    shard.on_progress(Progress(0, last + 1))  # settle everything, as the watermark would
    positions = sum(1 for _ in shard.domain.positions())
    return shard.domain.state_size_bytes() / max(positions, 1), positions


if __name__ == "__main__":
    sys.exit(main())
