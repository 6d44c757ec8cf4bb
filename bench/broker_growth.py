"""The embedded broker's CPU over time at a steady produce rate: does it grow with what it holds?

Produces ``--rate`` messages a second (300 bytes each) to a 4-partition topic of the
embedded broker (Tansu) for ``--seconds``, with the producer lingering ``--linger-ms``, while
one consumer reads them all (``--fetch-wait-ms``; ``--no-reader``: none). Every 10 s it
prints what was produced and read and the broker's CPU over those 10 s (share of one core,
from ``/proc``). A broker whose CPU per fetch is independent of what it holds shows a flat
line; Tansu's memory engine, at librdkafka's 5 ms linger, climbs to a whole core within a
minute or two, because each produce request adds to what every later fetch walks.

Usage: ``python bench/broker_growth.py --rate 1000 --seconds 120 --linger-ms 5``
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from latency import cpu_seconds  # noqa: E402  (bench/latency.py, beside this script)

from channelflow.broker import EmbeddedBroker  # noqa: E402
from channelflow.kafka_io import create_topics  # noqa: E402

PARTITIONS = 4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--linger-ms", type=int, default=5, help="the producer's linger.ms")
    parser.add_argument("--fetch-wait-ms", type=int, default=500, help="the reader's fetch.wait.max.ms")
    parser.add_argument("--no-reader", action="store_true", help="produce only")
    args = parser.parse_args()

    with EmbeddedBroker() as broker:
        assert broker.pid is not None
        create_topics(broker.bootstrap, ["growth"], PARTITIONS)
        read = [0]
        stop = threading.Event()

        def reader() -> None:
            consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "growth",
                                 "enable.auto.commit": False, "fetch.wait.max.ms": args.fetch_wait_ms})  # fmt: skip
            consumer.assign([TopicPartition("growth", p, 0) for p in range(PARTITIONS)])
            while not stop.is_set():
                read[0] += sum(m.error() is None for m in consumer.consume(1000, 0.1))
            consumer.close()

        thread = threading.Thread(target=reader)
        if not args.no_reader:
            thread.start()
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": args.linger_ms})
        payload = b'{"x":"' + b"x" * 292 + b'"}'
        print(f"{args.rate:g} messages/s, linger.ms {args.linger_ms}, "
              + ("no reader" if args.no_reader else f"one reader at fetch.wait.max.ms {args.fetch_wait_ms}"))  # fmt: skip
        print("| s | produced | read | broker CPU, last 10 s |")
        print("|---:|---:|---:|---:|")
        started = last_at = time.monotonic()
        last_cpu = cpu_seconds(broker.pid)
        produced = 0
        while (now := time.monotonic()) - started < args.seconds:
            while produced < int((now - started) * args.rate):
                producer.produce("growth", payload, key=str(produced).encode())
                produced += 1
            producer.poll(0)
            if now - last_at >= 10:
                cpu = cpu_seconds(broker.pid)
                print(f"| {now - started:.0f} | {produced:,} | {read[0]:,} | {100 * (cpu - last_cpu) / (now - last_at):.0f}% |",
                      flush=True)  # fmt: skip
                last_cpu, last_at = cpu, now
            time.sleep(0.002)
        stop.set()
        if thread.is_alive():
            thread.join()
        producer.flush(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
