"""Properties of the whole domain on random logs: the same log gives the same promotions at any
watermark cadence, on 1 or 3 shards, across a snapshot and restart; caps hold in every window;
budgets and waitlists at their limits give the same decisions on 1, 4 and 8 shards."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
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


def build_log(steps: list[tuple[str, int, int, int, int]],
              customers: tuple[str, ...] = CUSTOMERS) -> list[PromotionInput]:
    """Items as the customers stage would send them, with each customer's facts kept by a small model."""
    state: dict[str, dict[str, Any]] = {}
    items: list[PromotionInput] = []
    ts = NOON + 7 * 60 * MINUTE  # 19:00 in London: quiet hours come soon
    for n, (kind, who, which, gap, knob) in enumerate(steps):
        ts += gap * MINUTE
        key, sku, eid = customers[who % len(customers)], SKUS[which], f"ev{n:03d}"
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
            # activity for since any erasure (a purchase comes before any score), so their facts
            # (time zone) are known.
            since = max((i for i, item in enumerate(items) if isinstance(item, Erasure) and item.customer_key == key),
                        default=-1)
            if any(isinstance(item, Activity) and item.customer_key == key for item in items[since + 1 :]):
                items.append(ChurnScore(key, ts, knob / 10, eid))
        else:
            state.pop(key)
            items.append(Erasure(key, ts, eid))
    return items


def harness(items: list[PromotionInput], shards: int = 1, cadence: list[int] | None = None,
            restart_at: int | None = None, split: bool | None = None,
            promo: PromotionSettings = SETTINGS) -> Harness:
    h = Harness(promo, shards, split)
    if not items:  # a log of scores for customers never seen: nothing reaches promotions
        return h
    for i, item in enumerate(items):
        h.feed(item)
        if cadence and i + 1 < len(items) and cadence[i % len(cadence)]:
            # A watermark never passes an item not yet delivered: at most the next item's time.
            h.advance(items[i + 1].ts - cadence[i % len(cadence)] + 1)
        if restart_at == i:
            h.restart()
    h.advance(items[-1].ts + 800 * DAY)
    return h


def run(items: list[PromotionInput], shards: int = 1, cadence: list[int] | None = None,
        restart_at: int | None = None, split: bool | None = None) -> list[dict[str, Any]]:
    return harness(items, shards, cadence, restart_at, split).records


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
    assert [out.value for out in outputs if out.topic == "promotions"] == run(items)
    assert {out.value["rule"] for out in outputs} >= {"cart", "browse"}


def test_an_ordered_shard_fed_signals_out_of_order_gives_the_same_promotions() -> None:
    items = build_log([("add", 0, 0, 0, 0), ("view", 2, 1, 5, 0), ("view", 2, 1, 0, 0), ("order", 2, 1, 1, 0),
                       ("stock", 0, 0, 600, 2), ("churn", 1, 0, 30, 9), ("add", 1, 2, 0, 1)])
    shard = DomainShard(Promotions(SETTINGS), upstreams=1, ordered=True)
    signals = [Signal("promotions", "k", item.ts, f"{item.ts:015d}-{n:03d}", item) for n, item in enumerate(items)]
    outputs = [out for signal in reversed(signals) for out in shard.on_event(signal)]
    outputs += shard.on_progress(Progress(0, items[-1].ts + 800 * DAY))
    assert [out.value for out in outputs if out.topic == "promotions"] == run(items)


# -- budgets and waitlists are global: the same decisions whatever the shard count -----------------

#: Tight bounds: budgets of 1 or 2 a day, waitlists of 1 and 2, so random logs reach them.
BOUNDED: PromotionSettings = promo_settings(
    {
        "cart": rule("cart", daily_budget=2),
        "browse": rule("browse", views=1, channel="push", priority=40, daily_budget=1),
        "churn": rule("churn", priority=30, daily_budget=1),
        "tier": rule("tier", threshold=50, channel="till", priority=5, daily_budget=2),
        "restock": rule("restock", waitlist_size=2, waitlist_ttl="1d", channel="push", priority=15, daily_budget=3),
        "restock_sms": rule("restock", waitlist_size=1, waitlist_ttl="2d", channel="sms", priority=16),
        "few_left": rule("few_left", channel="push", priority=25, daily_budget=1),
    },
    frequency_caps=CAPS,
    quiet_hours={"start": "21:00", "end": "08:00", "default_timezone": "Europe/London",
                 "channels": ["email", "push", "sms"]},
    holdout={"percent": 30, "salt": "prop"},
    unknown_consent="allow",
)
MANY = (*(f"m{n}" for n in range(12)), "loyalty:L1", "loyalty:L2")
bounded_step = st.tuples(
    st.sampled_from(("add", "add", "view", "view", "view", "order", "stock", "stock", "churn", "consent", "erase")),
    st.integers(0, len(MANY) - 1),
    st.integers(0, len(SKUS) - 1),
    st.integers(0, 90),
    st.integers(0, 10),
)


