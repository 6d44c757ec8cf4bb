"""Inventory domain: every effect, routing, alerts, expiry, and exactness under reordering.

The exactness property compares the shards' final state with
:func:`reference_fold`, an independent fold of the events sorted by
``(ts, event_id)``.
"""

from __future__ import annotations

import heapq
import pickle
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.contract.events import TOPIC_OF_TYPE, Event, validate
from operators.inventory.domain import (
    Inventory,
    InventorySettings,
    Location,
    Position,
    inventory_shards,
)
from operators.time.shard import DomainShard
from operators.time.stream_items import Output, Progress

StockKey = tuple[str, str]

SETTINGS = InventorySettings(
    locations=(Location("S1", "store", priority=2), Location("S2", "store", priority=2), Location("W1", "warehouse", priority=1)),
    safety_stock_by_type={"store": 1, "warehouse": 0},
    safety_stock_overrides={("A", "W1"): 2},
    low_stock_threshold=3,
    pickup_expiry_ms=1_000,
)


def event(event_id: str, event_type: str, ts: int, **fields: Any) -> Event:
    """A contract-valid event (validated, so the tests cannot drift from the contract)."""
    topic = TOPIC_OF_TYPE[event_type]
    common: dict[str, Any] = {}
    if topic == "pos":
        common = {"receipt_id": f"r-{event_id}", "loyalty_id": None}
    elif topic == "clickstream":
        common = {"channel": "web", "session_id": "s1", "customer_id": "c1"}
    parsed = validate({"event_id": event_id, "type": event_type, "ts": ts, **common, **fields}, topic)
    assert isinstance(parsed, Event), parsed
    return parsed


def lines(*pairs: tuple[str, int], restock: bool | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"sku": sku, "qty": qty, "unit_price": 1} for sku, qty in pairs]
    if restock is not None:
        for line in out:
            line["restock"] = restock
    return out


def received(eid: str, ts: int, sku: str, loc: str, qty: int) -> Event:
    return event(eid, "stock_received", ts, sku=sku, location_id=loc, qty=qty)


def sale(eid: str, ts: int, store: str, *pairs: tuple[str, int]) -> Event:
    return event(eid, "sale", ts, store_id=store, lines=lines(*pairs), total=1)


def placed(eid: str, ts: int, order_id: str, *pairs: tuple[str, int], pickup: str | None = None) -> Event:
    fulfillment = {"method": "pickup", "location_id": pickup} if pickup else {"method": "ship"}
    return event(eid, "order_placed", ts, order_id=order_id, lines=lines(*pairs), total=1,
                 fulfillment=fulfillment)


