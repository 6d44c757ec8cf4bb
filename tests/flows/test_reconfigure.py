"""A stage restored from a recovery snapshot runs on with today's config, through the steps the
flow runs (``flows.steps``: snapshot bytes in, ``reconfigure`` with a domain built from the
current settings), not with the settings pickled in its state.

Settings a stage cannot take without breaking its state stay as the state was written, and the
flow says so in a warning naming them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from flows import steps
from flows.stateful import EntityStores
from operators.anomalies.domain import Anomalies, AnomalySettings
from operators.churn.scores import ChurnScores, ScoreSettings
from operators.contract.events import Event
from operators.customers.book import CustomerBook, CustomerSettings
from operators.inventory.domain import Inventory, InventorySettings
from operators.locations import Location
from operators.promotions.domain import Promotions
from operators.promotions.examples import activity, customer, example_settings
from operators.time.stream_items import Marker, Output, Progress, Signal

NOON = 1_795_348_800_000  # 2026-11-22T12:00Z
HOUR = 3_600_000
CART = {"trigger": "cart_abandoned", "delay": "1h", "offer": {"kind": "percent_off", "value": 10}}
STATE_DIR: list[Path] = []  # the test's folder for the snapshots' entity stores


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path) -> Iterator[None]:
    STATE_DIR.append(tmp_path)
    yield
    STATE_DIR.clear()


def _stores() -> EntityStores:
    return EntityStores(STATE_DIR[-1])


def _promotions(rules: dict[str, dict[str, Any]]) -> steps.RunDomain:
    """The promotions stage's step with a gate of its own, for ``rules``."""
    settings = example_settings(rules)
    return steps.RunDomain(lambda _shard: Promotions(settings), upstreams=1, ordered=True, name="promotions",
                           entity_stores=_stores())


def _run(step: steps.RunDomain, resume: object, items: list[Any]) -> tuple[bytes | None, list[Any]]:
    """Apply ``items`` to shard 0 of ``step`` resumed from ``resume``; its snapshot and outputs."""
    logic = step(resume)
    outputs, _ = logic.on_batch([(0, list(items))])
    return logic.snapshot(), outputs


def _cart_left(key: str, event_id: str, ts: int) -> Signal:
    facts = customer(key, cart=(("MUG", 1, 9_500),), timezone="Europe/London")
    body = activity(facts, event_id, "add_to_cart", ts, sku="MUG", qty=1, price=9.5)
    return Signal("activity", key, ts, event_id, body)


def _sent(outputs: list[Any]) -> list[str]:
    return [o.value["rule"] for o in outputs if isinstance(o, Output) and o.topic == "promotions"]


def test_a_rule_disabled_before_a_restart_does_not_fire_for_what_was_armed_before_it() -> None:
    snapshot, outputs = _run(_promotions({"cart_reminder": CART}), None, [_cart_left("c1", "e1", NOON),
                                                                          Progress(0, NOON + 1)])
    assert outputs == []  # armed, due in an hour
    due = [Progress(0, NOON + HOUR + 1)]

    _, same_rules = _run(_promotions({"cart_reminder": CART}), snapshot, due)
    _, edited = _run(_promotions({"cart_reminder": {**CART, "enabled": False}}), snapshot, due)

    assert _sent(same_rules) == ["cart_reminder"]
    assert _sent(edited) == []


def test_a_rule_added_before_a_restart_fires_for_activity_after_it() -> None:
    browse = {"trigger": "cart_abandoned", "delay": "2h", "priority": 1}
    snapshot, _ = _run(_promotions({"cart_reminder": {**CART, "enabled": False}}), None,
                       [_cart_left("c1", "e1", NOON), Progress(0, NOON + 1)])

    _, outputs = _run(_promotions({"cart_reminder": {**CART, "enabled": False}, "cart_late": browse}), snapshot,
                      [_cart_left("c2", "e2", NOON + 2), Progress(0, NOON + 3 * HOUR)])

    assert _sent(outputs) == ["cart_late"]  # for c2 only: c1's cart came while no rule was on


def _sequence(lateness_ms: int, dedupe_ms: int = HOUR) -> steps.Sequence:
    return steps.Sequence(lateness_ms, idle_timeout_ms=60_000, dedupe_horizon_ms=dedupe_ms, partitions=1,
                          entity_stores=_stores())


def _watermarks(outputs: list[Any]) -> list[int]:
    return [item.watermark for item in outputs if isinstance(item, Progress)]


