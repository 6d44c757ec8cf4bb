"""Finite replays are complete, and their outputs are a function of the log alone.

Through the real broker and the real flow: a replay applies everything it
read (also with empty input partitions), and dedupe and every output topic
come out the same whatever the batch size.
"""

from __future__ import annotations

import random
import sys
from itertools import islice
from typing import Any

import pytest

from channelflow.broker import EmbeddedBroker
from channelflow.simulator import DEFAULT_LOCATIONS, SimulationSettings, simulate
from channelflow.uci import DEFAULT_CSV, events_from_csv
from flows.inventory_wiring import inventory_settings
from operators.contract.events import event_of, topic_for_type
from operators.inventory.domain import STOCK_EVENTS
from tests.conftest import make_config
from tests.customers.test_customers_flow import canonical
from tests.flow_harness import closing_events, produce_events, read_json, run_to_end
from tests.flows.test_cluster import _env, _run_processes
from tests.inventory.test_inventory import reference_fold
from tests.inventory.test_inventory_flow import HOUR_MS, final_stock

pytestmark = pytest.mark.integration

T0 = 1_767_600_000_000  # 2026-01-05T08:00:00Z
MINUTE_MS = 60_000
OUTPUT_TOPICS = ("inventory_updates", "customer_scores", "promotions", "alerts")


def _received(qty: int, ts: int, event_id: str, sku: str = "MUG") -> dict[str, Any]:
    return {"event_id": event_id, "type": "stock_received", "ts": ts, "location_id": "W001", "sku": sku, "qty": qty}


def test_dedupe_outcome_does_not_depend_on_batch_size(broker: EmbeddedBroker) -> None:
    """A copy within the dedupe horizon (1 h) of its partition's event time is dropped; one
    re-sent 4.5 h of event time later is taken again (docs/contract.md): at every batch size."""
    original, soon, late = _received(24, T0, "rcv-1"), _received(24, T0, "rcv-1"), _received(10, T0 + 1, "rcv-2")
    log: list[dict[str, Any]] = [original, late]
    # Filler on the same partition (same SKU key) moves its event time along, 5 minutes a step.
    filler = [_received(1, T0 + n * 5 * MINUTE_MS, f"fill-{n}", sku="MUG") for n in range(1, 60)]
    log += [*filler[:6], soon, *filler[6:54], dict(late), *filler[54:]]
    on_hand = []
    for batch_size in ("1", "7", "100", "1000"):
        config = make_config(broker, partitions=1, KAFKA__BATCH_SIZE=batch_size)
        produce_events(config, log)
        run_to_end(config)
        on_hand.append(final_stock(config)[("MUG", "W001")][0])
    # 24 once (the copy 30 min later is a duplicate) + 10 twice (re-sent 4.5 h later) + 59 fillers.
    assert on_hand == [24 + 10 + 10 + 59] * 4


def test_the_same_id_on_two_topics_is_two_events_at_every_batch_size(broker: EmbeddedBroker) -> None:
    """A till's sale and a warehouse's receipt numbered by their own producers (both "X1"): both are
    applied, whichever topic is read first; a copy of the receipt is still a duplicate."""
    sale = {"event_id": "X1", "type": "sale", "ts": T0, "store_id": "S001", "receipt_id": "r1", "loyalty_id": None,
            "lines": [{"sku": "MUG", "qty": 2, "unit_price": 4.5}], "total": 9.0}
    receipt = _received(10, T0, "X1")
    log = [receipt, sale, dict(receipt), _received(1, T0 + 10 * MINUTE_MS, "later")]
    for batch_size in ("1", "1000"):
        config = make_config(broker, partitions=1, KAFKA__BATCH_SIZE=batch_size)
        produce_events(config, log)
        run_to_end(config)
        stock = final_stock(config)
        assert (stock[("MUG", "W001")][0], stock[("MUG", "S001")][0]) == (11, -2), batch_size


