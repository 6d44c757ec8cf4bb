"""Identity stitching, profiles, delayed churn labels and erasure, on the functional core.

The customer stages run in-process (``flows.local.LocalFlow``: the flow's own
stages, routing and watermark, without Bytewax), so state can be inspected.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import replace
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channelflow.config import ConfigError, from_mapping, load_config
from flows.customer_wiring import customer_profiles, customer_specs
from flows.local import LocalFlow
from flows.topology import CHURN, CUSTOMERS, IDENTITY
from operators.contract.events import Event
from operators.contract.events import event_of as event
from operators.customers.book import CustomerBook
from operators.customers.profile import MAX_CART_LINES, CustomerProfile
from operators.time.units import DAY_MS

T0 = 1_790_000_000_000  # 2026-09-21T14:13:20Z (a Monday is not needed: ticks align to the epoch)
HOUR = 3_600_000
CONFIG = load_config()
HORIZON = CONFIG.churn.horizon_ms
TICK = CONFIG.churn.tick_ms


_ids = iter(range(10**9))


def click(kind: str, ts: int, anonymous_id: str, customer_id: str | None = None, **fields: Any) -> Event:
    return event({"event_id": f"c{next(_ids)}", "type": kind, "ts": ts, "channel": "web", "session_id": f"s-{ts // HOUR}",
                  "anonymous_id": anonymous_id, "customer_id": customer_id, **fields})  # fmt: skip


def till(kind: str, ts: int, loyalty_id: str | None, total: float = 20.0, **fields: Any) -> Event:
    lines = [{"sku": "K1", "qty": 1, "unit_price": total}]
    return event({"event_id": f"p{next(_ids)}", "type": kind, "ts": ts, "store_id": "S001", "receipt_id": f"r{ts}",
                  "loyalty_id": loyalty_id, "lines": lines, "total": total, **fields})  # fmt: skip


def crm(kind: str, ts: int, customer_id: str, **fields: Any) -> Event:
    return event({"event_id": f"u{next(_ids)}", "type": kind, "ts": ts, "customer_id": customer_id, **fields})


def order(ts: int, anonymous_id: str, customer_id: str | None, total: float) -> Event:
    lines = [{"sku": "K1", "qty": 1, "unit_price": total}]
    return click("order_placed", ts, anonymous_id, customer_id, order_id=f"o{ts}", lines=lines, total=total,
                 fulfillment={"method": "ship"})  # fmt: skip


def new_flow(config: Any = CONFIG, shards: int = 4) -> LocalFlow:
    config = replace(config, flow=replace(config.flow, shards=shards))
    return LocalFlow(customer_specs(config), shards)


def feed(flow: LocalFlow, events: list[Event]) -> None:
    """Push ``events`` and move the watermark past the last (an ordered stage holds what it has not passed)."""
    flow.run(events)
    flow.advance(max(e.ts for e in events) + 1)


def profiles(flow: LocalFlow) -> dict[str, CustomerProfile]:
    return customer_profiles(flow)


def scores(flow: LocalFlow) -> list[dict[str, Any]]:
    return [o.value for o in flow.outputs if o.topic == "customer_scores"]


# -- stitching -----------------------------------------------------------------


def test_a_device_cart_becomes_the_customers_cart_at_login() -> None:
    flow = new_flow()
    feed(flow, [
        click("product_view", T0, "dev1", sku="K9"),
        click("add_to_cart", T0 + 1_000, "dev1", sku="K9", qty=2, price=15.0),
        click("add_to_cart", T0 + 2_000, "dev2", "C1", sku="K3", qty=1, price=5.0),  # the account's own cart
        click("login", T0 + 3_000, "dev1", "C1"),
        click("product_view", T0 + 4_000, "dev1", sku="K4"),  # after login, anonymous clicks are the account's
    ])
    found = profiles(flow)
    assert "device:dev1" not in found
    customer = found["C1"]
    assert customer.cart == {"K9": (2, 15_000), "K3": (1, 5_000)}
    assert [sku for _, sku in customer.views] == ["K9", "K4"]
    assert customer.sessions == 2  # the device's session and the account's own
    assert any(i.links.get("device:dev1") == "C1" for i in flow.domains(IDENTITY))


def test_an_emptied_or_ordered_cart_is_empty() -> None:
    flow = new_flow()
    feed(flow, [
        click("add_to_cart", T0, "d", "C1", sku="K1", qty=2, price=3.0),
        click("remove_from_cart", T0 + 1, "d", "C1", sku="K1", qty=1),
        click("add_to_cart", T0 + 2, "d", "C1", sku="K2", qty=1, price=4.0),
    ])
    assert profiles(flow)["C1"].cart == {"K1": (1, 3_000), "K2": (1, 4_000)}
    feed(flow, [order(T0 + 3, "d", "C1", 7.0)])
    assert profiles(flow)["C1"].cart == {}


def test_a_cart_holds_at_most_max_cart_lines_skus_also_when_carts_merge() -> None:
    """A full cart keeps its lines (and their quantities) but takes no other SKU, so a customer's
    events cost the same however many SKUs they try to add."""
    flow = new_flow(shards=1)
    adds = [click("add_to_cart", T0 + n, "d1", "C1", sku=f"K{n}", qty=1, price=1.0) for n in range(MAX_CART_LINES + 5)]
    device = [click("add_to_cart", T0 + n, "d2", sku=f"D{n}", qty=1, price=1.0) for n in range(10)]
    more = click("add_to_cart", T0 + 10**6, "d1", "C1", sku="K0", qty=2, price=1.0)  # a line it holds: kept
    feed(flow, [*adds, *device, more, click("login", T0 + 10**6 + 1, "d2", "C1")])
    cart = profiles(flow)["C1"].cart
    assert len(cart) == MAX_CART_LINES
    assert cart["K0"] == (3, 1_000) and f"K{MAX_CART_LINES - 1}" in cart
    assert f"K{MAX_CART_LINES}" not in cart and "D0" not in cart


def test_a_loyalty_cards_till_history_joins_the_account_when_linked() -> None:
    flow = new_flow()
    feed(flow, [
        till("sale", T0, "L1", 30.0),
        till("sale", T0 + 5 * DAY_MS, "L1", 50.0),
        till("return", T0 + 6 * DAY_MS, "L1", 10.0),
        order(T0 + 7 * DAY_MS, "d1", "C1", 100.0),
    ])
    before = profiles(flow)
    assert before["loyalty:L1"].orders == 2 and before["C1"].orders == 1
    feed(flow, [crm("identity_linked", T0 + 8 * DAY_MS, "C1", loyalty_id="L1"),
              till("sale", T0 + 9 * DAY_MS, "L1", 20.0)])  # fmt: skip
    after = profiles(flow)
    assert "loyalty:L1" not in after
    customer = after["C1"]
    assert customer.orders_by_channel == {"store": 3, "web": 1}
    assert customer.lifetime_value_millis == (30 + 50 - 10 + 100 + 20) * 1000
    assert customer.first_purchase == T0 and customer.last_purchase == T0 + 9 * DAY_MS
    assert customer.home_store == "S001"
    # The card was scored under its own key before the link, the account after.
    keys = [s["customer_id"] for s in scores(flow)]
    assert "loyalty:L1" in keys and keys[-1] == "C1"


def test_linking_moves_the_cards_pending_churn_snapshots() -> None:
    flow = new_flow()
    first_tick = (T0 // TICK + 1) * TICK
    feed(flow, [till("sale", T0, "L1"), order(T0, "d", "C1", 10.0)])
    flow.advance(first_tick + (CONFIG.churn.learn_every - 1) * TICK + 1)  # both kept a snapshot by then
    pending = {key for d in flow.domains(IDENTITY) + flow.domains(CUSTOMERS) for key in d.book.pending_keys()}
    assert pending == {"loyalty:L1", "C1"}
    feed(flow, [crm("identity_linked", first_tick + (CONFIG.churn.learn_every - 1) * TICK + DAY_MS, "C1", loyalty_id="L1")])
    pending = {key for d in flow.domains(IDENTITY) + flow.domains(CUSTOMERS) for key in d.book.pending_keys()}
    assert pending == {"C1"}


def test_anonymous_devices_get_no_scores_and_are_forgotten_after_the_ttl() -> None:
    flow = new_flow()
    ttl = CONFIG.customers.device_ttl_ms
    feed(flow, [order(T0, "guest", None, 25.0), click("login", T0 + 1, "dev9", "C9")])
    assert "device:guest" in profiles(flow)
    assert not [s for s in scores(flow) if s["customer_id"].startswith("device:")]
    feed(flow, [till("sale", T0 + ttl + 2, None)])  # anything that moves the watermark on
    flow.advance(T0 + ttl + 10)
    assert "device:guest" not in profiles(flow)
    assert not any("device:dev9" in i.links for i in flow.domains(IDENTITY))


# -- erasure ---------------------------------------------------------------------


def test_erasure_leaves_no_trace_of_the_customer_or_their_aliases() -> None:
    flow = new_flow()
    feed(flow, [
        click("add_to_cart", T0, "devX", sku="K1", qty=1, price=9.0),
        click("login", T0 + 1, "devX", "CX"),
        till("sale", T0 + 2, "LX", 40.0),
        crm("identity_linked", T0 + 3, "CX", loyalty_id="LX"),
        crm("consent_changed", T0 + 4, "CX", marketing=True),
        crm("profile_updated", T0 + 5, "CX", birthday="1990-01-02", timezone="Europe/London"),
        order(T0 + 6, "devX", "CX", 60.0),
        order(T0 + 6, "devY", "CY", 60.0),  # someone else, who stays
    ])
    flow.advance(T0 + 3 * TICK)  # snapshots pending for both
    state = pickle.dumps([d for stage in (IDENTITY, CUSTOMERS, CHURN) for d in flow.domains(stage)])
    assert b"CX" in state and b"LX" in state and b"devX" in state
    feed(flow, [crm("erasure_requested", T0 + 3 * TICK + 1, "CX")])
    flow.advance(T0 + 3 * TICK + 2)
    domains = [d for stage in (IDENTITY, CUSTOMERS, CHURN) for d in flow.domains(stage)]
    timers = [shard.timers for stage in (IDENTITY, CUSTOMERS, CHURN) for shard in flow.shards[stage]]
    state = pickle.dumps([domains, timers])
    for trace in (b"CX", b"LX", b"devX"):
        assert trace not in state
    assert b"CY" in state
    confirmations = [s for s in scores(flow) if s.get("erased")]
    assert confirmations == [{"customer_id": "CX", "erased": True, "ts": confirmations[0]["ts"],
                              "cause_event_id": confirmations[0]["cause_event_id"]}]  # fmt: skip
    # Later clicks of the erased device are anonymous again.
    feed(flow, [click("product_view", T0 + 3 * TICK + 5, "devX", sku="K1")])
    assert "device:devX" in profiles(flow) and "CX" not in profiles(flow)


# -- delayed churn labels --------------------------------------------------------


def learned(flow: LocalFlow) -> dict[bool, int]:
    return dict(flow.domains(CHURN)[0].model.learned)


#: Every snapshot kept for learning (the default keeps one tick in churn.learn_every per customer).
LEARN_ALL = replace(CONFIG, churn=replace(CONFIG.churn, learn_every=1))


def test_labels_are_learned_when_the_horizon_has_passed_not_at_the_repurchase() -> None:
    flow = new_flow(LEARN_ALL)
    first_tick = (T0 // TICK + 1) * TICK
    feed(flow, [
        till("sale", T0, "stayer"),
        till("sale", T0, "leaver"),
        till("sale", first_tick + 2 * DAY_MS, "stayer"),  # buys again soon after the first snapshot
    ])
    flow.advance(first_tick + HORIZON)  # the first tick's horizon is (first_tick, first_tick + HORIZON]: not passed
    assert learned(flow) == {True: 0, False: 0}
    flow.advance(first_tick + HORIZON + 1)
    assert learned(flow) == {True: 1, False: 1}  # leaver churned, stayer did not


def test_a_purchase_at_the_horizon_counts_as_staying() -> None:
    flow = new_flow(LEARN_ALL)
    first_tick = (T0 // TICK + 1) * TICK
    feed(flow, [till("sale", T0, "L1"), till("sale", first_tick + HORIZON, "L1")])
    flow.advance(first_tick + HORIZON + 1)
    assert learned(flow) == {True: 0, False: 1}


def test_dormant_customers_are_scored_at_every_tick_and_learned_from() -> None:
    flow = new_flow(LEARN_ALL)
    feed(flow, [till("sale", T0, "L1")])
    end = T0 + 2 * HORIZON + TICK
    flow.advance(end)
    ticks = range((T0 // TICK + 1) * TICK, end - 1, TICK)
    matured = [tick for tick in ticks if tick + HORIZON < end]
    assert learned(flow) == {True: len(matured), False: 0}  # long past the horizon, still snapshotted
    assert sum(d.book.pending_snapshots() for d in flow.domains(IDENTITY)) == len(ticks) - len(matured)
    # Its record is rewritten at least every churn.republish, so what a consumer holds stays fresh.
    times = [o.ts_ms for o in flow.outputs if o.topic == "customer_scores" and o.ts_ms is not None]
    assert times[0] == T0 and all(b - a < CONFIG.churn.republish_ms + TICK for a, b in pairwise(times))
    assert end - times[-1] <= CONFIG.churn.republish_ms + TICK


def test_learn_every_keeps_one_snapshot_in_n_per_customer_staggered() -> None:
    every = 3
    flow = new_flow(replace(CONFIG, churn=replace(CONFIG.churn, learn_every=every)))
    feed(flow, [till("sale", T0, f"L{n}") for n in range(30)])
    flow.advance(T0 + 9 * TICK)
    pending = [len(d.book.pending[key][0]) for d in flow.domains(IDENTITY) for key in d.book.pending_keys()]
    assert len(pending) == 30 and set(pending) == {3}  # 9 ticks, one in 3 kept for each
    phases = {d.book.pending[key][0][0] % every for d in flow.domains(IDENTITY) for key in d.book.pending_keys()}
    assert len(phases) == every  # staggered: not every customer on the same ticks


def test_scores_start_as_the_recency_prior_and_say_so() -> None:
    flow = new_flow()
    feed(flow, [till("sale", T0, "L1"), till("sale", T0, "L2"), till("sale", T0 + 40 * DAY_MS, "L2")])
    flow.advance(T0 + 80 * DAY_MS)
    last = {}
    for record in scores(flow):
        last[record["customer_id"]] = record
        assert record["model"] == "recency_prior" and record["model_version"] == "windowed_logistic@0"
    # The prior ranks by recency from the first purchase: L1 (silent 80 days) above L2 (40).
    assert last["loyalty:L1"]["churn_risk"] > last["loyalty:L2"]["churn_risk"] > 0.5


def test_one_time_buyers_get_a_recency_signal() -> None:
    from operators.churn.features import churn_features

    profile = CustomerProfile()
    profile.apply(till("sale", T0, None, 20.0))
    ratios = [churn_features(profile, T0 + d * DAY_MS)["log_recency_over_gap"] for d in (7, 30, 90, 300)]
    assert ratios == sorted(ratios) and ratios[-1] - ratios[0] > 1  # was about 1 for every one-time buyer


def test_state_per_customer_after_120_days_is_bounded() -> None:
    events = simulated_events(days=120, customers=400, seed=5)
    flow = new_flow(CONFIG, 4)
    flow.run(events, watermark_every=500)
    stages = (IDENTITY, CUSTOMERS, CHURN)
    state = pickle.dumps([[d for s in stages for d in flow.domains(s)], [sh.timers for s in stages for sh in flow.shards[s]]],
                         protocol=pickle.HIGHEST_PROTOCOL)  # fmt: skip
    customers = sum(1 for key in profiles(flow) if not key.startswith("device:"))
    print(f"\ncustomer stages after 120 days: {len(state) / customers:.0f} bytes per customer ({customers})")
    assert len(state) / customers <= 1_500


# -- determinism -----------------------------------------------------------------


def simulated_events(days: int = 20, customers: int = 100, seed: int = 3) -> list[Event]:
    from channelflow.simulator import SimulationSettings, simulate

    return [event(e) for e in simulate(SimulationSettings(seed=seed, customers=customers, days=days, anomalies=False))]


SIMULATED = simulated_events()


def run_outputs(events: list[Event], shards: int, lateness: int = 0) -> list[tuple[str, str, str]]:
    flow = new_flow(CONFIG, shards)
    flow.run(events, watermark_every=200, lateness_ms=lateness)
    return sorted((o.topic, o.key, repr(sorted(o.value.items()))) for o in flow.outputs)


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([1, 3, 8]))
def test_scores_do_not_depend_on_arrival_order_within_lateness_or_shard_count(seed: int, shards: int) -> None:
    rng = random.Random(seed)
    lateness = 10 * 60_000
    shuffled = sorted(SIMULATED, key=lambda e: e.ts + rng.randrange(lateness))  # reordered by up to the lateness
    assert run_outputs(shuffled, shards, lateness) == run_outputs(SIMULATED, 4, lateness)


def test_simulated_customers_get_scores() -> None:
    published = [o for o in run_outputs(SIMULATED, 4) if o[0] == "customer_scores"]
    assert len({key for _, key, _ in published}) > 50


# -- the profile -----------------------------------------------------------------


def test_profile_rfm_tier_and_details() -> None:
    profile = CustomerProfile()
    for e in [
        till("sale", T0, None, 200.0),
        till("sale", T0 + DAY_MS, None, 100.0),
        till("return", T0 + 2 * DAY_MS, None, 40.0),
        crm("consent_changed", T0, "C1", marketing=False, channels=["email"]),
        crm("profile_updated", T0, "C1", home_store_id="S003", timezone="Europe/Paris", birthday="1980-05-06"),
    ]:
        profile.apply(e)
    assert profile.lifetime_value_millis == 260_000
    assert profile.tier(CONFIG.customers.tiers) == "silver"
    summary = profile.summary(T0 + 11 * DAY_MS, CONFIG.customers.tiers)
    assert summary["recency_days"] == 10 and summary["frequency"] == 2
    assert (summary["home_store"], summary["timezone"], summary["marketing_consent"]) == ("S003", "Europe/Paris", False)


def test_a_book_erase_reports_whether_it_knew_the_customer() -> None:
    book = CustomerBook(new_flow().domains(CUSTOMERS)[0].book.settings)
    assert not book.erase("nobody")


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("customers", "tiers", {"gold": 10}, "customers.tiers"),
        ("customers", "device_ttl", "0s", "customers.device_ttl"),
        ("churn", "model", "forest", "churn.model"),
        ("churn", "at_risk", 0.9, "churn.at_risk"),
        ("churn", "score_change", 2, "churn.score_change"),
        ("churn", "horizon", "soon", "churn.horizon"),
    ],
)
def test_bad_customer_and_churn_config_names_the_key(section: str, key: str, value: Any, message: str) -> None:
    from channelflow.config import DEFAULT_CONFIG, read_toml

    doc = read_toml(DEFAULT_CONFIG, "config")
    doc[section][key] = value
    with pytest.raises(ConfigError, match=f"^{message}"):
        from_mapping(doc)


def test_books_count_their_profiles_by_kind_as_they_come_and_go() -> None:
    from collections import Counter

    from operators.customers.book import kind_of

    flow = new_flow()
    feed(flow, [click("add_to_cart", T0, "d1", sku="K", qty=1, price=1.0), till("sale", T0 + 1, "L1"),
                order(T0 + 2, "d2", "C1", 5.0), click("login", T0 + 3, "d1", "C1"),
                crm("identity_linked", T0 + 4, "C1", loyalty_id="L1"), till("sale", T0 + 5, "L2"),
                crm("erasure_requested", T0 + 6, "C1")])  # fmt: skip
    for stage in (IDENTITY, CUSTOMERS):
        for domain in flow.domains(stage):
            assert +domain.book.kinds == Counter(kind_of(key) for key in domain.book.profiles)
    assert sum(d.book.kinds["loyalty"] for d in flow.domains(IDENTITY)) == 1  # L2; L1 merged into C1
