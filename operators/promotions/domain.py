"""Trigger-based promotions: the promotions domain of one shard of customers.

:class:`Promotions` turns the items of ``operators.promotions.inputs`` into
``promotions`` records. Triggers (one module each in
``operators.promotions.triggers``, the registry) react to every item through
hooks and propose candidates, directly or when a rule timer they armed fires;
a candidate waits until event time has moved past its moment, so
that every candidate of a customer at that moment competes, then
:class:`~operators.promotions.policy.DeliveryPolicy` decides; conversions are
attributed with ``operators.promotions.attribution``. Every delay (abandonment,
follow-up, birthday, quiet hours, waitlist expiry, the decision itself) is a
timer on ``shard.timers``.

Items reach the shard ordered by ``(ts, id)``, so an item's ``ts`` is "now":
before an item is applied, every timer due before it fires. Outputs are then
a function of the item sequence alone, whatever the batch sizes and whenever
the watermark arrives. See ``docs/promotions.md``.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from operators.contract.dead_letter import iso_ms
from operators.promotions.attribution import ConversionCounts, OpenPromotion, attribute, purchase_of
from operators.promotions.inputs import (
    Activity,
    ChurnScore,
    CustomerFacts,
    Erasure,
    PromotionInput,
    StockLevel,
)
from operators.promotions.policy import (
    DELAYED,
    Candidate,
    DeliveryPolicy,
    budget_share,
    coupon_code,
)
from operators.promotions.rules import PromotionSettings, Rule
from operators.promotions.state import Armed, Customer, Pending
from operators.promotions.triggers import REGISTRY, timer_owner
from operators.promotions.triggers.base import ActivityChange
from operators.time.shard import DomainShard
from operators.time.sharding import shard_of
from operators.time.stream_items import Output, Signal
from operators.time.timers import Timer, TimerQueue

__all__ = ["OUTCOMES", "TOPIC", "PromotionCounts", "Promotions", "promotions_shards"]

TOPIC = "promotions"
#: Outcomes besides ``suppressed_<reason>``: ``cancelled`` (a cart, browse or follow-up trigger
#: withdrawn before it fired) and ``waitlist_full`` (a back-in-stock waitlist turned a customer away).
OUTCOMES = ("sent", "holdout", DELAYED, "cancelled", "waitlist_full")

# Timer keys (and each trigger's own, its ``timer_prefix``). "~" sorts after every other prefix,
# so a customer's decision at time T runs after every other timer at T, each of which may add a
# candidate to it.
_RULE, _QUIET, _DECIDE = "r:", "q:", "~d:"


def promotions_shards(item: PromotionInput, shards: int) -> set[int]:
    """The promotions shards ``item`` must reach: its customer's, or all for a stock level.

    >>> sorted(promotions_shards(StockLevel("MUG", 0, 3, "e1"), 3))
    [0, 1, 2]
    """
    if isinstance(item, StockLevel):
        return set(range(shards))
    return {shard_of(item.customer_key, shards)}


# The state classes moved to ``operators.promotions.state``; their old names stay for snapshots
# pickled before.
_Armed, _Pending, _Customer = Armed, Pending, Customer


@dataclass
class PromotionCounts:
    """What happened since the last :meth:`Promotions.drain`, for the metrics.

    ``outcomes`` by ``(rule, outcome)``: ``sent``, ``holdout``,
    ``suppressed_<reason>`` and the :data:`OUTCOMES`.
    """

    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    conversions: ConversionCounts = field(default_factory=ConversionCounts)


class Promotions:
    """The promotions domain of shard ``shard`` of ``shards`` (a ``Domain`` for ``DomainShard``).

    >>> from operators.contract.events import Event
    >>> from operators.promotions.examples import example_settings
    >>> from operators.time.stream_items import Progress
    >>> settings = example_settings({"cart_reminder": {"trigger": "cart_abandoned", "delay": "1h",
    ...                                                "offer": {"kind": "percent_off", "value": 10}}})
    >>> shard = DomainShard(Promotions(settings), upstreams=1)
    >>> facts = CustomerFacts("c1", True, marketing_consent=True, timezone="Europe/London",
    ...                       cart=(("MUG", 1, 9_500),))
    >>> noon = 1_795_348_800_000  # 2026-11-22T12:00Z
    >>> shard.on_event(Activity(facts, Event("e1", "add_to_cart", "clickstream", noon,
    ...                                      {"sku": "MUG", "qty": 1, "price": 9.5})))
    []
    >>> [out] = shard.on_progress(Progress(0, noon + 3_600_001))  # one hour later, no order
    >>> out.value["rule"], out.value["offer"], out.value["ts"], out.value["cause_event_id"]
    ('cart_reminder', {'kind': 'percent_off', 'value': 10, 'skus': ['MUG']}, '2026-11-22T13:00:00.000Z', 'e1')
    >>> shard.domain.drain().outcomes
    Counter({('cart_reminder', 'sent'): 1})
    """

    def __init__(self, settings: PromotionSettings, shard: int = 0, shards: int = 1) -> None:
        self.settings = settings
        self.shard = shard
        self.shards = shards
        self.policy = DeliveryPolicy(settings, shard, shards)
        self._customers: dict[str, Customer] = {}
        self._levels: dict[str, int] = {}  # sku -> network availability, kept while at or below a threshold
        self._waitlists: dict[tuple[str, str], dict[str, int]] = {}  # (rule, sku) -> customer -> joined at
        self._in_cart: dict[str, dict[str, None]] = {}  # sku -> customers with it in their cart
        self.counts = PromotionCounts()

    # -- queries

    def customer(self, customer_key: str) -> CustomerFacts | None:
        """The latest facts held for a customer (None: not held)."""
        cust = self._customers.get(customer_key)
        return None if cust is None else cust.facts

    def waitlist(self, rule: str, sku: str) -> list[str]:
        """Customers on a back-in-stock waitlist of this shard, first come first."""
        return list(self._waitlists.get((rule, sku), {}))

    def drain(self) -> PromotionCounts:
        """The counts since the last drain (the wiring adds them to its Prometheus counters)."""
        counts, self.counts = self.counts, PromotionCounts()
        return counts

    def state_size_bytes(self) -> int:
        """Bytes of this domain's pickled state (what a recovery snapshot stores)."""
        return len(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))

    # -- Domain protocol

    def on_event(self, item: PromotionInput | Signal, shard: DomainShard[Any]) -> list[Output]:
        """Apply one item (or a :class:`Signal` carrying one); first fire every timer due before it.

        Items come in event-time order, so nothing due before this item can still be changed.
        """
        if isinstance(item, Signal):
            item = item.body
        outputs: list[Output] = []
        for timer in shard.timers.pop_due(item.ts - 1):
            outputs.extend(self.on_timer(timer, shard))
        ctx = _Context(self, shard)
        if isinstance(item, Activity):
            self._on_activity(item, ctx)
        elif isinstance(item, StockLevel):
            self._on_stock_level(item, ctx)
        elif isinstance(item, ChurnScore):
            self._on_churn_score(item, ctx)
        elif isinstance(item, Erasure):
            self._on_erasure(item, ctx)
        else:
            raise TypeError(f"not a promotions input: {type(item).__name__}")
        return outputs

    def on_timer(self, timer: Timer[Any], shard: DomainShard[Any]) -> list[Output]:
        if timer.key.startswith(_DECIDE):
            return self._decide(timer.payload, timer.deadline, shard)
        if timer.key.startswith(_RULE):
            self._fire_rule(timer.payload, timer.deadline, _Context(self, shard))
        elif timer.key.startswith(_QUIET):
            self._release(timer.payload, timer.deadline, shard)
        else:
            owner = timer_owner(timer.key)
            if owner is not None:
                owner.on_timer(_Context(self, shard), timer)
        return []

    def on_watermark(self, shard: DomainShard[Any]) -> list[Output]:
        """Nothing to do: every delay is a timer."""
        return []

    # -- items: shared bookkeeping here, then every trigger's hook, in registry order

    def _on_activity(self, item: Activity, ctx: _Context) -> None:
        event, facts, now = item.event, item.facts, item.ts
        cust = self._customers.get(item.customer_key)
        previous = None if cust is None else cust.facts
        if cust is None:
            cust = self._customers[item.customer_key] = Customer(facts)
        cust.facts = facts
        cart_changed = previous is None or facts.cart != previous.cart
        if cart_changed:
            self._index_cart(item.customer_key, previous, facts)
        purchase = purchase_of(event)
        if purchase is not None:
            cust.open = [promo for promo in cust.open if promo.closes_at >= now]
            found = attribute(cust.open, purchase)
            if found is not None:
                promo, via = found
                self.counts.conversions.add(promo, via, purchase.revenue_millis)
                cust.open.remove(promo)
        change = ActivityChange(item, cust, previous, purchase is not None, cart_changed)
        for name, trigger in REGISTRY.items():
            trigger.on_activity(ctx, self.settings.enabled(name), change)

    def _on_stock_level(self, item: StockLevel, ctx: _Context) -> None:
        sku, level = item.sku, item.network_available
        previous = self._levels.get(sku)
        watch = max(trigger.stock_watch(self.settings.enabled(name)) for name, trigger in REGISTRY.items())
        if level <= watch:
            self._levels[sku] = level
        else:
            self._levels.pop(sku, None)
        for name, trigger in REGISTRY.items():
            trigger.on_stock_level(ctx, self.settings.enabled(name), item, previous)

    def _on_churn_score(self, item: ChurnScore, ctx: _Context) -> None:
        cust = self._customers.get(item.customer_key)
        if cust is None:
            cust = self._customers[item.customer_key] = Customer(CustomerFacts.unknown(item.customer_key))
        for name, trigger in REGISTRY.items():
            trigger.on_churn_score(ctx, self.settings.enabled(name), cust, item)

    def _on_erasure(self, item: Erasure, ctx: _Context) -> None:
        key = item.customer_key
        cust = self._customers.pop(key, None)
        if cust is None:
            return
        for candidate in (*cust.candidates, *(pending.candidate for pending in cust.pending)):
            self.counts.outcomes[candidate.rule, "suppressed_erased"] += 1
        ctx.timers.forget([*(f"{_RULE}{rule}:{key}" for rule in cust.armed), _QUIET + key, _DECIDE + key])
        for trigger in REGISTRY.values():
            trigger.on_erasure(ctx, cust)
        self._index_cart(key, cust.facts, None)

    # -- timers, candidates and decisions

    def _arm(self, cust: Customer, rule: Rule, deadline: int, armed: Armed, shard: DomainShard[Any]) -> None:
        shard.timers.schedule(f"{_RULE}{rule.name}:{armed.customer_key}", deadline, armed)
        cust.armed[rule.name] = None

    def _disarm(self, cust: Customer, rule_name: str, shard: DomainShard[Any], count: bool = True) -> None:
        if rule_name in cust.armed:
            del cust.armed[rule_name]
            shard.timers.cancel(f"{_RULE}{rule_name}:{cust.facts.customer_key}")
            if count:
                self.counts.outcomes[rule_name, "cancelled"] += 1

    def _fire_rule(self, armed: Armed, now: int, ctx: _Context) -> None:
        cust = self._customers.get(armed.customer_key)
        rule = self.settings.rule(armed.rule)
        if cust is None:
            return
        cust.armed.pop(armed.rule, None)
        if rule is None or not rule.enabled:
            return
        fired = REGISTRY[rule.trigger].on_fire(ctx, rule, cust, armed, now)
        if fired is None:
            self.counts.outcomes[rule.name, "cancelled"] += 1
            return
        self._propose(cust, Candidate.create(rule.name, fired.customer_key, fired.cause_event_id, now, fired.skus,
                                             fired.reason), now, ctx.shard)

    def _propose(self, cust: Customer, candidate: Candidate, now: int, shard: DomainShard[Any]) -> None:
        """Add a candidate to the customer's decision at ``now`` (made once time has moved past it)."""
        cust.candidates.append(candidate)
        shard.timers.schedule(_DECIDE + candidate.customer_key, now, candidate.customer_key)

    def _release(self, key: str, now: int, shard: DomainShard[Any]) -> None:
        cust = self._customers.get(key)
        if cust is None:
            return
        due = [pending for pending in cust.pending if pending.release <= now]
        cust.pending = [pending for pending in cust.pending if pending.release > now]
        for pending in due:
            self._propose(cust, pending.candidate, now, shard)
        if cust.pending:
            shard.timers.schedule(_QUIET + key, min(pending.release for pending in cust.pending), key)

    def _decide(self, key: str, now: int, shard: DomainShard[Any]) -> list[Output]:
        cust = self._customers.get(key)
        if cust is None or not cust.candidates:
            return []
        candidates, cust.candidates = cust.candidates, []
        decision = self.policy.decide(now, cust.facts, cust.history, candidates)
        outcomes = self.counts.outcomes
        for candidate, reason in decision.suppressed:
            outcomes[candidate.rule, f"suppressed_{reason}"] += 1
        winner = decision.winner
        if winner is None:
            return []
        rule = self.settings.rule(winner.rule)
        assert rule is not None
        expires_at = winner.created_at + rule.expiry_ms
        if decision.delay_until is not None:
            if decision.delay_until >= expires_at:
                outcomes[winner.rule, "suppressed_expired"] += 1
                return []
            outcomes[winner.rule, DELAYED] += 1
            cust.pending.append(Pending(winner, decision.delay_until))
            shard.timers.schedule(_QUIET + key, min(pending.release for pending in cust.pending), key)
            return []
        self.policy.commit(winner, now, cust.history)
        outcomes[winner.rule, "holdout" if decision.holdout else "sent"] += 1
        code = coupon_code(winner.promotion_id)
        cust.open.append(OpenPromotion(winner.promotion_id, rule.name, code, decision.holdout, now,
                                       now + self.settings.policy.attribution_window_ms, expires_at))
        return [Output(TOPIC, key, {
            "promotion_id": winner.promotion_id,
            "customer_id": key,
            "rule": rule.name,
            "offer": rule.offer.record(winner.skus),
            "coupon_code": code,
            "channel": rule.channel,
            "reason": winner.reason,
            "created_at": iso_ms(winner.created_at),
            "expires_at": iso_ms(expires_at),
            "holdout": decision.holdout,
            "ts": iso_ms(now),
            "cause_event_id": winner.cause_event_id,
        }, now)]

    # -- indexes

    def _index_cart(self, key: str, before: CustomerFacts | None, after: CustomerFacts | None) -> None:
        old = set(before.cart_skus()) if before is not None else set()
        new = set(after.cart_skus()) if after is not None else set()
        for sku in old - new:
            holders = self._in_cart.get(sku)
            if holders is not None:
                holders.pop(key, None)
                if not holders:
                    del self._in_cart[sku]
        for sku in sorted(new - old):
            self._in_cart.setdefault(sku, {})[key] = None


