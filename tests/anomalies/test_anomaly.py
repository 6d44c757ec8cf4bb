"""The anomaly functional core: KPI windows, detectors, alarm suppression, per-event outliers, the domain."""

from __future__ import annotations

import doctest
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.anomalies import detectors as anomaly_detector
from operators.anomalies import domain as anomaly_domain
from operators.anomalies import outliers as basket_outliers
from operators.anomalies import windows as kpi_windows
from operators.anomalies.detectors import DETECTORS, AlarmGate, DetectorParams, make_detector
from operators.anomalies.domain import Anomalies, AnomalySettings, StoreHours, anomaly_shards
from operators.anomalies.outliers import BasketOutliers, PriceOutliers
from operators.anomalies.windows import KpiWindows, groups_of
from operators.contract.events import Event
from operators.time.shard import DomainShard
from operators.time.sharding import shard_of
from operators.time.stream_items import Progress

MINUTE = 60_000


@pytest.mark.parametrize("module", [kpi_windows, anomaly_detector, basket_outliers, anomaly_domain])
def test_doctests(module: object) -> None:
    failed, attempted = doctest.testmod(module)  # type: ignore[arg-type]
    assert attempted > 0 and failed == 0


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
    assert first.values() == {"orders": 1.0, "revenue": 20.0, "add_to_carts": 0.0, "sessions": 2.0,
                              "conversion": 0.5}
    assert windows.close("web", 31 * MINUTE).sessions == 1
    assert windows.sessions_started == {"web": 3}


# -- detectors ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DETECTORS))
def test_every_detector_flags_a_level_shift_and_not_a_stable_series(name: str) -> None:
    rng = random.Random(7)
    params = DetectorParams(half_life=30, warmup=30)
    detector = make_detector(name, params)
    gate = AlarmGate(DETECTORS[name], k=10)
    quiet_alarms = 0
    for _ in range(300):
        x = float(sum(rng.random() < 0.5 for _ in range(20)))  # binomial around 10
        quiet_alarms += gate.update(detector.score_one(x)) if detector.ready() else 0
        detector.learn_one(x)
    shifted_alarms = 0
    for _ in range(20):
        shifted_alarms += gate.update(detector.score_one(40.0))
    assert quiet_alarms <= 6  # at most 2% of windows (Half-Space Trees raises a few)
    assert shifted_alarms == 1  # one alarm for the episode
    assert detector.direction(40.0) == "spike"


def test_zero_variance_does_not_make_every_value_an_anomaly() -> None:
    for name in DETECTORS:
        detector = make_detector(name, DetectorParams(warmup=5, count_like=False))
        for _ in range(50):
            detector.learn_one(5.0)
        assert detector.score_one(5.0) < DETECTORS[name], name


def test_cusum_adds_up_a_small_sustained_drop_of_a_sparse_count() -> None:
    rng = random.Random(3)
    detector = make_detector("cusum", DetectorParams(half_life=120, warmup=30))
    for _ in range(600):
        detector.learn_one(float(sum(rng.random() < 0.1 for _ in range(10))))  # Poisson-like, rate 1 per window
    scores = []
    for _ in range(40):
        scores.append(detector.score_one(0.0))
        detector.learn_one(0.0)
    crossed = next(i for i, s in enumerate(scores) if s >= DETECTORS["cusum"])
    assert 5 <= crossed <= 25  # no single empty window alarms; a run of them does
    assert detector.direction(0.0) == "drop"


@given(st.lists(st.floats(0, 100), min_size=1, max_size=50), st.integers(1, 5))
def test_the_gate_never_alarms_twice_in_one_episode(scores: list[float], k: int) -> None:
    gate = AlarmGate(threshold=50.0, k=k, clear=3, max_episode=10**6)
    alarms = [gate.update(s) for s in scores]
    # Between two alarms there are at least `clear` scores below the threshold.
    positions = [i for i, a in enumerate(alarms) if a]
    for a, b in itertools.pairwise(positions):
        assert sum(s < 50.0 for s in scores[a + 1 : b]) >= 3


# -- per-event outliers --------------------------------------------------------------


def test_a_pricing_error_is_flagged_once_per_cooldown_and_not_learned() -> None:
    prices = PriceOutliers(deviation=0.5, warmup=5, cooldown_ms=HOUR)
    for ts in range(20):
        assert prices.score_one("A", 20.0 if ts % 2 else 21.0, ts) is None
    found = [prices.score_one("A", 4.0, 100 + ts) for ts in range(50)]
    assert [f.kind for f in found if f] == ["price_low"]
    assert 19.0 < (prices.usual_price("A") or 0) < 21.0  # the error did not become the usual price
    assert prices.score_one("A", 4.0, 100 + HOUR).kind == "price_low"  # type: ignore[union-attr]
    assert prices.score_one("A", 45.0, 200 + 2 * HOUR).kind == "price_high"  # type: ignore[union-attr]
    assert prices.score_one("B", 1000.0, 0) is None  # a new SKU has no usual price yet


HOUR = 3_600_000


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
    shards = anomaly_shards(event, 8)
    assert shards == {shard_of("store", 8), shard_of("store:S7", 8), shard_of("A", 8)}
    assert anomaly_shards(Event("i", "stock_received", "inventory", 0, {"sku": "A"}), 8) == set()


def outage_run(shards: int) -> list[dict[str, object]]:
    """A store selling about 2 baskets a minute for 3 hours, silent for 40 minutes, then back."""
    rng = random.Random(11)
    settings_ = AnomalySettings(window_ms=MINUTE, params=DetectorParams(warmup=30))
    domains = [DomainShard(Anomalies(settings_, k, shards), upstreams=1) for k in range(shards)]
    alerts: list[dict[str, object]] = []
    i = 0
    for minute in range(260):
        if not 180 <= minute < 220:
            for _ in range(sum(rng.random() < 0.5 for _ in range(4))):
                i += 1
                event = sale(i, minute * MINUTE + rng.randrange(MINUTE), total=round(rng.uniform(5, 50), 2))
                for k in anomaly_shards(event, shards):
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

    assert sorted(outage_run(1), key=key) == sorted(outage_run(3), key=key)


def test_closed_store_windows_are_not_scored() -> None:
    from datetime import time

    hours = {"S1": StoreHours("UTC", time(1, 0), time(3, 0))}
    settings_ = AnomalySettings(window_ms=MINUTE, params=DetectorParams(warmup=5), store_hours=hours)
    domain = Anomalies(settings_)
    shard = DomainShard(domain, upstreams=1)
    for minute in range(60, 180):
        shard.on_event(sale(minute, minute * MINUTE + 5))
    alerts = shard.on_progress(Progress(0, 10 * 60 * MINUTE))  # silent from 03:00 to 10:00: the store is closed
    assert [a for a in alerts if a.value["series"].endswith(":S1")] == []