def test_a_replay_with_empty_partitions_applies_everything(broker: EmbeddedBroker) -> None:
    """No customers events at all and three stores over four pos partitions: the replay still
    writes every stock change, scores and alerts, and its final stock is the fold of the log."""
    config = make_config(broker, partitions=4)
    settings = SimulationSettings(seed=8, customers=300, days=1, anomalies=False)
    log = [e for e in simulate(settings, DEFAULT_LOCATIONS)
           if topic_for_type(e["type"]) != "customers" and e.get("store_id", "S001") in ("S001", "S002", "S003")]
    assert log
    produce_events(config, log)
    run_to_end(config)

    stock_events = [event_of(e) for e in log if e["type"] in STOCK_EVENTS]
    expected, _ = reference_fold(stock_events, inventory_settings(config), log[-1]["ts"] + 1)
    expected = {key: value for key, value in expected.items() if value != (0, 0)}
    got = {key: value for key, value in final_stock(config).items() if value != (0, 0)}
    assert got == expected
    assert read_json(config, "customer_scores")


def _log_with_duplicates_and_reordering(seed: int) -> list[dict[str, Any]]:
    settings = SimulationSettings(seed=seed, customers=400, days=2, anomalies=True)
    log = list(simulate(settings, DEFAULT_LOCATIONS))
    rng = random.Random(seed)
    # Swap neighbours (event time moves back by at most a few seconds: within the lateness) ...
    for i in range(0, len(log) - 1, 7):
        if log[i + 1]["ts"] - log[i]["ts"] < 10_000:
            log[i], log[i + 1] = log[i + 1], log[i]
    # ... and re-send one event in twenty a little later in the log.
    for i in sorted(rng.sample(range(len(log)), len(log) // 20), reverse=True):
        log.insert(min(len(log), i + rng.randint(1, 30)), dict(log[i]))
    return log


@pytest.mark.slow
def test_every_output_is_the_same_at_any_batch_size(broker: EmbeddedBroker) -> None:
    log = _log_with_duplicates_and_reordering(seed=21)
    results = []
    for batch_size in ("1", "7", "100", "1000"):
        config = make_config(broker, partitions=2, KAFKA__BATCH_SIZE=batch_size)
        produce_events(config, log)
        run_to_end(config)
        results.append({topic: canonical(read_json(config, topic)) for topic in OUTPUT_TOPICS})
    for other in results[1:]:
        for topic in OUTPUT_TOPICS:
            assert other[topic] == results[0][topic], topic
    assert all(results[0][topic] for topic in ("inventory_updates", "customer_scores", "promotions"))


def test_hours_of_event_time_need_no_closing_events(broker: EmbeddedBroker) -> None:
    """The last events of a replay are applied without anything after them to move the watermark."""
    config = make_config(broker, partitions=2)
    log = [_received(5, T0 + n * HOUR_MS, f"r{n}", sku=f"SKU-{n % 3}") for n in range(10)]
    produce_events(config, log)
    run_to_end(config)
    assert sum(on_hand for on_hand, _ in final_stock(config).values()) == 50


def _one_and_two_processes(broker: EmbeddedBroker, log: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Replay ``log`` with 1 process, then 2; assert every output topic the same; the outputs."""
    results = []
    for processes in (1, 2):
        config = make_config(broker, partitions=2)
        produce_events(config, log)
        _run_processes([sys.executable, "-m", "channelflow.cli", "run", "--until-end"], processes, _env(config))
        results.append({topic: canonical(read_json(config, topic)) for topic in OUTPUT_TOPICS})
    for topic in OUTPUT_TOPICS:
        assert results[1][topic] == results[0][topic], topic
    return results[0]


@pytest.mark.slow
def test_two_processes_write_what_one_writes(broker: EmbeddedBroker) -> None:
    _one_and_two_processes(broker, _log_with_duplicates_and_reordering(seed=34))


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_CSV.exists(), reason="the shared UCI data set is not beside the checkout")
def test_two_processes_write_what_one_writes_on_real_data(broker: EmbeddedBroker) -> None:
    """The first 3,000 invoices of UCI Online Retail (real baskets, returns, a trade and a retail
    price per product): every output topic the same with 1 and 2 processes."""
    log = list(islice(events_from_csv(DEFAULT_CSV, excluded=[]), 3_000))
    log += closing_events(max(event_of(e).ts for e in log) + 24 * HOUR_MS)
    outputs = _one_and_two_processes(broker, log)
    # No promotions: the data set has no consent or contact details, so every decision is suppressed.
    assert all(outputs[topic] for topic in ("inventory_updates", "customer_scores", "alerts"))