class _Context:
    """What a trigger hook may use of a :class:`Promotions` and its shard (``triggers.base.Context``)."""

    __slots__ = ("domain", "shard")

    def __init__(self, domain: Promotions, shard: DomainShard[Any]) -> None:
        self.domain = domain
        self.shard = shard

    @property
    def settings(self) -> PromotionSettings:
        return self.domain.settings

    @property
    def timers(self) -> TimerQueue[Any]:
        return self.shard.timers

    @property
    def waitlists(self) -> dict[tuple[str, str], dict[str, int]]:
        return self.domain._waitlists

    def customer(self, key: str) -> Customer:
        return self.domain._customers[key]

    def level(self, sku: str) -> int | None:
        return self.domain._levels.get(sku)

    def in_cart(self, sku: str) -> Iterable[str]:
        return self.domain._in_cart.get(sku, {})

    def share(self, total: int) -> int:
        return budget_share(total, self.domain.shard, self.domain.shards)

    def propose(self, cust: Customer, candidate: Candidate, now: int) -> None:
        self.domain._propose(cust, candidate, now, self.shard)

    def arm(self, cust: Customer, rule: Rule, deadline: int, armed: Armed) -> None:
        self.domain._arm(cust, rule, deadline, armed, self.shard)

    def disarm(self, cust: Customer, rule: str, *, count: bool = True) -> None:
        self.domain._disarm(cust, rule, self.shard, count)

    def count(self, rule: str, outcome: str) -> None:
        self.domain.counts.outcomes[rule, outcome] += 1