class Harness:
    """S inventory shards fed like the flow feeds them: by ``inventory_shards``, progress to all."""

    def __init__(self, inventory_settings: InventorySettings = SETTINGS, shards: int = 1) -> None:
        self.shards = [DomainShard(Inventory(inventory_settings, k, shards), upstreams=1) for k in range(shards)]
        self.outputs: list[Output] = []

    def send(self, *events: Event) -> list[Output]:
        out: list[Output] = []
        for ev in events:
            for k in sorted(inventory_shards(ev, len(self.shards))):
                out.extend(self.shards[k].on_event(ev))
        self.outputs.extend(out)
        return out

    def advance(self, watermark: int) -> list[Output]:
        out = [o for shard in self.shards for o in shard.on_progress(Progress(0, watermark))]
        self.outputs.extend(out)
        return out

    def position(self, sku: str, loc: str) -> Position | None:
        for shard in self.shards:
            found = shard.domain.position(sku, loc)
            if found is not None:
                return found
        return None

    def state(self) -> dict[StockKey, tuple[int, int]]:
        return {(sku, loc): (p.on_hand, p.reserved)
                for shard in self.shards for sku, loc, p in shard.domain.positions()}

    def open_reservations(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for shard in self.shards:
            for loc, health in shard.domain.health().locations.items():
                total[loc] += health.open_reservations
        return +total


def records(outputs: Iterable[Output], kind: str) -> list[dict[str, Any]]:
    return [o.value for o in outputs if o.value["record"] == kind]


def alerts(outputs: Iterable[Output]) -> list[tuple[str, str, str]]:
    return [(v["alert"], v["sku"], v["location_id"]) for v in records(outputs, "alert")]


# -- the reference fold --------------------------------------------------------


def reference_fold(events: list[Event], config: InventorySettings,
                   horizon: int) -> tuple[dict[StockKey, tuple[int, int]], Counter[str]]:
    """Fold the de-duplicated events in (ts, event_id) order, one at a time.

    Pickup expiries are pseudo-events at (placement ts + expiry, after every
    event of that millisecond), applied if the watermark ``horizon`` passed
    them. Cancel or fulfilment events met before their order's placement
    wait and apply right after it. A fulfilment takes the order's lines at
    its location out of stock once, whether or not they are still reserved.
    Returns (on_hand, reserved) per SKU-location and open reservation lines
    per location.
    """
    on_hand: Counter[StockKey] = Counter()
    reserved: Counter[StockKey] = Counter()
    orders: dict[str, dict[str, Any]] = {}
    waiting: dict[str, list[Event]] = defaultdict(list)

    def available(sku: str, loc: str) -> int:
        return on_hand[sku, loc] - reserved[sku, loc] - config.safety_stock(sku, loc)

    def release(order: dict[str, Any], at: str | None = None) -> None:
        for line in order["lines"]:
            if line["open"] and at in (None, line["loc"]):
                reserved[line["sku"], line["loc"]] -= line["qty"]
                line["open"] = False

    def fulfil(order: dict[str, Any], loc: str) -> None:
        if loc in order["fulfilled"]:
            return
        order["fulfilled"].add(loc)
        for line in order["lines"]:
            if line["loc"] == loc:
                on_hand[line["sku"], loc] -= line["qty"]
        release(order, loc)

    def route(sku: str, qty: int) -> str:
        candidates = [(rank, loc, available(sku, loc)) for rank, loc in config.ship_ranking]
        fillers = [(rank, -avail, loc) for rank, loc, avail in candidates if avail >= qty]
        if fillers:
            return min(fillers)[2]
        return min((-avail, rank, loc) for rank, loc, avail in candidates)[2]

    def terminal(ev: Event, order: dict[str, Any]) -> None:
        if ev.type == "order_cancelled":
            release(order)
        else:
            fulfil(order, ev.body["location_id"])

    queue: list[tuple[tuple[int, int, str], Event | None]] = [((e.ts, 0, e.event_id), e) for e in events]
    heapq.heapify(queue)
    while queue:
        (ts, _, ident), ev = heapq.heappop(queue)
        if ev is None:  # a pickup expiry
            if ts < horizon:
                release(orders[ident])
            continue
        body = ev.body
        if ev.type == "sale":
            for line in body["lines"]:
                on_hand[line["sku"], body["store_id"]] -= line["qty"]
        elif ev.type == "return":
            for line in body["lines"]:
                if line.get("restock", True):
                    on_hand[line["sku"], body["store_id"]] += line["qty"]
        elif ev.type == "stock_received":
            on_hand[body["sku"], body["location_id"]] += body["qty"]
        elif ev.type == "stock_adjusted":
            on_hand[body["sku"], body["location_id"]] += body["delta"]
        elif ev.type == "stock_counted":
            on_hand[body["sku"], body["location_id"]] = body["on_hand"]
        elif ev.type == "transfer":
            on_hand[body["sku"], body["from_location_id"]] -= body["qty"]
            on_hand[body["sku"], body["to_location_id"]] += body["qty"]
        elif ev.type == "order_placed":
            if body["order_id"] in orders:
                continue
            order = orders[body["order_id"]] = {"lines": [], "fulfilled": set()}
            pickup = body["fulfillment"].get("location_id")
            for line in body["lines"]:
                loc = pickup or route(line["sku"], line["qty"])
                reserved[line["sku"], loc] += line["qty"]
                order["lines"].append({"sku": line["sku"], "loc": loc, "qty": line["qty"], "open": True})
            if pickup:
                heapq.heappush(queue, ((ev.ts + config.pickup_expiry_ms, 1, body["order_id"]), None))
            for early in waiting.pop(body["order_id"], []):
                terminal(early, order)
        elif body["order_id"] in orders:
            terminal(ev, orders[body["order_id"]])
        else:
            waiting[body["order_id"]].append(ev)
    state = {key: (on_hand[key], reserved[key]) for key in on_hand.keys() | reserved.keys()}
    open_lines = Counter(line["loc"] for order in orders.values() for line in order["lines"] if line["open"])
    return state, open_lines


# -- the exactness property ---------------------------------------------------

SKUS = ("A", "B", "C")
LOCS = ("S1", "S2", "W1")
LATENESS = 25
SPAN = 300


@st.composite
def inventory_logs(draw: st.DrawFn) -> list[tuple[Event, int]]:
    """Random de-duplicated logs of every inventory-affecting type, with arrival jitter."""
    sku, loc, qty = st.sampled_from(SKUS), st.sampled_from(LOCS), st.integers(1, 6)
    pairs = st.lists(st.tuples(sku, qty), min_size=1, max_size=3)
    orders: list[str] = []
    log: list[tuple[Event, int]] = []
    for i in range(draw(st.integers(1, 45))):
        eid, ts = f"e{draw(st.integers(0, 99)):02d}-{i}", draw(st.integers(0, SPAN))
        kind = draw(st.sampled_from(["received", "adjusted", "counted", "transfer", "sale", "return",
                                     "pickup", "ship", "fulfilled", "cancelled"]))
        if kind == "received":
            ev = received(eid, ts, draw(sku), draw(loc), draw(qty))
        elif kind == "adjusted":
            ev = event(eid, "stock_adjusted", ts, sku=draw(sku), location_id=draw(loc),
                       delta=draw(st.integers(-4, 4).filter(bool)))
        elif kind == "counted":
            ev = event(eid, "stock_counted", ts, sku=draw(sku), location_id=draw(loc), on_hand=draw(st.integers(0, 12)))
        elif kind == "transfer":
            source, target = draw(st.permutations(LOCS))[:2]
            ev = event(eid, "transfer", ts, sku=draw(sku), from_location_id=source, to_location_id=target,
                       qty=draw(qty))
        elif kind == "sale":
            ev = sale(eid, ts, draw(st.sampled_from(("S1", "S2"))), *draw(pairs))
        elif kind == "return":
            ev = event(eid, "return", ts, store_id=draw(st.sampled_from(("S1", "S2"))),
                       lines=lines(*draw(pairs), restock=draw(st.sampled_from([None, True, False]))))
        elif kind in ("pickup", "ship"):
            orders.append(f"o{i}")
            pickup = draw(st.sampled_from(("S1", "S2"))) if kind == "pickup" else None
            ev = placed(eid, ts, orders[-1], *draw(pairs), pickup=pickup)
        else:
            order_id = draw(st.sampled_from([*orders, "o-never-placed"]))
            if kind == "fulfilled":
                ev = event(eid, "order_fulfilled", ts, order_id=order_id, location_id=draw(loc))
            else:
                ev = event(eid, "order_cancelled", ts, order_id=order_id)
        log.append((ev, draw(st.integers(0, LATENESS))))
    return log


def stream(log: list[tuple[Event, int]], shards: int, config: InventorySettings) -> Harness:
    """Deliver in arrival order (ts + jitter), with the tightest watermark that keeps nothing late."""
    harness = Harness(config, shards)
    arrivals = sorted(range(len(log)), key=lambda i: (log[i][0].ts + log[i][1], i))
    watermark = -1
    for i in arrivals:
        ev, jitter = log[i]
        harness.send(ev)
        if ev.ts + jitter - LATENESS > watermark:
            watermark = ev.ts + jitter - LATENESS
            harness.advance(watermark)
    harness.advance(max(ev.ts for ev, _ in log) + 1)
    return harness


# Expiry (60 ms) falls inside the log's span, so the reference applies it on event time too.
PROPERTY_SETTINGS = InventorySettings(
    locations=SETTINGS.locations, safety_stock_by_type={"store": 1, "warehouse": 0},
    safety_stock_overrides={("A", "W1"): 2}, low_stock_threshold=3, pickup_expiry_ms=60,
    order_retention_ms=10 * SPAN,
)


@pytest.mark.parametrize("shards", [1, 3])
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=inventory_logs())
def test_final_state_equals_reference_fold_under_reordering(shards: int, log: list[tuple[Event, int]]) -> None:
    harness = stream(log, shards, PROPERTY_SETTINGS)
    expected, open_lines = reference_fold([ev for ev, _ in log], PROPERTY_SETTINGS,
                                          horizon=max(ev.ts for ev, _ in log) + 1)
    actual = harness.state()
    for key in expected.keys() | actual.keys():
        assert actual.get(key, (0, 0)) == expected.get(key, (0, 0)), key
        sku, loc = key
        position = harness.position(sku, loc)
        if position is not None:
            assert position.available == position.on_hand - position.reserved - PROPERTY_SETTINGS.safety_stock(sku, loc)
    assert harness.open_reservations() == open_lines
    for shard in harness.shards:
        inventory = shard.domain
        network: Counter[str] = Counter()
        for sku, _, position in inventory.positions():
            network[sku] += max(0, position.available)
        assert {sku: inventory.network_available(sku) for sku in network} == dict(network)
    # The last stock record of each SKU-location is its final state: consumers can trust the stream.
    last: dict[StockKey, tuple[int, int]] = {}
    for value in records(harness.outputs, "stock"):
        last[value["sku"], value["location_id"]] = (value["on_hand"], value["reserved"])
    for key, final in actual.items():
        assert last.get(key, (0, 0)) == final, key
    # Settled: nothing pending once the watermark has passed every event.
    assert all(not shard.domain._unsettled for shard in harness.shards)


