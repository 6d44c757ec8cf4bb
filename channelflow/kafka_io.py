"""Small Kafka helpers shared by the CLI tools, the demo, the bench and the tests."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from channelflow.logs import kafka_client_config
from operators.contract.events import partition_key, topic_for_type

Record = tuple[str, bytes | None, bytes]
"""A message to produce: (Kafka topic name, key, value)."""


Properties = Mapping[str, Any]
"""librdkafka properties every client gets, e.g. a secured cluster's ``security.protocol``,
``sasl.*`` and ``ssl.*`` (the config's ``[kafka.client]``)."""


def _settings(brokers: str, client: Properties | None) -> dict[str, Any]:
    return {"bootstrap.servers": brokers, **kafka_client_config(), **(client or {})}


def _admin(brokers: str, client: Properties | None) -> AdminClient:
    return AdminClient(_settings(brokers, client))


def create_topics(
    brokers: str, names: Iterable[str], partitions: int = 1, timeout: float = 30.0, *, client: Properties | None = None
) -> None:
    """Create the topics that do not exist yet; wait until the broker knows them."""
    admin = _admin(brokers, client)
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [n for n in dict.fromkeys(names) if n not in existing]
    if wanted:
        futures = admin.create_topics([NewTopic(n, partitions, 1) for n in wanted])
        for name, future in futures.items():
            try:
                future.result(timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise RuntimeError(f"could not create topic {name!r}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while not set(wanted) <= set(admin.list_topics(timeout=timeout).topics):
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {wanted} did not appear within {timeout}s")
        time.sleep(0.05)


def missing_topics(
    brokers: str, names: Iterable[str], timeout: float = 30.0, *, client: Properties | None = None
) -> list[str]:
    """The topics of ``names`` the broker does not have."""
    existing = _admin(brokers, client).list_topics(timeout=timeout).topics
    return [name for name in dict.fromkeys(names) if name not in existing]


def count_partitions(
    brokers: str, topics: Iterable[str], timeout: float = 30.0, *, client: Properties | None = None
) -> int:
    """Total partitions of ``topics``; ValueError naming a topic the broker does not have."""
    metadata = _admin(brokers, client).list_topics(timeout=timeout)
    total = 0
    for topic in topics:
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise ValueError(f"input topic {topic!r} does not exist on {brokers}")
        total += len(meta.partitions)
    return total


def event_records(events: Iterable[Mapping[str, Any]], topic_names: Mapping[str, str]) -> Iterator[Record]:
    """Contract events to Kafka records: topic from the event type, key per entity.

    ``topic_names`` maps logical input topics (``clickstream``...) to Kafka names.
    """
    for event in events:
        yield event_record(event, topic_names)


def event_record(event: Mapping[str, Any], topic_names: Mapping[str, str]) -> Record:
    """One contract event as a Kafka record (see :func:`event_records`)."""
    return topic_names[topic_for_type(event["type"])], partition_key(event).encode(), orjson.dumps(event)


#: :func:`produce`'s default linger (the simulator's, replays', the demo's). Each produce request
#: is stored by the embedded broker (Tansu's memory engine) as objects that every later fetch of
#: the partition walks, so its CPU per fetch grows with the requests it has taken
#: (``bench/broker_growth.py``): at 1,000 messages/s and one reader, librdkafka's 5 ms linger
#: took it to a whole core within 30 s; 50 ms held it at 5 to 6% for 90 s.
PRODUCE_LINGER_MS = 50


def produce(
    brokers: str,
    records: Iterable[Record],
    *,
    rate: float | None = None,
    linger_ms: int = PRODUCE_LINGER_MS,
    message_max_bytes: int = 1_000_000,
    client: Properties | None = None,
) -> int:
    """Produce ``records``, at most ``rate`` per second if given; return the count.

    The producer lingers ``linger_ms`` before it sends a batch: at full speed batches fill
    anyway; paced (the demo, ``--rate``), each request carries ``linger_ms`` of events rather
    than a few (see :data:`PRODUCE_LINGER_MS`).

    Raises RuntimeError if any delivery failed.
    """
    producer = Producer(
        {
            "linger.ms": linger_ms,
            "message.max.bytes": message_max_bytes,
            "queue.buffering.max.messages": 500_000,
            "enable.idempotence": False,
            **_settings(brokers, client),
        }
    )
    failures: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    count = 0
    started = time.monotonic()
    for topic, key, value in records:
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        if count % 1000 == 0:
            producer.poll(0)
        if rate:
            ahead = count / rate - (time.monotonic() - started)
            if ahead > 0:
                producer.poll(min(ahead, 0.5))
                time.sleep(max(0.0, count / rate - (time.monotonic() - started)))
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} messages were not delivered within 60s")
    if failures:
        raise RuntimeError(f"{len(failures)} deliveries failed, first: {failures[0]}")
    return count


def _behind(consumer: Consumer, topic: str, partitions: Iterable[int]) -> bool:
    """True if some partition's high watermark is beyond the consumer's position."""
    for partition in partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
        position = consumer.position([TopicPartition(topic, partition)])[0].offset
        if high > 0 and (position < 0 or position < high):
            return True
    return False


def consume_all(
    brokers: str,
    topic: str,
    *,
    expect: int | None = None,
    timeout: float = 30.0,
    idle: float = 2.0,
    first_wait: float = 5.0,
    client: Properties | None = None,
) -> list[tuple[bytes | None, bytes]]:
    """Read a topic from the beginning: (key, value) pairs, in partition order.

    Stops when ``expect`` messages were read, or after ``idle`` seconds with
    nothing new (``first_wait`` before the first message) once no partition's
    high watermark is ahead of what was read, or at ``timeout``. Tansu's high
    watermarks can lag behind what was written, so they are a lower bound here,
    not the end.
    """
    consumer = Consumer(
        {
            "group.id": f"channelflow-reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            **_settings(brokers, client),
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        out: list[tuple[bytes | None, bytes]] = []
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            if expect is not None and len(out) >= expect:
                break
            msgs = consumer.consume(1000, 0.1)
            got = [m for m in msgs if m.error() is None]
            if got:
                out.extend((m.key(), m.value()) for m in got)
                last_new = time.monotonic()
            elif expect is None and time.monotonic() - last_new > (idle if out else first_wait):
                if not _behind(consumer, topic, meta.partitions):
                    break
                last_new = time.monotonic()  # a quiet spell, but the broker has more: keep reading
        return out
    finally:
        consumer.close()
