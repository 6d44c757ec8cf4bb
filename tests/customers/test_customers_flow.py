"""Customers end to end: identity stitching, delayed churn labels and erasure through Kafka and the real flow.

The reference is the same customer stages run in-process on the same events
(``flows.local.LocalFlow``): the Kafka flow, reading two partitions at full
speed, must publish exactly the same customer-scores.
"""

from __future__ import annotations

from typing import Any

import pytest

from channelflow.broker import EmbeddedBroker
from channelflow.config import Config
from channelflow.simulator import SimulationSettings, simulate
from flows.customer_wiring import customer_specs
from flows.local import LocalFlow
from flows.topology import CHURN
from tests.conftest import make_config
from tests.customers.test_customers import T0, crm, till
from tests.flow_harness import (
    closing_events,
    metric,
    produce_events,
    read_json,
    records_of,
    run_local,
    run_to_end,
)
from tests.inventory.test_inventory_flow import HOUR_MS

pytestmark = pytest.mark.integration


def reference(config: Config, log: list[dict[str, Any]], watermark: int) -> tuple[list[dict[str, Any]], LocalFlow]:
    flow = run_local(customer_specs(config), config.flow.shards, log, watermark)
    return records_of(flow, "customer_scores"), flow


def published(config: Config) -> list[dict[str, Any]]:
    return read_json(config, "customer_scores")


def canonical(records: list[dict[str, Any]]) -> list[str]:
    return sorted(repr(sorted(r.items())) for r in records)


def test_stitching_and_erasure_through_kafka(broker: EmbeddedBroker) -> None:
    config = make_config(broker, partitions=2)
    web = {"channel": "web", "session_id": "s1", "anonymous_id": "dev1", "customer_id": None}
    lines = [{"sku": "K1", "qty": 1, "unit_price": 80.0}]
    order = {**web, "customer_id": "C1", "order_id": "o1", "lines": lines, "total": 80.0,
             "fulfillment": {"method": "ship"}}  # fmt: skip
    bodies: list[dict[str, Any]] = [
        {"event_id": "w1", "type": "add_to_cart", "ts": T0, **web, "sku": "K1", "qty": 1, "price": 80.0},
        {"event_id": "w2", "type": "login", "ts": T0 + 1_000, **web, "customer_id": "C1"},
        {"event_id": "w3", "type": "order_placed", "ts": T0 + 2_000, **order},
    ]
    for e in (till("sale", T0 + 3_000, "L1", 30.0), crm("identity_linked", T0 + 4_000, "C1", loyalty_id="L1"),
              till("sale", T0 + 5_000, "L1", 20.0), till("sale", T0 + 6_000, "L2", 15.0),
              crm("identity_linked", T0 + 7_000, "C2", loyalty_id="L2"),
              crm("erasure_requested", T0 + 8_000, "C2")):  # fmt: skip
        bodies.append({"event_id": e.event_id, "type": e.type, "ts": e.ts, **e.body})
    end = T0 + 2 * HOUR_MS
    produce_events(config, bodies + bodies[:3] + closing_events(end, spread=32))  # with redeliveries
    run_to_end(config)

    records = published(config)
    last = {r["customer_id"]: r for r in records}
    # Scores are published when they move (an untrained model says 0.5 to all), so each key's first stands.
    assert (last["loyalty:L1"]["frequency"], last["loyalty:L1"]["monetary"]) == (1, 30.0)  # before the link
    assert (last["C1"]["frequency"], last["C1"]["monetary"]) == (1, 80.0)  # the login's device order
    assert "device:dev1" not in last
    assert last["C2"] == {"customer_id": "C2", "erased": True, "ts": last["C2"]["ts"], "cause_event_id": bodies[-1]["event_id"]}
    expected, _ = reference(config, bodies + closing_events(end, spread=32), end - config.time.allowed_lateness_ms)
    assert canonical(records) == canonical(expected)


@pytest.mark.slow
def test_delayed_labels_in_a_full_speed_replay_match_event_time(broker: EmbeddedBroker) -> None:
    config = make_config(broker, partitions=2, FLOW__SHARDS="4")
    log = list(simulate(SimulationSettings(seed=9, customers=150, days=130, anomalies=False)))
    end = log[-1]["ts"] + 2 * HOUR_MS
    learned_before = {label: metric("channelflow_churn_examples_total", label=label) for label in ("churned", "stayed")}
    redelivered = [copy for i, body in enumerate(log) for copy in ([body, body] if i % 40 == 0 else [body])]
    produce_events(config, redelivered + closing_events(end, spread=32))  # a producer's retries: repeats
    run_to_end(config)

    expected, flow = reference(config, log + closing_events(end, spread=32), end - config.time.allowed_lateness_ms)
    assert canonical(published(config)) == canonical(expected)
    model = flow.domains(CHURN)[0].model
    # Labels matured on event time: snapshots from the first ~40 days (130 - 90) are learned, none later.
    assert model.examples > 100
    learned = {label: metric("channelflow_churn_examples_total", label=label) - learned_before[label]
               for label in ("churned", "stayed")}  # fmt: skip
    assert learned == {"churned": model.learned[True], "stayed": model.learned[False]}
    assert max(r.get("recency_days", 0) for r in expected) < 130
    assert len({r["customer_id"] for r in expected}) > 50
