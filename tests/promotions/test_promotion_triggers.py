"""Promotions domain: every trigger, its cancellations, and the policy as the domain applies it."""

from __future__ import annotations

import pickle

from channelflow.config import load_config, load_promotions
from flows.main import domain_specs
from operators.contract.dead_letter import iso_ms
from operators.promotions.inputs import Activity, ChurnScore, CustomerFacts, Erasure, StockLevel
from operators.promotions.policy import coupon_code, promotion_id
from operators.promotions.rules import PromotionSettings
from tests.flow_harness import records_of, run_local
from tests.promotions.promotion_harness import (
    DAY,
    HOUR,
    MINUTE,
    NOON,
    Harness,
    activity,
    event,
    facts,
    order,
    rule,
    settings,
)

CONTRACT_FIELDS = {"promotion_id", "customer_id", "rule", "offer", "coupon_code", "channel", "reason",
                   "created_at", "expires_at", "holdout", "ts", "cause_event_id"}


def carted(key: str = "c1", *skus: str, **fields: object) -> CustomerFacts:
    return facts(key, cart=tuple((sku, 1, 9_500) for sku in (skus or ("MUG",))), **fields)


def add(f: CustomerFacts, event_id: str, ts: int, sku: str = "MUG") -> Activity:
    return activity(f, event_id, "add_to_cart", ts, sku=sku, qty=1, price=9.5)


# -- cart_abandoned -------------------------------------------------------------------


def test_cart_abandoned_fires_the_delay_after_the_last_cart_change() -> None:
    h = Harness(settings({"cart": rule("cart")}))
    h.feed(add(carted("c1", "MUG"), "e1", NOON), add(carted("c1", "MUG", "TEA"), "e2", NOON + 10 * MINUTE, "TEA"))
    assert h.advance(NOON + 40 * MINUTE) == []  # the deadline itself has not been passed yet
    [out] = h.advance(NOON + 40 * MINUTE + 1)
    record = out.value
    assert out.topic == "promotions" and out.key == "c1"
    assert set(record) == CONTRACT_FIELDS
    assert record["ts"] == record["created_at"] == iso_ms(NOON + 40 * MINUTE)
    assert record["expires_at"] == iso_ms(NOON + 40 * MINUTE + 2 * DAY)
    assert record["cause_event_id"] == "e2"
    assert record["offer"] == {"kind": "percent_off", "value": 10, "skus": ["MUG", "TEA"]}
    assert record["promotion_id"] == promotion_id("cart", "c1", "e2", NOON + 40 * MINUTE)
    assert record["coupon_code"] == coupon_code(record["promotion_id"])
    assert record["holdout"] is False and record["channel"] == "email"
    assert h.outcomes == {("cart", "sent"): 1}


def test_an_order_at_or_just_before_the_deadline_cancels_the_abandonment() -> None:
    for order_ts in (NOON + 30 * MINUTE - 1, NOON + 30 * MINUTE):
        h = Harness(settings({"cart": rule("cart")}))
        h.feed(add(carted(), "e1", NOON), order(facts(orders=1), "e2", order_ts))
        h.advance(NOON + DAY)
        assert h.records == [], order_ts
        assert h.outcomes == {("cart", "cancelled"): 1}


def test_an_order_just_after_the_deadline_comes_too_late_and_converts_the_promotion() -> None:
    h = Harness(settings({"cart": rule("cart")}))
    h.feed(add(carted(), "e1", NOON))
    # No watermark in between: the order itself shows that event time has passed the deadline.
    [out] = h.feed(order(facts(orders=1), "e2", NOON + 30 * MINUTE + 1, total=19.0))
    assert out.value["ts"] == iso_ms(NOON + 30 * MINUTE)
    assert h.conversions.conversions == {("cart", "treated"): 1}
    assert h.conversions.revenue_millis == {("cart", "treated"): 19_000}


