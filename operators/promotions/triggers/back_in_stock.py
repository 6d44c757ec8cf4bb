"""``back_in_stock``: customers told when a SKU they wanted is available again.

A customer who views or carts a SKU while its network availability is 0 or
less joins the SKU's waitlist (first come, first served, at most
``waitlist_size`` per SKU over all shards, each shard holding its share; a
customer turned away is counted as ``waitlist_full``). A customer leaves it
``waitlist_ttl`` after joining, on buying the SKU, or on erasure. When the
SKU's availability rises above 0, everyone on the list gets the promotion.

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
from typing import TYPE_CHECKING, Any

from operators.promotions.inputs import StockLevel
from operators.promotions.policy import Candidate
from operators.promotions.state import Customer
from operators.promotions.triggers.base import ActivityChange, Context, Trigger
from operators.settings import parse_int, parse_positive_duration
from operators.time.timers import Timer

if TYPE_CHECKING:
    from operators.promotions.rules import Rule

__all__ = ["TRIGGER", "WAITLIST_TIMER", "BackInStock"]

#: Key prefix of a waitlist's expiry timer (``w:<rule>:<sku>``, payload ``(rule, sku)``).
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
    name = "back_in_stock"
    params = BackInStock
    keys = MappingProxyType({"waitlist_size": parse_int(1, 10_000_000), "waitlist_ttl": parse_positive_duration})
    timer_prefix = WAITLIST_TIMER

    def on_activity(self, ctx: Context, rules: tuple[Rule, ...], change: ActivityChange) -> None:
        item = change.item
        if change.purchased:
            _leave(ctx, change.cust, item.customer_key, {line["sku"] for line in item.event.body["lines"]})
        sku = change.sku
        if sku is None:
            return
        level = ctx.level(sku)
        if level is not None and level <= 0:
            self._join(ctx, rules, change.cust, item.customer_key, sku, item.ts)

    def _join(self, ctx: Context, rules: tuple[Rule, ...], cust: Customer, key: str, sku: str, now: int) -> None:
        for rule in rules:
            params = rule.params
            assert isinstance(params, BackInStock)
            waiting = ctx.waitlists.setdefault((rule.name, sku), {})
            if key in waiting:
                continue
            if len(waiting) >= ctx.share(params.waitlist_size):
                ctx.count(rule.name, "waitlist_full")
                if not waiting:
                    del ctx.waitlists[rule.name, sku]
                continue
            if not waiting:
                ctx.timers.schedule(f"{WAITLIST_TIMER}{rule.name}:{sku}", now + params.waitlist_ttl_ms,
                                    (rule.name, sku))
            waiting[key] = now
            cust.waitlists[rule.name, sku] = None

    def on_stock_level(self, ctx: Context, rules: tuple[Rule, ...], item: StockLevel,
                       previous: int | None) -> None:
        sku = item.sku
        if not (item.network_available > 0 and previous is not None and previous <= 0):
            return
        for rule in rules:
            waiting = ctx.waitlists.pop((rule.name, sku), {})
            ctx.timers.cancel(f"{WAITLIST_TIMER}{rule.name}:{sku}")
            for key in waiting:
                cust = ctx.customer(key)
                del cust.waitlists[rule.name, sku]
                ctx.propose(cust, Candidate.create(rule.name, key, item.cause_event_id, item.ts, (sku,),
                                                   f"{sku} is back in stock"), item.ts)

    def on_timer(self, ctx: Context, timer: Timer[Any]) -> None:
        """A waitlist's earliest joiner is due to leave: expire everyone due, re-arm for the next."""
        rule_name, sku = timer.payload
        now = timer.deadline
        waiting = ctx.waitlists.get((rule_name, sku))
        rule = ctx.settings.rule(rule_name)
        if waiting is None:
            return
        ttl = rule.params.waitlist_ttl_ms if rule is not None and isinstance(rule.params, BackInStock) else 0
        for key, joined in list(waiting.items()):
            if joined + ttl > now:
                ctx.timers.schedule(f"{WAITLIST_TIMER}{rule_name}:{sku}", joined + ttl, (rule_name, sku))
                return
            del waiting[key]
            ctx.customer(key).waitlists.pop((rule_name, sku), None)
        del ctx.waitlists[rule_name, sku]

    def on_erasure(self, ctx: Context, cust: Customer) -> None:
        _leave(ctx, cust, cust.facts.customer_key, {sku for _, sku in cust.waitlists})


def _leave(ctx: Context, cust: Customer, key: str, skus: set[str]) -> None:
    for rule, sku in [entry for entry in cust.waitlists if entry[1] in skus]:
        del cust.waitlists[rule, sku]
        waiting = ctx.waitlists.get((rule, sku))
        if waiting is not None:
            waiting.pop(key, None)  # an empty list is dropped when its timer fires


TRIGGER = BackInStockTrigger()
