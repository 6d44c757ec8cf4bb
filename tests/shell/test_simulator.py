"""The simulator: deterministic, valid against the contract, and realistic where it counts."""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from datetime import datetime
from functools import cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from channelflow.simulator import (
    DEFAULT_LOCATIONS,
    DEFAULT_START_MS,
    SimulationSettings,
    add_arguments,
    main,
    simulate,
)
from channelflow.simulator.pacing import paced_by_rate, paced_by_speed
from operators.contract.events import INPUT_TOPICS, TYPES_OF_TOPIC, Event, topic_for_type, validate

DAY_MS = 86_400_000
Events = list[dict[str, Any]]
Truth = list[dict[str, Any]]


@cache
def run(seed: int = 1, customers: int = 1000, days: float = 1, lifetime: float = 180.0) -> tuple[Events, Truth]:
    truth: Truth = []
    settings = SimulationSettings(seed=seed, customers=customers, days=days, mean_lifetime_days=lifetime)
    return list(simulate(settings, truth=truth.append)), truth


def month() -> tuple[Events, Truth]:
    """Fifty days of 1,500 customers: enough purchases to measure rates to about a percent."""
    return run(customers=1500, days=50)


def anomalies(truth: Truth, kind: str) -> Truth:
    return [r for r in truth if r["record"] == "anomaly" and r["kind"] == kind]


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    def dump(seed: int) -> tuple[bytes, bytes]:
        truth: Truth = []
        events = simulate(SimulationSettings(seed=seed, customers=300, days=2), truth=truth.append)
        return b"".join(orjson.dumps(e) for e in events), b"".join(orjson.dumps(r) for r in truth)

    first = dump(7)
    assert first == dump(7)
    assert len(first[0]) > 100_000
    other = dump(8)
    assert other[0] != first[0] and other[1] != first[1]


def test_every_event_of_a_day_passes_the_contract_in_time_order() -> None:
    events, _ = run()
    rejected = [(e, r) for e in events if not isinstance(r := validate(e, topic_for_type(e["type"])), Event)]
    assert rejected == []
    assert all(a["ts"] <= b["ts"] for a, b in pairwise(events))
    assert len({e["event_id"] for e in events}) == len(events)
    assert all(DEFAULT_START_MS <= e["ts"] < DEFAULT_START_MS + DAY_MS for e in events)
    assert {topic_for_type(e["type"]) for e in events} == set(INPUT_TOPICS)


def test_a_month_uses_every_event_type_of_the_contract() -> None:
    events, _ = month()
    types = {e["type"] for e in events}
    assert types == {t for topic in INPUT_TOPICS for t in TYPES_OF_TOPIC[topic]}


def test_about_seventy_percent_of_carts_are_abandoned() -> None:
    events, _ = month()
    sessions: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if "session_id" in event:
            sessions[event["session_id"]].add(event["type"])
    carted = [types for types in sessions.values() if "add_to_cart" in types]
    abandoned = sum("order_placed" not in types for types in carted) / len(carted)
    assert len(carted) > 1000
    assert 0.65 <= abandoned <= 0.75


def test_about_ten_percent_of_purchases_come_back() -> None:
    events, _ = month()
    settled_before = DEFAULT_START_MS + 25 * DAY_MS
    purchases = {e["receipt_id"] for e in events if e["type"] == "sale" and e["ts"] < settled_before}
    purchases |= {e["order_id"] for e in events if e["type"] == "order_fulfilled" and e["ts"] < settled_before}
    returned = {
        e.get("original_receipt_id") or e.get("original_order_id") for e in events if e["type"] == "return"
    }
    rate = len(returned & purchases) / len(purchases)
    assert len(purchases) > 2500
    assert 0.08 <= rate <= 0.12


def test_till_events_happen_only_in_local_opening_hours() -> None:
    events, _ = month()
    stores = {loc.id: loc for loc in DEFAULT_LOCATIONS if loc.is_store}
    till = [e for e in events if e["type"] in ("sale", "return")]
    outside = []
    for event in till:
        store = stores[event["store_id"]]
        local = datetime.fromtimestamp(event["ts"] / 1000, ZoneInfo(store.timezone)).time()
        assert store.opens is not None and store.closes is not None
        if not store.opens <= local < store.closes:
            outside.append((event["store_id"], local))
    assert len(till) > 5000
    assert outside == []
    new_york_hours = Counter(
        datetime.fromtimestamp(e["ts"] / 1000, ZoneInfo("UTC")).hour for e in till if e["store_id"] == "S005"
    )
    assert new_york_hours[1] > 0 and new_york_hours[10] == 0


