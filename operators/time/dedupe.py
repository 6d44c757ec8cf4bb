"""Duplicate detection on the log's own event-time position.

Each copy of an event is judged at its *stamp*: the latest event time its
input partition had delivered up to and including that copy (a function of
the partition's order, not of batching, timing or process count). A copy is
a duplicate when an earlier copy of its ``event_id`` on the same input topic
was taken with a stamp within the dedupe horizon (ids are the topic's
producers' own: a till's sale and a warehouse's receipt may share one); a
copy beyond the horizon is taken again and starts a new horizon. Ids are forgotten once the watermark has passed their
stamp plus the horizon: every later copy's stamp is then beyond the horizon
anyway, so forgetting changes no outcome, and memory is bounded by one horizon
of traffic.

>>> seen = Deduplicator(horizon_ms=1_000)
>>> seen.is_duplicate("e1", stamp=100, topic="pos"), seen.is_duplicate("e1", stamp=900, topic="pos")
(False, True)
>>> seen.is_duplicate("e1", stamp=900, topic="inventory")  # another topic's id
False
>>> seen.is_duplicate("e1", stamp=1_200, topic="pos")  # re-sent beyond the horizon: taken again
False
>>> seen.expire(watermark=2_201)
2
"""

from __future__ import annotations

from operators.time.timers import TimerQueue


class Deduplicator:
    """Remembers event ids, by input topic, for ``horizon_ms`` of event time."""

    #: False in state written before ids were kept by topic (see :meth:`scope_ids`).
    scoped = False
    #: The last expiry among ids kept without their topic; -1: none left.
    _bare_until = -1

    def __init__(self, horizon_ms: int) -> None:
        self.horizon_ms = horizon_ms
        self.scoped = True
        self._expiry: TimerQueue[None] = TimerQueue()

    def is_duplicate(self, event_id: str, stamp: int, topic: str) -> bool:
        """True if ``event_id`` of ``topic`` was taken with a stamp within the horizon of ``stamp``; else take it."""
        key = f"{topic}:{event_id}"  # topics are the contract's names, without ':'
        deadline = self._expiry.deadline(key)
        if deadline is None and self._bare_until >= 0:
            deadline = self._expiry.deadline(event_id)
        if deadline is not None and abs(stamp - (deadline - self.horizon_ms)) <= self.horizon_ms:
            return True
        self._expiry.schedule(key, stamp + self.horizon_ms, None)
        return False

    def scope_ids(self) -> None:
        """Restored from state written before ids were kept by topic: until the last id it kept
        expires, a copy is checked against its bare id too (so no copy is taken twice)."""
        if not self.scoped:
            self.scoped = True
            kept = self._expiry.keys()  # a TimerQueue, not a dict: a list of its keys
            self._bare_until = max((self._expiry.deadline(key) or -1 for key in kept), default=-1)

    def expire(self, watermark: int) -> int:
        """Forget ids whose stamp plus horizon the watermark has passed; return how many."""
        if 0 <= self._bare_until < watermark:
            self._bare_until = -1
        return self._expiry.discard_due(watermark - 1)

    def __len__(self) -> int:
        return len(self._expiry)