def test_an_emptied_cart_or_a_till_sale_cancels_the_abandonment() -> None:
    h = Harness(settings({"cart": rule("cart")}))
    h.feed(add(carted("c1"), "e1", NOON),
           activity(facts("c1"), "e2", "remove_from_cart", NOON + MINUTE, sku="MUG", qty=1),
           add(carted("c2"), "e3", NOON),
           activity(carted("c2", orders=1), "e4", "sale", NOON + 2 * MINUTE, store_id="S1", receipt_id="r1",
                    loyalty_id="L1", lines=[{"sku": "TEA", "qty": 1, "unit_price": 3.0}], total=3.0))
    h.advance(NOON + DAY)
    assert h.records == []
    assert h.outcomes == {("cart", "cancelled"): 2}


# -- browse_abandoned -----------------------------------------------------------------


def view(f: CustomerFacts, event_id: str, ts: int, sku: str = "LAMP") -> Activity:
    return activity(f, event_id, "product_view", ts, sku=sku)


def test_browse_abandoned_after_n_views_within_the_window_and_no_cart() -> None:
    h = Harness(settings({"browse": rule("browse")}))
    h.feed(*(view(facts(), f"v{i}", NOON + i * HOUR) for i in range(3)))
    [record] = [out.value for out in h.advance(NOON + 3 * HOUR + 1)]
    assert record["ts"] == iso_ms(NOON + 3 * HOUR)  # one hour after the third view
    assert record["cause_event_id"] == "v2"
    assert record["offer"]["skus"] == ["LAMP"]
    assert "viewed LAMP 3 times" in record["reason"]


def test_browse_needs_n_views_inside_one_window_and_no_cart() -> None:
    spread = Harness(settings({"browse": rule("browse")}))
    spread.feed(view(facts(), "v0", NOON), view(facts(), "v1", NOON + 13 * HOUR), view(facts(), "v2", NOON + DAY))
    spread.advance(NOON + 3 * DAY)
    assert spread.records == []  # the first view is a full day before the third: outside the window
    carted_later = Harness(settings({"browse": rule("browse")}))
    carted_later.feed(*(view(facts(), f"v{i}", NOON + i * MINUTE) for i in range(3)),
                      add(carted("c1", "LAMP"), "a1", NOON + 10 * MINUTE, "LAMP"))
    carted_later.advance(NOON + DAY)
    assert carted_later.records == []
    assert carted_later.outcomes == {("browse", "cancelled"): 1}


# -- churn_risk -----------------------------------------------------------------------


def test_churn_risk_fires_when_the_score_rises_to_the_threshold_not_while_it_stays_there() -> None:
    h = Harness(settings({"churn": rule("churn")}))
    h.feed(activity(facts(), "p1", "profile_updated", NOON, customer_id="c1"))
    scores = [(0.5, "s1"), (0.7, "s2"), (0.9, "s3"), (0.2, "s4"), (0.8, "s5")]
    h.feed(*(ChurnScore("c1", NOON + i * DAY, score, sid) for i, (score, sid) in enumerate(scores, 1)))
    h.advance(NOON + 10 * DAY)
    assert [r["cause_event_id"] for r in h.records] == ["s2", "s5"]
    assert h.records[0]["reason"] == "churn risk 0.70 at or above 0.7"


def test_a_churn_score_for_a_customer_never_seen_uses_unknown_consent() -> None:
    denied = Harness(settings({"churn": rule("churn")}))
    denied.feed(ChurnScore("c9", NOON, 0.9, "s1"))
    denied.advance(NOON + DAY)
    assert denied.records == [] and denied.outcomes == {("churn", "suppressed_consent"): 1}
    allowed = Harness(settings({"churn": rule("churn")}, unknown_consent="allow"))
    allowed.feed(ChurnScore("c9", NOON, 0.9, "s1"))
    allowed.advance(NOON + DAY)
    assert [r["customer_id"] for r in allowed.records] == ["c9"]


# -- first_purchase_followup ----------------------------------------------------------


