"""Helpers of the promotion tests: settings from a small base, items, and shards fed like the flow will."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

from operators.contract.events import TOPIC_OF_TYPE, Event
from operators.promotions.attribution import ConversionCounts
from operators.promotions.domain import Promotions, promotions_shards
from operators.promotions.examples import OPEN_POLICY
from operators.promotions.inputs import Activity, CustomerFacts, PromotionInput
from operators.promotions.rules import PromotionSettings, promotions_from_mapping
from operators.time.shard import DomainShard
from operators.time.stream_items import Output, Progress

NOON = 1_795_348_800_000  # 2026-11-22T12:00:00Z, noon in London (GMT)
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000

#: No caps, no quiet hours, no holdout: each test adds the policy it is about.
BASE_POLICY: dict[str, Any] = dict(OPEN_POLICY)

#: One rule per trigger, all on email unless a test says otherwise.
RULES: dict[str, dict[str, Any]] = {
    "cart": {"trigger": "cart_abandoned", "delay": "30m"},
    "browse": {"trigger": "browse_abandoned", "views": 3, "window": "1d", "delay": "1h"},
    "churn": {"trigger": "churn_risk", "threshold": 0.7},
    "followup": {"trigger": "first_purchase_followup", "after": "30d"},
    "tier": {"trigger": "tier_upgrade", "threshold": 500},
    "restock": {"trigger": "back_in_stock", "waitlist_size": 2, "waitlist_ttl": "7d"},
    "few_left": {"trigger": "low_stock_urgency", "max_available": 3},
    "bday": {"trigger": "birthday", "send_at": "10:00"},
}
COMMON: dict[str, Any] = {"enabled": True, "channel": "email", "priority": 10, "reeligibility": "0s",
                          "daily_budget": "unlimited", "expiry": "2d", "offer": {"kind": "percent_off", "value": 10}}


def rule(name: str, **overrides: Any) -> dict[str, Any]:
    """The test rule ``name`` (a key of :data:`RULES`) with ``overrides``."""
    return {**COMMON, **RULES[name], **overrides}


def settings(rules: dict[str, dict[str, Any]], **policy: Any) -> PromotionSettings:
    """Settings with ``rules`` and the base policy updated by ``policy`` (top-level keys replaced)."""
    merged = copy.deepcopy(BASE_POLICY)
    merged.update(policy)
    return promotions_from_mapping({"policy": merged, "rules": rules})


def facts(key: str = "c1", **fields: Any) -> CustomerFacts:
    """An account customer who consented, in London, unless ``fields`` say otherwise."""
    base: dict[str, Any] = {"is_account": not key.startswith("loyalty:"), "marketing_consent": True,
                            "timezone": "Europe/London"}
    return CustomerFacts(key, **{**base, **fields})


def event(event_id: str, event_type: str, ts: int, **body: Any) -> Event:
    return Event(event_id, event_type, TOPIC_OF_TYPE[event_type], ts, body)


def activity(f: CustomerFacts, event_id: str, event_type: str, ts: int, **body: Any) -> Activity:
    return Activity(f, event(event_id, event_type, ts, **body))


def order(f: CustomerFacts, event_id: str, ts: int, total: float = 20.0, coupon: str | None = None,
          sku: str = "MUG") -> Activity:
    body: dict[str, Any] = {"order_id": f"o-{event_id}", "lines": [{"sku": sku, "qty": 1, "unit_price": total}],
                            "total": total, "fulfillment": {"method": "ship"}}
    if coupon is not None:
        body["coupon_code"] = coupon
    return Activity(f, event(event_id, "order_placed", ts, **body))


class Harness:
    """``shards`` promotions shards fed like the flow feeds them, with outputs and counts collected."""

    def __init__(self, promo_settings: PromotionSettings, shards: int = 1) -> None:
        self.shards = [DomainShard(Promotions(promo_settings, i, shards), upstreams=1) for i in range(shards)]
        self.outputs: list[Output] = []
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.conversions = ConversionCounts()

    def feed(self, *items: PromotionInput) -> list[Output]:
        new: list[Output] = []
        for item in items:
            for number in sorted(promotions_shards(item, len(self.shards))):
                new.extend(self.shards[number].on_event(item))
        return self._keep(new)

    def advance(self, watermark: int) -> list[Output]:
        new: list[Output] = []
        for shard in self.shards:
            new.extend(shard.on_progress(Progress(0, watermark)))
        return self._keep(new)

    def _keep(self, new: list[Output]) -> list[Output]:
        self.outputs.extend(new)
        for shard in self.shards:
            counts = shard.domain.drain()
            self.outcomes.update(counts.outcomes)
            self.conversions.conversions.update(counts.conversions.conversions)
            self.conversions.revenue_millis.update(counts.conversions.revenue_millis)
            self.conversions.redemptions.update(counts.conversions.redemptions)
        return new

    @property
    def records(self) -> list[dict[str, Any]]:
        return [out.value for out in self.outputs]

    def domain(self, number: int = 0) -> Promotions:
        return self.shards[number].domain