def test_in_order_delivery_matches_the_reference_too() -> None:
    log = [received("e1", 0, "A", "W1", 10), placed("e2", 5, "o1", ("A", 4)),
           event("e3", "stock_counted", 6, sku="A", location_id="W1", on_hand=3),
           event("e4", "order_fulfilled", 7, order_id="o1", location_id="W1")]
    harness = stream([(ev, 0) for ev in log], 1, PROPERTY_SETTINGS)
    assert harness.state() == reference_fold(log, PROPERTY_SETTINGS, horizon=8)[0] == {("A", "W1"): (-1, 0)}


# -- sharding -------------------------------------------------------------------


def test_inventory_shards_routes_by_sku_and_broadcasts_order_events() -> None:
    from operators.time.sharding import shard_of

    ev = sale("e1", 0, "S1", ("A", 1), ("B", 2))
    assert inventory_shards(ev, 4) == {shard_of("A", 4), shard_of("B", 4)}
    assert inventory_shards(received("e2", 0, "C", "W1", 1), 4) == {shard_of("C", 4)}
    assert inventory_shards(event("e3", "order_fulfilled", 0, order_id="o", location_id="S1"), 4) == {0, 1, 2, 3}
    no_restock = event("e4", "return", 0, store_id="S1", lines=lines(("A", 1), restock=False))
    assert inventory_shards(no_restock, 4) == set()
    assert inventory_shards(event("e5", "search", 0, query="mug", anonymous_id="a"), 4) == set()


