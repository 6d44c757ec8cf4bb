"""The profiles of one shard, with churn snapshots and their delayed labels.

Both customer stages keep a :class:`CustomerBook`: the identity stage for
aliases not linked to an account (loyalty cards, anonymous devices), the
customers stage for accounts. It folds events into profiles and runs the churn
labelling on event time, through the shard's timers:

* at every ``tick`` of event time (aligned to the epoch: weekly by default)
  each active customer (a purchase within the horizon) is snapshotted: their
  features go to the churn stage to be scored, and are kept, pending;
* a purchase marks the customer's pending snapshots as "purchased since";
* when a snapshot's horizon has passed (tick + horizon) it matures into a
  labelled :class:`~operators.customers.signals.Example` (churned = no purchase
  in ``(tick, tick + horizon]``) and goes to the model. Never earlier, even for
  a quick repurchase: learning the quick labels first biases the model.

Anonymous devices (``device:`` keys) have profiles but no scores.

>>> from operators.contract.events import Event
>>> from operators.time.shard import DomainShard
>>> book = CustomerBook(CustomerSettings(horizon_ms=10, tick_ms=5, device_ttl_ms=100, recent_views=5,
...                                      tiers=(("bronze", 0),)))
>>> shard = DomainShard(None, upstreams=1)  # the book only uses the shard's timers
>>> sale = Event("e1", "sale", "pos", 3, {"store_id": "S1", "receipt_id": "r1", "lines": [], "total": 4.0})
>>> signals = book.apply("loyalty:L1", sale, shard)  # a purchase: score it
>>> [type(s.body).__name__ for s in signals]
['Snapshot']
>>> sorted(shard.timers.keys())
['tick']
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from operators.churn.features import as_vector, churn_features, from_vector, rfm
from operators.contract.events import Event
from operators.customers.profile import CustomerProfile
from operators.customers.records import Activity, CustomerFacts
from operators.customers.signals import (
    CUSTOMER_ACTIVITY,
    CUSTOMER_SNAPSHOTS,
    SNAPSHOT_KEY,
    Example,
    Snapshot,
    Snapshots,
)
from operators.time.shard import DomainShard
from operators.time.stream_items import Signal
from operators.time.timers import Timer

PURCHASES = frozenset({"order_placed", "sale"})
DEVICE, LOYALTY = "device:", "loyalty:"
_TICK, _MATURE = "tick", "mature:"


@dataclass(frozen=True)
class CustomerSettings:
    """Customer and churn settings (``[customers]`` and ``[churn]`` of the config)."""

    horizon_ms: int
    tick_ms: int
    device_ttl_ms: int
    recent_views: int
    tiers: tuple[tuple[str, int], ...]


def is_scored(key: str) -> bool:
    """Accounts and loyalty cards get churn scores; anonymous devices do not."""
    return not key.startswith(DEVICE)


def kind_of(key: str) -> str:
    """``device``, ``loyalty`` (a card not linked yet) or ``account``."""
    return "device" if key.startswith(DEVICE) else "loyalty" if key.startswith(LOYALTY) else "account"


class CustomerBook:
    """Profiles of one shard, their churn snapshots and labels; a shard's domain or part of one."""

    def __init__(self, settings: CustomerSettings) -> None:
        self.settings = settings
        self.profiles: dict[str, CustomerProfile] = {}
        self.kinds: Counter[str] = Counter()  # profiles by kind_of(key), kept as profiles come and go
        self.pending: dict[int, dict[str, list[Any]]] = {}  # tick -> key -> [feature vector, purchased since]

    def on_timer(self, timer: Timer[Any], shard: DomainShard[Any]) -> list[Signal] | None:
        """Handle the book's own timers (ticks, maturing snapshots); None for anyone else's."""
        if timer.key == _TICK:
            return self._tick(timer.deadline, shard)
        if timer.key.startswith(_MATURE):
            return self._mature(int(timer.key[len(_MATURE) :]))
        return None

    # -- events ----------------------------------------------------------------------

    def apply(self, key: str, event: Event, shard: DomainShard[Any]) -> list[Signal]:
        """Fold ``event`` into ``key``'s profile; a purchase is scored at once."""
        profile = self.profiles.get(key)
        if profile is None:
            profile = self._add(key, CustomerProfile())
        profile.apply(event, self.settings.recent_views)
        self._start_ticks(event.ts, shard)
        if not is_scored(key):
            return []
        signals = []
        activity = Activity(self.facts(key), event)
        signals.append(Signal(CUSTOMER_ACTIVITY, key, event.ts, f"{event.event_id}:act:{key}", activity))
        if event.type in PURCHASES:
            for tick_ts, snapshots in self.pending.items():
                if tick_ts < event.ts and key in snapshots:
                    snapshots[key][1] = True
            signals.append(self.snapshot(key, event.ts, f"{event.event_id}:score:{key}"))
        return signals

    def facts(self, key: str) -> CustomerFacts:
        """What ``key``'s profile publishes with each activity."""
        p = self.profiles[key]
        cart = tuple((sku, qty, price) for sku, (qty, price) in p.cart.items())
        return CustomerFacts(
            key, not key.startswith(LOYALTY), p.marketing_consent, p.consent_channels, p.timezone, p.birthday,
            p.home_store, p.orders, p.lifetime_value_millis, p.last_purchase, cart,
        )  # fmt: skip

    def snapshot(self, key: str, now: int, order: str) -> Signal:
        """A scoring request for ``key``'s features at ``now``."""
        profile = self.profiles[key]
        body = Snapshot(
            key, churn_features(profile, now), rfm(profile, now), profile.tier(self.settings.tiers),
            profile.last_event_id or "",
        )  # fmt: skip
        return Signal(CUSTOMER_SNAPSHOTS, SNAPSHOT_KEY, now, order, body)

    # -- moving and forgetting customers ---------------------------------------------

    def release(self, key: str) -> tuple[CustomerProfile | None, Snapshots]:
        """Take ``key``'s profile and pending snapshots out of this book (for a merge)."""
        snapshots = {tick: self.pending[tick].pop(key) for tick in self.pending if key in self.pending[tick]}
        return self._drop(key), snapshots

    def absorb(
        self, key: str, profile: CustomerProfile | None, snapshots: Snapshots, ts: int, shard: DomainShard[Any]
    ) -> None:
        """Merge a released alias into ``key`` at ``ts``: its profile, and its snapshots where ``key`` has none."""
        self._start_ticks(ts, shard)
        if profile is not None:
            own = self.profiles.get(key)
            if own is None:
                self._add(key, profile)
            else:
                own.absorb(profile, self.settings.recent_views)
        for tick, snapshot in snapshots.items():
            if tick in self.pending:  # else it matured here already
                self.pending[tick].setdefault(key, snapshot)

    def erase(self, key: str) -> bool:
        """Forget every trace of ``key``; True if there was any."""
        found = self._drop(key) is not None
        for snapshots in self.pending.values():
            found = snapshots.pop(key, None) is not None or found
        return found

    def _add(self, key: str, profile: CustomerProfile) -> CustomerProfile:
        self.profiles[key] = profile
        self.kinds[kind_of(key)] += 1
        return profile

    def _drop(self, key: str) -> CustomerProfile | None:
        profile = self.profiles.pop(key, None)
        if profile is not None:
            self.kinds[kind_of(key)] -= 1
        return profile

    # -- event-time ticks and labels -------------------------------------------------

    def _start_ticks(self, ts: int, shard: DomainShard[Any]) -> None:
        # Ticks align to the epoch, so every shard snapshots at the same event times.
        if _TICK not in shard.timers:
            tick = self.settings.tick_ms
            shard.timers.schedule(_TICK, (ts // tick + 1) * tick, None)

    def _tick(self, now: int, shard: DomainShard[Any]) -> list[Signal]:
        horizon = self.settings.horizon_ms
        signals: list[Signal] = []
        taken: dict[str, list[Any]] = {}
        for key in sorted(self.profiles):
            profile = self.profiles[key]
            if not is_scored(key) or profile.last_purchase is None or now - profile.last_purchase >= horizon:
                continue
            signal = self.snapshot(key, now, f"tick:{now}:{key}")
            taken[key] = [as_vector(signal.body.features), False]
            signals.append(signal)
        if taken:
            self.pending[now] = taken
            shard.timers.schedule(f"{_MATURE}{now}", now + horizon, None)
        shard.timers.schedule(_TICK, now + self.settings.tick_ms, None)
        return signals

    def _mature(self, tick: int) -> list[Signal]:
        matured = self.pending.pop(tick, {})
        ts = tick + self.settings.horizon_ms
        return [
            Signal(CUSTOMER_SNAPSHOTS, SNAPSHOT_KEY, ts, f"label:{tick}:{key}", Example(key, from_vector(vector), not bought, tick))
            for key, (vector, bought) in sorted(matured.items())
        ]

    def pending_snapshots(self) -> int:
        return sum(len(snapshots) for snapshots in self.pending.values())
