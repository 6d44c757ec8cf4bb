"""Inventory end to end: simulated and real (UCI) traffic through Kafka and the real flow."""

from __future__ import annotations

from itertools import islice
from typing import Any

import pytest

from channelflow.broker import EmbeddedBroker
from channelflow.config import Config
from channelflow.simulator import DEFAULT_LOCATIONS, SimulationSettings, simulate
from channelflow.uci import DEFAULT_CSV, category, csv_facts, events_from_csv, read_rows
from flows.inventory_wiring import inventory_settings
from operators.contract.events import event_of as as_event
from operators.contract.events import topic_for_type
from operators.inventory.domain import STOCK_EVENTS
from tests.conftest import make_config
from tests.flow_harness import closing_events, produce_events, read_json, run_to_end
from tests.inventory.test_inventory import reference_fold

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000


def final_stock(config: Config) -> dict[tuple[str, str], tuple[int, int]]:
    """The last stock record of every SKU-location in inventory-updates (keyed by SKU, so in order)."""
    state: dict[tuple[str, str], tuple[int, int]] = {}
    for record in read_json(config, "inventory_updates"):
        if record["record"] == "stock":
            state[(record["sku"], record["location_id"])] = (record["on_hand"], record["reserved"])
    return state


def test_simulated_traffic_ends_in_the_reference_state(broker: EmbeddedBroker) -> None:
    # Copies are re-sent up to a day of event time after their original: a horizon that covers it.
    config = make_config(broker, partitions=1, TIME__DEDUPE_HORIZON="3d")
    settings = SimulationSettings(seed=5, customers=1_500, days=2, anomalies=False)
    log = list(simulate(settings, DEFAULT_LOCATIONS))
    redelivered = log[::25]
    end = log[-1]["ts"] + 2 * HOUR_MS
    produce_events(config, log[: len(log) // 2] + redelivered + log[len(log) // 2 :] + closing_events(end))
    run_to_end(config)

    stock_events = [as_event(e) for e in log if e["type"] in STOCK_EVENTS]
    expected, _ = reference_fold(stock_events, inventory_settings(config), end)
    expected = {key: value for key, value in expected.items() if value != (0, 0)}
    got = {key: value for key, value in final_stock(config).items() if value != (0, 0)}
    assert got == expected
    assert sum(1 for e in log if topic_for_type(e["type"]) in ("inventory", "pos")) > 1_500


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_CSV.exists(), reason="the shared UCI data set is not beside the checkout")
def test_uci_replay_stock_moves_equal_the_csv_quantities(broker: EmbeddedBroker) -> None:
    config = make_config(broker, partitions=2)
    excluded: list[Any] = []
    events = list(events_from_csv(DEFAULT_CSV, excluded=excluded))
    end = max(int(as_event(e).ts) for e in islice(reversed(events), 500)) + 24 * HOUR_MS
    produce_events(config, events + closing_events(end))
    run_to_end(config)

    # Straight from the CSV: a sale line takes its quantity out of stock, a
    # return line (negative quantity) puts it back, a write-off (negative
    # quantity, no customer) takes it out; the excluded bad-debt lines move nothing.
    movement = {"sale": -1, "return": -1, "adjustment": 1, "excluded": 0}
    expected: dict[str, int] = {}
    for row in read_rows(DEFAULT_CSV):
        expected[row.stock_code] = expected.get(row.stock_code, 0) + movement[category(row)] * row.quantity
    on_hand = {sku: stock[0] for (sku, _), stock in final_stock(config).items()}
    assert {sku: q for sku, q in on_hand.items() if q} == {sku: q for sku, q in expected.items() if q}
    # And the same per-SKU sums the CSV itself gives, before any mapping.
    facts = csv_facts(read_rows(DEFAULT_CSV))
    assert sum(facts.quantity_by_sku.values()) == 5_176_450