def test_a_shard_applies_only_its_own_skus() -> None:
    from operators.time.sharding import shard_of

    harness = Harness(shards=3)
    harness.send(sale("e1", 0, "S1", ("A", 1), ("B", 2), ("C", 3)))
    for shard in harness.shards:
        held = {sku for sku, _, _ in shard.domain.positions()}
        assert all(shard_of(sku, 3) == shard.domain.shard for sku in held)
    assert [harness.position(s, "S1").on_hand for s in "ABC"] == [-1, -2, -3]  # type: ignore[union-attr]


# -- stock effects -------------------------------------------------------------


def test_pos_sale_and_return_move_stock_at_the_store() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "A", "S1", 10), sale("e2", 1, "S1", ("A", 3), ("A", 1)))
    assert harness.position("A", "S1") == Position(6, 0, 5)  # store safety stock 1
    harness.send(event("e3", "return", 2, store_id="S1", lines=lines(("A", 2))))
    harness.send(event("e4", "return", 3, store_id="S1", lines=lines(("A", 5), restock=False)))
    assert harness.position("A", "S1") == Position(8, 0, 7)


def test_receipt_adjustment_count_and_transfer() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "A", "W1", 10))
    harness.send(event("e2", "stock_adjusted", 1, sku="A", location_id="W1", delta=-2, reason="damaged"))
    assert harness.position("A", "W1") == Position(8, 0, 6)  # override: safety 2 for A at W1
    harness.send(event("e3", "stock_counted", 2, sku="A", location_id="W1", on_hand=7))
    assert harness.position("A", "W1").on_hand == 7  # type: ignore[union-attr]
    harness.send(event("e4", "transfer", 3, sku="A", from_location_id="W1", to_location_id="S2", qty=4))
    assert (harness.position("A", "W1"), harness.position("A", "S2")) == (Position(3, 0, 1), Position(4, 0, 3))


def test_a_count_applies_by_event_time_not_arrival() -> None:
    harness = Harness()
    harness.send(sale("e2", 20, "S1", ("A", 3)))  # the sale after the count arrives first
    harness.send(event("e1", "stock_counted", 10, sku="A", location_id="S1", on_hand=10))
    harness.send(event("e0", "stock_adjusted", 5, sku="A", location_id="S1", delta=50))  # before the count
    assert harness.position("A", "S1").on_hand == 7  # type: ignore[union-attr]
    harness.advance(100)
    assert harness.position("A", "S1").on_hand == 7  # type: ignore[union-attr]


def test_stock_records_carry_the_contract_fields() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "A", "S1", 10))
    (record,) = records(harness.send(received("e2", 1_795_342_530_123, "A", "S2", 2)), "stock")
    assert record == {"record": "stock", "sku": "A", "location_id": "S2", "on_hand": 2, "reserved": 0,
                      "available": 1, "network_available": 10, "ts": "2026-11-22T10:15:30.123Z",
                      "cause_event_id": "e2"}
    assert all(o.key == "A" and o.topic == "inventory_updates" for o in harness.outputs)


