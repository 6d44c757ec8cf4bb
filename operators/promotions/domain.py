"""Trigger-based promotions: the promotions domain of one shard of customers.

:class:`Promotions` turns the items of ``operators.promotions.inputs`` into
``promotions`` records. Triggers (``operators.promotions.rules``) propose
candidates; a candidate waits until event time has moved past its moment, so
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
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any

from operators.contract.dead_letter import iso_ms
from operators.contract.money import from_millis
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
    ContactHistory,
    DeliveryPolicy,
    budget_share,
    coupon_code,
    customer_zone,
    local_datetime,
    local_epoch_ms,
)
from operators.promotions.rules import (
    BackInStock,
    Birthday,
    BrowseAbandoned,
    CartAbandoned,
    ChurnRisk,
    FirstPurchaseFollowup,
    LowStockUrgency,
    PromotionSettings,
    Rule,
    TierUpgrade,
)
from operators.time.shard import DomainShard
from operators.time.sharding import shard_of
from operators.time.stream_items import Output, Signal
from operators.time.timers import Timer

__all__ = ["OUTCOMES", "TOPIC", "PromotionCounts", "Promotions", "promotions_shards"]

TOPIC = "promotions"
#: Outcomes besides ``suppressed_<reason>``: ``cancelled`` (a cart, browse or follow-up trigger
#: withdrawn before it fired) and ``waitlist_full`` (a back-in-stock waitlist turned a customer away).
OUTCOMES = ("sent", "holdout", DELAYED, "cancelled", "waitlist_full")
_MAX_BROWSED_SKUS = 50  # per customer: the most recently viewed SKUs are kept

# Timer keys. "~" sorts after every other prefix, so a customer's decision at time T runs
# after every other timer at T, each of which may add a candidate to it.
_RULE, _QUIET, _WAITLIST, _DECIDE = "r:", "q:", "w:", "~d:"


def promotions_shards(item: PromotionInput, shards: int) -> set[int]:
    """The promotions shards ``item`` must reach: its customer's, or all for a stock level.

    >>> sorted(promotions_shards(StockLevel("MUG", 0, 3, "e1"), 3))
    [0, 1, 2]
    """
    if isinstance(item, StockLevel):
        return set(range(shards))
    return {shard_of(item.customer_key, shards)}


@dataclass(frozen=True, slots=True)
class _Armed:
    """The payload of a rule timer: the trigger instance it will fire."""

    rule: str
    customer_key: str
    cause_event_id: str
    skus: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True, slots=True)
class _Pending:
    """A winner waiting for the customer's quiet hours to end at ``release``."""

    candidate: Candidate
    release: int


@dataclass(slots=True)
class _Customer:
    """Everything the domain holds about one customer (erasure drops it whole)."""

    facts: CustomerFacts
    history: ContactHistory = field(default_factory=ContactHistory)
    views: dict[str, list[int]] = field(default_factory=dict)  # sku -> recent view times
    candidates: list[Candidate] = field(default_factory=list)  # waiting for this moment's decision
    pending: list[_Pending] = field(default_factory=list)  # waiting for quiet hours to end
    open: list[OpenPromotion] = field(default_factory=list)  # can still convert
    armed: dict[str, None] = field(default_factory=dict)  # rules with a pending trigger timer
    churn_high: dict[str, None] = field(default_factory=dict)  # churn rules whose threshold is reached
    waitlists: dict[tuple[str, str], None] = field(default_factory=dict)  # (rule, sku)


@dataclass
class PromotionCounts:
    """What happened since the last :meth:`Promotions.drain`, for the metrics.

    ``outcomes`` by ``(rule, outcome)``: ``sent``, ``holdout``,
    ``suppressed_<reason>`` and the :data:`OUTCOMES`.
    """

    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    conversions: ConversionCounts = field(default_factory=ConversionCounts)