def test_a_store_outage_silences_its_tills_and_is_in_the_ground_truth() -> None:
    events, truth = month()
    outages = anomalies(truth, "store_outage")
    assert len(outages) >= 40
    for outage in outages:
        store_sales = [e["ts"] for e in events if e["type"] in ("sale", "return") and e["store_id"] == outage["store_id"]]
        assert not any(outage["start"] <= ts < outage["end"] for ts in store_sales)
        assert any(outage["start"] - 4 * 3_600_000 <= ts < outage["start"] for ts in store_sales) or any(
            outage["end"] <= ts < outage["end"] + 4 * 3_600_000 for ts in store_sales
        )


def test_a_pricing_error_sells_the_sku_cheap_only_while_it_lasts() -> None:
    events, truth = run(days=3)
    errors = anomalies(truth, "pricing_error")
    assert len(errors) == 3
    for error in errors:
        cheap_at = [
            e["ts"]
            for e in events
            if e["type"] in ("sale", "order_placed", "add_to_cart", "product_view")
            for price in _prices_of(e, error["sku"])
            if price == error["error_price"]
        ]
        assert cheap_at, f"the mispriced {error['sku']} was never seen at its wrong price"
        grace = 3_600_000
        assert all(error["start"] <= ts < error["end"] + grace for ts in cheap_at)
        assert error["error_price"] < error["list_price"] / 3


def _prices_of(event: dict[str, Any], sku: str) -> list[float]:
    if event.get("sku") == sku:
        return [event["price"]] if "price" in event else []
    return [line["unit_price"] for line in event.get("lines", ()) if line["sku"] == sku]


def test_bot_traffic_is_a_burst_of_views_from_few_devices() -> None:
    events, truth = run(days=3)
    bursts = anomalies(truth, "bot_traffic")
    assert len(bursts) == 3
    for burst in bursts:
        devices = set(burst["anonymous_ids"])
        bot_events = [e for e in events if e.get("anonymous_id") in devices]
        assert 2 <= len(devices) <= 5
        assert len(bot_events) == burst["events"]
        assert {e["type"] for e in bot_events} <= {"page_view", "product_view"}
        assert all(burst["start"] <= e["ts"] < burst["end"] and e["customer_id"] is None for e in bot_events)
        minutes = (burst["end"] - burst["start"]) / 60_000
        humans_per_minute = sum(1 for e in events if e.get("channel") == "web" and e.get("anonymous_id") not in devices) / (3 * 24 * 60)
        assert len(bot_events) / minutes > 5 * humans_per_minute


def test_a_conversion_collapse_fails_one_channel_s_checkouts_while_carts_continue() -> None:
    events, truth = run(customers=3000, days=3)
    collapses = anomalies(truth, "conversion_collapse")
    assert len(collapses) == 3
    carts = checkouts = 0
    for collapse in collapses:
        channel = collapse["channel"]
        assert channel in ("web", "app")
        assert collapse["series"][0] == f"checkout_conversion:{channel}"
        assert 45 * 60_000 <= collapse["end"] - collapse["start"] <= 120 * 60_000

        def during(kind: str, c: dict[str, Any] = collapse, ch: str = channel) -> int:
            return sum(1 for e in events if e["type"] == kind and e.get("channel") == ch and c["start"] <= e["ts"] < c["end"])

        assert during("order_placed") == 0
        carts += during("add_to_cart")
        checkouts += during("checkout_started")
        other = "app" if channel == "web" else "web"
        assert sum(1 for e in events if e["type"] == "order_placed" and e.get("channel") == other
                   and collapse["start"] - 3_600_000 <= e["ts"] < collapse["end"] + 3_600_000) > 0
    assert carts > 0 and checkouts > 0  # shoppers still cart and start checkout; no order goes through


