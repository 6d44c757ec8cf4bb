"""Duplicate detection on event time.

An event is a duplicate when its ``event_id`` was already seen with an event
time within the dedupe horizon. Seen ids are forgotten once the watermark has
passed their time plus the horizon, so memory is bounded by the traffic of one
horizon, not of the whole history.

>>> seen = Deduplicator(horizon_ms=1_000)
>>> seen.is_duplicate("e1", ts=100), seen.is_duplicate("e1", ts=100)
(False, True)
>>> seen.expire(watermark=1_101)
1
>>> seen.is_duplicate("e1", ts=100)
False
"""

from __future__ import annotations

from operators.time.timers import TimerQueue


class Deduplicator:
    """Remembers event ids for ``horizon_ms`` of event time."""

    def __init__(self, horizon_ms: int) -> None:
        self.horizon_ms = horizon_ms
        self._expiry: TimerQueue[None] = TimerQueue()

    def is_duplicate(self, event_id: str, ts: int) -> bool:
        """True if ``event_id`` was seen within the horizon; else remember it."""
        deadline = self._expiry.deadline(event_id)
        if deadline is not None and abs(ts - (deadline - self.horizon_ms)) <= self.horizon_ms:
            return True
        self._expiry.schedule(event_id, ts + self.horizon_ms, None)
        return False

    def expire(self, watermark: int) -> int:
        """Forget ids whose horizon the watermark has passed; return how many."""
        return sum(1 for _ in self._expiry.pop_due(watermark - 1))

    def __len__(self) -> int:
        return len(self._expiry)
