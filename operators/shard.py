"""A shard of a domain stage: domain state plus an event-time clock and timers.

A domain (inventory, customers, ...) holds the state of many entities; the
flow keys it by ``shard_of(entity_id)``. The shard feeds it events, and when
the watermark reported by the upstream shards moves, fires its due timers in
deadline order: timers fire for entities that never send another event, and
at full replay speed exactly as live.

>>> class Echo:
...     def on_event(self, event, shard): shard.timers.schedule(event.event_id, event.ts + 10, None); return []
...     def on_timer(self, timer, shard): return [Output("alerts", timer.key, {"at": timer.deadline})]
...     def on_watermark(self, shard): return []
>>> from operators.contract import Event
>>> shard = DomainShard(Echo(), upstreams=1)
>>> shard.on_event(Event("e1", "search", "clickstream", 100, {}))
[]
>>> shard.on_progress(Progress(0, 200))
[Output(topic='alerts', key='e1', value={'at': 110})]
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

from operators.contract import Event
from operators.stream_items import Output, Progress
from operators.timers import Timer, TimerQueue
from operators.watermark import UpstreamWatermark


class Domain(Protocol):
    """What a domain implements to live in a :class:`DomainShard`."""

    def on_event(self, event: Event, shard: DomainShard[Any]) -> list[Output]:
        """Apply one de-duplicated event; may schedule timers on ``shard.timers``."""
        ...

    def on_timer(self, timer: Timer[Any], shard: DomainShard[Any]) -> list[Output]:
        """A timer's deadline has been passed by the watermark."""
        ...

    def on_watermark(self, shard: DomainShard[Any]) -> list[Output]:
        """The watermark moved (after due timers fired): housekeeping."""
        ...


D = TypeVar("D", bound=Domain)


class DomainShard(Generic[D]):
    """Drives one shard's domain with events, the watermark and timers."""

    def __init__(self, domain: D, upstreams: int) -> None:
        self.domain = domain
        self.clock = UpstreamWatermark(upstreams)
        self.timers: TimerQueue[Any] = TimerQueue()

    @property
    def watermark(self) -> int | None:
        """Event time up to which this shard has seen the whole stream (None: not yet known)."""
        return self.clock.value

    def is_late(self, ts: int) -> bool:
        """True for an event time the watermark has already passed."""
        return self.clock.is_late(ts)

    def on_event(self, event: Event) -> list[Output]:
        """Apply an event; a timer it set behind the watermark (a late event's) fires at once."""
        outputs = self.domain.on_event(event, self)
        due = self.timers.next_deadline()
        if due is not None and self.is_late(due):
            outputs.extend(self._fire_due())
        return outputs

    def on_progress(self, progress: Progress) -> list[Output]:
        """Take an upstream watermark; fire what became due."""
        if not self.clock.report(progress.shard, progress.watermark):
            return []
        outputs = self._fire_due()
        outputs.extend(self.domain.on_watermark(self))
        return outputs

    def _fire_due(self) -> list[Output]:
        # A timer fires once the watermark has passed its deadline (deadline < watermark).
        watermark = self.clock.value
        assert watermark is not None
        outputs: list[Output] = []
        for timer in self.timers.pop_due(watermark - 1):
            outputs.extend(self.domain.on_timer(timer, self))
        return outputs
