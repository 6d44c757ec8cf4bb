"""``low_stock_urgency``: a SKU in the cart is running out.

Fires for every customer with the SKU in the cart when its network
availability falls to ``max_available`` or below (and above 0), and for a
customer who adds a SKU already that low. Stock levels arrive when
availability crosses 0 or ``inventory.low_stock_threshold``, so
``max_available`` should be at or below that threshold.

>>> from operators.promotions.examples import example_shard, customer, activity, fire
>>> from operators.promotions.inputs import StockLevel
>>> shard = example_shard({"few_left": {"trigger": "low_stock_urgency", "max_available": 5}})
>>> carted = customer("c1", cart=(("MUG", 1, 9_500),))
>>> _ = shard.on_event(activity(carted, "e1", "add_to_cart", 0, sku="MUG", qty=1, price=9.5))
>>> _ = shard.on_event(StockLevel("MUG", 1_000, 3, "s1"))
>>> fire(shard, 1_001)
[('few_left', 'c1', 'only 3 left of MUG, which is in the cart')]
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from operators.promotions.inputs import StockLevel
from operators.promotions.policy import Candidate
from operators.promotions.rules import Rule
from operators.promotions.triggers.base import ActivityChange, Context, Trigger
from operators.settings import parse_int

__all__ = ["TRIGGER", "LowStockUrgency"]


@dataclass(frozen=True, slots=True)
class LowStockUrgency:
    """A SKU in the cart with network availability at or below ``max_available`` (and above 0)."""

    max_available: int


def _params(rule: Rule) -> LowStockUrgency:
    assert isinstance(rule.params, LowStockUrgency)
    return rule.params


def _reason(level: int, sku: str) -> str:
    return f"only {level} left of {sku}, which is in the cart"


class LowStockUrgencyTrigger(Trigger):
    name = "low_stock_urgency"
    params = LowStockUrgency
    keys = MappingProxyType({"max_available": parse_int(1)})

    def stock_watch(self, rules: tuple[Rule, ...]) -> int:
        return max((_params(rule).max_available for rule in rules), default=0)

    def on_activity(self, ctx: Context, rules: tuple[Rule, ...], change: ActivityChange) -> None:
        sku = change.sku
        if sku is None or change.item.event.type != "add_to_cart":
            return
        level = ctx.level(sku)
        if level is None or level <= 0:
            return
        item = change.item
        for rule in rules:
            if level <= _params(rule).max_available:
                ctx.propose(change.cust, Candidate.create(rule.name, item.customer_key, item.cause_event_id,
                                                          item.ts, (sku,), _reason(level, sku)), item.ts)

    def on_stock_level(self, ctx: Context, rules: tuple[Rule, ...], item: StockLevel,
                       previous: int | None) -> None:
        sku, level = item.sku, item.network_available
        for rule in rules:
            params = _params(rule)
            was_above = previous is None or previous > params.max_available or previous <= 0
            if 0 < level <= params.max_available and was_above:
                for key in ctx.in_cart(sku):
                    ctx.propose(ctx.customer(key), Candidate.create(
                        rule.name, key, item.cause_event_id, item.ts, (sku,), _reason(level, sku)), item.ts)


TRIGGER = LowStockUrgencyTrigger()
