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

**Live partitions.** A partition is *live* when its latest event reached us
within ``lateness_ms`` of its event time, and *caught up* when it has
delivered all the broker holds. Live and caught up, it has nothing older to
send: its event time runs on with the wall clock from its latest event (it
does not hold the watermark back while it is quiet, and the watermark moves
with the clock even when no data arrives). A replay of an old log is never
live, so there the watermark depends on the log alone. Beside the watermark,
``live_value`` is a second, earlier-releasing watermark for stages that
publish as soon as they can (inventory): live partitions count with
``live_lateness_ms`` instead of ``lateness_ms``. It equals the watermark
unless some partition is live.

>>> wm = PartitionWatermark(lateness_ms=10, idle_timeout_ms=60_000, partitions=2)
>>> wm.observe("pos:0", 1_500, now_ms=0), wm.value  # pos:1 not heard from yet: wait
(False, None)
>>> wm.observe("pos:1", 1_200, now_ms=1_000), wm.value
(True, 1190)
>>> wm.observe("pos:0", 9_000, now_ms=70_000), wm.value  # pos:1 silent for over a minute
(True, 8990)

Live: event time is wall time here, and both partitions are caught up.

>>> wm = PartitionWatermark(lateness_ms=30_000, idle_timeout_ms=60_000, partitions=2, live_lateness_ms=200)
>>> wm.observe("pos:0", 1_000_000, now_ms=1_000_050, caught_up=True)
False
>>> wm.observe("pos:1", 999_000, now_ms=1_000_060, caught_up=True), wm.value, wm.live_value
(True, 969000, 998800)
>>> wm.tick(now_ms=1_005_000), wm.value, wm.live_value  # quiet: the clock runs on
(True, 973940, 1003740)
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any


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


class PartitionWatermark(_Watermark):
    """Watermark over input partitions with allowed lateness, a wall-clock idle timeout and
    live partitions (see the module docstring)."""

    __slots__ = (
        "_caught_up", "_latest", "_now", "_received", "_seen", "_started", "idle_timeout_ms", "lateness_ms",
        "live_lateness_ms", "live_value", "partitions",
    )  # fmt: skip

    def __init__(
        self, lateness_ms: int, idle_timeout_ms: int, partitions: int = 1, live_lateness_ms: int | None = None
    ) -> None:
        super().__init__()
        self.lateness_ms = lateness_ms
        self.idle_timeout_ms = idle_timeout_ms
        self.partitions = partitions
        self.live_lateness_ms = lateness_ms if live_lateness_ms is None else min(live_lateness_ms, lateness_ms)
        self.live_value: int | None = None
        self._latest: dict[str, int] = {}
        self._received: dict[str, int] = {}  # wall-clock time the partition's latest event time arrived
        self._seen: dict[str, int] = {}  # wall-clock time of the partition's latest marker
        self._caught_up: set[str] = set()
        self._started: int | None = None
        self._now = 0

    def observe(self, partition: str, ts: int, now_ms: int, caught_up: bool = False) -> bool:
        """``partition`` delivered events up to ``ts`` (marker stamped ``now_ms``; ``caught_up``:
        it has delivered all the broker held); True if a watermark moved."""
        if self._started is None:
            self._started = now_ms
        self._seen[partition] = now_ms
        if ts > self._latest.get(partition, -1):
            self._latest[partition] = ts
            self._received[partition] = now_ms
        if caught_up:
            self._caught_up.add(partition)
        else:
            self._caught_up.discard(partition)
        return self.tick(now_ms)

    def tick(self, now_ms: int) -> bool:
        """Re-judge idleness and live partitions at wall-clock ``now_ms`` (no data needed);
        True if a watermark moved.

        A partition that went quiet, or one never heard from, stops holding
        the watermark back once ``idle_timeout_ms`` has passed.
        """
        now = self._now = max(self._now, now_ms)
        if self._started is None or not self._latest:
            return False
        if len(self._latest) < self.partitions and now - self._started <= self.idle_timeout_ms:
            # Some partition may still deliver older events: one that is empty for now too, as
            # when a log is produced after the flow started.
            return False
        horizon = now - self.idle_timeout_ms
        slow: int | None = None
        fast: int | None = None
        lateness, caught_up, received = self.lateness_ms, self._caught_up, self._received
        for partition, latest in self._latest.items():
            at = received[partition]
            live = at - latest <= lateness
            if live and partition in caught_up:
                time = latest + (now - at)
            elif self._seen[partition] >= horizon:
                time = latest
            else:
                continue  # quiet for the idle timeout
            bound = time - (self.live_lateness_ms if live else lateness)
            time -= lateness
            if slow is None or time < slow:
                slow = time
            if fast is None or bound < fast:
                fast = bound
        if slow is None or fast is None:
            return False  # every partition is quiet: nothing new to say
        return self._move(slow, fast)

    def resume(self, now_ms: int) -> None:
        """A restart at wall-clock ``now_ms``: downtime is not silence, so every partition gets
        a fresh idle timeout (one never heard from too) and none is caught up until it says so."""
        if self._started is not None:
            self._started = now_ms
        self._seen = dict.fromkeys(self._seen, now_ms)
        self._caught_up.clear()

    def reconfigure(self, fresh: PartitionWatermark) -> None:
        """Take ``fresh``'s lateness, idle timeout and partition count (today's config); the
        watermarks themselves only move forward from where they are."""
        self.lateness_ms, self.idle_timeout_ms = fresh.lateness_ms, fresh.idle_timeout_ms
        self.live_lateness_ms, self.partitions = fresh.live_lateness_ms, fresh.partitions

    def finish(self) -> bool:
        """The input has ended: move past the latest event time read, so that
        everything up to it is due. True if a watermark moved."""
        if not self._latest:
            return False
        end = max(self._latest.values()) + 1
        return self._move(end, end)

    def _move(self, slow: int, fast: int) -> bool:
        moved = self._advance(slow)
        candidate = max(fast, self.value) if self.value is not None else fast
        if self.live_value is None or candidate > self.live_value:
            self.live_value = candidate
            moved = True
        return moved

    def latest_of(self, partition: str) -> int:
        """Latest event time ``partition`` has reported (-1: none yet)."""
        return self._latest.get(partition, -1)

    def latest(self) -> dict[str, int]:
        """Latest event time per partition."""
        return dict(self._latest)

    def __getstate__(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in (*self.__slots__, "value")}

    def __setstate__(self, state: dict[str, Any] | tuple[Any, ...]) -> None:
        if isinstance(state, tuple):  # written before live partitions (state format 2)
            lateness, idle, partitions, latest, seen, started, now, value = state
            self.__init__(lateness, idle, partitions)  # type: ignore[misc]
            self._latest, self._seen, self._started, self._now, self.value = latest, seen, started, now, value
            self._received, self.live_value = dict(seen), value
            return
        for name, item in state.items():
            setattr(self, name, item)


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
