"""The profiles of one shard, with churn snapshots and their delayed labels.

Both customer stages keep a :class:`CustomerBook`: the identity stage for
aliases not linked to an account (loyalty cards, anonymous devices), the
customers stage for accounts. It folds events into profiles and runs the churn
labelling on event time, through the shard's timers:

* at every ``tick`` of event time (aligned to the epoch: weekly by default)
  every customer with a purchase is snapshotted, dormant ones included: their
  features go to the churn stage to be scored (so every score is fresh), and
  are kept, pending, packed as float32 (one array per customer, one snapshot
  per tick);
* when a snapshot's horizon has passed (tick + horizon) it matures into a
  labelled :class:`~operators.customers.signals.Example` (churned = no purchase
  in ``(tick, tick + horizon]``, read off the profile's last purchase then) and
  goes to the model. Never earlier, even for a quick repurchase: learning the
  quick labels first biases the model.

Profiles are visited in their book's order, never sorted: the churn stage
applies what it receives in ``(ts, id)`` order whatever the order it is sent.

Anonymous devices (``device:`` keys) have profiles but no scores.

>>> from operators.contract.events import Event
>>> from operators.time.shard import DomainShard
>>> book = CustomerBook(CustomerSettings(horizon_ms=10, tick_ms=5, device_ttl_ms=100, recent_views=5,
...                                      tiers=(("bronze", 0),)))
>>> shard = DomainShard(None, upstreams=1)  # the book only uses the shard's timers
>>> sale = Event("e1", "sale", "pos", 3, {"store_id": "S1", "receipt_id": "r1", "lines": [], "total": 4.0})
>>> signals = book.apply("loyalty:L1", sale, shard)  # a purchase: score it
>>> [type(s.body).__name__ for s in signals]
['Activity', 'Snapshot']
>>> sorted(shard.timers.keys())
['tick']
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from typing import Any
from zlib import crc32

from operators.churn.features import WIDTH, churn_features, feature_values, rfm, unpack
from operators.contract.events import DEVICE_PREFIX, LOYALTY_PREFIX, Event
from operators.contract.money import from_millis
from operators.customers.profile import CustomerProfile
from operators.customers.records import Activity, CustomerFacts
from operators.customers.signals import (
    CUSTOMER_ACTIVITY,
    CUSTOMER_SNAPSHOTS,
    SNAPSHOT_KEY,
    Example,
    Snapshot,
    Snapshots,
    TickSnapshots,
)
from operators.state.tracked import MutableTrackedDict
from operators.time.shard import DomainShard, take_settings
from operators.time.stream_items import Signal
from operators.time.timers import Timer
from operators.time.units import DAY_MS

PURCHASES = frozenset({"order_placed", "sale"})
DEVICE, LOYALTY = DEVICE_PREFIX, LOYALTY_PREFIX
_TICK, _MATURE = "tick", "mature:"


@dataclass(frozen=True)
class CustomerSettings:
    """Customer and churn settings (``[customers]`` and ``[churn]`` of the config)."""

    horizon_ms: int
    tick_ms: int
    device_ttl_ms: int
    recent_views: int
    tiers: tuple[tuple[str, int], ...]
    learn_every: int = 1  # keep a customer's snapshot for learning at one tick in this many


def is_scored(key: str) -> bool:
    """Accounts and loyalty cards get churn scores; anonymous devices do not."""
    return not key.startswith(DEVICE)


def kind_of(key: str) -> str:
    """``device``, ``loyalty`` (a card not linked yet) or ``account``."""
    return "device" if key.startswith(DEVICE) else "loyalty" if key.startswith(LOYALTY) else "account"


class CustomerBook:
    """Profiles of one shard, their churn snapshots and labels; a shard's domain or part of one."""

    #: Settings that the pending churn snapshots and their timers were made with: kept on a restore.
    KEPT_ON_RESTORE = ("horizon_ms", "tick_ms")

    def __init__(self, settings: CustomerSettings) -> None:
        self.settings = settings
        self.profiles: MutableTrackedDict[str, CustomerProfile] = MutableTrackedDict()
        self.kinds: Counter[str] = Counter()  # profiles by kind_of(key), kept as profiles come and go
        # key -> (tick numbers (ts // tick) of its pending snapshots, ascending; their float32 features)
        self.pending: MutableTrackedDict[str, tuple[array, array]] = MutableTrackedDict()
        self._pending = 0  # snapshots in self.pending

    def reconfigure(self, fresh: CustomerBook) -> tuple[str, ...]:
        """Restored from a snapshot: take ``fresh``'s settings (today's config) but the churn
        horizon and tick, which the pending snapshots were taken with; return those of them that
        differ (kept)."""
        self.settings, kept = take_settings(self.settings, fresh.settings, self.KEPT_ON_RESTORE)
        return kept

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
            signals.append(self.snapshot(key, event.ts, f"{event.event_id}:score:{key}"))
        return signals

    def facts(self, key: str) -> CustomerFacts:
        """What ``key``'s profile publishes with each activity."""
        p = self.profiles[key]
        cart = tuple([(sku, qty, price) for sku, (qty, price) in p.cart.items()]) if p.cart else ()
        return CustomerFacts(
            key, not key.startswith(LOYALTY), p.marketing_consent, p.consent_channels, p.timezone, p.birthday,
            p.home_store, p.orders, p.lifetime_value_millis, p.last_purchase, cart,
        )  # fmt: skip

    def snapshot(self, key: str, now: int, order: str) -> Signal:
        """A scoring request for ``key``'s features at ``now``."""
        profile = self.profiles[key]
        body = Snapshot(
            key, churn_features(profile, now, self.settings.horizon_ms / DAY_MS), rfm(profile, now),
            profile.tier(self.settings.tiers), profile.last_event_id or "",
        )  # fmt: skip
        return Signal(CUSTOMER_SNAPSHOTS, SNAPSHOT_KEY, now, order, body)

    # -- moving and forgetting customers ---------------------------------------------

    def release(self, key: str) -> tuple[CustomerProfile | None, Snapshots | None]:
        """Take ``key``'s profile and pending snapshots out of this book (for a merge)."""
        snapshots = self.pending.pop(key, None)
        if snapshots is not None:
            self._pending -= len(snapshots[0])
        return self._drop(key), snapshots

    def absorb(
        self, key: str, profile: CustomerProfile | None, snapshots: Snapshots | None, ts: int, shard: DomainShard[Any]
    ) -> None:
        """Merge a released alias into ``key`` at ``ts``: its profile, and its snapshots older than ``key``'s own."""
        self._start_ticks(ts, shard)
        if profile is not None:
            own = self.profiles.get(key)
            if own is None:
                self._add(key, profile)
            else:
                own.absorb(profile, self.settings.recent_views)
        if snapshots is None:
            return
        ticks, packed = snapshots
        entry = self.pending.get(key)
        if entry is not None:  # keep the account's own; take the alias's older ticks only
            older = bisect_left(ticks, entry[0][0])
            if not older:
                return
            ticks, packed = ticks[:older] + entry[0], packed[: older * WIDTH] + entry[1]
            self._pending -= len(entry[0])
        self.pending[key] = (ticks, packed)
        self._pending += len(ticks)
        tick_ms = self.settings.tick_ms
        for number in ticks:  # this book may have no maturing timer of its own at those ticks
            timer = f"{_MATURE}{number * tick_ms}"
            if timer not in shard.timers:
                shard.timers.schedule(timer, number * tick_ms + self.settings.horizon_ms, None)

    def erase(self, key: str) -> bool:
        """Forget every trace of ``key``; True if there was any."""
        found = self._drop(key) is not None
        entry = self.pending.pop(key, None)
        if entry is not None:
            self._pending -= len(entry[0])
        return found or entry is not None

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
        pending, tiers = self.pending, self.settings.tiers
        horizon_days = self.settings.horizon_ms / DAY_MS
        keys, recency, frequency, monetary, tier, causes = [], [], [], [], [], []
        packed = array("f")
        number, every, kept = now // self.settings.tick_ms, self.settings.learn_every, 0
        for key, profile in self.profiles.items():
            if profile.last_purchase is None or not is_scored(key):
                continue
            values = feature_values(profile, now, horizon_days)
            packed.extend(values)
            if every == 1 or (number + crc32(key.encode())) % every == 0:
                entry = pending.get(key)
                if entry is None:
                    pending[key] = entry = (array("i"), array("f"))
                entry[0].append(number)
                entry[1].extend(packed[-WIDTH:])
                kept += 1
            keys.append(key)
            recency.append(round((now - profile.last_purchase) / DAY_MS, 3))
            frequency.append(profile.orders)
            monetary.append(float(from_millis(profile.lifetime_value_millis)))
            tier.append(profile.tier(tiers))
            causes.append(profile.last_event_id or "")
        shard.timers.schedule(_TICK, now + self.settings.tick_ms, None)
        if kept:
            self._pending += kept
            shard.timers.schedule(f"{_MATURE}{now}", now + self.settings.horizon_ms, None)
        if not keys:
            return []
        body = TickSnapshots(tuple(keys), packed, tuple(recency), tuple(frequency), tuple(monetary), tuple(tier),
                             tuple(causes))  # fmt: skip
        # One item per book and tick; its id is unique (a customer is in one book only).
        return [Signal(CUSTOMER_SNAPSHOTS, SNAPSHOT_KEY, now, f"tick:{now}:{keys[0]}", body)]

    def _mature(self, tick: int) -> list[Signal]:
        ts = tick + self.settings.horizon_ms
        number = tick // self.settings.tick_ms
        signals = []
        done = []
        for key, (ticks, packed) in self.pending.items():
            if ticks[0] > number:
                continue
            while ticks and ticks[0] <= number:
                if ticks[0] == number:
                    profile = self.profiles.get(key)
                    churned = profile is None or profile.last_purchase is None or profile.last_purchase <= tick
                    example = Example(key, unpack(packed), churned, tick)
                    signals.append(Signal(CUSTOMER_SNAPSHOTS, SNAPSHOT_KEY, ts, f"label:{tick}:{key}", example))
                del ticks[0], packed[:WIDTH]
                self._pending -= 1
            self.pending.touch(key)  # changed in place, reached by iterating
            if not ticks:
                done.append(key)
        for key in done:
            del self.pending[key]
        return signals

    def pending_snapshots(self) -> int:
        """Snapshots waiting for their label (a counter: no scan)."""
        return self._pending

    def pending_keys(self) -> list[str]:
        """The customers with snapshots waiting for their label."""
        return list(self.pending)
