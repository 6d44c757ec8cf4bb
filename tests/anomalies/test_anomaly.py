"""The anomaly functional core: KPI windows, detectors, alarm suppression, per-event outliers, the domain."""

from __future__ import annotations

import itertools
import math
import pickle
import random
from datetime import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.anomalies.detectors import DETECTORS, KpiParams, make_detector
from operators.anomalies.domain import (
    CHANNEL_GROUPS,
    Anomalies,
    AnomalySettings,
    StoreHours,
    anomaly_shards,
    group_shard,
)
from operators.anomalies.gate import AlarmGate
from operators.anomalies.outliers import BasketOutliers, PriceOutliers
from operators.anomalies.windows import KpiWindows, groups_of
from operators.contract.events import Event
from operators.state.store import EntityStore
from operators.time.shard import DomainShard
from operators.time.sharding import shard_of
from operators.time.stream_items import Progress

MINUTE = 60_000


def sale(i: int, ts: int, store: str = "S1", total: float = 10.0) -> Event:
    return Event(f"s{i}", "sale", "pos", ts, {"store_id": store, "receipt_id": f"r{i}", "total": total,
                                              "lines": [{"sku": "A", "qty": 1, "unit_price": total}]})


def click(i: int, ts: int, kind: str, session: str, channel: str = "web", **fields: object) -> Event:
    return Event(f"c{i}", kind, "clickstream", ts, {"channel": channel, "session_id": session, **fields})


# -- windows ---------------------------------------------------------------------

events_strategy = st.lists(
    st.tuples(
        st.sampled_from(["sale", "return", "order_placed", "add_to_cart", "page_view"]),
        st.integers(0, 10 * MINUTE),
        st.integers(1, 50_000),  # total in milli-units
        st.sampled_from(["s1", "s2", "s3"]),
    ),
    max_size=60,
)


def make_event(i: int, kind: str, ts: int, millis: int, session: str) -> Event:
    if kind in ("sale", "return"):
        return Event(f"e{i}", kind, "pos", ts, {"store_id": "S1", "total": millis / 1000,
                                                  "lines": [{"sku": "A", "qty": 1, "unit_price": 1.0}]})
    return Event(f"e{i}", kind, "clickstream", ts, {"channel": "web", "session_id": session, "total": millis / 1000,
                                                    "sku": "A", "qty": 1, "price": 1.0, "lines": []})


@settings(max_examples=200, deadline=None)
@given(events_strategy)
def test_window_sums_equal_the_fold_of_the_events(raw: list[tuple[str, int, int, str]]) -> None:
    events = [make_event(i, *item) for i, item in enumerate(raw)]
    windows = KpiWindows(MINUTE, session_timeout_ms=10**9)
    for event in events:
        for group in groups_of(event):
            windows.add(event, group)
    for group in ("web", "store", "store:S1"):
        for start in range(0, 11 * MINUTE, MINUTE):
            got = windows.close(group, start)
            inside = [e for e in events if start <= e.ts < start + MINUTE and group in groups_of(e)]
            assert got.orders == sum(e.type in ("sale", "order_placed") for e in inside)
            assert got.revenue_millis == sum(round(e.body["total"] * 1000) for e in inside
                                             if e.type in ("sale", "order_placed"))
            assert got.returns == sum(e.type == "return" for e in inside)
            assert got.add_to_carts == sum(e.type == "add_to_cart" for e in inside)
    assert len(windows) == 0
    # With a session timeout longer than the log, each session id starts exactly one session.
    assert windows.sessions_started.get("web", 0) == len({e.body["session_id"] for e in events
                                                         if e.topic == "clickstream"})


def test_sessions_restart_after_the_timeout_and_conversion_is_orders_per_session() -> None:
    windows = KpiWindows(MINUTE, session_timeout_ms=30 * MINUTE)
    windows.add(click(1, 0, "page_view", "s1"), "web")
    windows.add(click(2, 1_000, "page_view", "s2"), "web")
    windows.add(click(3, 2_000, "order_placed", "s1", total=20.0), "web")
    windows.add(click(4, 31 * MINUTE + 1, "page_view", "s1"), "web")  # s1 idle > 30 min: a new session
    first = windows.close("web", 0)
    assert first.values() == {"orders": 1.0, "revenue": 20.0, "add_to_carts": 0.0, "checkouts": 0.0,
                              "sessions": 2.0, "conversion": 0.5}
    assert windows.close("web", 31 * MINUTE).sessions == 1
    assert windows.sessions_started == {"web": 3}


