"""``first_purchase_followup``: a first purchase not followed by a second.

Fires ``after`` the customer's first purchase (profile ``orders`` becomes 1)
if there has been no second one by then.

>>> from operators.promotions.examples import example_shard, customer, order, fire
>>> shard = example_shard({"second_purchase": {"trigger": "first_purchase_followup", "after": "30d"}})
>>> shard.on_event(order(customer("c1", orders=1), "e1", 0))
[]
>>> fire(shard, 30 * 86_400_000 + 1)
[('second_purchase', 'c1', 'one purchase and none in the 30d since')]
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from operators.promotions.rules import Rule
from operators.promotions.state import Armed, Customer
from operators.promotions.triggers.base import ActivityChange, Context, Trigger, human_duration
from operators.settings import parse_positive_duration

__all__ = ["TRIGGER", "FirstPurchaseFollowup"]


@dataclass(frozen=True, slots=True)
class FirstPurchaseFollowup:
    """Still only one purchase ``after_ms`` after the first."""

    after_ms: int


class FirstPurchaseFollowupTrigger(Trigger):
    name = "first_purchase_followup"
    params = FirstPurchaseFollowup
    keys = MappingProxyType({"after": parse_positive_duration})

    def on_activity(self, ctx: Context, rules: tuple[Rule, ...], change: ActivityChange) -> None:
        if not change.purchased:
            return
        item = change.item
        for rule in rules:
            params = rule.params
            assert isinstance(params, FirstPurchaseFollowup)
            if item.facts.orders == 1:
                reason = f"one purchase and none in the {human_duration(params.after_ms)} since"
                ctx.arm(change.cust, rule, item.ts + params.after_ms,
                        Armed(rule.name, item.customer_key, item.cause_event_id, (), reason))
            else:
                ctx.disarm(change.cust, rule.name)

    def on_fire(self, ctx: Context, rule: Rule, cust: Customer, armed: Armed, now: int) -> Armed | None:
        return armed if cust.facts.orders == 1 else None  # bought again


TRIGGER = FirstPurchaseFollowupTrigger()
