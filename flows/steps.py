"""The functions each Bytewax step runs: thin adapters from the flow to ``operators``.

Keyed values are envelopes, ``(shard, items)``: Bytewax gives a stateful step its
value but not its key, and a shard needs to know its own number. A step that
keys items for a stage sends each shard one envelope per batch, holding that
shard's items in order, rather than one Bytewax item per event: Bytewax's cost
is per item (routing, and between processes a ``pickle.dumps`` and ``loads``
each, with every class reference written again), and the order within a shard
is all the stages need. Steps on the per-event path take a whole batch per call
(``flat_map_batch``, ``StatefulBatchLogic``): one Python call per batch instead
of one per item.
"""

from __future__ import annotations

import logging
import reprlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from itertools import chain
from typing import Any, TypeGuard

import orjson
from bytewax.connectors.kafka import KafkaError, KafkaSinkMessage
from bytewax.operators import StatefulBatchLogic

from flows import metrics
from flows.health import HEALTH
from flows.kafka_source import STOP, CaughtUp, SourceMessage
from flows.stateful import EntityStores, freeze, open_store, thaw
from flows.topology import EVENTS
from operators.contract.dead_letter import MAX_OUTPUT_BYTES, dead_letter
from operators.contract.events import Event, Limits, Rejection, parse
from operators.contract.kpis import kpi_of
from operators.contract.money import from_millis
from operators.state.store import EntityStore
from operators.time.sequencer import Sequencer
from operators.time.shard import Domain, DomainShard
from operators.time.sharding import shard_of
from operators.time.stream_items import (
    Arrival,
    Marker,
    Output,
    Progress,
    Signal,
    pack_items,
    unpack_items,
)

log = logging.getLogger("channelflow")


class Items(list[Any]):
    """The items of an envelope, pickled fast between processes.

    Events, and the events of arrivals, go as one JSON document, other items as one pickle
    (:func:`~operators.time.stream_items.pack_items`). Bytewax pickles
    an item it sends to another process twice (once to size it, once to write it), so the
    reduction is kept for the second time: an envelope is not changed once it is sent.
    """

    __slots__ = ("_reduced",)
    _reduced: tuple[Any, ...]

    def __reduce__(self) -> tuple[Any, ...]:
        try:
            return self._reduced
        except AttributeError:
            pass
        packed = pack_items(self)
        reduced: tuple[Any, ...] = (Items, (list(self),)) if packed is None else (_unpack_items, packed)
        self._reduced = reduced
        return reduced


def _unpack_items(packed: bytes, pickled: bytes) -> Items:
    """The :class:`Items` that ``Items.__reduce__`` wrote."""
    items = Items()
    unpack_items(packed, pickled, into=items)
    return items


Envelope = tuple[int, list[Any]]  # a shard's number and its items from one upstream batch, in order
Keyed = tuple[str, Envelope]
SequencedItem = Event | Progress
StageItem = Event | Signal | Progress


