"""``churn_risk``: a customer likely to leave.

Fires when the customer's churn score (from the churn stage) rises to
``threshold`` or above; not again while it stays there, again after it has
fallen below.

>>> from operators.promotions.examples import example_shard, customer, activity, fire
>>> from operators.promotions.inputs import ChurnScore
>>> shard = example_shard({"win_back": {"trigger": "churn_risk", "threshold": 0.7}})
>>> _ = shard.on_event(activity(customer("c1"), "e1", "product_view", 0, sku="MUG"))
>>> _ = shard.on_event(ChurnScore("c1", 1_000, 0.5, "s1"))
>>> _ = shard.on_event(ChurnScore("c1", 2_000, 0.8, "s2"))
>>> fire(shard, 2_001)
[('win_back', 'c1', 'churn risk 0.80 at or above 0.7')]
>>> _ = shard.on_event(ChurnScore("c1", 3_000, 0.9, "s3"))
>>> fire(shard, 3_001)  # not again while it stays high
[]
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from operators.promotions.inputs import ChurnScore
from operators.promotions.policy import Candidate
from operators.promotions.rules import Rule
from operators.promotions.state import Customer
from operators.promotions.triggers.base import Context, Trigger
from operators.settings import parse_number

__all__ = ["TRIGGER", "ChurnRisk"]


@dataclass(frozen=True, slots=True)
class ChurnRisk:
    """A churn score rising to ``threshold`` or above."""

    threshold: float


class ChurnRiskTrigger(Trigger):
    name = "churn_risk"
    params = ChurnRisk
    keys = MappingProxyType({"threshold": parse_number(0.0, 1.0, exclusive_min=True)})

    def on_churn_score(self, ctx: Context, rules: tuple[Rule, ...], cust: Customer, item: ChurnScore) -> None:
        for rule in rules:
            params = rule.params
            assert isinstance(params, ChurnRisk)
            if item.churn_risk < params.threshold:
                cust.churn_high.pop(rule.name, None)
            elif rule.name not in cust.churn_high:  # fires when the score rises to the threshold, not while high
                cust.churn_high[rule.name] = None
                ctx.propose(cust, Candidate.create(
                    rule.name, item.customer_key, item.cause_event_id, item.ts, (),
                    f"churn risk {item.churn_risk:.2f} at or above {params.threshold:g}"), item.ts)


TRIGGER = ChurnRiskTrigger()
