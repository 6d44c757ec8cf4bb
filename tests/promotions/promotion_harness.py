"""Helpers of the promotion tests: settings from a small base, items, and shards fed like the flow will."""

from __future__ import annotations

import copy
import pickle
from collections import Counter
from typing import Any

from flows.topology import INVENTORY, PROMOTIONS
from operators.churn.scores import CHURN_SCORES
from operators.contract.events import TOPIC_OF_TYPE, Event
from operators.customers.signals import CUSTOMER_ACTIVITY, CUSTOMER_ERASURES
from operators.inventory.domain import STOCK_LEVELS
from operators.promotions.attribution import ConversionCounts
from operators.promotions.domain import Promotions, promotions_shards
from operators.promotions.examples import OPEN_POLICY
from operators.promotions.gate import DECISIONS_TOPIC, PROMOTION_CANDIDATES, TOPIC, PromotionGate
from operators.promotions.inputs import (
    Activity,
    ChurnScore,
    CustomerFacts,
    Erasure,
    PromotionInput,
    StockLevel,
)
from operators.promotions.rules import PromotionSettings
from operators.promotions.rules_file import promotions_from_mapping
from operators.time.shard import DomainShard
from operators.time.stream_items import Output, Progress, Signal

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
    """Promotions fed like the flow feeds them, with outputs and counts collected.

    On its own (``split`` False, the default for one shard) one ``Promotions``
    shard with its own gate; split (the default for more), ``shards`` ordered
    customer shards whose signals go to the ordered gate stage, which also
    reads the stock levels: the flow's two stages.
    """

    def __init__(self, promo_settings: PromotionSettings, shards: int = 1, split: bool | None = None) -> None:
        self.split = shards > 1 if split is None else split
        self.gate: DomainShard[PromotionGate] | None = None
        if self.split:
            self.shards = [DomainShard(Promotions(promo_settings, i, shards, local_gate=False), upstreams=1,
                                       ordered=True) for i in range(shards)]
            self.gate = DomainShard(PromotionGate(promo_settings), upstreams=shards + 1, ordered=True)
        else:
            self.shards = [DomainShard(Promotions(promo_settings, i, shards), upstreams=1) for i in range(shards)]
        self.outputs: list[Output] = []
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.conversions = ConversionCounts()
        self._fed = 0

    def feed(self, *items: PromotionInput) -> list[Output]:
        new: list[Output] = []
        for item in items:
            if self.gate is None:
                for number in sorted(promotions_shards(item, len(self.shards))):
                    new.extend(self.shards[number].on_event(item))
                continue
            self._fed += 1
            key = item.sku if isinstance(item, StockLevel) else item.customer_key
            signal = Signal(_STREAMS[type(item)], key, item.ts, f"{self._fed:08d}", item)
            if isinstance(item, StockLevel):
                new.extend(self.gate.on_event(signal))
            for number in sorted(promotions_shards(item, len(self.shards))):
                new.extend(self._through_gate(self.shards[number].on_event(signal)))
        return self._keep(new)

    def advance(self, watermark: int) -> list[Output]:
        new: list[Output] = []
        for shard in self.shards:
            new.extend(self._through_gate(shard.on_progress(Progress(0, watermark))))
        if self.gate is not None:
            for number in range(len(self.shards)):
                new.extend(self.gate.on_progress(Progress(number, watermark, PROMOTIONS)))
            new.extend(self.gate.on_progress(Progress(0, watermark, INVENTORY)))
        return self._keep(new)

    def _through_gate(self, items: list[Any]) -> list[Output]:
        new: list[Output] = []
        for item in items:
            if isinstance(item, Signal):
                assert self.gate is not None and item.stream == PROMOTION_CANDIDATES
                new.extend(self.gate.on_event(item))
            else:
                new.append(item)
        return new

    def _keep(self, new: list[Output]) -> list[Output]:
        self.outputs.extend(new)
        domains: list[Promotions | PromotionGate] = [self.gate.domain] if self.gate else self.domains
        for domain in domains:
            counts = domain.drain()
            self.outcomes.update(counts.outcomes)
            self.conversions.conversions.update(counts.conversions.conversions)
            self.conversions.revenue_millis.update(counts.conversions.revenue_millis)
            self.conversions.redemptions.update(counts.conversions.redemptions)
        return [out for out in new if out.topic == TOPIC]

    @property
    def records(self) -> list[dict[str, Any]]:
        """The ``promotions`` records so far."""
        return [out.value for out in self.outputs if out.topic == TOPIC]

    @property
    def decisions(self) -> list[dict[str, Any]]:
        """The ``promotion_decisions`` records so far."""
        return [out.value for out in self.outputs if out.topic == DECISIONS_TOPIC]

    @property
    def domains(self) -> list[Promotions]:
        return [shard.domain for shard in self.shards]

    def domain(self, number: int = 0) -> Promotions:
        return self.shards[number].domain

    def waitlist(self, rule_name: str, sku: str) -> list[str]:
        """A waitlist, wherever it is held."""
        return self.gate.domain.waitlist(rule_name, sku) if self.gate else self.domain().waitlist(rule_name, sku)

    def state(self) -> bytes:
        """Every shard's pickled state (what snapshots hold)."""
        return pickle.dumps((self.shards, self.gate))

    def restart(self) -> None:
        """Every shard from a snapshot taken now."""
        self.shards, self.gate = pickle.loads(self.state())


_STREAMS: dict[type, str] = {Activity: CUSTOMER_ACTIVITY, Erasure: CUSTOMER_ERASURES, ChurnScore: CHURN_SCORES,
                             StockLevel: STOCK_LEVELS}