def test_first_purchase_followup_fires_after_n_days_without_a_second_purchase() -> None:
    h = Harness(settings({"followup": rule("followup")}))
    h.feed(order(facts(orders=1), "o1", NOON))
    assert h.advance(NOON + 30 * DAY) == []
    [out] = h.advance(NOON + 30 * DAY + 1)
    assert out.value["cause_event_id"] == "o1" and out.value["ts"] == iso_ms(NOON + 30 * DAY)


def test_a_second_purchase_cancels_the_followup() -> None:
    h = Harness(settings({"followup": rule("followup")}))
    h.feed(order(facts(orders=1), "o1", NOON), order(facts(orders=2), "o2", NOON + 30 * DAY))
    h.advance(NOON + 60 * DAY)
    assert h.records == [] and h.outcomes == {("followup", "cancelled"): 1}


# -- tier_upgrade ---------------------------------------------------------------------


def test_tier_upgrade_fires_once_when_lifetime_spend_crosses_the_threshold() -> None:
    h = Harness(settings({"tier": rule("tier")}))
    h.feed(order(facts(orders=1, lifetime_value_millis=400_000), "o1", NOON, total=400),
           order(facts(orders=2, lifetime_value_millis=500_000), "o2", NOON + DAY, total=100),
           order(facts(orders=3, lifetime_value_millis=900_000), "o3", NOON + 2 * DAY, total=400))
    h.advance(NOON + 3 * DAY)
    assert [r["cause_event_id"] for r in h.records] == ["o2"]
    assert h.records[0]["reason"] == "lifetime spend reached 500.00"


# -- back_in_stock --------------------------------------------------------------------


def test_back_in_stock_tells_the_customers_who_viewed_or_carted_it_while_out() -> None:
    h = Harness(settings({"restock": rule("restock", waitlist_size=10)}))
    h.feed(view(facts("c0"), "v0", NOON - MINUTE, "MUG"),  # in stock (unknown): no waitlist
           StockLevel("MUG", NOON, 0, "inv1"),
           view(facts("c1"), "v1", NOON + MINUTE, "MUG"),
           add(carted("c2"), "a2", NOON + 2 * MINUTE),
           StockLevel("MUG", NOON + HOUR, 4, "inv2"))
    assert h.domain().waitlist("restock", "MUG") == []
    h.advance(NOON + DAY)
    assert sorted(r["customer_id"] for r in h.records) == ["c1", "c2"]
    assert {r["cause_event_id"] for r in h.records} == {"inv2"}
    assert {r["ts"] for r in h.records} == {iso_ms(NOON + HOUR)}


def test_a_sku_first_counted_at_zero_is_out_of_stock_for_its_viewers() -> None:
    """Through every stage in-process: inventory tells the promotions stages a SKU's first count
    of 0 (no crossing of zero, but now known to be out), so its viewer waits for it."""
    config = load_config()
    day = 1_767_600_000_000 + 4 * 3_600_000  # 2026-01-05T12:00:00Z, outside quiet hours
    log = [
        {"event_id": "k1", "type": "consent_changed", "ts": day, "customer_id": "c1", "marketing": True},
        {"event_id": "n1", "type": "stock_counted", "ts": day + 1, "location_id": "W001", "sku": "NEW", "on_hand": 0},
        {"event_id": "v1", "type": "product_view", "ts": day + 60_000, "channel": "web", "session_id": "s1",
         "anonymous_id": "a1", "customer_id": "c1", "sku": "NEW", "price": 5.0},
        {"event_id": "r1", "type": "stock_received", "ts": day + 3_600_000, "location_id": "W001", "sku": "NEW",
         "qty": 10},
    ]  # fmt: skip
    flow = run_local(domain_specs(config, load_promotions()), config.flow.shards, log, day + 86_400_000)
    told = [(r["customer_id"], r["rule"], r["cause_event_id"]) for r in records_of(flow, "promotions")]
    assert told == [("c1", "back_in_stock", "r1")]