# -- detectors ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["kpi"])
def test_detectors_flag_a_level_shift_and_not_a_stable_series(name: str) -> None:
    rng = random.Random(7)
    detector = make_detector(name, KpiParams(warmup=30))
    gate = AlarmGate(DETECTORS[name], k=50)
    quiet_alarms = 0
    for _ in range(300):
        x = {"value": float(sum(rng.random() < 0.5 for _ in range(20)))}  # binomial around 10
        quiet_alarms += gate.update(detector.score_one(x))[1]
        detector.learn_one(x)
    alarms = []
    expected = []
    for _ in range(20):
        x = {"value": 40.0}
        alarms.append(gate.update(detector.score_one(x))[1])
        expected.append(detector.expected)
        detector.learn_one(x)
    assert quiet_alarms <= 3  # at most 1% of windows (new extremes of a young series)
    assert alarms[0] and sum(alarms) == 1  # at once, and once for the episode
    assert expected[0] < 20.0  # what it expected when the shift came


def test_zero_variance_does_not_make_every_value_an_anomaly() -> None:
    for name in DETECTORS:
        detector = make_detector(name, KpiParams(warmup=5))
        for _ in range(50):
            detector.learn_one({"value": 5.0})
        assert detector.score_one({"value": 5.0}) < DETECTORS[name], name


def test_kpi_scores_are_scale_free() -> None:
    """The same shape at any level and in any unit scores the same."""
    rng = random.Random(5)
    series = [10 + 3 * (i % 24 < 12) + rng.gauss(0, 1) for i in range(600)] + [25.0, 10.0, 11.0]
    def scores(a: float, b: float) -> list[float]:
        detector = make_detector("kpi")
        out = []
        for v in series:
            out.append(detector.score_one({"value": a * v + b}))
            detector.learn_one({"value": a * v + b})
        return out
    base = scores(1.0, 0.0)
    for a, b in [(1.0, 1e4), (1000.0, 0.0), (0.01, -3.0)]:
        assert scores(a, b) == pytest.approx(base, abs=1e-6)
    assert max(base[:-3]) < base[-3] < 1.0  # the spike ranks first and does not saturate


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300), st.lists(st.integers(1, 50), min_size=1))
def test_kpi_scores_do_not_depend_on_chunking_or_snapshots(values: list[float], cuts: list[int]) -> None:
    """One pass, or chunks with the detector pickled between them (a recovery snapshot): the same scores."""
    import pickle

    params = KpiParams(warmup=3, sample_size=20)
    one = make_detector("kpi", params)
    expected = []
    for v in values:
        expected.append(one.score_one({"value": v}))
        one.learn_one({"value": v})
    detector = make_detector("kpi", params)
    got: list[float] = []
    i = 0
    for cut in itertools.cycle(cuts):
        if i >= len(values):
            break
        for v in values[i : i + cut]:
            got.append(detector.score_one({"value": v}))
            detector.learn_one({"value": v})
        i += cut
        detector = pickle.loads(pickle.dumps(detector))
    assert got == expected
    assert all(0.0 <= s < 1.0 for s in got)


@given(st.lists(st.floats(0, 1), max_size=80), st.integers(1, 10), st.floats(0.05, 0.95))
def test_the_gate_keeps_only_new_highs_and_spaces_alarms(scores: list[float], k: int, threshold: float) -> None:
    gate = AlarmGate(threshold=threshold, k=k)
    results = [gate.update(s) for s in scores]
    for i, (kept, alarm) in enumerate(results):
        previous = scores[max(0, i - k) : i]
        assert kept == (scores[i] if not previous or scores[i] > max(previous) else 0.0)
        assert not alarm or kept >= threshold
    positions = [i for i, (_, alarm) in enumerate(results) if alarm]
    assert all(b - a >= k for a, b in itertools.pairwise(positions))


# -- per-event outliers --------------------------------------------------------------


