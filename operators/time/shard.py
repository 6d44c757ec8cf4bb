"""A shard of a domain stage: domain state plus an event-time clock and timers.

A domain (inventory, customers, ...) holds the state of many entities; the
flow keys it by ``shard_of(entity_id)``. The shard feeds it events, and when
the watermark reported by the upstream shards moves, fires its due timers in
deadline order: timers fire for entities that never send another event, and
at full replay speed exactly as live.

An *ordered* shard holds items back until the watermark passes them and then
applies items and timers together in event-time order (items by
``(ts, event_id or order)``, an item before a timer due at the same time). Its
domain then sees the same sequence in every run, whatever the arrival order
across workers: the price is a delay of one watermark step. A late item (the
watermark already passed it) is applied at once.

>>> from operators.time.stream_items import Output
>>> class Echo:
...     def on_event(self, event, shard): shard.timers.schedule(event.event_id, event.ts + 10, None); return []
...     def on_timer(self, timer, shard): return [Output("alerts", timer.key, {"at": timer.deadline})]
...     def on_watermark(self, shard): return []
>>> from operators.contract.events import Event
>>> shard = DomainShard(Echo(), upstreams=1)
>>> shard.on_event(Event("e1", "search", "clickstream", 100, {}))
[]
>>> shard.on_progress(Progress(0, 200))
[Output(topic='alerts', key='e1', value={'at': 110})]
>>> ordered = DomainShard(Echo(), upstreams=1, ordered=True)
>>> ordered.on_event(Event("e2", "search", "clickstream", 300, {})), ordered.pending
([], 1)
>>> ordered.on_progress(Progress(0, 400))
[Output(topic='alerts', key='e2', value={'at': 310})]
"""

from __future__ import annotations

import pickle
from bisect import bisect_left
from dataclasses import fields, is_dataclass, replace
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import orjson

from operators.contract.events import Event
from operators.state.tracked import TrackedDict
from operators.time.stream_items import Progress, Signal, pack_items, unpack_items
from operators.time.timers import Timer, TimerQueue
from operators.time.watermark import UpstreamWatermark


class Domain(Protocol):
    """What a domain implements to live in a :class:`DomainShard`."""

    def on_event(self, event: Any, shard: DomainShard[Any]) -> list[Any]:
        """Apply one de-duplicated event (or an upstream stage's :class:`Signal`);
        may schedule timers on ``shard.timers``."""
        ...

    def on_timer(self, timer: Timer[Any], shard: DomainShard[Any]) -> list[Any]:
        """A timer's deadline has been passed by the watermark."""
        ...

    def on_watermark(self, shard: DomainShard[Any]) -> list[Any]:
        """The watermark moved (after due timers fired): housekeeping."""
        ...


@runtime_checkable
class Reconfigurable(Protocol):
    """A domain that takes today's settings when it is restored from a snapshot."""

    def reconfigure(self, fresh: Any) -> tuple[str, ...]:
        """Run on with the settings of ``fresh``, a new domain of the same shard built from the
        current config, keeping the state (entities, timers, counts); return the settings it
        cannot take and keeps as its state was written (empty: it took them all)."""
        ...


def changed_settings(old: object, new: object) -> tuple[str, ...]:
    """The fields of two settings dataclasses that differ (all of them, ``"*"``, if they are not
    both dataclasses of one type).

    >>> from operators.customers.book import CustomerSettings
    >>> changed_settings(CustomerSettings(1, 2, 3, 4, ()), CustomerSettings(1, 2, 3, 5, ()))
    ('recent_views',)
    """
    if old == new:
        return ()
    if type(old) is not type(new) or not is_dataclass(old):
        return ("*",)
    return tuple(f.name for f in fields(old) if f.compare and getattr(old, f.name) != getattr(new, f.name))


def take_settings(old: S, new: S, kept_fields: tuple[str, ...]) -> tuple[S, tuple[str, ...]]:
    """``new`` settings, but for ``kept_fields`` (those a domain's state was built with) as in
    ``old``; and which of those differ (kept).

    >>> from operators.customers.book import CustomerSettings
    >>> take_settings(CustomerSettings(1, 2, 3, 4, ()), CustomerSettings(9, 2, 3, 5, ()), ("horizon_ms",))
    (CustomerSettings(horizon_ms=1, tick_ms=2, device_ttl_ms=3, recent_views=5, tiers=(), learn_every=1), ('horizon_ms',))
    """
    kept = tuple(name for name in changed_settings(old, new) if name in kept_fields)
    return replace(new, **{name: getattr(old, name) for name in kept}), kept  # type: ignore[type-var]


#: ``DomainShard._held_min`` when nothing is held (later than any event time).
_NOTHING_HELD = 1 << 62

