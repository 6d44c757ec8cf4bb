"""``cart_abandoned``: items left in the cart.

Fires ``delay`` after the last change of the cart (a later change moves it),
unless a purchase (an online order or a till sale) or an emptied cart comes
first: an order at or before the deadline cancels it, one a millisecond after
comes too late. The offer's SKUs are the cart's when it fires.

>>> from operators.promotions.examples import example_shard, customer, activity, fire
>>> shard = example_shard({"cart_reminder": {"trigger": "cart_abandoned", "delay": "1h"}})
>>> carted = customer("c1", cart=(("MUG", 1, 9_500),))
>>> shard.on_event(activity(carted, "e1", "add_to_cart", 0, sku="MUG", qty=1, price=9.5))
[]
>>> fire(shard, 3_600_000)  # the deadline itself is not past
[]
>>> fire(shard, 3_600_001)
[('cart_reminder', 'c1', '1 line(s) left in the cart for 1h')]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType

from operators.promotions.rules import Rule
from operators.promotions.state import Armed, Customer
from operators.promotions.triggers.base import ActivityChange, Context, Trigger, human_duration
from operators.settings import parse_positive_duration

__all__ = ["TRIGGER", "CartAbandoned"]


@dataclass(frozen=True, slots=True)
class CartAbandoned:
    """Fires ``delay_ms`` after the last cart change unless an order or an emptied cart comes first."""

    delay_ms: int


class CartAbandonedTrigger(Trigger):
    name = "cart_abandoned"
    params = CartAbandoned
    keys = MappingProxyType({"delay": parse_positive_duration})

    def on_activity(self, ctx: Context, rules: tuple[Rule, ...], change: ActivityChange) -> None:
        if change.purchased:
            for rule in rules:
                ctx.disarm(change.cust, rule.name)
        elif change.cart_changed:
            item = change.item
            for rule in rules:
                assert isinstance(rule.params, CartAbandoned)
                if item.facts.cart:
                    ctx.arm(change.cust, rule, item.ts + rule.params.delay_ms,
                            Armed(rule.name, item.customer_key, item.cause_event_id))
                else:
                    ctx.disarm(change.cust, rule.name)

    def on_fire(self, ctx: Context, rule: Rule, cust: Customer, armed: Armed, now: int) -> Armed | None:
        assert isinstance(rule.params, CartAbandoned)
        facts = cust.facts
        reason = f"{len(facts.cart)} line(s) left in the cart for {human_duration(rule.params.delay_ms)}"
        return replace(armed, skus=facts.cart_skus(), reason=reason)


TRIGGER = CartAbandonedTrigger()