def test_a_pricing_error_is_flagged_once_per_episode_and_not_learned() -> None:
    prices = PriceOutliers(deviation=0.5, warmup=5, cooldown_ms=HOUR)
    for ts in range(20):
        assert prices.score_one("A", 20.0 if ts % 2 else 21.0, ts) is None
    found = [prices.score_one("A", 4.0, 100 + ts) for ts in range(50)]
    assert [f.kind for f in found if f] == ["price_low"]
    assert 19.0 < (prices.usual_price("A") or 0) < 21.0  # the error did not become the usual price
    assert prices.score_one("A", 4.0, 100 + HOUR) is None  # still the same episode: no usual price seen since
    assert prices.score_one("A", 20.0, 100 + 2 * HOUR) is None  # fixed
    assert prices.score_one("A", 4.0, 100 + 3 * HOUR).kind == "price_low"  # type: ignore[union-attr]
    assert prices.score_one("A", 20.0, 100 + 4 * HOUR) is None
    assert prices.score_one("A", 45.0, 200 + 5 * HOUR).kind == "price_high"  # type: ignore[union-attr]
    assert prices.score_one("B", 1000.0, 0) is None  # a new SKU has no usual price yet


HOUR = 3_600_000


def test_a_second_regular_price_stops_alerting_once_it_recurs_but_errors_still_alert() -> None:
    """A trade price of 1.65 and a retail price of 3.29, as UCI's products have: the retail
    price, first seen after the warm-up, alerts at most twice, then is one of the usual prices."""
    prices = PriceOutliers(deviation=0.5, warmup=5, cooldown_ms=HOUR)
    for ts in range(10):
        assert prices.score_one("A", 1.65, ts * HOUR) is None
    found = []
    for day in range(30):  # every day: trade sales, then a retail one
        t0 = (day + 1) * 24 * HOUR
        found += [prices.score_one("A", 1.65, t0 + i * HOUR) for i in range(3)]
        found.append(prices.score_one("A", 3.29, t0 + 5 * HOUR))
    assert 1 <= sum(f is not None for f in found) <= 2
    assert [round(p, 2) for p in prices.usual_prices("A")] == [1.65, 3.29]
    assert round(prices.usual_price("A") or 0, 2) == 1.65  # the most seen
    error = prices.score_one("A", 0.33, 40 * 24 * HOUR)  # a fifth of the trade price
    assert error is not None and error.kind == "price_low" and round(error.expected, 2) == 1.65
    assert prices.score_one("A", 1.65, 40 * 24 * HOUR + HOUR) is None  # fixed
    assert prices.score_one("A", 33.0, 41 * 24 * HOUR).kind == "price_high"  # type: ignore[union-attr]


def test_a_price_change_adds_a_usual_price_and_keeps_the_others() -> None:
    """A day of only a new price (a sparse SKU's bulk price, sold on two days running) makes it
    usual; the price it had before stays usual too (UCI: 0.65 retail, 0.19 bulk)."""
    prices = PriceOutliers(deviation=0.5, warmup=5, cooldown_ms=HOUR)
    for ts in range(10):
        assert prices.score_one("A", 0.65, ts * HOUR) is None
    day = 24 * HOUR
    first = prices.score_one("A", 0.19, 2 * day)
    assert first is not None and first.kind == "price_low"
    assert prices.score_one("A", 0.19, 3 * day + HOUR) is None  # only 0.19 for a day: a price change
    assert [round(p, 2) for p in prices.usual_prices("A")] == [0.19, 0.65]
    assert prices.score_one("A", 0.65, 4 * day) is None  # still a usual price, not a "price_high"
    assert prices.score_one("A", 0.19, 5 * day) is None


def test_regular_prices_seen_in_the_warm_up_never_alert() -> None:
    prices = PriceOutliers(deviation=0.5, warmup=5)
    for ts, price in enumerate([2.0, 5.0, 2.1, 12.0, 5.2] + [2.0, 5.0, 12.0] * 100):
        assert prices.score_one("A", price, ts * HOUR) is None


@settings(max_examples=60, deadline=None)
@given(
    levels=st.integers(1, 4),
    picks=st.lists(st.tuples(st.integers(0, 3), st.floats(-0.1, 0.1), st.integers(1, 4 * HOUR)), min_size=1, max_size=300),
)
def test_regular_prices_alert_at_most_twice_each(levels: int, picks: list[tuple[int, float, int]]) -> None:
    """Any interleaving of up to four regular prices (each 2.5 times the last, ±10%): each alerts
    in at most ``tier_episodes - 1`` episodes before it is a usual price."""
    prices = PriceOutliers(deviation=0.5, warmup=5, cooldown_ms=HOUR, tier_episodes=3)
    ts, alerts = 0, 0
    for level, jitter, step in picks:
        ts += step
        alerts += prices.score_one("A", 4.0 * 2.5 ** (level % levels) * (1 + jitter), ts) is not None
    assert alerts <= 2 * (levels - 1)


