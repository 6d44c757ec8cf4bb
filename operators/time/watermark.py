"""The event-time watermark: how far the stream as a whole has got.

Two views of the same idea, one per stage of the flow:

* :class:`PartitionWatermark` (first stage) folds the latest event time of
  every input partition: the watermark is the minimum over partitions minus
  the allowed lateness. A partition that has delivered nothing for
  ``idle_timeout_ms`` of wall-clock time (as stamped on the progress markers)
  no longer holds it back, so a quiet partition cannot stall timers forever;
  a partition not heard from at all counts as quiet once the idle timeout has
  passed since the first marker. Idleness is on the wall clock on purpose: in
  a replay at full speed every partition keeps delivering, so none is idle and
  the watermark is the true minimum, whatever the partitions' relative pace.
* :class:`UpstreamWatermark` (later stages) is the minimum of the watermarks
  reported by each upstream shard: a downstream shard has seen everything up
  to it once every upstream shard has said so.

Both only move forward. An event is *late* when its time is before the
watermark; a timer fires once the watermark has passed its deadline.

>>> wm = PartitionWatermark(lateness_ms=10, idle_timeout_ms=60_000, partitions=2)
>>> wm.observe("pos:0", 1_500, now_ms=0), wm.value  # pos:1 not heard from yet: wait
(False, None)
>>> wm.observe("pos:1", 1_200, now_ms=1_000), wm.value
(True, 1190)
>>> wm.observe("pos:0", 9_000, now_ms=70_000), wm.value  # pos:1 silent for over a minute
(True, 8990)
"""

from __future__ import annotations

from collections.abc import Hashable


class _Watermark:
    """What both watermarks share: a value that only moves forward."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: int | None = None

    def _advance(self, candidate: int) -> bool:
        if self.value is None or candidate > self.value:
            self.value = candidate
            return True
        return False

    def is_late(self, ts: int) -> bool:
        """True when an event at ``ts`` arrives after the watermark passed it."""
        return self.value is not None and ts < self.value


_PartitionState = tuple[int, int, int, dict[str, int], dict[str, int], int | None, int, int | None]


class PartitionWatermark(_Watermark):
    """Watermark over input partitions with allowed lateness and a wall-clock idle timeout."""

    __slots__ = ("_latest", "_now", "_seen", "_started", "idle_timeout_ms", "lateness_ms", "partitions")

    def __init__(self, lateness_ms: int, idle_timeout_ms: int, partitions: int = 1) -> None:
        super().__init__()
        self.lateness_ms = lateness_ms
        self.idle_timeout_ms = idle_timeout_ms
        self.partitions = partitions
        self._latest: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        self._started: int | None = None
        self._now = 0

    def observe(self, partition: str, ts: int, now_ms: int) -> bool:
        """``partition`` delivered events up to ``ts`` (marker stamped ``now_ms``); True if the watermark moved."""
        if self._started is None:
            self._started = now_ms
        self._seen[partition] = now_ms
        if ts > self._latest.get(partition, -1):
            self._latest[partition] = ts
        return self.tick(now_ms)

    def tick(self, now_ms: int) -> bool:
        """Re-judge idleness at wall-clock ``now_ms`` (no data needed); True if the watermark moved.

        A partition that went quiet, or one never heard from, stops holding
        the watermark back once ``idle_timeout_ms`` has passed.
        """
        self._now = max(self._now, now_ms)
        if self._started is None or not self._latest:
            return False
        if len(self._latest) < self.partitions and self._now - self._started <= self.idle_timeout_ms:
            return False  # some partition may still be about to deliver older events
        horizon = self._now - self.idle_timeout_ms
        active = [latest for p, latest in self._latest.items() if self._seen[p] >= horizon]
        if not active:
            return False  # every partition is quiet: nothing new to say
        return self._advance(min(active) - self.lateness_ms)

    def finish(self) -> bool:
        """The input has ended: move past the latest event time read, so that
        everything up to it is due. True if the watermark moved."""
        if not self._latest:
            return False
        return self._advance(max(self._latest.values()) + 1)

    def latest_of(self, partition: str) -> int:
        """Latest event time ``partition`` has reported (-1: none yet)."""
        return self._latest.get(partition, -1)

    def latest(self) -> dict[str, int]:
        """Latest event time per partition."""
        return dict(self._latest)

    def __getstate__(self) -> _PartitionState:
        return (self.lateness_ms, self.idle_timeout_ms, self.partitions, self._latest, self._seen,
                self._started, self._now, self.value)

    def __setstate__(self, state: _PartitionState) -> None:
        (self.lateness_ms, self.idle_timeout_ms, self.partitions, self._latest, self._seen,
         self._started, self._now, self.value) = state


class UpstreamWatermark(_Watermark):
    """Minimum of the watermarks reported by ``upstreams`` upstream shards.

    Upstreams are named by any hashable id: a shard number, or a
    ``(stage, shard)`` pair when shards of several stages feed one.

    >>> wm = UpstreamWatermark(upstreams=2)
    >>> wm.report(0, 100), wm.value
    (False, None)
    >>> wm.report(1, 80), wm.value
    (True, 80)
    """

    __slots__ = ("_reported", "upstreams")

    def __init__(self, upstreams: int) -> None:
        super().__init__()
        self.upstreams = upstreams
        self._reported: dict[Hashable, int] = {}

    def report(self, upstream: Hashable, watermark: int) -> bool:
        """Take upstream shard ``upstream``'s watermark; True if this watermark moved."""
        if watermark <= self._reported.get(upstream, watermark - 1):
            return False
        self._reported[upstream] = watermark
        if len(self._reported) < self.upstreams:
            return False
        candidate = min(self._reported.values())
        return self._advance(candidate)

    def __getstate__(self) -> tuple[int, dict[Hashable, int], int | None]:
        return (self.upstreams, self._reported, self.value)

    def __setstate__(self, state: tuple[int, dict[Hashable, int], int | None]) -> None:
        self.upstreams, self._reported, self.value = state