def test_the_waitlist_is_bounded_first_come_first_served() -> None:
    h = Harness(settings({"restock": rule("restock", waitlist_size=2)}))
    h.feed(StockLevel("MUG", NOON, 0, "inv1"),
           *(view(facts(f"c{i}"), f"v{i}", NOON + i, "MUG") for i in range(1, 4)))
    assert h.domain().waitlist("restock", "MUG") == ["c1", "c2"]
    h.feed(StockLevel("MUG", NOON + HOUR, 9, "inv2"))
    h.advance(NOON + DAY)
    assert sorted(r["customer_id"] for r in h.records) == ["c1", "c2"]
    assert h.outcomes == {("restock", "waitlist_full"): 1, ("restock", "sent"): 2}


def test_the_waitlist_bound_is_exact_over_shards_first_come_first_served() -> None:
    for shards in (1, 2, 8):
        h = Harness(settings({"restock": rule("restock", waitlist_size=3)}), shards=shards, split=True)
        h.feed(StockLevel("MUG", NOON, 0, "inv1"),
               *(view(facts(f"c{i}"), f"v{i}", NOON + i, "MUG") for i in range(40)),
               StockLevel("MUG", NOON + HOUR, 9, "inv2"))
        h.advance(NOON + DAY)
        assert sorted(r["customer_id"] for r in h.records) == ["c0", "c1", "c2"]
        assert h.outcomes == {("restock", "sent"): 3, ("restock", "waitlist_full"): 37}


def test_a_waitlist_entry_expires_after_its_ttl_and_a_purchase_leaves_it() -> None:
    h = Harness(settings({"restock": rule("restock", waitlist_size=10)}))
    h.feed(StockLevel("MUG", NOON, 0, "inv1"),
           view(facts("c1"), "v1", NOON, "MUG"),
           view(facts("c2"), "v2", NOON + 6 * DAY, "MUG"),
           view(facts("c3"), "v3", NOON + 6 * DAY, "MUG"),
           order(facts("c3", orders=1), "o3", NOON + 6 * DAY + 1, sku="MUG"))
    h.advance(NOON + 7 * DAY + 1)
    assert h.domain().waitlist("restock", "MUG") == ["c2"]
    h.feed(StockLevel("MUG", NOON + 8 * DAY, 2, "inv2"))
    h.advance(NOON + 9 * DAY)
    assert [r["customer_id"] for r in h.records] == ["c2"]


# -- low_stock_urgency ----------------------------------------------------------------


def test_low_stock_urgency_for_carts_holding_a_sku_that_runs_low() -> None:
    h = Harness(settings({"few_left": rule("few_left")}))
    h.feed(add(carted("c1"), "a1", NOON),
           StockLevel("MUG", NOON + HOUR, 3, "inv1"),
           StockLevel("MUG", NOON + 2 * HOUR, 2, "inv2"),  # still low: no new trigger
           add(carted("c2"), "a2", NOON + 3 * HOUR),  # carted while low
           StockLevel("MUG", NOON + 4 * HOUR, 0, "inv3"))  # out of stock is not urgency
    h.advance(NOON + DAY)
    assert [(r["customer_id"], r["cause_event_id"]) for r in h.records] == [("c1", "inv1"), ("c2", "a2")]
    assert h.records[0]["reason"] == "only 3 left of MUG, which is in the cart"


# -- birthday -------------------------------------------------------------------------


def test_birthday_at_local_send_time_every_year_with_distinct_ids() -> None:
    h = Harness(settings({"bday": rule("bday")}))
    h.feed(activity(facts("c1", birthday="1990-11-23"), "p1", "profile_updated", NOON, customer_id="c1"),
           activity(facts("c2", birthday="1990-11-23", timezone="America/New_York"), "p2", "profile_updated",
                    NOON, customer_id="c2"))
    h.advance(NOON + 400 * DAY)
    assert [(r["customer_id"], r["ts"]) for r in h.records] == [
        ("c1", "2026-11-23T10:00:00.000Z"), ("c2", "2026-11-23T15:00:00.000Z"),
        ("c1", "2027-11-23T10:00:00.000Z"), ("c2", "2027-11-23T15:00:00.000Z")]
    assert len({r["promotion_id"] for r in h.records}) == 4


