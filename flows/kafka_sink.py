"""The flow's Kafka sink: a message the producer or the broker refuses is counted and
dead-lettered instead of stopping the flow.

Bytewax 0.21.1's ``KafkaSink`` (``bytewax/connectors/kafka/__init__.py``) calls
``producer.produce()`` for each message, without a delivery callback, and ``flush()`` at the
end of each batch. So:

- a message librdkafka refuses at ``produce()`` (larger than the producer's
  ``message.max.bytes``: ``KafkaException(MSG_SIZE_TOO_LARGE)``; a topic it cannot produce
  to) raises out of ``write_batch``: the worker and the flow stop, and stop again on every
  restart, since recovery re-emits the same record;
- a full local queue raises ``BufferError`` the same way;
- a message the broker refuses later (its own size limit, a missing topic, a timeout) is
  reported to no one: without a delivery callback the error is dropped and the record is
  lost without a trace.

:class:`DeadLetteringKafkaSink` produces with a delivery callback, turns each refused
message into a ``delivery_failed`` dead letter (the original's size and hash, and its
beginning, within ``letter_max_bytes``), counts it in ``channelflow_delivery_failures``
by logical topic and librdkafka error code, and keeps going. A dead letter it made itself
that fails too is counted and logged, never re-lettered (no loop).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, KafkaException, Producer

from flows import metrics
from operators.contract.dead_letter import dead_letter
from operators.contract.events import Rejection

logger = logging.getLogger(__name__)

Message = KafkaSinkMessage[bytes | None, bytes | None]
#: A ``delivery_failed`` dead letter keeps at most this much of the refused message: it must
#: get through where the original did not.
LETTER_MAX_BYTES = 16_384
_MAX_KEY_BYTES = 1_024


def error_code(err: KafkaError | None) -> str:
    """A bounded metric label for a librdkafka error: its name in lower case, without the
    leading underscore of local errors (``msg_size_too_large``, ``msg_timed_out``)."""
    if err is None:
        return "unknown"
    return str(err.name()).lower().lstrip("_") or "unknown"


class DeadLetteringPartition(StatelessSinkPartition[Message]):
    """One worker's producer (see the module docstring)."""

    def __init__(
        self,
        producer: Any,
        *,
        default_topic: str | None,
        dead_letters_topic: str,
        logical_topics: Mapping[str, str],
        letter_max_bytes: int = LETTER_MAX_BYTES,
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._producer = producer
        self._default_topic = default_topic
        self._dead_letters = dead_letters_topic
        self._logical = dict(logical_topics)
        self._letter_max_bytes = letter_max_bytes
        self._clock = clock
        self._pending: list[tuple[bytes | None, bytes]] = []  # dead letters to produce after a flush

    def write_batch(self, items: list[Message]) -> None:
        for msg in items:
            topic = msg.topic or self._default_topic or self._dead_letters
            self._produce(topic, msg.key, msg.value, msg.headers, msg.timestamp, letter=False)
            self._producer.poll(0)
        self._flush()

    def close(self) -> None:
        self._flush()

    def _flush(self) -> None:
        # Delivery callbacks only queue dead letters (producing or polling from inside a
        # callback is not safe); they are produced here, between flushes.
        self._producer.flush()
        while self._pending:
            letters, self._pending = self._pending, []
            for key, value in letters:
                self._produce(self._dead_letters, key, value, [], 0, letter=True)
            self._producer.flush()

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        timestamp: int,
        *,
        letter: bool,
    ) -> None:
        callback = self._on_letter_delivery if letter else self._on_delivery
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, timestamp=timestamp, on_delivery=callback
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)
            except KafkaException as exc:
                err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                self._failed(topic, key, value, error_code(err), str(err or exc), letter=letter)
                return
            except Exception as exc:  # e.g. a value of the wrong type: never stop the flow
                self._failed(topic, key, value, "invalid_message", repr(exc), letter=letter)
                return

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self._failed_delivery(err, msg, letter=False)

    def _on_letter_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self._failed_delivery(err, msg, letter=True)

    def _failed_delivery(self, err: KafkaError, msg: Any, *, letter: bool) -> None:
        try:  # an exception in a delivery callback would come out of poll() or flush()
            self._failed(msg.topic(), msg.key(), msg.value(), error_code(err), str(err), letter=letter)
        except Exception:
            logger.exception("could not record a failed delivery")

    def _failed(
        self, topic: str, key: bytes | None, value: bytes | None, code: str, detail: str, *, letter: bool
    ) -> None:
        logical = self._logical.get(topic, topic)
        metrics.DELIVERY_FAILURES.labels(logical, code).inc()
        size = 0 if value is None else len(value)
        if letter:
            logger.error("could not deliver a delivery_failed dead letter (%s, %s bytes): %s", code, size, detail)
            return
        logger.warning("could not deliver a %s record of %s bytes (%s): %s; sent to dead-letters", logical, size, code, detail)
        record = dead_letter(
            value,
            Rejection("delivery_failed", f"{code}: {detail}"),
            source_topic=logical,
            partition=None,
            offset=None,
            received_at_ms=self._clock(),
            max_bytes=self._letter_max_bytes,
        )
        self._pending.append((None if key is None else bytes(key[:_MAX_KEY_BYTES]), orjson.dumps(record)))


class DeadLetteringKafkaSink(DynamicSink[Message]):
    """Produce :class:`KafkaSinkMessage` s to their topics (or ``default_topic``); refused
    messages become ``delivery_failed`` dead letters on ``dead_letters_topic``.

    ``logical_topics`` maps Kafka topic names to logical ones (metric labels and
    ``source_topic``); ``message_max_bytes`` is the producer's ``message.max.bytes``.
    """

    def __init__(
        self,
        brokers: Iterable[str],
        *,
        dead_letters_topic: str,
        logical_topics: Mapping[str, str],
        message_max_bytes: int,
        default_topic: str | None = None,
        add_config: Mapping[str, Any] | None = None,
    ) -> None:
        self._brokers = list(brokers)
        self._dead_letters = dead_letters_topic
        self._logical = dict(logical_topics)
        self._message_max_bytes = message_max_bytes
        self._default_topic = default_topic
        self._add_config = dict(add_config or {})

    def build(self, _step_id: str, _worker_index: int, _worker_count: int) -> DeadLetteringPartition:
        config: dict[str, Any] = {
            "bootstrap.servers": ",".join(self._brokers),
            "message.max.bytes": self._message_max_bytes,
            "error_cb": _log_client_error,
        }
        config.update(self._add_config)
        return DeadLetteringPartition(
            Producer(config),
            default_topic=self._default_topic,
            dead_letters_topic=self._dead_letters,
            logical_topics=self._logical,
        )


def _log_client_error(err: KafkaError) -> None:
    """Client-wide errors (a broker down, ...): librdkafka retries; per-message outcomes
    arrive in the delivery callbacks."""
    logger.warning("Kafka producer: %s", err)
