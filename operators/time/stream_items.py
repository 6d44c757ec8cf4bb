"""What flows between the stages besides events: progress markers, signals and outputs."""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from operators.contract.events import Event
from operators.records import fast_init
from operators.state.pickling import pickled_as_call


@pickled_as_call
@fast_init
@dataclass(frozen=True, slots=True)
class Marker:
    """Input partition ``source`` (``topic:partition``) has delivered events up to ``ts``.

    Emitted after each source batch to every first-stage shard, along the same
    path as the events, so a shard that got the marker has got the events
    before it. ``seen_at`` is the wall-clock time (epoch ms) of the batch, for
    the idle-partition timeout; ``caught_up``: the partition had delivered all
    the broker held (see :class:`~operators.time.watermark.PartitionWatermark`).
    """

    source: str
    ts: int
    seen_at: int
    caught_up: bool = False


class Arrival(NamedTuple):
    """An event as it arrived from input partition ``source`` (``topic:partition``),
    with ``high``, the latest event time that partition had delivered up to and
    including it: the event's position in its partition's event time."""

    event: Event
    source: str
    high: int


@pickled_as_call
@fast_init
@dataclass(frozen=True, slots=True)
class Progress:
    """Shard ``shard`` of stage ``stage`` has forwarded everything up to ``watermark``.

    ``live`` (first stage only) is the watermark for stages that publish as soon
    as they can, when it is ahead of ``watermark`` (None: the same), as it is
    when some input partition is live
    (:class:`~operators.time.watermark.PartitionWatermark`).
    """

    shard: int
    watermark: int
    stage: str = "sequence"
    live: int | None = None


@pickled_as_call
@fast_init
@dataclass(frozen=True, slots=True)
class Signal:
    """A record a domain stage publishes on its named ``stream``, routed by ``key``.

    The producer names what it says, never who listens: the flow
    (``flows/topology.py``) connects each stream to the stages that read it
    and drops streams nobody reads. ``ts`` is the event time it carries and ``order`` a unique, deterministic
    tie-break (e.g. the cause event id and a suffix), so an ordered stage
    applies signals in the same order in every run, whatever their arrival
    order across workers.
    """

    stream: str
    key: str
    ts: int
    order: str
    body: Any


@pickled_as_call
@fast_init
@dataclass(frozen=True, slots=True)
class Output:
    """A record for an output topic: logical topic name, Kafka key and JSON value.

    Logical topics: ``promotions``, ``promotion_decisions``, ``inventory_updates``, ``alerts``,
    ``customer_scores``, ``dead_letters``. ``ts_ms`` is the event time the
    record's ``ts`` shows, as epoch ms (for the end-to-end latency metric;
    not part of the record or of equality).
    """

    topic: str
    key: str
    value: dict[str, Any]
    ts_ms: int | None = field(default=None, compare=False, repr=False)


#: orjson refuses (rather than converts) dataclasses, datetimes and subclasses of JSON types.
_PLAIN_JSON_ONLY = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def pack_items(items: Iterable[Any]) -> tuple[bytes, bytes] | None:
    """Items written fast: their events and arrivals as one JSON document, the other items as one
    pickle; None when an event's body is not plain JSON (``parse`` never makes such a body).

    An event's body is the decoded JSON of its message, so it round-trips exactly, and ``orjson``
    writes and reads it many times faster than ``pickle`` walks it object by object.

    >>> items = [Event("e1", "sale", "pos", 5, {"total": 1.5}), Progress(0, 9), Arrival(Event("e2", "search", "clickstream", 6, {}), "pos:0", 6)]
    >>> unpack_items(*pack_items(items)) == items
    True
    """
    rows: list[Any] = []
    others: list[Any] = []
    for item in items:
        kind = type(item)
        if kind is Event:
            rows.append((item.event_id, item.type, item.topic, item.ts, item.body))
        elif kind is Arrival:
            e = item.event
            rows.append((e.event_id, e.type, e.topic, e.ts, e.body, item.source, item.high))
        else:
            rows.append(len(others))
            others.append(item)
    try:
        packed = orjson.dumps(rows, option=_PLAIN_JSON_ONLY)
    except TypeError:
        return None
    return packed, pickle.dumps(others, pickle.HIGHEST_PROTOCOL) if others else b""


def unpack_items(packed: bytes, pickled: bytes, into: list[Any] | None = None) -> list[Any]:
    """The items :func:`pack_items` wrote, in order (appended to ``into`` if given)."""
    others = pickle.loads(pickled) if pickled else []
    items = [] if into is None else into
    append = items.append
    for row in orjson.loads(packed):
        if type(row) is int:
            append(others[row])
        elif len(row) == 5:
            append(Event(*row))
        else:
            append(Arrival(Event(*row[:5]), row[5], row[6]))
    return items
