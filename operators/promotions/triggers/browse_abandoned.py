"""``browse_abandoned``: a SKU viewed again and again but not carted.

Fires ``delay`` after the view that made ``views`` views of one SKU within
``window``, if that SKU is still not in the cart (an add to cart or a
purchase cancels it). One pending browse trigger per rule and customer: the
latest SKU. Per customer, views of the 50 most recently viewed SKUs are kept,
within the longest window of the enabled rules.

>>> from operators.promotions.examples import example_shard, customer, activity, fire
>>> shard = example_shard({"browse_nudge": {"trigger": "browse_abandoned", "views": 2, "window": "1d",
...                                         "delay": "2h"}})
>>> for i in range(2):
...     _ = shard.on_event(activity(customer("c1"), f"e{i}", "product_view", i * 60_000, sku="MUG"))
>>> fire(shard, 60_000 + 7_200_001)
[('browse_nudge', 'c1', 'viewed MUG 2 times within 1d without adding it to the cart')]
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from operators.promotions.rules import Rule
from operators.promotions.state import Armed, Customer
from operators.promotions.triggers.base import ActivityChange, Context, Trigger, human_duration
from operators.settings import parse_duration, parse_int, parse_positive_duration

__all__ = ["TRIGGER", "BrowseAbandoned"]

_MAX_BROWSED_SKUS = 50  # per customer: the most recently viewed SKUs are kept


@dataclass(frozen=True, slots=True)
class BrowseAbandoned:
    """``views`` views of one SKU within ``window_ms``, still not in the cart ``delay_ms`` later."""

    views: int
    window_ms: int
    delay_ms: int


def _params(rule: Rule) -> BrowseAbandoned:
    assert isinstance(rule.params, BrowseAbandoned)
    return rule.params


class BrowseAbandonedTrigger(Trigger):
    name = "browse_abandoned"
    params = BrowseAbandoned
    keys = MappingProxyType({"views": parse_int(1, 1000), "window": parse_positive_duration, "delay": parse_duration})

    def on_activity(self, ctx: Context, rules: tuple[Rule, ...], change: ActivityChange) -> None:
        if change.purchased:
            for rule in rules:
                ctx.disarm(change.cust, rule.name)
        sku = change.sku
        if sku is not None and change.item.event.type == "product_view":
            self._on_view(ctx, rules, change, sku)

    def _on_view(self, ctx: Context, rules: tuple[Rule, ...], change: ActivityChange, sku: str) -> None:
        if not rules:
            return
        cust, item = change.cust, change.item
        now = item.ts
        longest = max(_params(rule).window_ms for rule in rules)
        most = max(_params(rule).views for rule in rules)
        views = cust.views.pop(sku, [])  # re-inserted last: the dict stays in order of last view
        views = [t for t in views if t > now - longest][-(most - 1):] if most > 1 else []
        views.append(now)
        cust.views[sku] = views
        for stale in [s for s, times in cust.views.items() if times[-1] <= now - longest]:
            del cust.views[stale]
        while len(cust.views) > _MAX_BROWSED_SKUS:
            del cust.views[next(iter(cust.views))]
        if sku in item.facts.cart_skus():
            return
        for rule in rules:
            params = _params(rule)
            seen = sum(1 for t in views if t > now - params.window_ms)
            if seen >= params.views:
                reason = (f"viewed {sku} {seen} times within {human_duration(params.window_ms)}"
                          " without adding it to the cart")
                ctx.arm(cust, rule, now + params.delay_ms,
                        Armed(rule.name, item.customer_key, item.cause_event_id, (sku,), reason))

    def on_fire(self, ctx: Context, rule: Rule, cust: Customer, armed: Armed, now: int) -> Armed | None:
        return None if set(armed.skus) & set(cust.facts.cart_skus()) else armed  # in the cart after all


TRIGGER = BrowseAbandonedTrigger()
