"""The first keyed stage: de-duplication and the watermark, one shard at a time.

Events reach a sequencer shard by a hash of their ``event_id``, so every copy
of an event meets the same shard. Progress markers from the input reach every
shard; from them the shard derives its :class:`PartitionWatermark` and tells
the stages downstream how far it has got (a :class:`Progress`).

>>> from operators.contract.events import Event
>>> seq = Sequencer(0, lateness_ms=0, idle_timeout_ms=60_000, dedupe_horizon_ms=60_000, partitions=1)
>>> ev = Event("e1", "search", "clickstream", 1_000, {})
>>> seq.admit(ev, "clickstream:0", 1_000), seq.admit(ev, "clickstream:0", 2_000)
(Admission(duplicate=False, late=False), Admission(duplicate=True, late=False))
>>> seq.advance(Marker("clickstream:0", 5_000, seen_at=0))
Progress(shard=0, watermark=5000, stage='sequence', live=None)
"""

from __future__ import annotations

from typing import NamedTuple

from operators.contract.events import Event
from operators.time.dedupe import Deduplicator
from operators.time.stream_items import Marker, Progress
from operators.time.watermark import PartitionWatermark


class Admission(NamedTuple):
    """What the sequencer made of one event."""

    duplicate: bool
    late: bool


class Sequencer:
    """One shard of the first stage: drops repeats, flags late events, derives the watermark."""

    def __init__(
        self,
        shard: int,
        *,
        lateness_ms: int,
        idle_timeout_ms: int,
        dedupe_horizon_ms: int,
        partitions: int,
        live_lateness_ms: int | None = None,
    ) -> None:
        self.shard = shard
        self.watermark = PartitionWatermark(lateness_ms, idle_timeout_ms, partitions, live_lateness_ms)
        self.seen = Deduplicator(dedupe_horizon_ms)

    def admit(self, event: Event, source: str = "", high: int | None = None) -> Admission:
        """Check one event from input partition ``source``: a duplicate is to be dropped, a late one still passes.

        ``high`` is the latest event time ``source`` had delivered up to this
        event, as its decoder saw it since it started; the partition's latest
        marker covers what came before a restart, so their maximum is the
        event's dedupe stamp (see :mod:`operators.time.dedupe`).
        """
        stamp = max(event.ts if high is None else high, self.watermark.latest_of(source))
        return Admission(self.seen.is_duplicate(event.event_id, stamp, event.topic), self.watermark.is_late(event.ts))

    def advance(self, marker: Marker) -> Progress | None:
        """Take a progress marker; the new :class:`Progress` if the watermark moved."""
        return self._progress(self.watermark.observe(marker.source, marker.ts, marker.seen_at, marker.caught_up))

    def tick(self, now_ms: int) -> Progress | None:
        """Wall-clock tick: partitions quiet for the idle timeout stop holding the watermark,
        and live ones run on with the clock."""
        return self._progress(self.watermark.tick(now_ms))

    def resume(self, now_ms: int) -> None:
        """Restored from a snapshot at wall-clock ``now_ms`` (see :meth:`PartitionWatermark.resume`)."""
        self.watermark.resume(now_ms)

    def reconfigure(self, fresh: Sequencer) -> tuple[str, ...]:
        """Restored from a snapshot: run on with ``fresh``'s time settings (today's config).

        The dedupe horizon stays as the state was written: each remembered id's expiry was
        set with it (returned as kept when it differs).
        """
        self.watermark.reconfigure(fresh.watermark)
        self.seen.scope_ids()
        return ("dedupe_horizon_ms",) if fresh.seen.horizon_ms != self.seen.horizon_ms else ()

    def finish(self) -> Progress | None:
        """End of a bounded input: the watermark passes the latest event read.

        Seen ids are kept: the next run may still deliver copies of them.
        """
        return self._progress(self.watermark.finish(), expire=False)

    def _progress(self, moved: bool, *, expire: bool = True) -> Progress | None:
        if not moved:
            return None
        watermark, live = self.watermark.value, self.watermark.live_value
        assert watermark is not None
        if expire:
            self.seen.expire(watermark)
        return Progress(self.shard, watermark, live=None if live == watermark else live)
