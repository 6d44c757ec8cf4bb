"""Trigger-based promotions: the promotions domain of one shard of customers.

:class:`Promotions` runs the triggers (one module each in
``operators.promotions.triggers``, the registry) on the items of
``operators.promotions.inputs``: they react to every item through hooks and
propose candidates, directly or when a rule timer they armed fires. The
decisions are the gate's (``operators.promotions.gate``): daily budgets and
waitlists hold over all customers, so one gate sees every shard's candidates
and decides in one order. In the flow the shard sends the gate what it
needs as signals on the ``promotion_candidates`` stream; on its own
(``local_gate=True``, the default: one shard, the examples and unit tests) it
holds a gate and applies the same messages to it directly, at the same
points, so both give the same records.

Items reach the shard ordered by ``(ts, id)``, so an item's ``ts`` is "now":
before an item is applied, every timer due before it fires. Outputs are then
a function of the item sequence alone, whatever the batch sizes and whenever
the watermark arrives. See ``docs/promotions.md``.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from typing import Any

from operators.promotions.attribution import purchase_of
from operators.promotions.gate import (
    DECISIONS_TOPIC,
    OUTCOMES,
    PROMOTION_CANDIDATES,
    TOPIC,
    GateInput,
    PromotionCounts,
    PromotionGate,
    Purchased,
    WaitlistJoin,
    Withdrawn,
    policy_view,
    same_policy_view,
)
from operators.promotions.inputs import (
    Activity,
    ChurnScore,
    CustomerFacts,
    Erasure,
    PromotionInput,
    StockLevel,
)
from operators.promotions.policy import Candidate
from operators.promotions.rules import PromotionSettings, Rule
from operators.promotions.state import Armed, Customer
from operators.promotions.triggers import REGISTRY, timer_owner
from operators.promotions.triggers.base import ActivityChange
from operators.state.tracked import MutableTrackedDict
from operators.time.shard import DomainShard
from operators.time.sharding import shard_of
from operators.time.stream_items import Output, Signal
from operators.time.timers import Timer, TimerQueue

__all__ = ["DECISIONS_TOPIC", "OUTCOMES", "PROMOTION_CANDIDATES", "TOPIC", "PromotionCounts", "Promotions",
           "promotions_shards"]

# The shard's rule timers (and each trigger's own, its ``timer_prefix``); the gate's are ``q:``,
# ``w:`` and ``~d:``.
_RULE = "r:"
# Order of the signals a timer causes: after every item at the timer's time, as on the shard.
_AFTER_ITEMS = "\uffff"


def promotions_shards(item: PromotionInput, shards: int) -> set[int]:
    """The promotions shards ``item`` must reach: its customer's, or all for a stock level.

    >>> sorted(promotions_shards(StockLevel("MUG", 0, 3, "e1"), 3))
    [0, 1, 2]
    """
    if isinstance(item, StockLevel):
        return set(range(shards))
    return {shard_of(item.customer_key, shards)}


class Promotions:
    """The promotions domain of shard ``shard`` of ``shards`` (a ``Domain`` for ``DomainShard``).

    With ``local_gate`` it decides itself (a gate of its own: one shard in
    all); without, it publishes the gate's inputs as signals.

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
    >>> out, decided = shard.on_progress(Progress(0, noon + 3_600_001))  # one hour later, no order
    >>> out.value["rule"], out.value["offer"], out.value["ts"], out.value["cause_event_id"]
    ('cart_reminder', {'kind': 'percent_off', 'value': 10, 'skus': ['MUG']}, '2026-11-22T13:00:00.000Z', 'e1')
    >>> decided.topic, decided.value["outcome"], decided.value["promotion_id"] == out.value["promotion_id"]
    ('promotion_decisions', 'sent', True)
    >>> shard.domain.drain().outcomes
    Counter({('cart_reminder', 'sent'): 1})
    """

    def __init__(self, settings: PromotionSettings, shard: int = 0, shards: int = 1, *,
                 local_gate: bool = True) -> None:
        self.settings = settings
        self.shard = shard
        self.shards = shards
        self.gate = PromotionGate(settings) if local_gate else None
        self._customers: MutableTrackedDict[str, Customer] = MutableTrackedDict()
        self._levels: dict[str, int] = {}  # sku -> network availability, kept while at or below a threshold
        self._in_cart: MutableTrackedDict[str, dict[str, None]] = MutableTrackedDict()  # sku -> customers with it in their cart
        # What the item or timer being applied has produced so far, and its order (for the signals').
        self._out: list[Output | Signal] = []
        self._origin = ""
        self._sent = 0
        self._clock = 0  # the event time of the item or timer being applied

    # -- queries

    def customer(self, customer_key: str) -> CustomerFacts | None:
        """The latest facts held for a customer (None: not held)."""
        cust = self._customers.get(customer_key)
        return None if cust is None else cust.facts

    def waitlist(self, rule: str, sku: str) -> list[str]:
        """Customers on a back-in-stock waitlist, first come first (the local gate's; [] without one)."""
        return [] if self.gate is None else self.gate.waitlist(rule, sku)

    def drain(self) -> PromotionCounts:
        """The local gate's counts since the last drain (empty without one: the gate stage counts)."""
        return PromotionCounts() if self.gate is None else self.gate.drain()

    def state_size_bytes(self) -> int:
        """Bytes of this domain's pickled state (the state a restore rebuilds)."""
        return len(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))

    def reconfigure(self, fresh: Promotions) -> tuple[str, ...]:
        """Restored from a snapshot: run on with today's rules file (``fresh``'s settings).

        Customers, armed rules and waitlists are kept: an armed rule that is no longer
        enabled does not fire, and a new rule arms from the next activity on.
        """
        self.settings = fresh.settings
        if self.gate is not None and fresh.gate is not None:
            self.gate.reconfigure(fresh.gate)
        return ()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_out"] = []  # only ever non-empty while an item is applied
        return state

    # -- Domain protocol

    def on_event(self, item: PromotionInput | Signal, shard: DomainShard[Any]) -> list[Output | Signal]:
        """Apply one item (or a :class:`Signal` carrying one); first fire every timer due before it.

        Items come in event-time order, so nothing due before this item can still be changed.
        """
        order = item.order if isinstance(item, Signal) else None
        if isinstance(item, Signal):
            item = item.body
        outputs: list[Output | Signal] = []
        timers = shard.timers
        if timers.may_be_due(item.ts - 1):
            for timer in timers.pop_due(item.ts - 1):
                outputs.extend(self.on_timer(timer, shard))
        if not isinstance(item, Activity | StockLevel | ChurnScore | Erasure):
            raise TypeError(f"not a promotions input: {type(item).__name__}")
        self._begin(order if order is not None else f"{item.ts:015d}:{item.cause_event_id}", item.ts)
        ctx = _Context(self, shard)
        if isinstance(item, Activity):
            self._on_activity(item, ctx)
        elif isinstance(item, StockLevel):
            if self.gate is not None:  # the gate's restocks come before the shard's proposals
                self._out.extend(self.gate.apply(item, item.ts, shard.timers))
            self._on_stock_level(item, ctx)
        elif isinstance(item, ChurnScore):
            self._on_churn_score(item, ctx)
        else:
            self._on_erasure(item, ctx)
        outputs.extend(self._take())
        return outputs

    def on_timer(self, timer: Timer[Any], shard: DomainShard[Any]) -> list[Output | Signal]:
        if self.gate is not None and PromotionGate.owns(timer.key):
            return list(self.gate.on_timer(timer, shard))
        self._begin(_AFTER_ITEMS + timer.key, timer.deadline)
        if timer.key.startswith(_RULE):
            self._fire_rule(timer.payload, timer.deadline, _Context(self, shard))
        else:
            owner = timer_owner(timer.key)
            if owner is not None:
                owner.on_timer(_Context(self, shard), timer)
        return self._take()

    def on_watermark(self, shard: DomainShard[Any]) -> list[Output]:
        """Nothing to do: every delay is a timer."""
        return []

    # -- items: shared bookkeeping here, then every trigger's hook, in registry order

    def _on_activity(self, item: Activity, ctx: _Context) -> None:
        event, facts, now = item.event, item.facts, item.ts
        key = item.customer_key
        cust = self._customers.get(key)
        previous = None if cust is None else cust.facts
        if cust is None:
            cust = self._customers[key] = Customer(facts)
        cust.facts = facts
        cart_changed = previous is None or facts.cart != previous.cart
        if cart_changed:
            self._index_cart(key, previous, facts)
        told = cust.told
        if told is not None and not same_policy_view(told, facts):
            cust.told = view = policy_view(facts)
            self._send(view, key, now, ctx.shard)
        purchase = purchase_of(event)
        if purchase is not None and cust.told is not None:
            skus = tuple(dict.fromkeys(line["sku"] for line in event.body["lines"]))
            self._send(Purchased(key, purchase, skus), key, now, ctx.shard)
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
        ctx.timers.forget([f"{_RULE}{rule}:{key}" for rule in cust.armed])
        for trigger in REGISTRY.values():
            trigger.on_erasure(ctx, cust)
        self._index_cart(key, cust.facts, None)
        if cust.told is not None:
            self._send(item, key, item.ts, ctx.shard)

    # -- rule timers, and what goes to the gate

    def _arm(self, cust: Customer, rule: Rule, deadline: int, armed: Armed, shard: DomainShard[Any]) -> None:
        shard.timers.schedule(f"{_RULE}{rule.name}:{armed.customer_key}", deadline, armed)
        cust.armed[rule.name] = armed.cause_event_id

    def _disarm(self, cust: Customer, rule_name: str, shard: DomainShard[Any], count: bool = True) -> None:
        cause = cust.armed.pop(rule_name, None)
        if cause is not None:
            key = cust.facts.customer_key
            shard.timers.cancel(f"{_RULE}{rule_name}:{key}")
            if count:
                self._send(Withdrawn(rule_name, key, cause), key, self._clock, shard)

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
            self._send(Withdrawn(rule.name, armed.customer_key, armed.cause_event_id), armed.customer_key, now,
                       ctx.shard)
            return
        self._tell(cust, Candidate.create(rule.name, fired.customer_key, fired.cause_event_id, now, fired.skus,
                                          fired.reason), now, ctx.shard)

    def _tell(self, cust: Customer, body: GateInput, now: int, shard: DomainShard[Any]) -> None:
        """Send ``body`` about ``cust`` to the gate, after their policy facts if the gate lacks them."""
        key = cust.facts.customer_key
        view = policy_view(cust.facts)
        if cust.told != view:
            cust.told = view
            self._send(view, key, now, shard)
        self._send(body, key, now, shard)

    def _send(self, body: GateInput, key: str, now: int, shard: DomainShard[Any]) -> None:
        """Apply ``body`` to the local gate, or publish it for the gate stage.

        A signal's order is that of the item (or timer) being applied, then the
        customer and a count: the gate applies them in the order this shard
        produced them, and two shards never produce the same order.
        """
        if self.gate is not None:
            self._out.extend(self.gate.apply(body, now, shard.timers))
            return
        self._sent += 1
        self._out.append(Signal(PROMOTION_CANDIDATES, key, now, f"{self._origin}\x1f{key}\x1f{self._sent:05d}",
                                body))

    def _begin(self, origin: str, now: int) -> None:
        self._origin, self._sent, self._clock = origin, 0, now

    def _take(self) -> list[Output | Signal]:
        out, self._out = self._out, []
        return out

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

    def customer(self, key: str) -> Customer:
        return self.domain._customers[key]

    def level(self, sku: str) -> int | None:
        return self.domain._levels.get(sku)

    def in_cart(self, sku: str) -> Iterable[str]:
        return self.domain._in_cart.get(sku, {})

    def join_waitlist(self, cust: Customer, rule: Rule, sku: str, now: int, cause_event_id: str) -> None:
        self.domain._tell(cust, WaitlistJoin(rule.name, cust.facts.customer_key, sku, cause_event_id), now,
                          self.shard)

    def propose(self, cust: Customer, candidate: Candidate, now: int) -> None:
        self.domain._tell(cust, candidate, now, self.shard)

    def arm(self, cust: Customer, rule: Rule, deadline: int, armed: Armed) -> None:
        self.domain._arm(cust, rule, deadline, armed, self.shard)

    def disarm(self, cust: Customer, rule: str, *, count: bool = True) -> None:
        self.domain._disarm(cust, rule, self.shard, count)