def test_a_29_february_birthday_is_the_28th_in_a_common_year() -> None:
    h = Harness(settings({"bday": rule("bday")}))
    h.feed(activity(facts(birthday="2000-02-29"), "p1", "profile_updated", NOON, customer_id="c1"))
    h.advance(NOON + 200 * DAY)
    assert [r["ts"] for r in h.records] == ["2027-02-28T10:00:00.000Z"]


# -- the policy, applied --------------------------------------------------------------


def test_one_winner_by_priority_when_several_fire_at_once_ties_by_rule_name() -> None:
    rules = {"b_cart": rule("cart", priority=5), "a_cart": rule("cart", priority=5),
             "c_cart": rule("cart", priority=1, channel="push")}
    h = Harness(settings(rules))
    h.feed(add(carted(), "e1", NOON))
    h.advance(NOON + DAY)
    assert [r["rule"] for r in h.records] == ["c_cart"]
    assert h.outcomes == {("c_cart", "sent"): 1, ("a_cart", "suppressed_outranked"): 1,
                          ("b_cart", "suppressed_outranked"): 1}
    tie = Harness(settings({"b_cart": rules["b_cart"], "a_cart": rules["a_cart"]}))
    tie.feed(add(carted(), "e1", NOON))
    tie.advance(NOON + DAY)
    assert [r["rule"] for r in tie.records] == ["a_cart"]


def quiet_settings(**overrides: object) -> PromotionSettings:
    quiet = {"start": "21:00", "end": "08:00", "default_timezone": "Europe/London",
             "channels": ["email", "push", "sms"]}
    return settings({"cart": rule("cart", **overrides)}, quiet_hours=quiet)


def test_quiet_hours_delay_to_the_next_local_morning_not_drop() -> None:
    evening = NOON + 8 * HOUR + 45 * MINUTE  # 20:45 in London; the cart fires at 21:15
    h = Harness(quiet_settings())
    h.feed(add(carted(), "e1", evening))
    assert h.advance(NOON + 20 * HOUR) == []
    [out] = h.advance(NOON + 20 * HOUR + 1)
    assert out.value["ts"] == "2026-11-23T08:00:00.000Z"
    assert out.value["created_at"] == "2026-11-22T21:15:00.000Z"
    assert h.outcomes == {("cart", "quiet_hours_delayed"): 1, ("cart", "sent"): 1}


def test_an_opt_out_while_waiting_for_quiet_hours_to_end_stops_the_promotion() -> None:
    h = Harness(quiet_settings())
    h.feed(add(carted(), "e1", NOON + 8 * HOUR + 45 * MINUTE),
           activity(carted(marketing_consent=False), "e2", "consent_changed", NOON + 11 * HOUR,
                    customer_id="c1", marketing=False))
    h.advance(NOON + 2 * DAY)
    assert h.records == []
    assert h.outcomes == {("cart", "quiet_hours_delayed"): 1, ("cart", "suppressed_consent"): 1}


def test_an_offer_that_would_expire_during_quiet_hours_is_suppressed_as_expired() -> None:
    h = Harness(quiet_settings(expiry="1h"))
    h.feed(add(carted(), "e1", NOON + 8 * HOUR + 45 * MINUTE))
    h.advance(NOON + 2 * DAY)
    assert h.records == [] and h.outcomes == {("cart", "suppressed_expired"): 1}