D = TypeVar("D", bound=Domain)
S = TypeVar("S")


Item = Event | Signal


class DomainShard(Generic[D]):
    """Drives one shard's domain with items, the watermark and timers.

    Outputs are :class:`Output` records for Kafka, or :class:`Signal` s for a
    downstream stage.
    """

    # A shard restored from a snapshot written before this was kept sorts at its next step.
    _held_min = -_NOTHING_HELD

    def __init__(self, domain: D, upstreams: int, *, ordered: bool = False) -> None:
        self.domain = domain
        self.clock = UpstreamWatermark(upstreams)
        self.timers: TimerQueue[Any] = TimerQueue()
        self.ordered = ordered
        # (ts, order, arrival number, item): a sorted run, then what arrived since the last
        # watermark step with something due, in arrival order. The arrival number only separates
        # copies of one event re-sent beyond the dedupe horizon, which share ts and order (and
        # never compares items). Items arrive as runs in time order (one per partition and
        # upstream shard), so sorting the arrivals and merging them in where they begin costs
        # what arrived and the part of the held items it overlaps, not all that is held.
        self._held: list[tuple[int, str, int, Item]] = []
        self._sorted = 0  # the length of the sorted run
        self._arrivals = 0
        # The earliest time held: a watermark step with nothing due (most, when batches are
        # small) neither sorts nor copies.
        self._held_min = _NOTHING_HELD
        # What a snapshot keeps of the held items: chunks of the items that arrived between two
        # snapshots, each written once (chunk number -> latest time in it, the items), in a
        # tracked dict, so a snapshot stores the new chunk, not everything held (live, ordered
        # stages hold ``allowed_lateness`` of events). ``_fresh``: the entries held since the last
        # chunk, in arrival order (some may be applied since: a snapshot keeps those still held).
        self._chunks: TrackedDict[int, tuple[int, HeldChunk]] = TrackedDict()
        self._fresh: list[tuple[int, str, int, Item]] = []

    def __getstate__(self) -> dict[str, Any]:
        """For a snapshot: the held items' new arrivals become a chunk, and chunks the watermark
        has wholly passed are dropped; the held list itself is not pickled."""
        state = self.__dict__.copy()
        del state["_held"], state["_sorted"], state["_fresh"]
        chunks, watermark = self._chunks, self.clock.value
        # Held: arrived and not yet passed by the watermark (an item it passes is applied at once).
        arrived = self._fresh if watermark is None else [entry for entry in self._fresh if entry[0] >= watermark]
        self._fresh = []
        if arrived:
            chunks[self._arrivals] = (max(entry[0] for entry in arrived), _pack_held(arrived))
        if watermark is not None:  # a chunk whose items are all due by now is read no more
            for number in [number for number, (latest, _) in chunks.items() if latest < watermark]:
                del chunks[number]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restored: the held items rebuilt from the chunks (or taken as an older release wrote them)."""
        self.__dict__.update(state)
        self.__dict__.pop("_chunked", None)  # kept by releases before: the last arrival in a chunk
        if "_held" in state:  # written by a release that pickled the held items whole
            self.__dict__.pop("_unsorted", None)
            self._chunks, self._fresh = TrackedDict(), sorted(self._held, key=_arrival)
            self._sorted = 0
            return
        # The items held are those in the chunks that the watermark had not passed: a held item
        # leaves as soon as the watermark passes it.
        watermark = self.clock.value
        held = [
            entry
            for last, (_, data) in self._chunks.items()
            for entry in _unpack_held(data, last)
            if watermark is None or entry[0] >= watermark
        ]
        held.sort()
        self._held, self._sorted, self._fresh = held, len(held), []

    @property
    def watermark(self) -> int | None:
        """Event time up to which this shard has seen the whole stream (None: not yet known)."""
        return self.clock.value

    @property
    def pending(self) -> int:
        """Items an ordered shard holds until the watermark passes them."""
        return len(self._held)

    def reconfigure(self, fresh: D) -> tuple[str, ...]:
        """Restored from a snapshot: let the domain take the settings of ``fresh`` (a new domain
        of this shard from the current config) if it can (:class:`Reconfigurable`). Returns the
        settings fields that differ and that the domain keeps as its state was written (empty
        when it took them all)."""
        if isinstance(self.domain, Reconfigurable):
            return self.domain.reconfigure(fresh)
        return changed_settings(getattr(self.domain, "settings", None), getattr(fresh, "settings", None))

    def is_late(self, ts: int) -> bool:
        """True for an event time the watermark has already passed."""
        return self.clock.is_late(ts)

    def on_event(self, item: Item) -> list[Any]:
        """Apply an item (an ordered shard holds it until the watermark passes it);
        a timer set behind the watermark (by a late item) fires at once."""
        if self.ordered:
            watermark = self.clock.value
            ts = item.ts
            if watermark is None or ts >= watermark:  # not late (the clock's is_late, inlined: per item)
                self._arrivals += 1
                entry = (ts, _order(item), self._arrivals, item)
                self._held.append(entry)
                self._fresh.append(entry)
                if ts < self._held_min:
                    self._held_min = ts
                return []
        outputs = self.domain.on_event(item, self)
        due = self.timers.next_deadline()
        if due is not None and self.is_late(due):
            outputs.extend(self._fire_due())
        return outputs

    def on_progress(self, progress: Progress) -> list[Any]:
        """Take an upstream watermark; apply what became due."""
        if not self.clock.report((progress.stage, progress.shard), progress.watermark):
            return []
        outputs = self._fire_due()
        outputs.extend(self.domain.on_watermark(self))
        return outputs

    def _fire_due(self) -> list[Any]:
        # Items and timers are due once the watermark has passed them (time < watermark); an
        # item goes before a timer due at the same time.
        watermark = self.clock.value
        assert watermark is not None
        limit = watermark - 1
        outputs: list[Any] = []
        held = self._held
        if self._held_min < watermark:  # some item is due
            self._sort_held()
            due = bisect_left(held, (watermark,))  # the items with ts <= limit
            items = held[:due]
            del held[:due]
            self._sorted = len(held)
            self._held_min = held[0][0] if held else _NOTHING_HELD
            if len(self._fresh) > 2 * len(held) + 1_024:  # no snapshot takes them (recovery off)
                self._fresh = [entry for entry in self._fresh if entry[0] >= watermark]
            on_event, timers = self.domain.on_event, self.timers
            for ts, _, _, item in items:
                if timers.may_be_due(ts - 1):
                    outputs.extend(self._fire_timers(ts - 1))
                outputs.extend(on_event(item, self))
        outputs.extend(self._fire_timers(limit))
        return outputs

    def _sort_held(self) -> None:
        """Merge what arrived since the last sort into the sorted run of held items."""
        held, done = self._held, self._sorted
        if done == len(held):
            return
        arrived = held[done:]
        arrived.sort()
        start = bisect_left(held, arrived[0], 0, done)  # where the arrivals begin to interleave
        merged = held[start:done]
        merged.extend(arrived)
        merged.sort()  # two sorted runs: one merge
        held[start:] = merged
        self._sorted = len(held)

    def _fire_timers(self, limit: int) -> list[Any]:
        """Fire the timers due by ``limit`` in deadline order, and those they set that are due too."""
        timers = self.timers
        deadline = timers.next_deadline()
        if deadline is None or deadline > limit:
            return []
        outputs: list[Any] = []
        domain = self.domain
        while deadline is not None and deadline <= limit:
            outputs.extend(domain.on_timer(timers.pop_next(), self))
            deadline = timers.next_deadline()
        return outputs


#: A chunk of held items as a snapshot stores it: the items, in arrival order, as
#: :func:`~operators.time.stream_items.pack_items` writes them (their order keys follow from them).
#: Or, for an event whose body is not plain JSON, the held entries pickled; or, as the release
#: before wrote it, the entries' order keys as JSON and their items as ``pack_items`` writes them.
HeldChunk = tuple[bytes, bytes] | tuple[bytes, bytes, bytes] | bytes


def _pack_held(entries: list[tuple[int, Any, int, Any]]) -> HeldChunk:
    packed = pack_items([entry[3] for entry in entries])
    return pickle.dumps(entries, pickle.HIGHEST_PROTOCOL) if packed is None else packed


def _unpack_held(data: HeldChunk, last: int) -> list[tuple[int, Any, int, Any]]:
    """The held entries of a chunk whose last arrival was number ``last``. Items written without
    their arrival numbers get the numbers up to ``last``, in their order: they arrived after the
    previous chunk's, so every held item keeps its place among the others."""
    if isinstance(data, bytes):
        return pickle.loads(data)
    if len(data) == 3:
        keys, packed, pickled = data
        return [(ts, key, number, item)
                for (ts, key, number), item in zip(orjson.loads(keys), unpack_items(packed, pickled), strict=True)]  # fmt: skip
    items = unpack_items(*data)
    return [(item.ts, _order(item), number, item)
            for number, item in enumerate(items, last - len(items) + 1)]  # fmt: skip


def _order(item: Item) -> str:
    """What orders held items of the same time: an event's id, a signal's order."""
    return item.event_id if isinstance(item, Event) else item.order


def _arrival(entry: tuple[int, Any, int, Any]) -> int:
    return entry[2]