def test_unchanged_stock_emits_no_record() -> None:
    harness = Harness()
    harness.send(event("e1", "stock_counted", 0, sku="A", location_id="S1", on_hand=4))
    assert records(harness.send(event("e2", "stock_counted", 1, sku="A", location_id="S1", on_hand=4)), "stock") == []


# -- orders --------------------------------------------------------------------


def test_pickup_reserves_then_fulfilment_takes_it_out() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "A", "S1", 10), placed("e2", 1, "o1", ("A", 3), pickup="S1"))
    assert harness.position("A", "S1") == Position(10, 3, 6)
    assert harness.open_reservations() == {"S1": 1}
    harness.send(event("e3", "order_fulfilled", 2, order_id="o1", location_id="S1"))
    assert harness.position("A", "S1") == Position(7, 0, 6)
    assert harness.open_reservations() == {}


def test_cancellation_releases_every_line() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "A", "S1", 10), placed("e2", 1, "o1", ("A", 3), ("B", 1), pickup="S1"))
    harness.send(event("e3", "order_cancelled", 2, order_id="o1"))
    assert harness.position("A", "S1") == Position(10, 0, 9)
    assert harness.position("B", "S1") == Position(0, 0, -1)


@pytest.mark.parametrize("shards", [1, 3])
def test_cancel_arriving_before_its_placement_ends_with_nothing_reserved(shards: int) -> None:
    harness = Harness(shards=shards)
    harness.send(event("e3", "order_cancelled", 5, order_id="o1"))
    harness.send(received("e1", 0, "A", "S1", 10), placed("e2", 1, "o1", ("A", 3), ("B", 2), pickup="S1"))
    assert harness.position("A", "S1") == Position(10, 0, 9)
    assert harness.position("B", "S1") == Position(0, 0, -1)
    assert harness.open_reservations() == {}


def test_fulfilment_arriving_before_its_placement_still_takes_stock_out() -> None:
    harness = Harness()
    harness.send(event("e3", "order_fulfilled", 5, order_id="o1", location_id="S1"))
    harness.send(received("e1", 0, "A", "S1", 10), placed("e2", 1, "o1", ("A", 3), pickup="S1"))
    assert harness.position("A", "S1") == Position(7, 0, 6)


def test_fulfilment_elsewhere_leaves_the_reservation() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "A", "S1", 10), placed("e2", 1, "o1", ("A", 3), pickup="S1"))
    harness.send(event("e3", "order_fulfilled", 2, order_id="o1", location_id="S2"))
    assert harness.position("A", "S1") == Position(10, 3, 6)


def test_pickup_expires_on_event_time_without_another_event_for_it() -> None:
    harness = Harness()  # pickup_expiry_ms = 1_000
    harness.send(received("e1", 0, "A", "S1", 10), placed("e2", 100, "o1", ("A", 3), pickup="S1"))
    assert harness.advance(1_100) == []  # deadline 1_100 not yet passed
    out = harness.advance(1_101)
    (expiry,) = records(out, "expiry")
    assert expiry == {"record": "expiry", "sku": "A", "location_id": "S1", "order_id": "o1", "line": 0,
                      "qty": 3, "ts": "1970-01-01T00:00:01.100Z", "cause_event_id": "e2"}
    assert records(out, "stock")[0]["reserved"] == 0
    assert harness.position("A", "S1") == Position(10, 0, 9)
    assert harness.shards[0].domain.health().counters["expired_reservations"] == 1


def test_collection_after_expiry_takes_stock_but_releases_nothing_twice() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "A", "S1", 10), placed("e2", 100, "o1", ("A", 3), pickup="S1"))
    harness.advance(2_000)
    harness.send(event("e3", "order_fulfilled", 2_500, order_id="o1", location_id="S1"))
    assert harness.position("A", "S1") == Position(7, 0, 6)


# -- routing -------------------------------------------------------------------


def routed(out: Iterable[Output]) -> list[tuple[str, str | None, bool]]:
    return [(v["sku"], v["location_id"], v["filled"]) for v in records(out, "route")]


def test_ship_routing_prefers_best_rank_that_can_fill() -> None:
    harness = Harness()  # ranks by priority: W1 (1), then S1 and S2 (2)
    harness.send(received("e1", 0, "A", "W1", 10), received("e2", 0, "A", "S1", 50))
    harness.send(placed("e3", 10, "o1", ("A", 4)))
    assert harness.position("A", "W1").reserved == 0  # type: ignore[union-attr]  # not routed before the watermark
    out = harness.advance(11)
    assert routed(out) == [("A", "W1", True)]
    assert harness.position("A", "W1") == Position(10, 4, 4)


