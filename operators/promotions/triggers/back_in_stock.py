"""``back_in_stock``: customers told when a SKU they wanted is available again.

A customer who views or carts a SKU while its network availability is 0 or
less asks to join the SKU's waitlist. The waitlists are global, so they live
with the gate (``operators.promotions.gate``, one shard), which takes every
request in event-time order: first come, first served, at most
``waitlist_size`` per rule and SKU whatever the shard count (a customer
turned away is counted and recorded as ``waitlist_full``). A customer leaves
the list ``waitlist_ttl`` after joining, on buying the SKU, or on erasure.
When the SKU's availability rises above 0, everyone on the list gets the
promotion (:class:`Waitlists` here is the gate's part).

>>> from operators.promotions.examples import example_shard, customer, activity, fire
>>> from operators.promotions.inputs import StockLevel
>>> shard = example_shard({"restock": {"trigger": "back_in_stock", "waitlist_size": 10,
...                                    "waitlist_ttl": "30d"}})
>>> _ = shard.on_event(StockLevel("MUG", 0, 0, "s1"))
>>> _ = shard.on_event(activity(customer("c1"), "e1", "product_view", 1_000, sku="MUG"))
>>> shard.domain.waitlist("restock", "MUG")
['c1']
>>> _ = shard.on_event(StockLevel("MUG", 2_000, 40, "s2"))
>>> fire(shard, 2_001)
[('restock', 'c1', 'MUG is back in stock')]
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from operators.promotions.inputs import StockLevel
from operators.promotions.policy import Candidate
from operators.promotions.rules import PromotionSettings, Rule
from operators.promotions.state import Recipient
from operators.promotions.triggers.base import ActivityChange, Context, Trigger
from operators.settings import parse_int, parse_positive_duration
from operators.state.tracked import MutableTrackedDict
from operators.time.timers import Timer, TimerQueue

__all__ = ["TRIGGER", "WAITLIST_TIMER", "BackInStock", "Waitlists"]

#: Key prefix of a waitlist's expiry timer on the gate (``w:<rule>:<sku>``, payload ``(rule, sku)``).
WAITLIST_TIMER = "w:"


@dataclass(frozen=True, slots=True)
class BackInStock:
    """Customers who viewed or carted a SKU while it was out of stock, told when it is back.

    At most ``waitlist_size`` customers per SKU (over all shards; first come,
    first served), each for ``waitlist_ttl_ms`` after joining.
    """

    waitlist_size: int
    waitlist_ttl_ms: int


class BackInStockTrigger(Trigger):
    """The customer shard's part: ask the gate for a place when an out-of-stock SKU is viewed or carted."""

    name = "back_in_stock"
    params = BackInStock
    keys = MappingProxyType({"waitlist_size": parse_int(1, 10_000_000), "waitlist_ttl": parse_positive_duration})

    def on_activity(self, ctx: Context, rules: tuple[Rule, ...], change: ActivityChange) -> None:
        sku = change.sku
        if sku is None:
            return
        level = ctx.level(sku)
        if level is not None and level <= 0:
            for rule in rules:
                ctx.join_waitlist(change.cust, rule, sku, change.item.ts, change.item.cause_event_id)


class Waitlists:
    """The gate's part: every ``back_in_stock`` waitlist, and the SKUs out of stock.

    ``lists`` maps ``(rule, sku)`` to the customers on it and when they
    joined, first come first; the earliest joiner's expiry is a timer
    (``w:<rule>:<sku>``) on the gate's queue.
    """

    def __init__(self) -> None:
        self.lists: MutableTrackedDict[tuple[str, str], dict[str, int]] = MutableTrackedDict()
        self._out: dict[str, int] = {}  # sku -> network availability while at or below 0

    def join(self, rule: Rule, sku: str, key: str, rec: Recipient, now: int, timers: TimerQueue[Any]) -> bool:
        """Put ``key`` on the list (True), or turn them away because it is full (False)."""
        params = rule.params
        assert isinstance(params, BackInStock)
        waiting = self.lists.get((rule.name, sku))
        if waiting is not None and key in waiting:
            return True
        if waiting is not None and len(waiting) >= params.waitlist_size:
            return False
        if waiting is None:
            waiting = self.lists[rule.name, sku] = {}
            timers.schedule(f"{WAITLIST_TIMER}{rule.name}:{sku}", now + params.waitlist_ttl_ms, (rule.name, sku))
        waiting[key] = now
        rec.waitlists[rule.name, sku] = None
        return True

    def on_stock_level(self, item: StockLevel, settings: PromotionSettings, recipients: dict[str, Recipient],
                       timers: TimerQueue[Any]) -> list[Candidate]:
        """A SKU's availability changed: if it is back (above 0 after 0 or less), the candidates of its lists."""
        sku, level = item.sku, item.network_available
        previous = self._out.get(sku)
        if level <= 0:
            self._out[sku] = level
        else:
            self._out.pop(sku, None)
        if not (level > 0 and previous is not None):
            return []
        found: list[Candidate] = []
        for rule in settings.enabled(TRIGGER.name):
            waiting = self.lists.pop((rule.name, sku), {})
            timers.cancel(f"{WAITLIST_TIMER}{rule.name}:{sku}")
            for key in waiting:
                del recipients[key].waitlists[rule.name, sku]
                found.append(Candidate.create(rule.name, key, item.cause_event_id, item.ts, (sku,),
                                              f"{sku} is back in stock"))
        return found

    def on_timer(self, timer: Timer[Any], settings: PromotionSettings, recipients: dict[str, Recipient],
                 timers: TimerQueue[Any]) -> None:
        """A waitlist's earliest joiner is due to leave: expire everyone due, re-arm for the next."""
        rule_name, sku = timer.payload
        now = timer.deadline
        waiting = self.lists.get((rule_name, sku))
        rule = settings.rule(rule_name)
        if waiting is None:
            return
        ttl = rule.params.waitlist_ttl_ms if rule is not None and isinstance(rule.params, BackInStock) else 0
        for key, joined in list(waiting.items()):
            if joined + ttl > now:
                timers.schedule(f"{WAITLIST_TIMER}{rule_name}:{sku}", joined + ttl, (rule_name, sku))
                return
            del waiting[key]
            recipients[key].waitlists.pop((rule_name, sku), None)
        del self.lists[rule_name, sku]

    def leave(self, rec: Recipient, key: str, skus: set[str]) -> None:
        """``key`` leaves the lists of ``skus`` (a purchase of them, an erasure)."""
        for rule, sku in [entry for entry in rec.waitlists if entry[1] in skus]:
            del rec.waitlists[rule, sku]
            waiting = self.lists.get((rule, sku))
            if waiting is not None:
                waiting.pop(key, None)  # an empty list is dropped when its timer fires


TRIGGER = BackInStockTrigger()
