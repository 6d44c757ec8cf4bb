"""Event-time timers: one pending deadline per key, fired in deadline order.

The queue knows nothing of clocks; the owner fires what is due when its
watermark passes a deadline (see ``operators.time.watermark``). A timer for a key
that never sends another event fires all the same, because the watermark is
driven by the whole stream, not by that key.

>>> timers = TimerQueue()
>>> timers.schedule("cart:c1", 1_000, "remind")
>>> timers.schedule("cart:c2", 500, "remind")
>>> timers.schedule("cart:c1", 2_000, "remind")  # replaces c1's timer
>>> [(t.key, t.deadline) for t in timers.pop_due(1_500)]
[('cart:c2', 500)]
>>> len(timers)
1
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from operators.records import fast_init
from operators.state.tracked import TrackedDict

P = TypeVar("P")


@fast_init
@dataclass(frozen=True, slots=True)
class Timer(Generic[P]):
    """A due timer: its key, its deadline (epoch ms) and what it was scheduled with."""

    key: str
    deadline: int
    payload: P


class TimerQueue(Generic[P]):
    """A min-heap of deadlines with one live timer per key.

    Rescheduling or cancelling leaves the old heap entry behind; it is skipped
    when it surfaces (lazy deletion keeps every operation O(log n)).
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, str, int]] = []
        self._live: TrackedDict[str, tuple[int, int, P]] = TrackedDict()  # stored by what changed
        self._seq = 0

    def schedule(self, key: str, deadline: int, payload: P) -> None:
        """Set the timer of ``key`` to ``deadline``, replacing any pending one."""
        self._seq += 1
        self._live[key] = (deadline, self._seq, payload)
        heapq.heappush(self._heap, (deadline, key, self._seq))
        if len(self._heap) > 2 * len(self._live) + 64:
            self._compact()

    def cancel(self, key: str) -> bool:
        """Drop the pending timer of ``key``; True if there was one."""
        return self._live.pop(key, None) is not None

    def forget(self, keys: list[str]) -> None:
        """Cancel the timers of ``keys`` and leave no entry of theirs behind (for erasure)."""
        for key in keys:
            self._live.pop(key, None)
        self._compact()

    def deadline(self, key: str) -> int | None:
        """The pending deadline of ``key``, or None."""
        live = self._live.get(key)
        return None if live is None else live[0]

    def next_deadline(self) -> int | None:
        """The earliest pending deadline, or None when no timer is pending."""
        self._drop_stale_top()
        return self._heap[0][0] if self._heap else None

    def may_be_due(self, limit: int) -> bool:
        """False when no timer is due by ``limit``: a cheap test, before :meth:`next_deadline`
        (True may still mean none: the earliest heap entry can be a cancelled timer's)."""
        heap = self._heap
        return bool(heap) and heap[0][0] <= limit

    def pop_due(self, watermark: int) -> Iterator[Timer[P]]:
        """Remove and yield timers with deadline <= ``watermark``, earliest first.

        Ties break on the key, so the order is the same in every run. Timers
        scheduled while iterating are seen if they are due too.
        """
        while (deadline := self.next_deadline()) is not None and deadline <= watermark:
            yield self.pop_next()

    def pop_next(self) -> Timer[P]:
        """Remove and return the earliest pending timer (ties: by key); IndexError when none is pending."""
        self._drop_stale_top()
        deadline, key, _ = heapq.heappop(self._heap)
        _, _, payload = self._live.pop(key)
        return Timer(key, deadline, payload)

    def discard_due(self, watermark: int) -> int:
        """Remove the timers with deadline <= ``watermark`` without firing them; return how many.

        What ``pop_due`` does, without building a :class:`Timer` per entry (for queues whose
        timers only expire, such as the dedupe horizon's).
        """
        heap, live = self._heap, self._live
        count = 0
        while heap and heap[0][0] <= watermark:
            _, key, seq = heapq.heappop(heap)
            current = live.get(key)
            if current is not None and current[1] == seq:  # not a stale entry of a rescheduled key
                del live[key]
                count += 1
        return count

    def keys(self) -> list[str]:
        """Keys with a pending timer."""
        return list(self._live)

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def _drop_stale_top(self) -> None:
        heap, live = self._heap, self._live
        while heap:
            _, key, seq = heap[0]
            current = live.get(key)
            if current is not None and current[1] == seq:
                return
            heapq.heappop(heap)

    def _compact(self) -> None:
        self._heap = [(d, k, s) for k, (d, s, _) in self._live.items()]
        heapq.heapify(self._heap)

    def __getstate__(self) -> dict[str, Any]:
        # Only live timers go into a snapshot; the heap is rebuilt on load.
        return {"live": self._live, "seq": self._seq}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._live = state["live"]
        self._seq = state["seq"]
        self._compact()