def _sealed(keys: tuple[str, ...], envelopes: list[Items]) -> list[Keyed]:
    """The keyed envelopes of the shards that got items."""
    return [(keys[k], (k, items)) for k, items in enumerate(envelopes) if items]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Decoder:
    """``flat_map_batch`` step: validate a batch, then mark each partition's progress.

    Yields dead-letter :class:`Output` records for refused messages and, for the
    sequencer, one keyed envelope per shard with the batch's :class:`Arrival` s and
    :class:`Marker` s for it. The markers follow the batch's events, so a shard that
    gets one has got those events. Each arrival carries its partition's latest event
    time so far (the dedupe stamp): the worker reading a partition sees all of it, in
    order.
    """

    topics: Mapping[str, str]  # Kafka topic name -> logical input topic
    keys: tuple[str, ...]  # the Bytewax key of each sequence shard (flows.placement.stage_keys)
    max_event_bytes: int
    limits: Limits | None = None  # unknown-field size and event-time bounds (ingest.*); None: not checked
    max_output_bytes: int = MAX_OUTPUT_BYTES  # a dead letter's JSON is at most this
    highs: dict[str, int] = field(default_factory=dict, compare=False)  # partition -> latest event time

    def __call__(self, batch: list[SourceMessage | CaughtUp]) -> list[Keyed | Output]:
        out: list[Keyed | Output] = []
        touched: dict[str, bool] = {}  # partitions this batch delivered from, in order -> caught up at its end
        decoded: Counter[tuple[str, str]] = Counter()
        stamps: dict[str, list[int]] = {}  # logical topic -> Kafka timestamps (ms) of its messages
        received_at = _now_ms()
        HEALTH.note_input(received_at)
        highs, shards = self.highs, len(self.keys)
        envelopes = [Items() for _ in range(shards)]
        for msg in batch:
            if isinstance(msg, CaughtUp):
                touched[f"{msg.topic}:{msg.partition}"] = True
                continue
            topic = self.topics.get(msg.topic or "", "")
            result = parse(
                msg.value, topic, max_bytes=self.max_event_bytes, limits=self.limits, received_at_ms=received_at
            )
            if isinstance(result, Rejection):
                out.append(rejected(msg, result, topic or str(msg.topic), received_at, self.max_output_bytes))
                continue
            decoded[topic, result.type] += 1
            stamp = msg.timestamp
            if stamp is not None and stamp[0]:
                stamps.setdefault(topic, []).append(stamp[1])
            shard = shard_of(result.event_id, shards)
            source = f"{msg.topic}:{msg.partition}"
            high = max(highs.get(source, -1), result.ts)
            highs[source] = high
            envelopes[shard].append(Arrival(result, source, high))
            touched[source] = False
        for source, caught_up in touched.items():
            # The partition's latest event time so far: the watermark keeps each partition's maximum anyway.
            marker = Marker(source, highs.get(source, -1), received_at, caught_up)
            for items in envelopes:
                items.append(marker)
        out.extend(_sealed(self.keys, envelopes))
        for (topic, event_type), count in decoded.items():
            metrics.EVENTS.labels(topic, event_type).inc(count)
        for topic, sent in stamps.items():
            histogram = metrics.INGEST_LATENCY.labels(topic)
            for at in sent:
                histogram.observe(max(0.0, (received_at - at) / 1000))
        return out


#: Dead letters keep at most this much of the input's Kafka key (keys can be as large as values).
MAX_KEY_CHARS = 1_024


def rejected(
    msg: SourceMessage, rejection: Rejection, topic: str, received_at: int, max_bytes: int = MAX_OUTPUT_BYTES
) -> Output:
    """The dead-letter output of a refused message (counted); its JSON is at most ``max_bytes``."""
    metrics.DEAD_LETTERS.labels(topic, rejection.error).inc()
    record = dead_letter(
        msg.value,
        rejection,
        source_topic=topic,
        partition=msg.partition,
        offset=msg.offset,
        received_at_ms=received_at,
        max_bytes=max_bytes,
    )
    key = msg.key[: MAX_KEY_CHARS * 4].decode("utf-8", "replace") if msg.key else ""
    return Output("dead_letters", key[:MAX_KEY_CHARS] or f"{topic}:{msg.partition}", record, received_at)


def kafka_error(topics: Mapping[str, str]) -> Callable[[KafkaError[bytes | None, bytes | None]], Output]:
    """``map`` step for the source's error stream: consumer errors become dead letters."""

    def to_dead_letter(error: KafkaError[bytes | None, bytes | None]) -> Output:
        topic = topics.get(error.msg.topic or "", str(error.msg.topic))
        return rejected(error.msg, Rejection("kafka_error", str(error.err)), topic, _now_ms())

    return to_dead_letter


def is_output(item: Any) -> TypeGuard[Output]:
    return isinstance(item, Output)


def is_keyed_output(keyed: tuple[str, Any]) -> bool:
    return isinstance(keyed[1], Output)


