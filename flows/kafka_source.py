"""Kafka input that can be told to stop: a clean shutdown instead of an interrupt inside the engine.

Bytewax 0.21 has no way to stop a running dataflow but an exception, which
it reports as a Rust panic with a backtrace. Here every input partition
checks :data:`STOP` before each batch and, once it is set, reports the end
of its input: the dataflow drains, closes its last epoch (a recovery
snapshot, when recovery is on) and returns. The sequence stage then does
*not* move the watermark past the input (``operators.time.sequencer``), so a
restart resumes exactly where the stop left off.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSource, KafkaSourceMessage
from bytewax.connectors.kafka.operators import KafkaOpOut
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

#: Set by the shell on SIGTERM, SIGINT or SIGHUP.
STOP = threading.Event()


class _StoppablePartition(StatefulSourcePartition[Any, Any]):
    def __init__(self, inner: StatefulSourcePartition[Any, Any]) -> None:
        self.inner = inner

    def next_batch(self) -> list[Any]:
        if STOP.is_set():
            raise StopIteration
        return list(self.inner.next_batch())

    def next_awake(self) -> datetime | None:
        return self.inner.next_awake()

    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def close(self) -> None:
        self.inner.close()


class StoppableKafkaSource(FixedPartitionedSource[Any, Any]):
    """Bytewax's :class:`KafkaSource` (same arguments), each partition ending its input once
    :data:`STOP` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.kafka = KafkaSource(*args, **kwargs)

    def list_parts(self) -> list[str]:
        return self.kafka.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _StoppablePartition:
        return _StoppablePartition(self.kafka.build_part(step_id, for_part, resume_state))


@operator
def kafka_input(step_id: str, flow: Dataflow, source: StoppableKafkaSource) -> KafkaOpOut[Any, Any]:
    """Like ``bytewax.connectors.kafka.operators.input`` (same inner step ids, so recovery
    state carries over), over a :class:`StoppableKafkaSource`: consumed messages and errors."""
    stream: Stream[Any] = op.input("kafka_input", flow, source)
    branch = op.branch("split_err", stream, lambda msg: isinstance(msg, KafkaSourceMessage))
    oks: Stream[KafkaSourceMessage[bytes | None, bytes | None]] = branch.trues
    errs: Stream[KafkaError[bytes | None, bytes | None]] = branch.falses
    return KafkaOpOut(oks, errs)
