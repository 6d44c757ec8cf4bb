"""Properties of the whole domain on random logs: the same log gives the same promotions at any
watermark cadence, on 1 or 3 shards, across a snapshot and restart; caps hold in every window."""

from __future__ import annotations

import pickle
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.contract.events import parse_ts
from operators.promotions.domain import Promotions
from operators.promotions.inputs import (
    Activity,
    ChurnScore,
    CustomerFacts,
    Erasure,
    PromotionInput,
    StockLevel,
)
from operators.promotions.policy import local_datetime
from operators.promotions.rules import PromotionSettings
from operators.time.shard import DomainShard
from operators.time.stream_items import Progress, Signal
from tests.promotions.promotion_harness import DAY, MINUTE, NOON, Harness, activity, rule
from tests.promotions.promotion_harness import settings as promo_settings

CUSTOMERS = ("c0", "c1", "c2", "loyalty:L3")
SKUS = ("MUG", "TEA", "LAMP")
CAPS = {"email": [{"count": 1, "window": "2h"}, {"count": 3, "window": "1d"}],
        "push": [{"count": 1, "window": "1h"}], "sms": [], "till": [{"count": 2, "window": "1d"}]}
SETTINGS: PromotionSettings = promo_settings(
    {
        "cart": rule("cart"),
        "browse": rule("browse", views=2, channel="push", priority=40),
        "churn": rule("churn", priority=30),
        "followup": rule("followup", after="2d", priority=50),
        "tier": rule("tier", threshold=50, channel="till", priority=5),
        "restock": rule("restock", waitlist_size=100, waitlist_ttl="2d", channel="push", priority=15),
        "few_left": rule("few_left", channel="push", priority=25),
        "bday": rule("bday", priority=1),
    },
    frequency_caps=CAPS,
    quiet_hours={"start": "21:00", "end": "08:00", "default_timezone": "Europe/London",
                 "channels": ["email", "push", "sms"]},
    holdout={"percent": 30, "salt": "prop"},
    unknown_consent="allow",
)

step = st.tuples(
    st.sampled_from(("add", "add", "remove", "view", "view", "order", "stock", "churn", "consent", "erase")),
    st.integers(0, len(CUSTOMERS) - 1),
    st.integers(0, len(SKUS) - 1),
    st.integers(0, 240),  # minutes since the previous item (0: same event time)
    st.integers(0, 10),
)


def build_log(steps: list[tuple[str, int, int, int, int]]) -> list[PromotionInput]:
    """Items as the customers stage would send them, with each customer's facts kept by a small model."""
    state: dict[str, dict[str, Any]] = {}
    items: list[PromotionInput] = []
    ts = NOON + 7 * 60 * MINUTE  # 19:00 in London: quiet hours come soon
    for n, (kind, who, which, gap, knob) in enumerate(steps):
        ts += gap * MINUTE
        key, sku, eid = CUSTOMERS[who], SKUS[which], f"ev{n:03d}"
        model = state.setdefault(key, {"cart": {}, "orders": 0, "ltv": 0, "consent": None})
        if kind in ("add", "remove", "view", "order", "consent"):
            body: dict[str, Any] = {"customer_id": key}
            event_type = {"add": "add_to_cart", "remove": "remove_from_cart", "view": "product_view",
                          "order": "order_placed", "consent": "consent_changed"}[kind]
            if kind == "add":
                model["cart"][sku] = model["cart"].get(sku, 0) + 1
                body.update(sku=sku, qty=1, price=2.5)
            elif kind == "remove":
                model["cart"].pop(sku, None)
                body.update(sku=sku, qty=1)
            elif kind == "view":
                body.update(sku=sku)
            elif kind == "order":
                lines = [{"sku": s, "qty": q, "unit_price": 10.0} for s, q in model["cart"].items()] or [
                    {"sku": sku, "qty": 1, "unit_price": 10.0}]
                total = sum(line["qty"] * 10 for line in lines)
                model.update(cart={}, orders=model["orders"] + 1, ltv=model["ltv"] + total * 1000)
                body.update(order_id=f"o{n}", lines=lines, total=total, fulfillment={"method": "ship"})
            else:
                model["consent"] = knob % 3 != 0
                body.update(marketing=model["consent"])
            facts = CustomerFacts(key, not key.startswith("loyalty:"), model["consent"], (),
                                  "America/New_York" if who == 1 else None, f"1990-{1 + which:02d}-{1 + knob:02d}",
                                  None, model["orders"], model["ltv"], None,
                                  tuple((s, q, 2_500) for s, q in model["cart"].items()))
            items.append(activity(facts, eid, event_type, ts, **body))
        elif kind == "stock":
            items.append(StockLevel(sku, ts, (0, 1, 3, 8, 20)[knob % 5], eid))
        elif kind == "churn":
            # As in the flow: the churn stage scores only customers the customers stage has sent
            # activity for (a purchase comes before any score), so their facts (time zone) are known.
            if any(isinstance(item, Activity) and item.customer_key == key for item in items):
                items.append(ChurnScore(key, ts, knob / 10, eid))
        else:
            state.pop(key)
            items.append(Erasure(key, ts, eid))
    return items


