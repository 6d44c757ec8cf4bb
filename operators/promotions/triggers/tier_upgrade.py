"""``tier_upgrade``: lifetime spend crossing a threshold.

Fires when the customer's lifetime spend (profile) rises from below
``threshold`` to it or above. One rule per tier.

>>> from operators.promotions.examples import example_shard, customer, order, fire
>>> shard = example_shard({"gold_tier": {"trigger": "tier_upgrade", "threshold": 1000.00}})
>>> shard.on_event(order(customer("c1", lifetime_value_millis=1_200_000), "e1", 0, total=1200.0))
[]
>>> fire(shard, 1)
[('gold_tier', 'c1', 'lifetime spend reached 1000.00')]
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from operators.contract.money import from_millis
from operators.promotions.policy import Candidate
from operators.promotions.rules import Rule
from operators.promotions.triggers.base import ActivityChange, Context, Trigger
from operators.settings import parse_money

__all__ = ["TRIGGER", "TierUpgrade"]


@dataclass(frozen=True, slots=True)
class TierUpgrade:
    """Lifetime spend rising to ``threshold_millis`` or above."""

    threshold_millis: int


class TierUpgradeTrigger(Trigger):
    name = "tier_upgrade"
    params = TierUpgrade
    keys = MappingProxyType({"threshold": parse_money})

    def on_activity(self, ctx: Context, rules: tuple[Rule, ...], change: ActivityChange) -> None:
        item = change.item
        before = 0 if change.previous is None else change.previous.lifetime_value_millis
        after = item.facts.lifetime_value_millis
        for rule in rules:
            params = rule.params
            assert isinstance(params, TierUpgrade)
            if before < params.threshold_millis <= after:
                ctx.propose(change.cust, Candidate.create(
                    rule.name, item.customer_key, item.cause_event_id, item.ts, (),
                    f"lifetime spend reached {from_millis(params.threshold_millis):.2f}"), item.ts)


TRIGGER = TierUpgradeTrigger()
