"""The channelflow dataflow: Kafka in, validated and de-duplicated events through
domain shards driven by the event-time watermark, Kafka out.

::

    kafka_in ─┬─ decode (validate, mark progress) ─┬─ sequence[shard of event_id]
              │                                    │      (dedupe, watermark)
              └─ kafka_errors ──────┐              │              │
                                    │   dead letters              ├─ route_<domain> ─ <domain>[shard of entity]
                                    └──────────────┴── outputs ◄──┘        (state, timers)
                                                        │
                                                     kafka_out (topic per record)

Run it with ``channelflow run`` (see ``channelflow.runner``), or with Bytewax's
own runner: ``python -m bytewax.run flows.main:flow``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import bytewax.operators as op
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow, Stream
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END

from channelflow.config import Config, load_config
from channelflow.kafka_io import count_partitions
from flows import steps
from operators.contract import Event
from operators.shard import Domain
from operators.stream_items import Output


@dataclass(frozen=True)
class DomainSpec:
    """A domain stage: its name (step id and shard key prefix), how events reach
    its shards, and how to build one shard's domain state."""

    name: str
    routes: Callable[[Event, int], Iterable[int]]
    make: Callable[[int], Domain]


def domain_specs(config: Config) -> list[DomainSpec]:
    """The domains of the flow, in the order their steps are added."""
    return []


def build_flow(
    config: Config,
    *,
    tail: bool = True,
    partitions: int | None = None,
    domains: list[DomainSpec] | None = None,
) -> Dataflow:
    """Wire the flow for ``config``.

    ``tail=False`` stops at the end of the input (replays, tests).
    ``partitions`` is the number of input partitions the watermark waits for;
    by default it is asked of the broker. ``domains`` defaults to
    :func:`domain_specs`.
    """
    kafka = config.kafka
    input_topics = kafka.input_topics
    if partitions is None:
        partitions = count_partitions(kafka.bootstrap, list(input_topics))
    shards = config.flow.shards

    flow = Dataflow("channelflow")
    source = kop.input(
        "kafka_in",
        flow,
        brokers=list(kafka.brokers),
        topics=list(input_topics),
        tail=tail,
        starting_offset=OFFSET_BEGINNING if kafka.starting_offset == "beginning" else OFFSET_END,
        batch_size=kafka.batch_size,
    )
    errors = op.map("kafka_errors", source.errs, steps.kafka_error(input_topics))
    decoded = op.flat_map_batch(
        "decode", source.oks, steps.Decoder(input_topics, shards, config.ingest.max_event_bytes)
    )
    split = op.branch("split_rejected", decoded, steps.is_output)
    sequenced = op.stateful_flat_map(
        "sequence",
        split.falses,
        steps.Sequence(
            config.time.allowed_lateness_ms,
            config.time.idle_timeout_ms,
            config.time.dedupe_horizon_ms,
            partitions,
            frozenset(loc.id for loc in config.locations if loc.type == "store"),
        ),
    )
    outputs: list[Stream[Output]] = [split.trues, errors]
    for spec in domain_specs(config) if domains is None else domains:
        routed = op.flat_map(f"route_{spec.name}", sequenced, steps.Route(spec.name, shards, spec.routes))
        results = op.stateful_flat_map(spec.name, routed, steps.RunDomain(spec.make, upstreams=shards))
        outputs.append(op.map(f"{spec.name}_out", results, steps.unkey))
    merged = op.merge("outputs", *outputs)
    messages = op.map("serialize", merged, steps.to_kafka(kafka.topics))
    kop.output("kafka_out", messages, brokers=list(kafka.brokers), topic=kafka.topics["dead_letters"])
    return flow


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run flows.main:flow` builds the flow from the
    # configured file (CHANNELFLOW_CONFIG) only when asked for it.
    if name == "flow":
        return build_flow(load_config())
    raise AttributeError(name)
