"""Kafka input that can be told to stop and that says when a partition is caught up.

Bytewax 0.21 has no way to stop a running dataflow but an exception, which
it reports as a Rust panic with a backtrace. Here every input partition
checks :data:`STOP` before each batch and, once it is set, reports the end
of its input: the dataflow drains, closes its last epoch (a recovery
snapshot, when recovery is on) and returns. The sequence stage then does
*not* move the watermark past the input (``operators.time.sequencer``), so a
restart resumes exactly where the stop left off.

Each partition also puts a :class:`CaughtUp` item in its batch, in place,
whenever it has read everything its topic partition holds (librdkafka's
partition EOF, which Bytewax's own source uses only to end a bounded input).
Tailing, the partition reads on; the watermark uses it to tell a partition
that is live and quiet from one that is behind (``operators.time.watermark``).

Unlike Bytewax's source, a worker reads all its partitions through one consumer
(:class:`_SharedConsumer`): one fetch request per broker for all of them, one set
of librdkafka threads, one statistics report.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, cast

import bytewax.operators as op
import orjson
from bytewax.connectors.kafka import (
    BYTEWAX_CONSUMER_LAG_GAUGE,
    KafkaError,
    KafkaSource,
    KafkaSourceMessage,
)
from bytewax.connectors.kafka.operators import KafkaOpOut
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka import KafkaError as ConfluentKafkaError

#: Set by the shell on SIGTERM, SIGINT or SIGHUP.
STOP = threading.Event()

SourceMessage = KafkaSourceMessage[bytes | None, bytes | None]


@dataclass(frozen=True, slots=True)
class CaughtUp:
    """Input partition ``topic``/``partition`` has delivered everything the broker held."""

    topic: str
    partition: int


class _SharedConsumer:
    """One Kafka consumer for every input partition a worker reads.

    Bytewax's source opens a consumer per partition: each fetches on its own, runs its own
    threads and reports its own statistics, so 16 partitions cost 16 fetch requests per
    ``fetch.wait.max.ms`` and 16 sets of threads competing for the worker's cores. Here one
    consumer fetches them all, and each message goes to the buffer of its partition, which
    hands out only its own (so batches, markers and offsets are per partition as before).
    A partition's offset is the one after the last message it handed out, never one still
    buffered, so recovery resumes exactly where the outputs stop.
    """

    def __init__(self, step_id: str, config: dict[str, Any], batch_size: int) -> None:
        self._step_id = step_id
        self._batch_size = batch_size
        self.parts: dict[tuple[str, int], _Partition] = {}
        self._buffered = 0
        self.closed = False
        self.consumer = Consumer({**config, "stats_cb": self._stats})

    def add(self, part: _Partition) -> None:
        self.parts[(part.topic, part.index)] = part
        self.consumer.incremental_assign([TopicPartition(part.topic, part.index, part.offset)])

    def remove(self, part: _Partition) -> None:
        """``part`` has ended (a bounded input at its end): fetch it no more."""
        if self.parts.pop((part.topic, part.index), None) is not None:
            self.consumer.incremental_unassign([TopicPartition(part.topic, part.index)])
        if not self.parts:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.consumer.close()

    def fill(self, caller: _Partition) -> None:
        """One poll of the consumer, each message put in its partition's buffer (an error that
        names no partition in ``caller``'s). Nothing is polled while a batch's worth is still
        buffered, so the buffers stay bounded however unevenly the partitions are read."""
        if self._buffered >= self._batch_size:
            return
        parts = self.parts
        for msg in self.consumer.consume(self._batch_size, 0.001):
            topic = msg.topic()
            part = caller if topic is None else parts.get((topic, msg.partition()))  # type: ignore[arg-type]
            if part is not None:  # None: a partition that has ended (fetched before it was unassigned)
                part.buffer.append(msg)
                self._buffered += 1

    def taken(self, count: int) -> None:
        self._buffered -= count

    def _stats(self, json_stats: str) -> None:
        # Bytewax's consumer-lag gauge, for every partition of this consumer at once.
        topics = orjson.loads(json_stats).get("topics", {})
        for (topic, index), part in self.parts.items():
            stats = topics.get(topic, {}).get("partitions", {}).get(str(index))
            if stats is not None and part.offset > 0:
                BYTEWAX_CONSUMER_LAG_GAUGE.labels(step_id=self._step_id, topic=topic, partition=index).set(
                    stats["ls_offset"] - part.offset
                )


class _Partition(StatefulSourcePartition[Any, int | None]):
    """One input partition, read through its worker's :class:`_SharedConsumer`; reads on
    past the end of the partition when tailing."""

    def __init__(
        self, shared: _SharedConsumer, topic: str, index: int, offset: int, *, tail: bool, raise_on_errors: bool
    ) -> None:
        self.topic, self.index, self.offset = topic, index, offset
        self.buffer: list[Any] = []
        self._shared = shared
        self._tail = tail
        self._raise_on_errors = raise_on_errors
        self._eof = False
        shared.add(self)

    def next_batch(self) -> list[SourceMessage | KafkaError[bytes | None, bytes | None] | CaughtUp]:
        if STOP.is_set() or self._eof:
            raise StopIteration
        if not self.buffer:
            self._shared.fill(self)
        msgs, self.buffer = self.buffer, []
        batch: list[SourceMessage | KafkaError[bytes | None, bytes | None] | CaughtUp] = []
        for msg in msgs:
            error = msg.error()
            if error is not None and error.code() == ConfluentKafkaError._PARTITION_EOF:
                batch.append(CaughtUp(self.topic, self.index))
                if not self._tail:
                    self._eof = True  # the input ends at the next call, after this batch
                    self._shared.remove(self)  # nothing after the end is fetched
                    break
                continue
            if error is not None and self._raise_on_errors:
                raise RuntimeError(f"error consuming from Kafka topic {self.topic!r}: {error}")
            kafka_msg = KafkaSourceMessage(
                key=msg.key(),
                value=msg.value(),
                topic=msg.topic(),
                headers=cast("list[tuple[str, bytes]]", msg.headers() or []),
                latency=msg.latency(),
                offset=msg.offset(),
                partition=msg.partition(),
                timestamp=msg.timestamp(),
            )
            batch.append(kafka_msg if error is None else KafkaError(error, kafka_msg))
            offset = msg.offset()
            if offset is not None and offset >= 0:
                self.offset = offset + 1  # resume after this message, not at it
        self._shared.taken(len(msgs))
        return batch

    def snapshot(self) -> int | None:
        return self.offset

    def close(self) -> None:
        if not self._eof:
            self._eof = True
            self._shared.remove(self)


class StoppableKafkaSource(FixedPartitionedSource[Any, Any]):
    """Bytewax's :class:`KafkaSource` (the same partitions, consumer settings and recovery
    state) with one consumer per worker (:class:`_SharedConsumer`), each partition ending
    its input once :data:`STOP` is set and marking where it caught up (:class:`CaughtUp`).

    In a cluster of ``processes``, process ``process`` lists only its share of each topic's
    partitions (:func:`owned_by`), and Bytewax assigns a partition to a worker that lists it.
    Listing every partition everywhere lets Bytewax assign them alternately in the order of
    their keys (``"<partition>-<topic>"``): with four input topics and two processes, one
    process would read every partition of two topics, the whole clickstream among them.
    """

    def __init__(
        self,
        brokers: list[str],
        topics: list[str],
        *,
        tail: bool = True,
        starting_offset: int = OFFSET_BEGINNING,
        add_config: dict[str, Any] | None = None,
        batch_size: int = 1000,
        raise_on_errors: bool = True,
        process: int = 0,
        processes: int = 1,
    ) -> None:
        if not 0 <= process < processes:
            raise ValueError(f"process {process} of {processes}: needs 0 <= process < processes")
        self.process, self.processes = process, processes
        self.brokers, self.topics, self.tail = brokers, topics, tail
        self.starting_offset, self.batch_size, self.raise_on_errors = starting_offset, batch_size, raise_on_errors
        self.add_config = dict(add_config or {})
        self._shared: dict[int, _SharedConsumer] = {}  # worker thread -> its consumer
        self._lock = threading.Lock()

    def list_parts(self) -> list[str]:
        parts = KafkaSource(self.brokers, self.topics, add_config=self.add_config).list_parts()
        return [part for part in parts if owned_by(part, self.topics, self.processes) == self.process]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Partition:
        index, topic = _parse_part(for_part)
        if topic not in self.topics:
            raise ValueError(f"recovery state names Kafka topic {topic!r}, not one of the inputs {self.topics}")
        worker = threading.get_ident()
        with self._lock:
            shared = self._shared.get(worker)
            if shared is None or shared.closed or (topic, index) in shared.parts:  # a new run of the flow
                if shared is not None and not shared.closed:
                    shared.close()
                shared = self._shared[worker] = _SharedConsumer(step_id, self._consumer_config(), self.batch_size)
        offset = self.starting_offset if resume_state is None else resume_state
        return _Partition(shared, topic, index, offset, tail=self.tail, raise_on_errors=self.raise_on_errors)

    def _consumer_config(self) -> dict[str, Any]:
        return {
            "group.id": "BYTEWAX_IGNORED",  # offsets are kept by recovery, as Bytewax's source does
            "enable.auto.commit": "false",
            "bootstrap.servers": ",".join(self.brokers),
            "statistics.interval.ms": 1000,  # the consumer-lag gauge
            **self.add_config,
            "enable.partition.eof": "true",
        }


def owned_by(part: str, topics: list[str], processes: int) -> int:
    """The process of ``processes`` that reads input partition ``part`` (``"<partition>-<topic>"``).

    Each topic's partitions are dealt out in turn, starting one process further on for each
    topic, so every process gets its share of every topic (and single-partition topics spread):

    >>> [owned_by(f"{p}-{t}", ["a", "b"], 2) for t in "ab" for p in range(3)]
    [0, 1, 0, 1, 0, 1]
    """
    number, topic = _parse_part(part)
    return (number + topics.index(topic)) % processes


def _parse_part(part: str) -> tuple[int, str]:
    """(partition number, topic) of an input partition's key, ``"<partition>-<topic>"`` as Bytewax's
    Kafka source names them (recovery state is kept under these keys)."""
    number, topic = part.split("-", 1)
    return int(number), topic


@operator
def kafka_input(step_id: str, flow: Dataflow, source: StoppableKafkaSource) -> KafkaOpOut[Any, Any]:
    """Like ``bytewax.connectors.kafka.operators.input`` (same inner step ids, so recovery
    state carries over), over a :class:`StoppableKafkaSource`: consumed messages and
    :class:`CaughtUp` items, and errors."""
    stream: Stream[Any] = op.input("kafka_input", flow, source)
    branch = op.branch("split_err", stream, lambda msg: not isinstance(msg, KafkaError))
    oks: Stream[SourceMessage | CaughtUp] = branch.trues
    errs: Stream[KafkaError[bytes | None, bytes | None]] = branch.falses
    return KafkaOpOut(oks, errs)