def test_churned_customers_stop_buying_at_their_churn_time() -> None:
    events, truth = run(customers=600, days=40, lifetime=20)
    churn_of: dict[str, int] = {}
    for record in truth:
        if record["record"] == "customer":
            for key in (record["customer_id"], record["loyalty_id"]):
                if key:
                    churn_of[key] = record["churn_at"]
    purchases = [
        (e["ts"], e.get("customer_id") or e.get("loyalty_id"))
        for e in events
        if e["type"] in ("sale", "order_placed") and (e.get("customer_id") or e.get("loyalty_id"))
    ]
    end = DEFAULT_START_MS + 40 * DAY_MS
    churned = {key for key, churn_ms in churn_of.items() if churn_ms < end}
    assert len(churned) > 500
    assert [(ts, key) for ts, key in purchases if ts >= churn_of[key]] == []
    assert len({key for _, key in purchases if key in churned}) > 100


def test_identities_link_devices_and_loyalty_cards_but_store_only_cards_stay_unlinked() -> None:
    events, truth = month()
    segment_of = {r["loyalty_id"]: r["segment"] for r in truth if r["record"] == "customer" and r["loyalty_id"]}
    links = [e for e in events if e["type"] == "identity_linked"]
    assert all(segment_of[e["loyalty_id"]] == "omnichannel" for e in links)
    first_sale: dict[str, int] = {}
    for event in events:
        if event["type"] == "sale" and event["loyalty_id"]:
            first_sale.setdefault(event["loyalty_id"], event["ts"])
    later_links = [e for e in links if e["ts"] > DEFAULT_START_MS + 3_600_000]
    assert len(later_links) > 100
    assert all(first_sale[e["loyalty_id"]] < e["ts"] for e in later_links)
    store_only_sales = sum(1 for e in events if e["type"] == "sale" and segment_of.get(e["loyalty_id"]) == "store_only")
    assert store_only_sales > sum(1 for e in events if e["type"] == "sale") / 2
    assert all(e["customer_id"] and e["anonymous_id"] for e in events if e["type"] == "login")
    assert all(e["customer_id"] for e in events if e["type"] in ("order_placed", "checkout_started"))
    assert any(e["type"] == "page_view" and e["customer_id"] is None for e in events)


def test_stock_never_goes_negative_in_an_independent_fold() -> None:
    events, _ = month()
    on_hand: dict[tuple[str, str], int] = defaultdict(int)
    order_lines: dict[str, list[dict[str, Any]]] = {}
    lowest = 0

    def move(location: str, sku: str, qty: int) -> None:
        nonlocal lowest
        on_hand[location, sku] += qty
        lowest = min(lowest, on_hand[location, sku])

    for e in events:
        kind = e["type"]
        if kind == "stock_counted":
            on_hand[e["location_id"], e["sku"]] = e["on_hand"]
        elif kind == "stock_received":
            move(e["location_id"], e["sku"], e["qty"])
        elif kind == "stock_adjusted":
            move(e["location_id"], e["sku"], e["delta"])
        elif kind == "transfer":
            move(e["from_location_id"], e["sku"], -e["qty"])
            move(e["to_location_id"], e["sku"], e["qty"])
        elif kind == "sale":
            for line in e["lines"]:
                move(e["store_id"], line["sku"], -line["qty"])
        elif kind == "return":
            for line in e["lines"]:
                move(e["store_id"], line["sku"], line["qty"] if line["restock"] else 0)
        elif kind == "order_placed":
            order_lines[e["order_id"]] = e["lines"]
        elif kind == "order_fulfilled":
            for line in order_lines[e["order_id"]]:
                move(e["location_id"], line["sku"], -line["qty"])
    assert len(on_hand) == len(DEFAULT_LOCATIONS) * 200
    assert lowest == 0


def test_online_orders_ship_or_are_collected_and_some_are_cancelled() -> None:
    events, _ = month()
    placed = {e["order_id"]: e for e in events if e["type"] == "order_placed"}
    fulfilled = {e["order_id"]: e for e in events if e["type"] == "order_fulfilled"}
    cancelled = {e["order_id"] for e in events if e["type"] == "order_cancelled"}
    assert not fulfilled.keys() & cancelled
    methods = Counter(order["fulfillment"]["method"] for order in placed.values())
    assert 0.15 < methods["pickup"] / len(placed) < 0.45
    for order_id, done in fulfilled.items():
        fulfillment = placed[order_id]["fulfillment"]
        expected = fulfillment.get("location_id", done["location_id"])
        assert done["location_id"] == expected and done["ts"] > placed[order_id]["ts"]
    assert 0 < len(cancelled) < len(placed) / 5
    coupons = sum(1 for e in events if e["type"] in ("sale", "order_placed") and e.get("coupon_code"))
    assert coupons > 100


