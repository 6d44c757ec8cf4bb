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
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, cast

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSource, KafkaSourceMessage
from bytewax.connectors.kafka import _KafkaSourcePartition as _BytewaxPartition
from bytewax.connectors.kafka.operators import KafkaOpOut
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.inputs import FixedPartitionedSource
from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka import KafkaError as ConfluentKafkaError

#: Set by the shell on SIGTERM, SIGINT or SIGHUP.
STOP = threading.Event()

SourceMessage = KafkaSourceMessage[bytes | None, bytes | None]


@dataclass(frozen=True, slots=True)
class CaughtUp:
    """Input partition ``topic``/``partition`` has delivered everything the broker held."""

    topic: str
    partition: int


class _Partition(_BytewaxPartition):
    """Bytewax's Kafka partition (its consumer settings, offsets as recovery state and the
    consumer-lag gauge), reading on past the end of the partition when tailing."""

    def __init__(self, *args: Any, tail: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tail = tail

    def next_batch(self) -> list[SourceMessage | KafkaError[bytes | None, bytes | None] | CaughtUp]:  # type: ignore[override]
        if STOP.is_set() or self._eof:
            raise StopIteration
        batch: list[SourceMessage | KafkaError[bytes | None, bytes | None] | CaughtUp] = []
        for msg in self._consumer.consume(self._batch_size, 0.001):
            error = msg.error()
            if error is not None and error.code() == ConfluentKafkaError._PARTITION_EOF:
                batch.append(CaughtUp(self._topic, self._part_idx))
                if not self._tail:
                    self._eof = True  # the input ends at the next call, after this batch
                    break
                continue
            if error is not None and self._raise_on_errors:
                raise RuntimeError(f"error consuming from Kafka topic {self._topic!r}: {error}")
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
                self._offset = offset + 1  # resume after this message, not at it
        return batch


class StoppableKafkaSource(FixedPartitionedSource[Any, Any]):
    """Bytewax's :class:`KafkaSource` (the same partitions, consumer settings and recovery
    state), each partition ending its input once :data:`STOP` is set and marking where it
    caught up (:class:`CaughtUp`)."""

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
    ) -> None:
        self.brokers, self.topics, self.tail = brokers, topics, tail
        self.starting_offset, self.batch_size, self.raise_on_errors = starting_offset, batch_size, raise_on_errors
        self.add_config = dict(add_config or {})

    def list_parts(self) -> list[str]:
        return KafkaSource(self.brokers, self.topics, add_config=self.add_config).list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Partition:
        index, topic = for_part.split("-", 1)
        if topic not in self.topics:
            raise ValueError(f"recovery state names Kafka topic {topic!r}, not one of the inputs {self.topics}")
        config = {
            "group.id": "BYTEWAX_IGNORED",  # offsets are kept by recovery, as Bytewax's source does
            "enable.auto.commit": "false",
            "bootstrap.servers": ",".join(self.brokers),
            "statistics.interval.ms": 1000,  # the consumer-lag gauge
            **self.add_config,
            "enable.partition.eof": "true",
        }
        return _Partition(
            step_id, config, topic, int(index), self.starting_offset, resume_state, self.batch_size,
            self.raise_on_errors, tail=self.tail,
        )  # fmt: skip


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
