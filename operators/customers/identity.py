"""Identity stitching: the first customer stage, keyed by the id an event arrives with.

A customer can show up under three ids: the online account (``customer_id``,
canonical), a device or cookie (``anonymous_id``, linked by ``login``) and a
loyalty card (``loyalty_id``, linked by ``identity_linked``). The flow keys
this stage by the event's own id: ``device:<anonymous_id>``,
``loyalty:<loyalty_id>``, or the account id. Each shard keeps

* the links of its aliases to accounts: an event under a linked alias goes
  on to the customers stage as the account's (:class:`Resolved`);
* the profiles of its aliases not linked yet (in a :class:`CustomerBook`):
  a loyalty card is a customer in its own right (profile, churn score) until
  linked; a device has a cart and views.

At link time the alias's profile and pending churn snapshots leave this stage
in a :class:`Merge` to the account's shard downstream: state moves forward
along the dataflow, never back (a Bytewax dataflow has no loops). Erasure
reaches every shard, which drops the links to that account.

Devices are forgotten after ``device_ttl`` of event time without activity,
linked or not, so state stays bounded.

>>> from operators.contract.events import Event
>>> from operators.customers.book import CustomerSettings
>>> settings = CustomerSettings(90, 7, 30, 5, (("bronze", 0),))
>>> identity = Identity(settings, shard=0, shards=1)
>>> shard = DomainShard(identity, upstreams=1)
>>> click = {"channel": "web", "session_id": "s1", "anonymous_id": "a1", "customer_id": None}
>>> identity.on_event(Event("e1", "add_to_cart", "clickstream", 1, {**click, "sku": "K", "qty": 1, "price": 2}), shard)
[]
>>> [s.body.alias for s in identity.on_event(Event("e2", "login", "clickstream", 2, {**click, "customer_id": "C1"}), shard)
...  if isinstance(s.body, Merge)]
['device:a1']
>>> dict(identity.links)
{'device:a1': 'C1'}
"""

from __future__ import annotations

from typing import Any

from operators.contract.events import Event
from operators.customers.book import DEVICE, LOYALTY, CustomerBook, CustomerSettings, is_scored
from operators.customers.records import Erasure
from operators.customers.signals import (
    CUSTOMER_ERASURES,
    CUSTOMER_EVENTS,
    CUSTOMER_SNAPSHOTS,
    SNAPSHOT_KEY,
    Erase,
    Merge,
    Resolved,
    Retired,
)
from operators.state.tracked import TrackedDict
from operators.time.shard import DomainShard
from operators.time.sharding import shard_of
from operators.time.stream_items import Signal
from operators.time.timers import Timer

_TTL = "ttl:"


def aliases_of(event: Event) -> list[str]:
    """The alias keys an ``identity_linked`` or ``login`` event links."""
    body = event.body
    if event.type == "login":
        return [DEVICE + body["anonymous_id"]]
    keys = []
    if body.get("loyalty_id"):
        keys.append(LOYALTY + body["loyalty_id"])
    if body.get("anonymous_id"):
        keys.append(DEVICE + body["anonymous_id"])
    return keys


def identity_key(event: Event) -> str | None:
    """The key an event arrives under (None: no customer, e.g. a till sale without a card)."""
    body = event.body
    if event.topic == "clickstream":
        return body.get("customer_id") or DEVICE + body["anonymous_id"]
    if event.topic == "pos":
        loyalty = body.get("loyalty_id")
        return LOYALTY + loyalty if loyalty else None
    if event.topic == "customers":
        return body["customer_id"]
    return None


def identity_shards(event: Event, shards: int) -> set[int]:
    """The identity shards ``event`` must reach."""
    if event.type == "erasure_requested":
        return set(range(shards))
    if event.type in ("login", "identity_linked"):
        return {shard_of(key, shards) for key in aliases_of(event)}
    key = identity_key(event)
    return set() if key is None else {shard_of(key, shards)}


class Identity:
    """One identity shard: alias links and the profiles of unlinked aliases."""

    def __init__(self, settings: CustomerSettings, shard: int, shards: int) -> None:
        self.shard = shard
        self.shards = shards
        self.book = CustomerBook(settings)
        self.links: TrackedDict[str, str] = TrackedDict()  # alias key -> account id

    def reconfigure(self, fresh: Identity) -> tuple[str, ...]:
        """Restored from a snapshot: the book takes today's settings (see :meth:`CustomerBook.reconfigure`)."""
        return self.book.reconfigure(fresh.book)

    def on_event(self, event: Event, shard: DomainShard[Any]) -> list[Signal]:
        if event.type == "erasure_requested":
            return self._erase(event, shard)
        if event.type in ("login", "identity_linked"):
            signals = [
                signal
                for alias in aliases_of(event)
                if shard_of(alias, self.shards) == self.shard
                for signal in self._link(alias, event.body["customer_id"], event, shard)
            ]
            if event.type == "login":  # the login itself is the account's click, after the merge
                signals.append(self._resolved(event.body["customer_id"], event, f"{event.event_id}:resolved"))
            return signals
        key = identity_key(event)
        assert key is not None
        self._keep_device(key, event.ts, shard)
        account = self.links.get(key)
        if account is not None:
            return [self._resolved(account, event)]
        if key.startswith((DEVICE, LOYALTY)):
            return self.book.apply(key, event, shard)
        return [self._resolved(key, event)]

    def on_timer(self, timer: Timer[Any], shard: DomainShard[Any]) -> list[Signal]:
        if timer.key.startswith(_TTL):
            alias = timer.key[len(_TTL) :]
            self.links.pop(alias, None)
            self.book.erase(alias)
            return []
        return self.book.on_timer(timer, shard) or []

    def on_watermark(self, shard: DomainShard[Any]) -> list[Signal]:
        return []

    def _link(self, alias: str, account: str, event: Event, shard: DomainShard[Any]) -> list[Signal]:
        self.links[alias] = account
        self._keep_device(alias, event.ts, shard)
        profile, snapshots = self.book.release(alias)
        merge = Merge(account, alias, profile, snapshots, event.event_id)
        signals = [Signal(CUSTOMER_EVENTS, account, event.ts, f"{event.event_id}:merge:{alias}", merge)]
        if is_scored(alias):
            order = f"{event.event_id}:retire:{alias}"
            signals.append(Signal(CUSTOMER_SNAPSHOTS, SNAPSHOT_KEY, event.ts, order, Retired(alias)))
            # The card's own customer ends here (its history goes on as the account's).
            signals.append(Signal(CUSTOMER_ERASURES, alias, event.ts, order, Erasure(alias, event.ts, event.event_id)))
        return signals

    def _keep_device(self, key: str, ts: int, shard: DomainShard[Any]) -> None:
        # A device (linked or not) is forgotten device_ttl after its last activity.
        if key.startswith(DEVICE):
            shard.timers.schedule(_TTL + key, ts + self.book.settings.device_ttl_ms, None)

    def _resolved(self, account: str, event: Event, order: str | None = None) -> Signal:
        return Signal(CUSTOMER_EVENTS, account, event.ts, order or event.event_id, Resolved(account, event))

    def _erase(self, event: Event, shard: DomainShard[Any]) -> list[Signal]:
        account = event.body["customer_id"]
        aliases = [alias for alias, linked in self.links.items() if linked == account]
        for alias in aliases:
            del self.links[alias]
        shard.timers.forget([_TTL + alias for alias in aliases])
        if shard_of(account, self.shards) != self.shard:
            return []
        return [Signal(CUSTOMER_EVENTS, account, event.ts, event.event_id, Erase(account, event.event_id))]
