"""The event-time watermark: how far the stream as a whole has got.

Two views of the same idea, one per stage of the flow:

* :class:`PartitionWatermark` (first stage) folds the latest event time of
  every input partition: the watermark is the minimum over partitions minus
  the allowed lateness. A partition whose latest event time trails the leading
  partition by more than ``idle_timeout_ms`` no longer holds it back, so a
  quiet partition cannot stall timers forever; a partition not heard from yet
  (of the ``partitions`` expected) counts as such a quiet one. Idleness is judged on event
  time, not on the wall clock, so a replay at full speed gives the same
  watermark sequence as the same events live.
* :class:`UpstreamWatermark` (later stages) is the minimum of the watermarks
  reported by each upstream shard: a downstream shard has seen everything up
  to it once every upstream shard has said so.

Both only move forward. An event is *late* when its time is before the
watermark; a timer fires once the watermark has passed its deadline.

>>> wm = PartitionWatermark(lateness_ms=10, idle_timeout_ms=1_000, partitions=2)
>>> wm.observe("pos:0", 1_500), wm.value  # pos:1 not heard from: at most leader - idle
(True, 490)
>>> wm.observe("pos:1", 1_200), wm.value
(True, 1190)
>>> wm.observe("pos:0", 5_000), wm.value  # pos:1 trails by more than the idle timeout
(True, 3990)
"""

from __future__ import annotations


class PartitionWatermark:
    """Watermark over input partitions with allowed lateness and an idle timeout."""

    __slots__ = ("_latest", "idle_timeout_ms", "lateness_ms", "partitions", "value")

    def __init__(self, lateness_ms: int, idle_timeout_ms: int, partitions: int = 1) -> None:
        self.lateness_ms = lateness_ms
        self.idle_timeout_ms = idle_timeout_ms
        self.partitions = partitions
        self._latest: dict[str, int] = {}
        self.value: int | None = None

    def observe(self, partition: str, ts: int) -> bool:
        """Record that ``partition`` has delivered events up to ``ts``; True if the watermark moved."""
        if ts <= self._latest.get(partition, -1):
            return False
        self._latest[partition] = ts
        latest = self._latest.values()
        leader = max(latest)
        slowest = min(latest) if len(latest) >= self.partitions else leader - self.idle_timeout_ms
        candidate = max(slowest, leader - self.idle_timeout_ms) - self.lateness_ms
        if self.value is None or candidate > self.value:
            self.value = candidate
            return True
        return False

    def is_late(self, ts: int) -> bool:
        """True when an event at ``ts`` arrives after the watermark passed it."""
        return self.value is not None and ts < self.value

    def latest(self) -> dict[str, int]:
        """Latest event time per partition."""
        return dict(self._latest)

    def __getstate__(self) -> tuple[int, int, int, dict[str, int], int | None]:
        return (self.lateness_ms, self.idle_timeout_ms, self.partitions, self._latest, self.value)

    def __setstate__(self, state: tuple[int, int, int, dict[str, int], int | None]) -> None:
        self.lateness_ms, self.idle_timeout_ms, self.partitions, self._latest, self.value = state


class UpstreamWatermark:
    """Minimum of the watermarks reported by ``upstreams`` numbered upstream shards.

    >>> wm = UpstreamWatermark(upstreams=2)
    >>> wm.report(0, 100), wm.value
    (False, None)
    >>> wm.report(1, 80), wm.value
    (True, 80)
    """

    __slots__ = ("_reported", "upstreams", "value")

    def __init__(self, upstreams: int) -> None:
        self.upstreams = upstreams
        self._reported: dict[int, int] = {}
        self.value: int | None = None

    def report(self, upstream: int, watermark: int) -> bool:
        """Take upstream shard ``upstream``'s watermark; True if this watermark moved."""
        if watermark <= self._reported.get(upstream, watermark - 1):
            return False
        self._reported[upstream] = watermark
        if len(self._reported) < self.upstreams:
            return False
        candidate = min(self._reported.values())
        if self.value is None or candidate > self.value:
            self.value = candidate
            return True
        return False

    def is_late(self, ts: int) -> bool:
        """True when an event at ``ts`` arrives after the watermark passed it."""
        return self.value is not None and ts < self.value

    def __getstate__(self) -> tuple[int, dict[int, int], int | None]:
        return (self.upstreams, self._reported, self.value)

    def __setstate__(self, state: tuple[int, dict[int, int], int | None]) -> None:
        self.upstreams, self._reported, self.value = state
