"""One hop through the embedded broker: produce-to-consume latency at two consumer fetch waits.

A message is produced every 10 ms for 8 s to a one-partition topic of the
embedded broker (Tansu) and read back by a consumer polling all the while;
prints p50 and p99 of (read - produced) for librdkafka's default
``fetch.wait.max.ms`` (500) and for 10 ms. A broker that answers a waiting fetch
as soon as data arrives shows the same figures for both; one that holds the
fetch for its whole wait shows the difference.

Usage: ``python bench/broker_hop.py``
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from channelflow.broker import EmbeddedBroker  # noqa: E402
from channelflow.kafka_io import create_topics  # noqa: E402


def hop(brokers: str, topic: str, fetch_wait_ms: int, seconds: float = 8.0) -> list[float]:
    """Latencies (s) of messages produced every 10 ms for ``seconds``, read with ``fetch_wait_ms``."""
    create_topics(brokers, [topic], 1)
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"hop-{topic}", "enable.auto.commit": False,
                         "fetch.wait.max.ms": fetch_wait_ms})  # fmt: skip
    consumer.assign([TopicPartition(topic, 0, 0)])
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 1})
    stop = time.monotonic() + seconds

    def produce() -> None:
        while time.monotonic() < stop:
            producer.produce(topic, str(time.time()).encode())
            producer.poll(0)
            time.sleep(0.01)
        producer.flush(30)

    writer = threading.Thread(target=produce)
    writer.start()
    latencies: list[float] = []
    while time.monotonic() < stop + 1:
        for message in consumer.consume(100, 0.05):
            value = message.value()
            if message.error() is None and value is not None:
                latencies.append(time.time() - float(value))
    writer.join()
    consumer.close()
    return sorted(latencies)


def main() -> int:
    print("| consumer fetch.wait.max.ms | messages | p50 (ms) | p99 (ms) |")
    print("|---:|---:|---:|---:|")
    with EmbeddedBroker() as broker:
        for wait in (500, 10):
            latencies = hop(broker.bootstrap, f"hop-{wait}", wait)
            p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
            print(f"| {wait} | {len(latencies)} | {p50 * 1000:.0f} | {p99 * 1000:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