def test_unpriced_skus_are_not_price_checked_and_a_restart_takes_the_list_as_configured() -> None:
    def till(i: int, price: float) -> Event:  # postage at whatever it costs, SKU "A" at 10
        return Event(f"s{i}", "sale", "pos", i * HOUR, {"store_id": "S1", "receipt_id": f"r{i}", "total": 1.0,
                                                       "lines": [{"sku": "POST", "qty": 1, "unit_price": price},
                                                                 {"sku": "A", "qty": 1, "unit_price": 10.0}]})

    def alerted(domain: Anomalies, events: list[Event]) -> set[str]:
        shard = DomainShard(domain, upstreams=1)
        return {o.value["sku"] for e in events for o in shard.on_event(e) if "sku" in o.value}

    odd = [till(i, 18.0 if i < 10 else 400.0) for i in range(12)] + [till(12, 18.0)]
    assert alerted(Anomalies(AnomalySettings()), odd) == {"POST"}
    exempt = Anomalies(AnomalySettings(unpriced_skus=frozenset({"POST"})))
    assert alerted(exempt, odd) == set()
    # Restored, the domain keeps the settings its state was built with, but not this list.
    restored = pickle.loads(pickle.dumps(exempt))
    assert restored.reconfigure(Anomalies(AnomalySettings())) == ()
    assert alerted(restored, [till(20 + i, 18.0) for i in range(6)] + [till(30, 900.0)]) == {"POST"}


def test_price_state_written_before_levels_restores_and_keeps_working() -> None:
    old = PriceOutliers.__new__(PriceOutliers)
    fresh = PriceOutliers(deviation=0.5, warmup=5, cooldown_ms=HOUR)
    old.__dict__.update({k: v for k, v in fresh.__dict__.items() if k not in ("_skus", "max_levels", "tier_episodes")})
    old.__dict__["_usual"] = {"A": (math.log(20.0), 50, -(1 << 62), -1)}  # (mean, n, last outlier, episode)
    restored = pickle.loads(pickle.dumps(old))
    assert round(restored.usual_price("A") or 0, 2) == 20.0 and len(restored) == 1
    assert restored.score_one("A", 21.0, 0) is None
    assert restored.score_one("A", 4.0, 1).kind == "price_low"  # type: ignore[union-attr]
    again = pickle.loads(pickle.dumps(restored))  # and pickles as the new kind
    assert again.usual_prices("A") == restored.usual_prices("A")


def test_a_snapshot_stores_only_the_skus_priced_since_the_last_one(tmp_path: Path) -> None:
    prices = PriceOutliers(deviation=0.5, warmup=3)
    for sku in ("A", "B", "C"):
        for ts, price in enumerate([10.0, 21.0, 10.0, 20.0]):
            prices.score_one(sku, price, ts)
    store = EntityStore(tmp_path / "s.sqlite3")
    store.snapshot(prices)
    prices.score_one("B", 10.5, 10)
    header = store.snapshot(prices)
    assert store.last_written == 1  # B only
    restored = EntityStore(tmp_path / "s.sqlite3").restore(header)
    assert [restored.usual_prices(sku) for sku in "ABC"] == [prices.usual_prices(sku) for sku in "ABC"]
    assert restored.score_one("C", 2.0, 20).kind == "price_low"  # type: ignore[union-attr]


def test_baskets_far_above_their_channel_norm_are_flagged() -> None:
    rng = random.Random(1)
    baskets = BasketOutliers(z=6.0, warmup=100)
    for _ in range(500):
        qty = 1 + int(rng.expovariate(1.0))
        baskets.learn_one("web", qty * rng.uniform(5, 40), qty)
    assert baskets.score_one("web", 60.0, 3) == []
    assert [f.kind for f in baskets.score_one("web", 25_000.0, 2)] == ["basket_value"]
    assert [f.kind for f in baskets.score_one("web", 30.0, 400)] == ["basket_quantity"]
    assert baskets.score_one("app", 25_000.0, 400) == []  # no norm yet for app


# -- the domain --------------------------------------------------------------------