def _human(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _next_birthday(after: int, birthday: str | None, send_at: time, facts: CustomerFacts,
                   default_zone: str) -> int | None:
    """The first local ``send_at`` on the customer's birthday strictly after ``after``."""
    try:
        _, month, day = (int(part) for part in (birthday or "").split("-"))
        date(2000, month, day)  # a leap year: 29 February is a birthday
    except ValueError:
        return None
    zone = customer_zone(facts, default_zone)
    year = local_datetime(after, zone).year
    for candidate_year in (year, year + 1):
        try:
            on = date(candidate_year, month, day)
        except ValueError:  # 29 February in a common year
            on = date(candidate_year, 2, 28)
        moment = local_epoch_ms(on, send_at, zone)
        if moment > after:
            return moment
    return None


class Promotions:
    """The promotions domain of shard ``shard`` of ``shards`` (a ``Domain`` for ``DomainShard``).

    >>> from operators.contract.events import Event
    >>> from channelflow.config import load_promotions
    >>> from operators.time.stream_items import Progress
    >>> shard = DomainShard(Promotions(load_promotions()), upstreams=1)
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
        self._customers: dict[str, _Customer] = {}
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
        if isinstance(item, Activity):
            self._on_activity(item, shard)
        elif isinstance(item, StockLevel):
            self._on_stock_level(item, shard)
        elif isinstance(item, ChurnScore):
            self._on_churn_score(item, shard)
        elif isinstance(item, Erasure):
            self._on_erasure(item, shard)
        else:
            raise TypeError(f"not a promotions input: {type(item).__name__}")
        return outputs

    def on_timer(self, timer: Timer[Any], shard: DomainShard[Any]) -> list[Output]:
        if timer.key.startswith(_DECIDE):
            return self._decide(timer.payload, timer.deadline, shard)
        if timer.key.startswith(_RULE):
            self._fire_rule(timer.payload, timer.deadline, shard)
        elif timer.key.startswith(_QUIET):
            self._release(timer.payload, timer.deadline, shard)
        elif timer.key.startswith(_WAITLIST):
            self._expire_waitlist(*timer.payload, timer.deadline, shard)
        return []

    def on_watermark(self, shard: DomainShard[Any]) -> list[Output]:
        """Nothing to do: every delay is a timer."""
        return []

    # -- items

    def _on_activity(self, item: Activity, shard: DomainShard[Any]) -> None:
        event, facts, now = item.event, item.facts, item.ts
        cust = self._customers.get(item.customer_key)
        previous = None if cust is None else cust.facts
        if cust is None:
            cust = self._customers[item.customer_key] = _Customer(facts)
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
            for rule in (*self.settings.enabled("cart_abandoned"), *self.settings.enabled("browse_abandoned")):
                self._disarm(cust, rule.name, shard)
            self._leave_waitlists(cust, item.customer_key, {line["sku"] for line in event.body["lines"]})
        elif cart_changed:
            self._on_cart_change(cust, item, shard)
        sku = event.body.get("sku") if event.type in ("product_view", "add_to_cart") else None
        if isinstance(sku, str):
            if event.type == "product_view":
                self._on_view(cust, item, sku, shard)
            else:
                self._on_add_to_cart(cust, item, sku, shard)
            if self._levels.get(sku, 1) <= 0:
                self._join_waitlists(cust, item, sku, shard)
        if purchase is not None:
            self._on_purchase_count(cust, item, shard)
        self._on_lifetime_value(cust, item, 0 if previous is None else previous.lifetime_value_millis, shard)
        if previous is None or (previous.birthday, previous.timezone) != (facts.birthday, facts.timezone):
            self._schedule_birthdays(cust, now, item.cause_event_id, shard)

    def _on_stock_level(self, item: StockLevel, shard: DomainShard[Any]) -> None:
        sku, level = item.sku, item.network_available
        previous = self._levels.get(sku)
        low_rules = self.settings.enabled("low_stock_urgency")
        thresholds = [rule.params.max_available for rule in low_rules if isinstance(rule.params, LowStockUrgency)]
        if level <= max(thresholds, default=0):
            self._levels[sku] = level
        else:
            self._levels.pop(sku, None)
        if level > 0 and previous is not None and previous <= 0:
            for rule in self.settings.enabled("back_in_stock"):
                waiting = self._waitlists.pop((rule.name, sku), {})
                shard.timers.cancel(f"{_WAITLIST}{rule.name}:{sku}")
                for key in waiting:
                    cust = self._customers[key]
                    del cust.waitlists[rule.name, sku]
                    self._propose(cust, Candidate.create(rule.name, key, item.cause_event_id, item.ts, (sku,),
                                                         f"{sku} is back in stock"), item.ts, shard)
        for rule in low_rules:
            params = rule.params
            assert isinstance(params, LowStockUrgency)
            was_above = previous is None or previous > params.max_available or previous <= 0
            if 0 < level <= params.max_available and was_above:
                for key in self._in_cart.get(sku, {}):
                    self._propose(self._customers[key], Candidate.create(
                        rule.name, key, item.cause_event_id, item.ts, (sku,),
                        f"only {level} left of {sku}, which is in the cart"), item.ts, shard)

    def _on_churn_score(self, item: ChurnScore, shard: DomainShard[Any]) -> None:
        cust = self._customers.get(item.customer_key)
        if cust is None:
            cust = self._customers[item.customer_key] = _Customer(CustomerFacts.unknown(item.customer_key))
        for rule in self.settings.enabled("churn_risk"):
            params = rule.params
            assert isinstance(params, ChurnRisk)
            if item.churn_risk < params.threshold:
                cust.churn_high.pop(rule.name, None)
            elif rule.name not in cust.churn_high:  # fires when the score rises to the threshold, not while high
                cust.churn_high[rule.name] = None
                self._propose(cust, Candidate.create(
                    rule.name, item.customer_key, item.cause_event_id, item.ts, (),
                    f"churn risk {item.churn_risk:.2f} at or above {params.threshold:g}"), item.ts, shard)

    def _on_erasure(self, item: Erasure, shard: DomainShard[Any]) -> None:
        key = item.customer_key
        cust = self._customers.pop(key, None)
        if cust is None:
            return
        for candidate in (*cust.candidates, *(pending.candidate for pending in cust.pending)):
            self.counts.outcomes[candidate.rule, "suppressed_erased"] += 1
        shard.timers.forget([*(f"{_RULE}{rule}:{key}" for rule in cust.armed), _QUIET + key, _DECIDE + key])
        self._leave_waitlists(cust, key, {sku for _, sku in cust.waitlists})
        self._index_cart(key, cust.facts, None)

    # -- triggers

    def _on_cart_change(self, cust: _Customer, item: Activity, shard: DomainShard[Any]) -> None:
        for rule in self.settings.enabled("cart_abandoned"):
            params = rule.params
            assert isinstance(params, CartAbandoned)
            if item.facts.cart:
                self._arm(cust, rule, item.ts + params.delay_ms, _Armed(rule.name, item.customer_key,
                                                                        item.cause_event_id), shard)
            else:
                self._disarm(cust, rule.name, shard)

    def _on_view(self, cust: _Customer, item: Activity, sku: str, shard: DomainShard[Any]) -> None:
        rules = self.settings.enabled("browse_abandoned")
        if not rules:
            return
        now = item.ts
        longest = max(rule.params.window_ms for rule in rules)  # type: ignore[union-attr]
        most = max(rule.params.views for rule in rules)  # type: ignore[union-attr]
        views = cust.views.pop(sku, [])  # re-inserted last: the dict stays in order of last view
        views = [t for t in views if t > now - longest][-(most - 1):] if most > 1 else []
        views.append(now)
        cust.views[sku] = views
        for stale in [s for s, times in cust.views.items() if times[-1] <= now - longest]:
            del cust.views[stale]
        while len(cust.views) > _MAX_BROWSED_SKUS:
            del cust.views[next(iter(cust.views))]
        if sku in item.facts.cart_skus():
            return
        for rule in rules:
            params = rule.params
            assert isinstance(params, BrowseAbandoned)
            seen = sum(1 for t in views if t > now - params.window_ms)
            if seen >= params.views:
                reason = f"viewed {sku} {seen} times within {_human(params.window_ms)} without adding it to the cart"
                self._arm(cust, rule, now + params.delay_ms,
                          _Armed(rule.name, item.customer_key, item.cause_event_id, (sku,), reason), shard)

    def _on_add_to_cart(self, cust: _Customer, item: Activity, sku: str, shard: DomainShard[Any]) -> None:
        level = self._levels.get(sku)
        if level is None or level <= 0:
            return
        for rule in self.settings.enabled("low_stock_urgency"):
            params = rule.params
            assert isinstance(params, LowStockUrgency)
            if level <= params.max_available:
                self._propose(cust, Candidate.create(rule.name, item.customer_key, item.cause_event_id, item.ts,
                                                     (sku,), f"only {level} left of {sku}, which is in the cart"),
                              item.ts, shard)

    def _on_purchase_count(self, cust: _Customer, item: Activity, shard: DomainShard[Any]) -> None:
        for rule in self.settings.enabled("first_purchase_followup"):
            params = rule.params
            assert isinstance(params, FirstPurchaseFollowup)
            if item.facts.orders == 1:
                reason = f"one purchase and none in the {_human(params.after_ms)} since"
                self._arm(cust, rule, item.ts + params.after_ms,
                          _Armed(rule.name, item.customer_key, item.cause_event_id, (), reason), shard)
            else:
                self._disarm(cust, rule.name, shard)

    def _on_lifetime_value(self, cust: _Customer, item: Activity, before: int, shard: DomainShard[Any]) -> None:
        after = item.facts.lifetime_value_millis
        for rule in self.settings.enabled("tier_upgrade"):
            params = rule.params
            assert isinstance(params, TierUpgrade)
            if before < params.threshold_millis <= after:
                self._propose(cust, Candidate.create(
                    rule.name, item.customer_key, item.cause_event_id, item.ts, (),
                    f"lifetime spend reached {from_millis(params.threshold_millis):.2f}"), item.ts, shard)

    def _schedule_birthdays(self, cust: _Customer, now: int, cause_event_id: str, shard: DomainShard[Any]) -> None:
        for rule in self.settings.enabled("birthday"):
            params = rule.params
            assert isinstance(params, Birthday)
            moment = _next_birthday(now, cust.facts.birthday, params.send_at, cust.facts,
                                    self.settings.policy.quiet_hours.default_timezone)
            if moment is None:
                self._disarm(cust, rule.name, shard, count=False)
            else:
                self._arm(cust, rule, moment, _Armed(rule.name, cust.facts.customer_key, cause_event_id, (),
                                                     "birthday"), shard)

    def _join_waitlists(self, cust: _Customer, item: Activity, sku: str, shard: DomainShard[Any]) -> None:
        for rule in self.settings.enabled("back_in_stock"):
            params = rule.params
            assert isinstance(params, BackInStock)
            waiting = self._waitlists.setdefault((rule.name, sku), {})
            if item.customer_key in waiting:
                continue
            if len(waiting) >= budget_share(params.waitlist_size, self.shard, self.shards):
                self.counts.outcomes[rule.name, "waitlist_full"] += 1
                if not waiting:
                    del self._waitlists[rule.name, sku]
                continue
            if not waiting:
                shard.timers.schedule(f"{_WAITLIST}{rule.name}:{sku}", item.ts + params.waitlist_ttl_ms,
                                      (rule.name, sku))
            waiting[item.customer_key] = item.ts
            cust.waitlists[rule.name, sku] = None

    def _leave_waitlists(self, cust: _Customer, key: str, skus: set[str]) -> None:
        for rule, sku in [entry for entry in cust.waitlists if entry[1] in skus]:
            del cust.waitlists[rule, sku]
            waiting = self._waitlists.get((rule, sku))
            if waiting is not None:
                waiting.pop(key, None)  # an empty list is dropped when its timer fires

    def _expire_waitlist(self, rule_name: str, sku: str, now: int, shard: DomainShard[Any]) -> None:
        waiting = self._waitlists.get((rule_name, sku))
        rule = self.settings.rule(rule_name)
        if waiting is None:
            return
        ttl = rule.params.waitlist_ttl_ms if rule is not None and isinstance(rule.params, BackInStock) else 0
        for key, joined in list(waiting.items()):
            if joined + ttl > now:
                shard.timers.schedule(f"{_WAITLIST}{rule_name}:{sku}", joined + ttl, (rule_name, sku))
                return
            del waiting[key]
            self._customers[key].waitlists.pop((rule_name, sku), None)
        del self._waitlists[rule_name, sku]

    # -- timers, candidates and decisions

    def _arm(self, cust: _Customer, rule: Rule, deadline: int, armed: _Armed, shard: DomainShard[Any]) -> None:
        shard.timers.schedule(f"{_RULE}{rule.name}:{armed.customer_key}", deadline, armed)
        cust.armed[rule.name] = None

    def _disarm(self, cust: _Customer, rule_name: str, shard: DomainShard[Any], count: bool = True) -> None:
        if rule_name in cust.armed:
            del cust.armed[rule_name]
            shard.timers.cancel(f"{_RULE}{rule_name}:{cust.facts.customer_key}")
            if count:
                self.counts.outcomes[rule_name, "cancelled"] += 1

    def _fire_rule(self, armed: _Armed, now: int, shard: DomainShard[Any]) -> None:
        cust = self._customers.get(armed.customer_key)
        rule = self.settings.rule(armed.rule)
        if cust is None:
            return
        cust.armed.pop(armed.rule, None)
        if rule is None or not rule.enabled:
            return
        facts = cust.facts
        skus, reason = armed.skus, armed.reason
        if isinstance(rule.params, CartAbandoned):
            skus = facts.cart_skus()
            reason = f"{len(facts.cart)} line(s) left in the cart for {_human(rule.params.delay_ms)}"
        elif ((isinstance(rule.params, BrowseAbandoned) and set(skus) & set(facts.cart_skus()))
              or (isinstance(rule.params, FirstPurchaseFollowup) and facts.orders != 1)):
            self.counts.outcomes[rule.name, "cancelled"] += 1  # in the cart after all / bought again
            return
        elif isinstance(rule.params, Birthday):
            next_year = _next_birthday(now, facts.birthday, rule.params.send_at, facts,
                                       self.settings.policy.quiet_hours.default_timezone)
            if next_year is not None:
                self._arm(cust, rule, next_year, armed, shard)
        self._propose(cust, Candidate.create(rule.name, armed.customer_key, armed.cause_event_id, now, skus, reason),
                      now, shard)

    def _propose(self, cust: _Customer, candidate: Candidate, now: int, shard: DomainShard[Any]) -> None:
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
            cust.pending.append(_Pending(winner, decision.delay_until))
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