def test_ship_routing_equal_rank_goes_to_highest_availability() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "B", "S1", 5), received("e2", 0, "B", "S2", 8))
    harness.send(placed("e3", 10, "o1", ("B", 3)))
    assert routed(harness.advance(11)) == [("B", "S2", True)]


def test_ship_routing_when_none_can_fill_takes_highest_availability_and_flags_oversold() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "C", "S1", 3), received("e2", 0, "C", "S2", 5), received("e3", 0, "C", "W1", 1))
    harness.send(placed("e4", 10, "o1", ("C", 9)))
    out = harness.advance(11)
    assert routed(out) == [("C", "S2", False)]
    (oversold,) = records(out, "alert")[:1]
    assert (oversold["alert"], oversold["location_id"], oversold["qty"], oversold["available_before"]) == (
        "oversold", "S2", 9, 4)
    assert harness.position("C", "S2") == Position(5, 9, -5)


def test_ship_lines_of_one_order_see_each_others_reservations() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "A", "W1", 6), received("e2", 0, "A", "S1", 4))
    harness.send(placed("e3", 10, "o1", ("A", 3), ("A", 3)))
    assert routed(harness.advance(11)) == [("A", "W1", True), ("A", "S1", True)]


def test_ship_routing_sees_the_stock_as_of_the_order_not_later_arrivals() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "A", "W1", 10), placed("e3", 10, "o1", ("A", 5)))
    harness.send(sale("e4", 12, "S1", ("A", 1)), event("e5", "stock_adjusted", 12, sku="A", location_id="W1",
                                                        delta=-9))  # after the order: not seen by routing
    assert routed(harness.advance(11)) == [("A", "W1", True)]


def test_ship_routing_with_no_candidates_leaves_the_line_unrouted() -> None:
    harness = Harness(InventorySettings())
    harness.send(placed("e1", 10, "o1", ("A", 1)))
    assert routed(harness.advance(11)) == [("A", None, False)]
    assert harness.shards[0].domain.health().counters["unroutable_lines"] == 1


def test_ship_from_ranks_override_priority() -> None:
    config = InventorySettings(locations=SETTINGS.locations, ship_from=("S2", "W1"))
    harness = Harness(config)
    harness.send(received("e1", 0, "A", "W1", 10), received("e2", 0, "A", "S2", 10))
    harness.send(placed("e3", 10, "o1", ("A", 2)))
    assert routed(harness.advance(11)) == [("A", "S2", True)]


def test_late_ship_order_is_routed_at_once() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "A", "W1", 10))
    harness.advance(100)
    assert routed(harness.send(placed("e2", 50, "o1", ("A", 1)))) == [("A", "W1", True)]
    assert harness.shards[0].domain.health().counters["late_events"] == 1


# -- alerts --------------------------------------------------------------------


def test_alerts_fire_on_transitions_only() -> None:
    harness = Harness()  # S1: safety stock 1, low-stock threshold 3
    assert alerts(harness.send(received("e1", 0, "A", "S1", 10))) == [("back_in_stock", "A", "S1")]
    assert alerts(harness.send(sale("e2", 1, "S1", ("A", 5)))) == []  # available 4: still above 3
    assert alerts(harness.send(sale("e3", 2, "S1", ("A", 1)))) == [("low_stock", "A", "S1")]
    assert alerts(harness.send(sale("e4", 3, "S1", ("A", 1)))) == []  # still low
    assert alerts(harness.send(sale("e5", 4, "S1", ("A", 2)))) == [("out_of_stock", "A", "S1")]
    assert alerts(harness.send(received("e6", 5, "A", "S1", 2))) == [("back_in_stock", "A", "S1"),
                                                                      ("low_stock", "A", "S1")]
    assert alerts(harness.send(received("e7", 6, "A", "S1", 20))) == []
    assert alerts(harness.send(event("e8", "stock_counted", 7, sku="A", location_id="S1", on_hand=0))) == [
        ("out_of_stock", "A", "S1")]


def test_alert_records_carry_the_stock_fields() -> None:
    harness = Harness()
    (alert,) = records(harness.send(received("e1", 0, "A", "S1", 2)), "alert")[1:]
    assert alert == {"record": "alert", "alert": "low_stock", "sku": "A", "location_id": "S1", "on_hand": 2,
                     "reserved": 0, "available": 1, "network_available": 1, "ts": "1970-01-01T00:00:00.000Z",
                     "cause_event_id": "e1"}


