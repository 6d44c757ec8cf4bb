"""Duplicate detection on the log's own event-time position.

Each copy of an event is judged at its *stamp*: the latest event time its
input partition had delivered up to and including that copy (a function of
the partition's order, not of batching, timing or process count). A copy is
a duplicate when an earlier copy of its ``event_id`` was taken with a stamp
within the dedupe horizon; a copy beyond the horizon is taken again and
starts a new horizon. Ids are forgotten once the watermark has passed their
stamp plus the horizon: every later copy's stamp is then beyond the horizon
anyway, so forgetting changes no outcome, and memory is bounded by one horizon
of traffic.

>>> seen = Deduplicator(horizon_ms=1_000)
>>> seen.is_duplicate("e1", stamp=100), seen.is_duplicate("e1", stamp=900)
(False, True)
>>> seen.is_duplicate("e1", stamp=1_200)  # re-sent beyond the horizon: taken again
False
>>> seen.expire(watermark=2_201)
1
"""

from __future__ import annotations

from operators.time.timers import TimerQueue


class Deduplicator:
    """Remembers event ids for ``horizon_ms`` of event time."""

    def __init__(self, horizon_ms: int) -> None:
        self.horizon_ms = horizon_ms
        self._expiry: TimerQueue[None] = TimerQueue()

    def is_duplicate(self, event_id: str, stamp: int) -> bool:
        """True if ``event_id`` was taken with a stamp within the horizon of ``stamp``; else take it."""
        deadline = self._expiry.deadline(event_id)
        if deadline is not None and abs(stamp - (deadline - self.horizon_ms)) <= self.horizon_ms:
            return True
        self._expiry.schedule(event_id, stamp + self.horizon_ms, None)
        return False

    def expire(self, watermark: int) -> int:
        """Forget ids whose stamp plus horizon the watermark has passed; return how many."""
        return self._expiry.discard_due(watermark - 1)

    def __len__(self) -> int:
        return len(self._expiry)