def test_erasure_while_waiting_stops_the_promotion_and_wipes_every_trace() -> None:
    key = "erase-me-7f3a"
    rules = {"cart": rule("cart"), "restock": rule("restock"), "browse": rule("browse"),
             "followup": rule("followup"), "bday": rule("bday"), "few_left": rule("few_left")}
    quiet = {"start": "21:00", "end": "08:00", "default_timezone": "Europe/London", "channels": ["email"]}
    h = Harness(settings(rules, quiet_hours=quiet))
    h.feed(StockLevel("LAMP", NOON - HOUR, 0, "inv1"),
           order(facts(key, orders=1, birthday="1990-01-01"), "o1", NOON - MINUTE),  # follow-up, birthday armed
           view(facts(key, orders=1, birthday="1990-01-01"), "v1", NOON, "LAMP"),  # on the LAMP waitlist
           add(carted(key, orders=1, birthday="1990-01-01"), "a1", NOON + 8 * HOUR + 45 * MINUTE))
    h.advance(NOON + 10 * HOUR)  # the cart promotion is now waiting for 08:00
    assert h.outcomes[("cart", "quiet_hours_delayed")] == 1
    assert key.encode() in pickle.dumps(h.shards[0])
    h.feed(Erasure(key, NOON + 11 * HOUR, "x1"))
    assert key.encode() not in pickle.dumps(h.shards[0])
    assert key.encode() not in pickle.dumps(h.domain())
    h.feed(StockLevel("LAMP", NOON + 12 * HOUR, 5, "inv2"))
    h.advance(NOON + 400 * DAY)
    assert h.records == []
    assert h.outcomes[("cart", "suppressed_erased")] == 1


def test_daily_budget_is_spent_then_reset_on_the_next_utc_day() -> None:
    h = Harness(settings({"cart": rule("cart", daily_budget=2)}))
    for day in (0, 1):
        h.feed(*(add(carted(f"c{day}-{i}"), f"e{day}-{i}", NOON + day * DAY + i) for i in range(3)))
    h.advance(NOON + 3 * DAY)
    sent_days = [r["ts"][:10] for r in h.records]
    assert sent_days == ["2026-11-22", "2026-11-22", "2026-11-23", "2026-11-23"]
    assert h.outcomes == {("cart", "sent"): 4, ("cart", "suppressed_budget"): 2}


def test_holdout_is_recorded_not_delivered_and_counts_against_caps() -> None:
    caps = {"email": [{"count": 1, "window": "16h"}], "push": [], "sms": [], "till": []}
    h = Harness(settings({"churn": rule("churn")}, frequency_caps=caps, holdout={"percent": 100, "salt": "s"}))
    h.feed(activity(facts(), "p1", "profile_updated", NOON - 1, customer_id="c1"),
           ChurnScore("c1", NOON, 0.9, "s1"), ChurnScore("c1", NOON + HOUR, 0.1, "s2"),
           ChurnScore("c1", NOON + 2 * HOUR, 0.9, "s3"))
    h.advance(NOON + DAY)
    assert [r["holdout"] for r in h.records] == [True]
    assert h.outcomes == {("churn", "holdout"): 1, ("churn", "suppressed_cap"): 1}


def test_loyalty_card_customers_are_reached_at_the_till_only() -> None:
    rules = {"mail": rule("tier"), "till": rule("tier", channel="till", priority=20)}
    h = Harness(settings(rules))
    h.feed(activity(facts("loyalty:L1", orders=1, lifetime_value_millis=600_000), "s1", "sale", NOON,
                    store_id="S1", receipt_id="r1", loyalty_id="L1",
                    lines=[{"sku": "MUG", "qty": 1, "unit_price": 600.0}], total=600.0))
    h.advance(NOON + DAY)
    assert [(r["rule"], r["channel"], r["customer_id"]) for r in h.records] == [("till", "till", "loyalty:L1")]
    assert h.outcomes == {("mail", "suppressed_no_channel"): 1, ("till", "sent"): 1}


def test_a_disabled_rule_never_triggers() -> None:
    h = Harness(settings({"cart": rule("cart", enabled=False)}))
    h.feed(add(carted(), "e1", NOON))
    h.advance(NOON + DAY)
    assert h.records == [] and h.outcomes == {} and len(h.shards[0].timers) == 0


def test_unknown_items_are_refused() -> None:
    h = Harness(settings({}))
    try:
        h.shards[0].on_event(event("e1", "search", NOON, query="mug"))
    except TypeError as exc:
        assert "not a promotions input" in str(exc)
    else:
        raise AssertionError("an Event is not a promotions input")
