"""Live latency: how long after its input event each output record reaches Kafka, at a steady rate.

Starts the embedded broker and the flow (``channelflow run``, live, recovery
on, as in production), then produces simulated events at ``--rate`` events per
wall-clock second for ``--seconds``, each stamped with the wall-clock time at
which it is produced: event time is wall time, as in a live deployment. A
consumer reads every output topic meanwhile. A record's ``ts`` is the event
time of what caused it (its input event, or the timer that came due), so its
latency is the wall-clock time it arrived at the consumer minus its ``ts``.
Records caused in the first ``--warmup`` seconds (start-up, partitions that
have not spoken yet) are left out, and so are those caused in the last
``allowed_lateness + idle_timeout`` (plus 5 s) of production: the end of the
input, where the watermark waits for partitions to go idle, is not the steady
state. Prints p50, p95, p99 and max per topic.

Ordered stages hold an event until the watermark passes it. The input here is
live (events arrive within ``time.allowed_lateness`` of their time), so the
watermark runs with the wall clock: inventory's outputs wait about
``time.live_lateness``, the other ordered stages' about ``time.allowed_lateness``.

It also prints the CPU share of the flow, the broker and itself while producing: on
one machine the embedded broker is often the busiest of the three.

Usage: ``python bench/latency.py --rate 3000 --seconds 300 --warmup 60``
(the issue asks for half of the maximum sustained rate: take that from
``bench/bench.py`` in the same session).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402

from channelflow.broker import EmbeddedBroker, free_port  # noqa: E402
from channelflow.config import INPUT_TOPIC_KEYS, load_config  # noqa: E402
from channelflow.kafka_io import PRODUCE_LINGER_MS, create_topics, event_record  # noqa: E402
from channelflow.simulator import DEFAULT_LOCATIONS, SimulationSettings, simulate  # noqa: E402
from operators.contract.dead_letter import iso_ms  # noqa: E402

OUTPUTS = ("inventory_updates", "customer_scores", "promotions", "alerts")


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _ready(port: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the flow did not become ready")


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def histogram_shares(port: int, name: str, label: str, value: str) -> dict[float, float]:
    """Share of a flow histogram's observations (``label=value``, whole run) at or under each bucket bound."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{name}_bucket" and sample.labels.get(label) == value:
                buckets[float(sample.labels["le"])] = sample.value
    total = buckets.get(float("inf"), 0.0)
    return {bound: count / total for bound, count in sorted(buckets.items()) if total and bound != float("inf")}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=3000.0, help="events per wall-clock second")
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to produce")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds of records left out at the start")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--linger-ms", type=float, default=PRODUCE_LINGER_MS,
                        help="the event producer's linger.ms (default: the simulator's, "
                             f"{PRODUCE_LINGER_MS}; each produce request is lasting broker work)")
    parser.add_argument("--reader-wait-ms", type=int, default=10,
                        help="the output reader's fetch.wait.max.ms (each fetch is broker work)")
    parser.add_argument("--dump", type=Path, metavar="FILE",
                        help="also write every record read as a JSON line: topic, read at, produced at, ts (ms)")
    args = parser.parse_args()

    config = load_config()
    names = config.kafka.topics
    outputs = {names[k]: k for k in OUTPUTS}
    lateness_s = config.time.allowed_lateness_ms / 1000
    tail_s = lateness_s + config.time.idle_timeout_ms / 1000 + 5
    if args.seconds <= args.warmup + tail_s:
        parser.error(f"--seconds must be more than --warmup + {tail_s:g} (allowed_lateness + idle_timeout + 5 s)")
    arrivals: list[tuple[str, int, int, int]] = []  # (topic, arrived at ms, produced at ms, record ts ms)
    inside: dict[str, dict[float, float]] = {}
    stop = threading.Event()

    def consume(brokers: str) -> None:
        # A short fetch wait: the embedded broker holds a fetch for the whole wait instead of answering
        # when data arrives (bench/broker_hop.py), which would add up to 500 ms to every reading here.
        consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"latency-{os.getpid()}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "fetch.wait.max.ms": args.reader_wait_ms})  # fmt: skip
        consumer.subscribe(list(outputs))
        try:
            while not stop.is_set():
                for message in consumer.consume(500, timeout=0.2):
                    now = time.time_ns() // 1_000_000
                    value, topic = message.value(), message.topic()
                    if message.error() or value is None or topic is None:
                        continue
                    ts = orjson.loads(value).get("ts")
                    if isinstance(ts, str):
                        # The flow's sink leaves the timestamp to librdkafka: the time it produced the record.
                        arrivals.append((topic, now, message.timestamp()[1], _ms(ts)))
        finally:
            consumer.close()

    port = free_port()
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="channelflow-latency-") as state:
        create_topics(broker.bootstrap, names.values(), config.kafka.topic_partitions)
        env = dict(os.environ, CHANNELFLOW_KAFKA__BROKERS=broker.bootstrap, CHANNELFLOW_METRICS__PORT=str(port),
                   CHANNELFLOW_FLOW__RECOVERY_DIR=str(Path(state) / "recovery"))  # fmt: skip
        flow = subprocess.Popen([sys.executable, "-m", "channelflow.cli", "run"], env=env, cwd=ROOT)
        reader = threading.Thread(target=consume, args=(broker.bootstrap,), daemon=True)
        try:
            _ready(port)
            reader.start()
            topic_names = {k: names[k] for k in INPUT_TOPIC_KEYS}
            producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": args.linger_ms})
            pids = {"flow": flow.pid, "broker": broker.pid or 0, "this script (producer, reader)": os.getpid()}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            settings = SimulationSettings(seed=args.seed, customers=args.customers, days=None, anomalies=False)
            events = simulate(settings, DEFAULT_LOCATIONS)
            started = time.monotonic()
            total = int(args.rate * args.seconds)
            first_ms = time.time_ns() // 1_000_000
            for count, event in enumerate(islice(events, total)):
                ahead = count / args.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
                event = dict(event, ts=iso_ms(time.time_ns() // 1_000_000))
                topic, key, value = event_record(event, topic_names)
                producer.produce(topic, value, key)
                producer.poll(0)
            producer.flush(30)
            del producer  # closed before the broker stops
            produced_s = time.monotonic() - started
            cpu_share = {name: (cpu_seconds(pid) - cpu_before[name]) / produced_s for name, pid in pids.items()}
            # The last events are applied once the watermark passes them: lateness, then the idle timeout.
            time.sleep(tail_s)
            # Where the time goes, from the flow's own histograms: input hop (Kafka timestamp to decode),
            # then event time to serialized output; the rest is the sink and the output hop.
            inside = {"ingest (Kafka timestamp to decode), pos": histogram_shares(
                port, "channelflow_ingest_latency_seconds", "topic", "pos"),
                "event time to serialized output, inventory_updates": histogram_shares(
                port, "channelflow_end_to_end_latency_seconds", "topic", "inventory_updates")}  # fmt: skip
        finally:
            stop.set()
            if reader.is_alive():
                reader.join(10)
            flow.send_signal(signal.SIGTERM)
            try:
                flow.wait(60)
            except subprocess.TimeoutExpired:
                flow.kill()
    print(f"{total:,} events at {total / produced_s:,.0f} events/s for {produced_s:.0f} s; records caused from "
          f"{args.warmup:.0f} s to {args.seconds - tail_s:.0f} s; time.allowed_lateness = {lateness_s:g} s, "
          f"time.live_lateness = {config.time.live_lateness_ms / 1000:g} s, "
          f"time.idle_timeout = {config.time.idle_timeout_ms / 1000:g} s\n")
    print("CPU while producing (share of one core): " + ", ".join(f"{name} {share:.0%}" for name, share in cpu_share.items()))
    for what, shares in inside.items():
        under = ", ".join(f"{share:.1%} ≤ {bound:g} s" for bound, share in shares.items() if 0.05 <= bound <= 2.5)
        print(f"flow's own histogram, whole run: {what}: {under}")
    start, end = first_ms + int(args.warmup * 1000), first_ms + int((args.seconds - tail_s) * 1000)
    if args.dump:
        args.dump.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in arrivals))
    for column, what in ((1, f"read by a consumer (fetch.wait.max.ms {args.reader_wait_ms})"),
                         (2, "produced by the flow (the record's Kafka timestamp)")):  # fmt: skip
        print(f"\nLatency to the record {what}, minus its ts:\n")
        print("| output topic | records | p50 (s) | p95 (s) | p99 (s) | max (s) |")
        print("|---|---:|---:|---:|---:|---:|")
        for topic_name, topic_key in outputs.items():
            latencies = [(row[column] - row[3]) / 1000 for row in arrivals
                         if row[0] == topic_name and start <= row[3] < end]  # fmt: skip
            if not latencies:
                print(f"| {topic_key} | 0 | | | | |")
                continue
            p50, p95, p99 = (percentile(latencies, q) for q in (0.5, 0.95, 0.99))
            print(f"| {topic_key} | {len(latencies):,} | {p50:.2f} | {p95:.2f} | {p99:.2f} | {max(latencies):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