def test_the_sequence_stage_takes_todays_allowed_lateness_after_a_restart(caplog: pytest.LogCaptureFixture) -> None:
    first = _sequence(lateness_ms=30_000)(None)
    first.on_batch([(0, [Marker("pos:0", NOON, seen_at=NOON)])])
    snapshot = first.snapshot()
    later = [(0, [Marker("pos:0", NOON + 60_000, seen_at=NOON + 60_000)])]

    kept = _sequence(lateness_ms=30_000)(snapshot).on_batch(later)[0]
    with caplog.at_level(logging.WARNING, logger="channelflow"):
        edited = _sequence(lateness_ms=5_000)(snapshot).on_batch(later)[0]

    assert _watermarks(kept) == [NOON + 30_000]
    assert _watermarks(edited) == [NOON + 55_000]
    assert not caplog.records  # every time setting it was given applied


def test_a_changed_dedupe_horizon_is_kept_and_named(caplog: pytest.LogCaptureFixture) -> None:
    first = _sequence(lateness_ms=0)(None)
    first.on_batch([(0, [Marker("pos:0", NOON, seen_at=NOON)])])
    with caplog.at_level(logging.WARNING, logger="channelflow"):
        _sequence(lateness_ms=0, dedupe_ms=2 * HOUR)(first.snapshot())
    assert "'sequence'" in caplog.text and "dedupe_horizon_ms" in caplog.text


def test_customer_books_take_new_tiers_and_keep_the_churn_tick() -> None:
    old = CustomerBook(CustomerSettings(90 * 24 * HOUR, 7 * 24 * HOUR, 30 * 24 * HOUR, 5, (("bronze", 0),)))
    today = CustomerSettings(60 * 24 * HOUR, 7 * 24 * HOUR, 30 * 24 * HOUR, 10, (("bronze", 0), ("gold", 100)))

    assert old.reconfigure(CustomerBook(today)) == ("horizon_ms",)
    assert old.settings == replace(today, horizon_ms=90 * 24 * HOUR)


def test_churn_scores_take_new_thresholds_and_keep_the_learnt_model() -> None:
    settings = ScoreSettings(model="logistic", score_change=0.02, at_risk=0.5, lapsing=0.8)
    scores = ChurnScores(settings)
    model = scores.model

    kept = scores.reconfigure(ChurnScores(replace(settings, model="windowed_logistic", at_risk=0.6)))

    assert kept == ("model",)
    assert scores.model is model and scores.settings == replace(settings, at_risk=0.6)


def _inventory(safety: int) -> steps.RunDomain:
    settings = InventorySettings(locations=(Location("W1", "warehouse"),),
                                 safety_stock_by_type={"store": 0, "warehouse": safety})
    return steps.RunDomain(lambda shard: Inventory(settings, shard, 1), upstreams=1, name="inventory",
                            entity_stores=_stores())


def _stock(event_id: str, ts: int, kind: str, **body: Any) -> Event:
    return Event(event_id, kind, "inventory", ts, {"location_id": "W1", "sku": "MUG", **body})


def _records(outputs: list[Any]) -> list[dict[str, Any]]:
    return [o.value for o in outputs if isinstance(o, Output) and o.topic == "inventory_updates"]


def test_inventory_takes_todays_safety_stock_after_a_restart() -> None:
    snapshot, outputs = _run(_inventory(safety=2), None, [_stock("e1", NOON, "stock_received", qty=10)])
    assert [(r["record"], r.get("alert"), r["available"]) for r in _records(outputs)] == [
        ("stock", None, 8), ("alert", "back_in_stock", 8)]
    adjusted = [_stock("e2", NOON + 1, "stock_adjusted", delta=-1)]

    _, same = _run(_inventory(safety=2), snapshot, adjusted)
    _, edited = _run(_inventory(safety=9), snapshot, adjusted)

    assert [(r["record"], r["available"], r["network_available"]) for r in _records(same)] == [("stock", 7, 7)]
    # Availability and network totals by the new safety stock; the level it moved to is reported now.
    assert [(r["record"], r.get("alert"), r["available"], r["network_available"]) for r in _records(edited)] == [
        ("stock", None, 0, 0), ("alert", "out_of_stock", 0, 0)]


def test_a_stage_that_cannot_take_its_settings_keeps_them_and_says_which(caplog: pytest.LogCaptureFixture) -> None:
    # Anomaly windows and detectors are built with their settings: a new window length would not match them.
    def stage(window_ms: int) -> steps.RunDomain:
        settings = AnomalySettings(window_ms=window_ms)
        return steps.RunDomain(lambda shard: Anomalies(settings, shard, 1), upstreams=1, ordered=True,
                               name="anomaly", entity_stores=_stores())

    view = Event("e1", "page_view", "clickstream", NOON, {"channel": "web", "session_id": "s1", "anonymous_id": "a"})
    snapshot, _ = _run(stage(15 * 60_000), None, [view])
    with caplog.at_level(logging.WARNING, logger="channelflow"):
        _run(stage(5 * 60_000), snapshot, [Progress(0, NOON + 1)])
    assert "'anomaly'" in caplog.text and "window_ms" in caplog.text
