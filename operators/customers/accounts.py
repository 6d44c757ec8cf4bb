"""Customer profiles by account: the second customer stage.

Keyed by account id (``customer_id``). It receives, from the identity stage,
every event of an account (also those that came in under a linked device or
loyalty card), the histories of aliases as they get linked, and erasures; it
keeps the profiles in a :class:`CustomerBook` (with the churn snapshots and
labels) and tells the churn stage what to score and learn.

>>> from operators.contract.events import Event
>>> from operators.customers.book import CustomerSettings
>>> from operators.time.stream_items import Signal
>>> customers = Customers(CustomerSettings(90, 7, 30, 5, (("bronze", 0),)))
>>> shard = DomainShard(customers, upstreams=1)
>>> consent = Event("e1", "consent_changed", "customers", 1, {"customer_id": "C1", "marketing": True})
>>> [s.stream for s in customers.on_event(Signal("customer_events", "C1", 1, "e1", Resolved("C1", consent)), shard)]
['customer_activity']
>>> customers.book.profiles["C1"].marketing_consent
True
>>> [s.body for s in customers.on_event(Signal("customer_events", "C1", 2, "e2", Erase("C1", "e2")), shard)]
[Erase(customer_id='C1', cause_event_id='e2'), Erasure(customer_key='C1', ts=2, cause_event_id='e2')]
>>> dict(customers.book.profiles)
{}
"""

from __future__ import annotations

from typing import Any

from operators.customers.book import CustomerBook, CustomerSettings
from operators.customers.records import Erasure
from operators.customers.signals import (
    CUSTOMER_ERASURES,
    CUSTOMER_SNAPSHOTS,
    SNAPSHOT_KEY,
    Erase,
    Merge,
    Resolved,
)
from operators.time.shard import DomainShard
from operators.time.stream_items import Signal
from operators.time.timers import Timer


class Customers:
    """One shard of account profiles."""

    def __init__(self, settings: CustomerSettings) -> None:
        self.book = CustomerBook(settings)

    def reconfigure(self, fresh: Customers) -> tuple[str, ...]:
        """Restored from a snapshot: the book takes today's settings (see :meth:`CustomerBook.reconfigure`)."""
        return self.book.reconfigure(fresh.book)

    def on_event(self, signal: Signal, shard: DomainShard[Any]) -> list[Signal]:
        body = signal.body
        if isinstance(body, Resolved):
            return self.book.apply(body.customer_id, body.event, shard)
        if isinstance(body, Merge):
            self.book.absorb(body.customer_id, body.profile, body.snapshots, signal.ts, shard)
            profile = self.book.profiles.get(body.customer_id)
            if profile is None or profile.last_purchase is None:
                return []
            # The account's history just grew: score it again.
            return [self.book.snapshot(body.customer_id, signal.ts, signal.order)]
        if isinstance(body, Erase):
            self.book.erase(body.customer_id)
            forget = Erasure(body.customer_id, signal.ts, body.cause_event_id)
            return [
                Signal(CUSTOMER_SNAPSHOTS, SNAPSHOT_KEY, signal.ts, signal.order, body),
                Signal(CUSTOMER_ERASURES, body.customer_id, signal.ts, signal.order, forget),
            ]
        raise TypeError(f"customers stage got {body!r}")

    def on_timer(self, timer: Timer[Any], shard: DomainShard[Any]) -> list[Signal]:
        return self.book.on_timer(timer, shard) or []

    def on_watermark(self, shard: DomainShard[Any]) -> list[Signal]:
        return []
