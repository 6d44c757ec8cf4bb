"""One SKU at one location: on hand and reserved, independent of arrival order.

``on_hand`` is a fold, in event-time order, of deltas (``ADD``) and absolute
cycle counts (``SET``); ``reserved`` is a plain sum. Every entry carries an
event-time key ``(ts, rank, id)`` (rank 0 for input events, 1 for expiries,
which come after every event of the same millisecond) and waits in a sorted
``pending`` list until the watermark has passed it; :meth:`Ledger.settle` then
folds it into the settled base. So a count that arrives after a sale it
precedes still ends with the sale applied on top, and memory holds only the
lateness window, not the history.

>>> ledger = Ledger()
>>> ledger.add(Entry((20, 0, "e2"), ADD, -3))  # a sale at t=20 arrives first
'applied'
>>> ledger.add(Entry((10, 0, "e1"), SET, 10))  # then the count taken at t=10
'applied'
>>> ledger.on_hand, ledger.reserved
(7, 0)
>>> ledger.settle(watermark=30), ledger.on_hand  # nothing left pending
(False, 7)
"""

from __future__ import annotations

from bisect import insort
from typing import Literal, NamedTuple

Key = tuple[int, int, str]
"""Event-time position of an effect: (ts ms, rank, event or order id)."""

Tag = tuple[str, int, str]
"""Identity of an order-derived entry, so it can be moved: (order_id, line, kind)."""

Outcome = Literal["applied", "superseded", "stale"]

SET = 0
ADD = 1
EVENT_RANK = 0
EXPIRY_RANK = 1


class Entry(NamedTuple):
    """One effect: ``op`` SET or ADD on on_hand with ``on_hand``, plus ``reserved`` added."""

    key: Key
    op: int
    on_hand: int
    reserved: int = 0
    tag: Tag | None = None


def _entry_key(entry: Entry) -> Key:
    return entry.key


class Ledger:
    """Settled base plus pending entries of one SKU-location.

    ``count_key`` is the key of the latest count folded into the base: a late
    delta before it is already reflected by that count. ``last_ts`` is the
    latest event time of any on-hand effect folded into the base: a count
    older than that can no longer be placed in history exactly (the deltas
    after it are gone), so it is refused as ``stale``. ``level`` is the alert
    level the owner last reported (see ``operators.inventory.domain``).
    """

    __slots__ = ("base_on_hand", "base_reserved", "count_key", "last_ts", "level", "pending")

    def __init__(self, level: int = 0) -> None:
        self.base_on_hand = 0
        self.base_reserved = 0
        self.count_key: Key | None = None
        self.last_ts: int | None = None
        self.pending: list[Entry] | None = None
        self.level = level

    @property
    def on_hand(self) -> int:
        return self.as_of(None)[0]

    @property
    def reserved(self) -> int:
        return self.as_of(None)[1]

    def as_of(self, before: Key | None) -> tuple[int, int]:
        """(on_hand, reserved) folding only pending entries with key < ``before`` (None: all)."""
        on_hand, reserved = self.base_on_hand, self.base_reserved
        for entry in self.pending or ():
            if before is not None and entry.key >= before:
                break
            on_hand = entry.on_hand if entry.op == SET else on_hand + entry.on_hand
            reserved += entry.reserved
        return on_hand, reserved

    def add(self, entry: Entry) -> Outcome:
        """Insert an effect at its event-time position."""
        if entry.op == SET:
            if self.count_key is not None and entry.key < self.count_key:
                return "superseded"
            if self.last_ts is not None and entry.key[0] <= self.last_ts:
                return "stale"
        elif entry.on_hand and self.count_key is not None and entry.key < self.count_key:
            if not entry.reserved:
                return "superseded"
            entry = entry._replace(on_hand=0)
        if self.pending is None:
            self.pending = []
        insort(self.pending, entry, key=_entry_key)
        return "applied"

    def remove(self, tag: Tag) -> Entry | None:
        """Take the pending entry tagged ``tag`` out; None if it is settled (or absent)."""
        for i, entry in enumerate(self.pending or ()):
            if entry.tag == tag:
                assert self.pending is not None
                return self.pending.pop(i)
        return None

    def settle(self, watermark: int) -> bool:
        """Fold entries the watermark has passed into the base; True if some stay pending."""
        pending = self.pending or []
        done = 0
        for entry in pending:
            if entry.key[0] >= watermark:
                break
            done += 1
            self.base_reserved += entry.reserved
            if entry.op == SET:
                self.base_on_hand = entry.on_hand
                self.count_key = entry.key
            elif entry.on_hand:
                self.base_on_hand += entry.on_hand
            else:
                continue
            if self.last_ts is None or entry.key[0] > self.last_ts:
                self.last_ts = entry.key[0]
        del pending[:done]
        if not pending:
            self.pending = None
        return self.pending is not None

    def __getstate__(self) -> tuple[int, int, Key | None, int | None, list[Entry] | None, int]:
        return (self.base_on_hand, self.base_reserved, self.count_key, self.last_ts, self.pending, self.level)

    def __setstate__(self, state: tuple[int, int, Key | None, int | None, list[Entry] | None, int]) -> None:
        (self.base_on_hand, self.base_reserved, self.count_key, self.last_ts, self.pending, self.level) = state

    def __eq__(self, other: object) -> bool:
        """Same base, entries and level (a restored ledger equals the one snapshotted)."""
        return isinstance(other, Ledger) and self.__getstate__() == other.__getstate__()

    __hash__ = None  # type: ignore[assignment]  # changed in place: not a key