def test_sale_beyond_availability_is_applied_and_flagged_oversold() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "A", "S1", 3))
    out = harness.send(sale("e2", 1, "S1", ("A", 5)))
    assert ("oversold", "A", "S1") in alerts(out)
    assert harness.position("A", "S1") == Position(-2, 0, -3)
    assert harness.shards[0].domain.health().counters["oversold"] == 1


def test_pickup_reservation_beyond_availability_is_flagged_oversold() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "A", "S1", 3))
    out = harness.send(placed("e2", 1, "o1", ("A", 3), pickup="S1"))
    oversold = [v for v in records(out, "alert") if v["alert"] == "oversold"]
    assert [(v["qty"], v["available_before"], v["order_id"]) for v in oversold] == [(3, 2, "o1")]


# -- late events, bounded state, housekeeping ----------------------------------


def test_late_delta_beyond_the_watermark_still_counts_unless_a_later_count_covers_it() -> None:
    harness = Harness()
    harness.send(received("e1", 10, "A", "S1", 10), event("e2", "stock_counted", 20, sku="A", location_id="S1",
                                                          on_hand=8))
    harness.advance(100)
    harness.send(sale("e3", 50, "S1", ("A", 1)))  # late, after the count: counts
    harness.send(sale("e0", 15, "S1", ("A", 1)))  # late, before the count: the count already saw it
    assert harness.position("A", "S1").on_hand == 7  # type: ignore[union-attr]


def test_count_older_than_settled_movements_is_refused_as_stale() -> None:
    harness = Harness()
    harness.send(received("e1", 50, "A", "S1", 10))
    harness.advance(100)
    harness.send(event("e0", "stock_counted", 20, sku="A", location_id="S1", on_hand=3))
    assert harness.position("A", "S1").on_hand == 10  # type: ignore[union-attr]
    assert harness.shards[0].domain.health().counters["stale_counts"] == 1
    harness.send(event("e2", "stock_counted", 60, sku="A", location_id="S1", on_hand=4))  # late but newest: exact
    assert harness.position("A", "S1").on_hand == 4  # type: ignore[union-attr]


def test_watermark_settles_pending_entries() -> None:
    harness = Harness()
    harness.send(received("e1", 10, "A", "S1", 10), sale("e2", 20, "S1", ("A", 1)))
    inventory = harness.shards[0].domain
    assert inventory._unsettled == {("A", "S1")}
    harness.advance(15)
    assert len(inventory._stock["A"]["S1"].pending or []) == 1
    harness.advance(21)
    assert inventory._unsettled == set() and inventory._stock["A"]["S1"].pending is None
    assert harness.position("A", "S1").on_hand == 9  # type: ignore[union-attr]


def test_closed_orders_and_orphan_facts_are_forgotten_after_retention() -> None:
    config = InventorySettings(locations=SETTINGS.locations, order_retention_ms=100, pickup_expiry_ms=10_000)
    harness = Harness(config, shards=2)
    harness.send(received("e1", 0, "A", "S1", 10), placed("e2", 1, "o1", ("A", 3), pickup="S1"))
    harness.send(event("e3", "order_fulfilled", 5, order_id="o1", location_id="S1"))
    harness.send(event("e4", "order_cancelled", 6, order_id="o-unknown"))
    harness.send(placed("e5", 7, "o2", ("A", 1), pickup="S1"))  # stays open: kept
    harness.advance(200)
    held = [set(shard.domain._orders) for shard in harness.shards]
    assert set().union(*held) == {"o2"}
    assert sum(s.domain.health().counters["orphan_order_events_forgotten"] for s in harness.shards) >= 2


def test_unknown_locations_are_accepted_and_counted() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "A", "X9", 4))
    inventory = harness.shards[0].domain
    assert harness.position("A", "X9") == Position(4, 0, 3)  # default type store: safety 1
    assert inventory.health().counters["unknown_location_events"] == 1
    assert inventory.health().locations["X9"].location_type == "store"