@dataclass(frozen=True)
class Sequence:
    """Builder of the ``stateful`` ``sequence`` step over :class:`Sequencer` shards.

    Besides events and markers, a shard acts on a wall-clock tick (so a quiet
    or never-heard-from partition stops holding the watermark back even when
    no data arrives) and at the end of a bounded input (the watermark passes
    the latest event read, so downstream stages apply everything they hold).
    """

    lateness_ms: int
    idle_timeout_ms: int
    dedupe_horizon_ms: int
    partitions: int
    stores: frozenset[str] = frozenset()  # label values allowed for `store`; others count as "other"
    entity_stores: EntityStores | None = None  # where snapshots keep their entries; None: recovery off
    live_lateness_ms: int | None = None  # None: the same as lateness_ms

    def __call__(self, resume: object) -> SequenceLogic:
        return SequenceLogic(self, *thaw(self.entity_stores, "sequence", resume))

    @property
    def tick_ms(self) -> int:
        """How often (wall-clock ms) a shard re-judges quiet and live partitions: twice per
        ``live_lateness`` (a live output waits for the tick after the live watermark passes it).

        >>> Sequence(30_000, 60_000, 60_000, 8, live_lateness_ms=250).tick_ms, Sequence(30_000, 60_000, 60_000, 8).tick_ms
        (125, 1000)
        """
        live = self.lateness_ms if self.live_lateness_ms is None else self.live_lateness_ms
        return max(100, min(self.idle_timeout_ms // 4, live // 2, 1_000))

    def new_shard(self, shard: int) -> Sequencer:
        return Sequencer(
            shard,
            lateness_ms=self.lateness_ms,
            idle_timeout_ms=self.idle_timeout_ms,
            dedupe_horizon_ms=self.dedupe_horizon_ms,
            partitions=self.partitions,
            live_lateness_ms=self.live_lateness_ms,
        )


RETAIN = StatefulBatchLogic.RETAIN


class SequenceLogic(StatefulBatchLogic[Envelope, SequencedItem, "bytes | None"]):
    """One sequence shard's Bytewax logic (see :class:`Sequence`)."""

    def __init__(self, step: Sequence, state: Sequencer | None, store: EntityStore | None) -> None:
        self.step = step
        self.state = state
        self.store = store
        self.tick_ms = step.tick_ms
        if state is not None:
            state.resume(_now_ms())
            note_kept("sequence", state.reconfigure(step.new_shard(state.shard)))

    def on_batch(self, values: list[Envelope]) -> tuple[list[SequencedItem], bool]:
        out: list[SequencedItem] = []
        if not values:
            return out, RETAIN
        stores = self.step.stores
        state = self.state
        if state is None:
            shard = values[0][0]  # every envelope of a key is its shard's
            state = self.state = self.step.new_shard(shard)
            self.store = open_store(self.step.entity_stores, "sequence", shard)
        # One progress record per batch, after all its events: the watermark only moves forward, so
        # the last supersedes the others, and each goes to every shard of every stage downstream.
        progress: Progress | None = None
        for item in _items(values):
            if isinstance(item, Marker):
                progress = state.advance(item) or progress
                continue
            event = item.event
            admission = state.admit(event, item.source, item.high)
            if admission.late:
                metrics.LATE_EVENTS.labels(event.topic).inc()
            if admission.duplicate:
                metrics.DUPLICATES.labels(event.topic).inc()
                continue
            count_kpi(event, stores)
            out.append(event)
        out.extend(self._emit(progress))
        return out, RETAIN

    def on_notify(self) -> tuple[list[SequencedItem], bool]:
        if self.state is None:
            return [], RETAIN
        return self._emit(self.state.tick(_now_ms())), RETAIN

    def on_eof(self) -> tuple[list[SequencedItem], bool]:
        # A stop signal also ends the input (flows.kafka_source): then the watermark stays where
        # the log got to, so a restart resumes exactly.
        if self.state is None or STOP.is_set():
            return [], RETAIN
        return self._emit(self.state.finish()), RETAIN

    def notify_at(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(milliseconds=self.tick_ms)

    def snapshot(self) -> bytes | None:
        return freeze(self.state, self.store)

    def _emit(self, progress: Progress | None) -> list[SequencedItem]:
        if progress is None:
            return []
        now = _now_ms()
        HEALTH.note_watermark(now)
        label = str(progress.shard)
        metrics.WATERMARK.labels(label).set(progress.watermark / 1000)
        metrics.WATERMARK_LAG.labels(label).set(max(0.0, (now - progress.watermark) / 1000))
        return [progress]


def count_kpi(event: Event, stores: frozenset[str]) -> None:
    """Add a de-duplicated event's orders, revenue and returns to the metrics.

    Store ids come from input, so only configured ones become label values.
    """
    if event.type == "add_to_cart":
        _kpi_counters("add_to_cart", event.body["channel"], "online")[0].inc()
        return
    kpi = kpi_of(event)
    if kpi is None:
        return
    store = kpi.store if kpi.store == "online" or kpi.store in stores else "other"
    count, amount = _kpi_counters(kpi.kind, kpi.channel, store)
    count.inc()
    amount.inc(from_millis(kpi.amount_millis))


@cache
def _kpi_counters(kind: str, channel: str, store: str) -> tuple[Any, Any]:
    """The (count, amount) metric children of a KPI, looked up once per label set.

    Bounded: channels are the contract's, stores the configured ones plus online and other.
    """
    if kind == "add_to_cart":
        return metrics.ADD_TO_CARTS.labels(channel, store), None
    if kind == "order":
        return metrics.ORDERS.labels(channel, store), metrics.REVENUE.labels(channel, store)
    return metrics.RETURNS.labels(channel, store), metrics.REFUNDS.labels(channel, store)


@dataclass(frozen=True)
class Route:
    """``flat_map_batch`` step: send events and signals of the streams this stage
    ``reads`` to their domain shards, progress to every shard."""

    keys: tuple[str, ...]  # the Bytewax key of each shard of the stage (flows.placement.stage_keys)
    routes: Callable[[Any, int], Iterable[int]]
    reads: frozenset[str] = frozenset({EVENTS})

    def __call__(self, batch: list[tuple[str, StageItem]]) -> list[Keyed]:
        routes, reads = self.routes, self.reads
        shards = len(self.keys)
        envelopes = [Items() for _ in range(shards)]
        for _, item in batch:
            if isinstance(item, Progress):
                for items in envelopes:
                    items.append(item)
            elif not isinstance(item, Signal) or item.stream in reads:
                for k in routes(item, shards):
                    envelopes[k].append(item)
        return _sealed(self.keys, envelopes)


def route_signal(signal: Signal, shards: int) -> list[int]:
    """Route of a signal: the shard of its key."""
    return [shard_of(signal.key, shards)]


@dataclass(frozen=True)
class RunDomain:
    """Builder of a domain stage's ``keyed_stage`` step over :class:`DomainShard` s.

    With ``stage`` set, a shard whose watermark moved tells the stages
    downstream with a :class:`Progress` after its outputs. A ``live`` stage
    takes the first stage's live watermark (:attr:`Progress.live`). Signals on streams
    no stage reads (not in ``listened``) are dropped here. ``snapshots`` is
    whether recovery is on (see :mod:`flows.stateful`).
    """

    make_domain: Callable[[int], Domain]
    upstreams: int
    observe_shard: Callable[[int, Any], None] | None = None
    ordered: bool = False
    stage: str | None = None
    listened: frozenset[str] = frozenset()
    entity_stores: EntityStores | None = None  # where snapshots keep their entries; None: recovery off
    live: bool = False  # follows the first stage's live watermark (Progress.live)
    name: str = ""  # the stage's name, for logs and its snapshots' stores

    def __call__(self, resume: object) -> DomainLogic:
        return DomainLogic(self, *thaw(self.entity_stores, self.name, resume))

    def apply(
        self, state: DomainShard[Any] | None, values: list[Envelope]
    ) -> tuple[DomainShard[Any] | None, list[Output | Signal | Progress]]:
        """Apply a batch of one shard's envelopes, their items in order; its new state and its outputs."""
        if not values:
            return state, []
        shard = values[0][0]  # a batch is one shard's
        if state is None:
            state = DomainShard(self.make_domain(shard), self.upstreams, ordered=self.ordered)
        start = state.watermark
        outputs: list[Any] = []
        for item in _items(values):
            if not isinstance(item, Progress):
                outputs.extend(state.on_event(item))
                continue
            if self.live and item.live is not None:
                item = Progress(item.shard, item.live, item.stage)
            outputs.extend(state.on_progress(item))
        # Acted on once per batch, after all its outputs, when the watermark moved (most progress
        # records do not move the minimum; the last move supersedes the others).
        if state.watermark != start:
            if self.observe_shard is not None:
                self.observe_shard(shard, state.domain)
            if self.stage is not None:
                outputs.append(Progress(shard, state.watermark, self.stage))  # type: ignore[arg-type]
        listened = self.listened
        return state, [item for item in outputs if not isinstance(item, Signal) or item.stream in listened]


class DomainLogic(StatefulBatchLogic[Envelope, "Output | Signal | Progress", "bytes | None"]):
    """One domain shard's Bytewax logic (see :class:`RunDomain`)."""

    def __init__(self, run: RunDomain, state: DomainShard[Any] | None, store: EntityStore | None) -> None:
        self.run = run
        self.state = state
        self.store = store
        self._restored = state  # takes today's settings with its first batch (its shard number)

    def on_batch(self, values: list[Envelope]) -> tuple[list[Output | Signal | Progress], bool]:
        if self._restored is not None and values:
            note_kept(self.run.name, self._restored.reconfigure(self.run.make_domain(values[0][0])))
            self._restored = None
        elif self.state is None and values:
            self.store = open_store(self.run.entity_stores, self.run.name, values[0][0])
        self.state, outputs = self.run.apply(self.state, values)
        return outputs, RETAIN

    def snapshot(self) -> bytes | None:
        return freeze(self.state, self.store)


def _items(envelopes: list[Envelope]) -> Iterator[Any]:
    """The items of a shard's envelopes, in order."""
    return chain.from_iterable(items for _, items in envelopes)


_KEPT_LOGGED: set[tuple[str, tuple[str, ...]]] = set()


def note_kept(stage: str, kept: tuple[str, ...]) -> None:
    """Warn (once per stage) that a restored stage keeps settings its state was written with."""
    if not kept or (stage, kept) in _KEPT_LOGGED:
        return
    _KEPT_LOGGED.add((stage, kept))
    what = "its settings" if kept == ("*",) else ", ".join(kept)
    log.warning(
        "stage %r resumed from recovery state keeps %s as the state was written: the config now differs "
        "and is not applied to this stage (a fresh flow.recovery_dir applies it; see docs/configuration.md)",
        stage, what,
    )


def unkey(batch: list[tuple[str, Any]]) -> list[Any]:
    """``flat_map_batch`` step: the values of keyed items."""
    return [value for _, value in batch]


def each(mapper: Callable[[Any], Any]) -> Callable[[list[Any]], list[Any]]:
    """A ``flat_map_batch`` step that maps each item of a batch with ``mapper`` into a list
    (``op.map`` hands Bytewax a generator per batch, slower to drain)."""

    def mapped(batch: list[Any]) -> list[Any]:
        return [mapper(item) for item in batch]

    return mapped


def to_kafka(
    topic_names: Mapping[str, str], max_output_bytes: int = MAX_OUTPUT_BYTES
) -> Callable[[Output], KafkaSinkMessage[bytes, bytes]]:
    """``map`` step: an :class:`Output` as a Kafka message for its configured topic.

    Never raises on a record: one that orjson cannot encode (an integer beyond 64 bits, a
    NaN key, nesting beyond orjson's 254 levels, ...) or whose JSON is over
    ``max_output_bytes`` becomes an ``unserializable`` dead letter naming its logical topic.
    """

    # Per-topic metric children, looked up once per topic (five of them) rather than per record.
    children: dict[str, tuple[Any, Any]] = {}

    def serialize(output: Output) -> KafkaSinkMessage[bytes, bytes]:
        try:
            value = orjson.dumps(output.value)
            if len(value) > max_output_bytes:
                return unserializable(output, f"{len(value)} bytes is over ingest.max_output_bytes ({max_output_bytes})")
            message = KafkaSinkMessage(key=_key_bytes(output.key), value=value, topic=topic_names[output.topic])
        except Exception as exc:  # a record must never stop the flow
            return unserializable(output, f"cannot be written as JSON: {type(exc).__name__}: {exc}")
        topic = output.topic
        counted, latency = children.get(topic) or children.setdefault(
            topic, (metrics.OUTPUTS.labels(topic), metrics.END_TO_END_LATENCY.labels(topic))
        )
        counted.inc()
        if output.ts_ms is not None:
            latency.observe(max(0.0, (_now_ms() - output.ts_ms) / 1000))
        return message

    def unserializable(output: Output, detail: str) -> KafkaSinkMessage[bytes, bytes]:
        topic = str(output.topic)
        metrics.DEAD_LETTERS.labels(topic, "unserializable").inc()
        metrics.OUTPUTS.labels("dead_letters").inc()
        record = dead_letter(
            _bounded_repr(output.value).encode("utf-8", "replace"),
            Rejection("unserializable", detail),
            source_topic=topic,
            partition=None,
            offset=None,
            received_at_ms=_now_ms(),
            max_bytes=max_output_bytes,
        )
        cause = output.value.get("cause_event_id") if isinstance(output.value, dict) else None
        if isinstance(cause, str):
            record["cause_event_id"] = cause[:256]
        key = output.key if isinstance(output.key, str) else topic
        return KafkaSinkMessage(
            key=_key_bytes(key),
            value=orjson.dumps(record),
            topic=topic_names["dead_letters"],
        )

    return serialize


def _key_bytes(key: str) -> bytes:
    """A record's Kafka key, at most :data:`MAX_KEY_CHARS` characters of it."""
    return key[:MAX_KEY_CHARS].encode("utf-8", "replace")


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxstring, _REPR.maxother = 8, 64, 64, 1_000, 200


def _bounded_repr(value: Any) -> str:
    """A short, always computable text of a record that could not be encoded (for its dead letter)."""
    try:
        return _REPR.repr(value)
    except Exception as exc:  # e.g. an int too long to print
        return f"<{type(value).__name__}: {type(exc).__name__}>"