def test_custom_locations_as_dicts_and_bad_ones_are_refused() -> None:
    locations = [
        {"id": "W9", "type": "warehouse", "timezone": "Asia/Tokyo"},
        {"id": "S9", "type": "store", "timezone": "Asia/Tokyo", "opens": "10:00", "closes": "19:00"},
    ]
    events = list(simulate(SimulationSettings(customers=200, days=2), locations))
    assert {e["store_id"] for e in events if e["type"] == "sale"} == {"S9"}
    with pytest.raises(ValueError, match="warehouse"):
        list(simulate(SimulationSettings(days=1), locations[1:]))
    with pytest.raises(ValueError, match="HH:MM"):
        simulate(SimulationSettings(days=1), [locations[0], {**locations[1], "opens": "ten"}])


def test_an_unbounded_stream_is_lazy() -> None:
    stream = simulate(SimulationSettings(customers=200, days=None))
    beyond = next(e for e in stream if e["ts"] >= DEFAULT_START_MS + 10 * DAY_MS)
    assert beyond["ts"] < DEFAULT_START_MS + 11 * DAY_MS


def test_pacing_by_speed_and_by_rate_follow_the_clock() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    events = [{"ts": 0}, {"ts": 60_000}, {"ts": 120_000}]
    assert list(paced_by_speed(events, 60, clock=lambda: now[0], sleep=sleep)) == events
    assert slept == [1.0, 1.0]
    slept.clear()
    now[0] = 0.0
    assert len(list(paced_by_rate(events, 4, clock=lambda: now[0], sleep=sleep))) == 3
    assert slept == [0.25, 0.25]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_writes_json_lines_and_the_ground_truth(tmp_path: Any) -> None:
    out, truth = tmp_path / "events.jsonl", tmp_path / "truth.jsonl"
    code = main(_args("--seed", "5", "--customers", "100", "--days", "1", "--output", str(out), "--ground-truth", str(truth)))
    assert code == 0
    written = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert written == list(simulate(SimulationSettings(seed=5, customers=100, days=1)))
    records = [orjson.loads(line) for line in truth.read_bytes().splitlines()]
    assert records[0]["record"] == "simulation" and records[0]["seed"] == 5
    assert Counter(r["record"] for r in records)["anomaly"] == 4  # outage, pricing error, bot traffic, conversion collapse
    assert main(_args("--customers", "0")) == 2
    assert _args("--start", "2026-03-01T00:00:00Z", "--no-anomalies").start == 1772323200000


def test_ground_truth_lists_every_customer_with_a_churn_time() -> None:
    _, truth = run(days=2)
    customers = [r for r in truth if r["record"] == "customer"]
    assert len(customers) >= 1000
    assert all(r["churn_at"] > r["joined_at"] >= DEFAULT_START_MS for r in customers)
    segments = Counter(r["segment"] for r in customers)
    assert segments["store_only"] > segments["omnichannel"] > 0 and segments["online_only"] > 0


@pytest.mark.integration
def test_a_simulation_written_to_kafka_is_read_back_exactly() -> None:
    from channelflow.broker import EmbeddedBroker
    from channelflow.kafka_io import consume_all

    expected = Counter(topic_for_type(e["type"]) for e in simulate(SimulationSettings(seed=2, customers=150, days=1)))
    names = {topic: f"sim-{topic}" for topic in INPUT_TOPICS}
    with EmbeddedBroker() as broker:
        topics = [f"--topic={topic}={name}" for topic, name in names.items()]
        code = main(_args("--seed", "2", "--customers", "150", "--days", "1", "--brokers", broker.bootstrap, *topics))
        assert code == 0
        for topic, name in names.items():
            got = consume_all(broker.bootstrap, name, expect=expected[topic], timeout=30)
            assert len(got) == expected[topic]
            assert all(validate(orjson.loads(value), topic).__class__ is Event for _, value in got)
