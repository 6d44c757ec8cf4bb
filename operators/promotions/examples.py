"""Small promotion settings and items for examples (the doctests of the promotions modules).

:func:`example_settings` builds validated settings with an open policy (no
caps, quiet hours or holdout; consent required) from rules that give only
their trigger and its keys, plus any common key they change.

>>> rule = example_settings({"cart": {"trigger": "cart_abandoned", "delay": "1h"}}).rules[0]
>>> rule.params, rule.channel, rule.offer
(CartAbandoned(delay_ms=3600000), 'email', Offer(kind='message', value=None, skus=()))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from operators.contract.events import TOPIC_OF_TYPE, Event
from operators.promotions.domain import TOPIC, Promotions
from operators.promotions.inputs import Activity, CustomerFacts
from operators.promotions.rules import PromotionSettings
from operators.promotions.rules_file import promotions_from_mapping
from operators.time.shard import DomainShard
from operators.time.stream_items import Progress

__all__ = ["OPEN_POLICY", "RULE_DEFAULTS", "activity", "customer", "example_settings", "example_shard", "fire",
           "order"]

#: No caps, no quiet hours, no holdout.
OPEN_POLICY: Mapping[str, Any] = {
    "unknown_consent": "deny",
    "attribution_window": "3d",
    "frequency_caps": {"email": [], "push": [], "sms": [], "till": []},
    "quiet_hours": {"start": "00:00", "end": "00:00", "default_timezone": "Europe/London",
                    "channels": ["email", "push", "sms"]},
    "holdout": {"percent": 0, "salt": "example"},
}
#: The keys every rule takes, as an example rule has them unless it says otherwise.
RULE_DEFAULTS: Mapping[str, Any] = {"enabled": True, "channel": "email", "priority": 10, "reeligibility": "0s",
                                    "daily_budget": "unlimited", "expiry": "2d", "offer": {"kind": "message"}}


def example_settings(rules: Mapping[str, Mapping[str, Any]]) -> PromotionSettings:
    """Settings with the open policy and ``rules`` (each completed with :data:`RULE_DEFAULTS`)."""
    return promotions_from_mapping({"policy": dict(OPEN_POLICY),
                                    "rules": {name: {**RULE_DEFAULTS, **rule} for name, rule in rules.items()}})


def example_shard(rules: Mapping[str, Mapping[str, Any]]) -> DomainShard[Promotions]:
    """A one-shard promotions domain with :func:`example_settings` of ``rules``."""
    return DomainShard(Promotions(example_settings(rules)), upstreams=1)


def customer(key: str, **fields: Any) -> CustomerFacts:
    """The profile of an account customer who consented to marketing, with ``fields``."""
    return CustomerFacts(key, **{"is_account": True, "marketing_consent": True, **fields})


def activity(facts: CustomerFacts, event_id: str, event_type: str, ts: int, **body: Any) -> Activity:
    """An event of ``facts``' customer with their profile after it."""
    return Activity(facts, Event(event_id, event_type, TOPIC_OF_TYPE[event_type], ts, body))


def order(facts: CustomerFacts, event_id: str, ts: int, total: float = 20.0, sku: str = "MUG") -> Activity:
    """An online order of one line."""
    return activity(facts, event_id, "order_placed", ts, order_id=f"o-{event_id}", total=total,
                    lines=[{"sku": sku, "qty": 1, "unit_price": total}], fulfillment={"method": "ship"})


def fire(shard: DomainShard[Promotions], watermark: int) -> list[tuple[str, str, str]]:
    """Move the shard's watermark: the ``(rule, customer, reason)`` of each promotion recorded."""
    return [(out.value["rule"], out.value["customer_id"], out.value["reason"])
            for out in shard.on_progress(Progress(0, watermark)) if out.topic == TOPIC]