def test_routes_cover_window_groups_and_priced_skus() -> None:
    event = sale(1, 0, "S7")
    assert anomaly_shards(event, 8) == {2, shard_of("store:S7", 8), shard_of("A", 8)}  # "store": shard 2
    assert anomaly_shards(event, 8, placed=False) == {shard_of("store", 8), shard_of("store:S7", 8), shard_of("A", 8)}
    assert anomaly_shards(Event("i", "stock_received", "inventory", 0, {"sku": "A"}), 8) == set()


@pytest.mark.parametrize("shards", [1, 2, 3, 8])
def test_the_channel_groups_are_spread_over_the_first_shards(shards: int) -> None:
    assert [group_shard(g, shards) for g in CHANNEL_GROUPS] == [k % shards for k in range(3)]
    assert group_shard("store:S7", shards) == shard_of("store:S7", shards)  # stores: by hash


def outage_run(shards: int, placed: bool = True) -> list[dict[str, object]]:
    """A store selling about 2 baskets a minute for 3 hours, silent for 40 minutes, then back."""
    rng = random.Random(11)
    settings_ = AnomalySettings(window_ms=MINUTE, params=KpiParams(warmup=30))
    domains = [DomainShard(Anomalies(settings_, k, shards, placed), upstreams=1) for k in range(shards)]
    alerts: list[dict[str, object]] = []
    i = 0
    for minute in range(260):
        if not 180 <= minute < 220:
            for _ in range(sum(rng.random() < 0.5 for _ in range(4))):
                i += 1
                event = sale(i, minute * MINUTE + rng.randrange(MINUTE), total=round(rng.uniform(5, 50), 2))
                for k in anomaly_shards(event, shards, placed):
                    alerts += [o.value for o in domains[k].on_event(event)]
        for domain in domains:
            alerts += [o.value for o in domain.on_progress(Progress(0, (minute + 1) * MINUTE))]
    return alerts


def test_an_outage_window_with_zero_orders_is_scored_and_alerts() -> None:
    alerts = outage_run(1)
    drops = [a for a in alerts if a["series"] == "orders:store:S1" and a["kind"] == "drop"]
    assert len(drops) == 1
    alert = drops[0]
    assert alert["observed"] == 0.0 and alert["expected"] > 1.0  # type: ignore[operator]
    assert "2026" not in str(alert["window_start"]) and str(alert["window_start"]).startswith("1970-01-01T03:")
    assert set(alert) >= {"series", "window_start", "window_end", "observed", "expected", "score", "kind", "ts",
                          "cause_event_id"}
    assert alert["cause_event_id"] is None  # an empty window: no event caused it


def test_the_same_alerts_with_one_or_three_shards() -> None:
    def key(a: dict[str, object]) -> tuple[str, str]:
        return str(a["series"]), str(a["window_start"])

    one = sorted(outage_run(1), key=key)
    assert one == sorted(outage_run(3), key=key) == sorted(outage_run(3, placed=False), key=key)


def test_closed_store_windows_are_not_scored() -> None:
    hours = {"S1": StoreHours("UTC", time(1, 0), time(3, 0))}
    settings_ = AnomalySettings(window_ms=MINUTE, params=KpiParams(warmup=5), store_hours=hours)
    domain = Anomalies(settings_)
    shard = DomainShard(domain, upstreams=1)
    for minute in range(60, 180):
        shard.on_event(sale(minute, minute * MINUTE + 5))
    alerts = shard.on_progress(Progress(0, 10 * 60 * MINUTE))  # silent from 03:00 to 10:00: the store is closed
    assert [a for a in alerts if a.value["series"].endswith(":S1")] == []


def test_a_restored_shard_takes_the_flows_group_placement_and_keeps_its_settings() -> None:
    older = Anomalies(AnomalySettings(window_ms=MINUTE), 1, 8)
    del older.placed_groups  # state written before groups were placed had no such field
    assert older.placed_groups is False and older._owns_group("web")  # by hash, "web" is shard 1's
    fresh = Anomalies(AnomalySettings(window_ms=2 * MINUTE), 1, 8, placed_groups=False)
    assert older.reconfigure(fresh) == ("window_ms",)
    assert older.placed_groups is False and older.settings.window_ms == MINUTE
    assert older.reconfigure(Anomalies(AnomalySettings(window_ms=MINUTE), 1, 8)) == ()
    assert older.placed_groups is True and not older._owns_group("web")  # placed: "web" is shard 0's