def decided(items: list[PromotionInput], shards: int, split: bool | None = None) -> Harness:
    return harness(items, shards, split=split, promo=BOUNDED)


@given(st.lists(bounded_step, min_size=1, max_size=70))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_budgets_and_waitlists_give_the_same_decisions_on_1_4_and_8_shards(steps: list[Any]) -> None:
    items = build_log(steps, MANY)
    alone = decided(items, 1, split=False)  # one shard deciding for itself: the reference
    one = decided(items, 1, split=True)
    assert one.outputs == decided(items, 4).outputs == decided(items, 8).outputs
    assert canonical(one.records) == canonical(alone.records)
    assert canonical(one.decisions) == canonical(alone.decisions)
    assert one.outcomes == alone.outcomes
    # Every counted outcome is one decision record, and the bounds hold.
    assert Counter((d["rule"], d["outcome"]) for d in one.decisions) == +one.outcomes
    per_day = Counter((r["rule"], r["ts"][:10]) for r in one.records)
    for (rule_name, _), n in per_day.items():
        budget = BOUNDED.rule(rule_name).daily_budget  # type: ignore[union-attr]
        assert budget is None or n <= budget


def test_a_budget_reached_on_one_shard_refuses_on_another() -> None:
    # Twelve carts abandoned within the hour, spread over the shards; a budget of 5 a day. With the
    # budget split over 8 shards (as before the gate) each shard could send 0 or 1 of them.
    promo = promo_settings({"cart": rule("cart", daily_budget=5)})
    items: list[PromotionInput] = [
        activity(CustomerFacts(f"m{n}", True, True, (), None, cart=(("MUG", 1, 2_500),)), f"a{n:02d}",
                 "add_to_cart", NOON + n * MINUTE, customer_id=f"m{n}", sku="MUG", qty=1, price=2.5)
        for n in range(12)]
    runs = {shards: harness(items, shards, split=True, promo=promo) for shards in (1, 4, 8)}
    for h in runs.values():
        assert [r["customer_id"] for r in h.records] == [f"m{n}" for n in range(5)]
        assert [(d["customer_id"], d["outcome"], d["reason"]) for d in h.decisions][5:] == [
            (f"m{n}", "suppressed_budget", "budget") for n in range(5, 12)]
    assert runs[1].outputs == runs[4].outputs == runs[8].outputs


def test_a_waitlist_of_16_takes_16_customers_on_any_number_of_shards() -> None:
    promo = promo_settings({"restock": rule("restock", waitlist_size=16)})
    items: list[PromotionInput] = [StockLevel("MUG", NOON, 0, "inv1")]
    items += [activity(CustomerFacts(f"m{n}", True, True), f"v{n:02d}", "product_view", NOON + n,
                       customer_id=f"m{n}", sku="MUG") for n in range(1, 21)]
    items.append(StockLevel("MUG", NOON + DAY, 40, "inv2"))
    for shards in (1, 4, 8):
        h = harness(items, shards, split=True, promo=promo)
        assert sorted(r["customer_id"] for r in h.records) == sorted(f"m{n}" for n in range(1, 17))
        assert [d["customer_id"] for d in h.decisions if d["outcome"] == "waitlist_full"] == [
            f"m{n}" for n in range(17, 21)]


@given(st.lists(bounded_step, min_size=1, max_size=50), st.data())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_gate_across_a_restart_writes_what_an_uninterrupted_run_writes(steps: list[Any],
                                                                          data: st.DataObject) -> None:
    items = build_log(steps, MANY)
    at = data.draw(st.integers(0, max(len(items) - 1, 0)))
    assert harness(items, 4, restart_at=at, promo=BOUNDED).outputs == decided(items, 4).outputs


def canonical(records: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(record, sort_keys=True) for record in records)