def run(items: list[PromotionInput], shards: int = 1, cadence: list[int] | None = None,
        restart_at: int | None = None) -> list[dict[str, Any]]:
    h = Harness(SETTINGS, shards)
    if not items:  # a log of scores for customers never seen: nothing reaches promotions
        return h.records
    for i, item in enumerate(items):
        h.feed(item)
        if cadence and i + 1 < len(items) and cadence[i % len(cadence)]:
            # A watermark never passes an item not yet delivered: at most the next item's time.
            h.advance(items[i + 1].ts - cadence[i % len(cadence)] + 1)
        if restart_at == i:
            h.shards = [pickle.loads(pickle.dumps(shard)) for shard in h.shards]
    h.advance(items[-1].ts + 800 * DAY)
    return h.records


log_steps = st.lists(step, min_size=1, max_size=45)


@given(log_steps, st.lists(st.integers(0, 3 * 60 * MINUTE), min_size=1, max_size=8))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_same_log_gives_the_same_promotions_at_any_watermark_cadence(steps: list[Any],
                                                                         cadence: list[int]) -> None:
    items = build_log(steps)
    assert run(items, cadence=cadence) == run(items)


@given(log_steps, st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_same_promotions_on_three_shards_and_across_a_restart(steps: list[Any], data: st.DataObject) -> None:
    items = build_log(steps)
    one = run(items)
    by_id = sorted(one, key=lambda r: r["promotion_id"])
    assert sorted(run(items, shards=3), key=lambda r: r["promotion_id"]) == by_id
    assert run(items, restart_at=data.draw(st.integers(0, max(len(items) - 1, 0)))) == one


@given(log_steps)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_caps_hold_in_every_window_and_nothing_goes_out_in_quiet_hours(steps: list[Any]) -> None:
    records = run(build_log(steps))
    sent: dict[tuple[str, str], list[int]] = defaultdict(list)
    for record in records:
        sent[record["customer_id"], record["channel"]].append(parse_ts(record["ts"]))
    for (_, channel), times in sent.items():
        for end in times:
            for cap in SETTINGS.policy.frequency_caps[channel]:
                assert sum(1 for t in times if end - cap.window_ms < t <= end) <= cap.count
    assert len({r["promotion_id"] for r in records}) == len(records)
    for record in records:
        if record["channel"] != "till":  # c1 is in New York, the rest in London (the default)
            zone = ZoneInfo("America/New_York" if record["customer_id"] == "c1" else "Europe/London")
            assert 8 <= local_datetime(parse_ts(record["ts"]), zone).hour < 21


def test_timers_fire_identically_through_the_real_shard() -> None:
    items = build_log([("add", 0, 0, 0, 0), ("view", 2, 1, 5, 0), ("view", 2, 1, 5, 0), ("stock", 0, 0, 600, 2)])
    shard = DomainShard(Promotions(SETTINGS), upstreams=1)
    outputs = [out for item in items for out in shard.on_event(item)]
    outputs += shard.on_progress(Progress(0, items[-1].ts + 800 * DAY))
    assert [out.value for out in outputs] == run(items)
    assert {out.value["rule"] for out in outputs} >= {"cart", "browse"}


def test_an_ordered_shard_fed_signals_out_of_order_gives_the_same_promotions() -> None:
    items = build_log([("add", 0, 0, 0, 0), ("view", 2, 1, 5, 0), ("view", 2, 1, 0, 0), ("order", 2, 1, 1, 0),
                       ("stock", 0, 0, 600, 2), ("churn", 1, 0, 30, 9), ("add", 1, 2, 0, 1)])
    shard = DomainShard(Promotions(SETTINGS), upstreams=1, ordered=True)
    signals = [Signal("promotions", "k", item.ts, f"{item.ts:015d}-{n:03d}", item) for n, item in enumerate(items)]
    outputs = [out for signal in reversed(signals) for out in shard.on_event(signal)]
    outputs += shard.on_progress(Progress(0, items[-1].ts + 800 * DAY))
    assert [out.value for out in outputs] == run(items)