def test_health_counts_per_location_never_per_sku() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "A", "S1", 10), received("e2", 0, "B", "S1", 2),
                 placed("e3", 1, "o1", ("A", 1), pickup="S1"), sale("e4", 1, "S2", ("C", 1)))
    health = harness.shards[0].domain.health()
    assert health.locations["S1"].low_stock == 1 and health.locations["S1"].stock_outs == 0
    assert health.locations["S1"].open_reservations == 1
    assert health.locations["S2"].stock_outs == 1
    assert set(health.locations) == {"S1", "S2"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"locations": (Location("S1", "shop"),)}, "locations"),
    ({"ship_from": ("W9",)}, "ship_from"),
    ({"low_stock_threshold": -1}, "low_stock_threshold"),
    ({"safety_stock_by_type": {"store": -1}}, "safety_stock"),
])
def test_settings_errors_name_the_key(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InventorySettings(**kwargs)


def test_state_survives_pickling() -> None:
    harness = Harness()
    harness.send(received("e1", 0, "A", "S1", 10), placed("e2", 1, "o1", ("A", 3), pickup="S1"))
    harness.shards[0] = pickle.loads(pickle.dumps(harness.shards[0]))
    harness.advance(2_000)  # the expiry timer survived
    assert harness.position("A", "S1") == Position(10, 0, 9)


def test_state_size_per_sku_location() -> None:
    """10,000 settled SKU-locations, each received, sold from and counted once."""
    locations = tuple(Location(f"S{i:03d}", "store") for i in range(10))
    shard = DomainShard(Inventory(InventorySettings(locations=locations)), upstreams=1)
    n = 0
    for s in range(1_000):
        for loc in locations:
            sku, ts = f"SKU-{s:05d}", 1_795_342_530_000 + n
            for kind, fields in (("stock_received", {"qty": 20}), ("stock_counted", {"on_hand": 19})):
                shard.on_event(event(f"{kind}-{sku}-{loc.id}-0123456789", kind, ts, sku=sku,
                                     location_id=loc.id, **fields))
            shard.on_event(sale(f"sale-{sku}-{loc.id}-0123456789", ts, loc.id, (sku, 1)))
            n += 1
    shard.on_progress(Progress(0, 1_795_342_530_000 + n + 1))
    size = len(pickle.dumps(shard, protocol=pickle.HIGHEST_PROTOCOL))
    per_sku_location = size / 10_000
    print(f"\npickled inventory shard: {size} bytes, {per_sku_location:.1f} bytes per SKU-location")
    assert shard.domain.state_size_bytes() <= size
    assert per_sku_location < 150


def test_an_expiry_moves_an_earlier_arrived_later_release_back_for_routing() -> None:
    """The cancel (t=2000) arrives first, but the expiry (t=1010) released the stock before the ship order."""
    harness = Harness()  # pickup expiry 1_000 ms; W1 cannot fill, S1 and S2 share a rank
    harness.send(received("e1", 0, "A", "S1", 6), received("e2", 0, "A", "S2", 4))
    harness.send(placed("e3", 10, "o1", ("A", 5), pickup="S1"))
    harness.send(event("e4", "order_cancelled", 2_000, order_id="o1"))
    harness.send(placed("e5", 1_500, "o2", ("A", 4)))
    out = harness.advance(1_501)
    assert [v["order_id"] for v in records(out, "expiry")] == ["o1"]
    assert routed(out) == [("A", "S1", True)]


def test_a_snapshot_stores_the_skus_that_changed_and_state_written_before_restores(tmp_path: Any) -> None:
    from pathlib import Path

    from operators.state.store import EntityStore

    shard = DomainShard(Inventory(SETTINGS), upstreams=1)
    for n in range(300):
        shard.on_event(Event(f"r{n}", "stock_received", "inventory", 1_000 + n,
                             {"location_id": "S1", "sku": f"SKU{n}", "qty": 5}))  # fmt: skip
    shard.on_progress(Progress(0, 4_000))  # the receipts settle
    store = EntityStore(Path(tmp_path) / "inventory.sqlite3")
    store.snapshot(shard)
    shard.on_event(Event("s1", "sale", "pos", 5_000, {"store_id": "S1", "receipt_id": "r1",
                                                      "lines": [{"sku": "SKU7", "qty": 1, "unit_price": 2.0}],
                                                      "total": 2.0}))  # fmt: skip
    header = store.snapshot(shard)
    assert 1 <= store.last_written <= 3  # SKU7's ledgers and its network total, not 300 SKUs
    assert len(header) < 4_000  # nor are the others in the header
    restored = store.restore(header)
    assert list(restored.domain.positions()) == list(shard.domain.positions())
    assert restored.domain.network_available("SKU7") == shard.domain.network_available("SKU7") > 0
    # Written before: plain dicts in the pickled domain.
    old = pickle.loads(pickle.dumps(shard.domain))
    old.__dict__.update(_stock={k: dict(v) for k, v in old._stock.items()}, _orders=dict(old._orders),
                        _network=dict(old._network))  # fmt: skip
    again = pickle.loads(pickle.dumps(old))
    assert type(again._stock).__name__ == "MutableTrackedDict" and list(again.positions()) == list(old.positions())
    assert again.network_available("SKU7") == shard.domain.network_available("SKU7")
