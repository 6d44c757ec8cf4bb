"""Running the real flow in-process against the real broker, for integration tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from bytewax.testing import run_main
from prometheus_client import REGISTRY

from channelflow.config import Config
from channelflow.kafka_io import Record, consume_all, event_records, produce
from channelflow.pipeline import make_flow
from flows.domain_spec import DomainSpec
from flows.local import LocalFlow
from operators.contract.events import Event, event_of
from operators.time.shard import DomainShard
from operators.time.sharding import shard_of
from operators.time.stream_items import Output
from operators.time.timers import Timer


class Probe:
    """A domain that reports what reaches it: every event, and a timer ``delay`` ms after each.

    The timer's key is the event's own id, so no later event ever touches it:
    only the watermark can fire it.
    """

    def __init__(self, delay_ms: int) -> None:
        self.delay_ms = delay_ms

    def on_event(self, event: Event, shard: DomainShard[Probe]) -> list[Output]:
        shard.timers.schedule(event.event_id, event.ts + self.delay_ms, event.ts)
        return [Output("alerts", event.event_id, {"kind": "event", "event_id": event.event_id, "ts": event.ts})]

    def on_timer(self, timer: Timer[int], shard: DomainShard[Probe]) -> list[Output]:
        value = {"kind": "timer", "event_id": timer.key, "deadline": timer.deadline, "watermark": shard.watermark}
        return [Output("alerts", timer.key, value)]

    def on_watermark(self, shard: DomainShard[Probe]) -> list[Output]:
        return []


def probe_spec(delay_ms: int) -> DomainSpec:
    return DomainSpec("probe", lambda event, shards: [shard_of(event.event_id, shards)], lambda _: Probe(delay_ms))


def run_local(specs: list[DomainSpec], shards: int, log: Iterable[dict[str, Any]], watermark: int) -> LocalFlow:
    """The reference: the de-duplicated ``log`` through ``specs`` in-process (LocalFlow), in
    ``(ts, event_id)`` order, with the watermark moved to ``watermark``."""
    flow = LocalFlow(specs, shards)
    unique = {body["event_id"]: body for body in log}
    flow.run(sorted((event_of(body) for body in unique.values()), key=lambda e: (e.ts, e.event_id)))
    flow.advance(watermark)
    return flow


def records_of(flow: LocalFlow, topic: str) -> list[dict[str, Any]]:
    """What an in-process run wrote to logical output ``topic``."""
    return [o.value for o in flow.outputs if o.topic == topic]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def produce_events(config: Config, events: Iterable[dict[str, Any]], extra: Iterable[Record] = ()) -> int:
    return produce(config.kafka.bootstrap, [*event_records(events, config.kafka.topics), *extra])


def run_to_end(config: Config, domains: list[DomainSpec] | None = None) -> None:
    run_main(make_flow(config, tail=False, domains=domains))


def read_json(config: Config, topic: str, expect: int | None = None) -> list[dict[str, Any]]:
    return [orjson.loads(v) for _, v in consume_all(config.kafka.bootstrap, config.kafka.topics[topic], expect=expect)]


def closing_events(ts: int, spread: int = 1) -> list[dict[str, Any]]:
    """Events at ``ts`` on every input topic that change no stock and buy nothing: they move
    the watermark past the log. ``spread`` copies with distinct Kafka keys make it all but
    certain that every partition of a multi-partition topic gets one."""
    events: list[dict[str, Any]] = []
    for n in range(spread):
        tag = "close" if n == 0 else f"close{n}"
        events += [
            {"event_id": f"{tag}-c", "type": "page_view", "ts": ts, "channel": "web", "session_id": tag,
             "anonymous_id": tag},
            {"event_id": f"{tag}-p", "type": "return", "ts": ts, "store_id": "S001" if n == 0 else tag,
             "receipt_id": tag, "loyalty_id": None, "lines": [{"sku": "close", "qty": 1, "unit_price": 0, "restock": False}]},
            {"event_id": f"{tag}-i", "type": "order_cancelled", "ts": ts, "order_id": tag},
            {"event_id": f"{tag}-u", "type": "consent_changed", "ts": ts, "customer_id": tag, "marketing": False},
        ]  # fmt: skip
    return events


T0 = 1_795_300_000_000  # 2026-11-21T21:46:40Z


def valid_event(i: int, ts: int) -> dict[str, Any]:
    """A valid event of one of the four input topics, chosen by ``i``."""
    kind = i % 4
    base = {"event_id": f"ev-{i}", "ts": ts}
    if kind == 0:
        return {**base, "type": "add_to_cart", "channel": "web", "session_id": f"s{i % 97}",
                "anonymous_id": f"a{i % 89}", "customer_id": None, "sku": f"SKU-{i % 50:05d}", "qty": 1, "price": 9.99}
    if kind == 1:
        return {**base, "type": "sale", "store_id": f"S00{i % 6 + 1}", "receipt_id": f"r{i}", "loyalty_id": None,
                "lines": [{"sku": f"SKU-{i % 50:05d}", "qty": 2, "unit_price": 4.5}], "total": 9.0}
    if kind == 2:
        return {**base, "type": "stock_received", "location_id": "W001", "sku": f"SKU-{i % 50:05d}", "qty": 10}
    return {**base, "type": "consent_changed", "customer_id": f"c{i % 40}", "marketing": i % 3 == 0}
