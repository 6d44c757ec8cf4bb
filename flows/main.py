"""The channelflow dataflow: Kafka in, validated and de-duplicated events through
domain shards driven by the event-time watermark, Kafka out.

::

    kafka_in ─┬─ decode (validate, mark progress) ─┬─ sequence[shard of event_id]
              │                                    │      (dedupe, watermark)
              └─ kafka_errors ──────┐              │              │
                                    │   dead letters              ├─ route_<domain> ─ <domain>[shard of entity]
                                    └──────────────┴── outputs ◄──┘        (state, timers)
                                                        │                       │ signals, progress
                                                     kafka_out                  └─ route_<later domain> ─ ...

Domains, in order: inventory; identity → customers → churn; anomalies; promotions and
the promotion gate (one shard: exact budgets and waitlists). Which stage reads which
stream, and so which stages a stage waits for, is declared in ``flows/topology.py``.

The shell builds it for a config file and a broker
(``channelflow.pipeline.make_flow``); run it with ``channelflow run`` or with
Bytewax's own runner: ``python -m bytewax.run channelflow.pipeline:flow``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END

from flows import steps
from flows.anomaly_wiring import anomaly_spec
from flows.config import Config
from flows.customer_wiring import customer_specs
from flows.domain_spec import DomainSpec, read_streams, upstreams
from flows.inventory_wiring import inventory_spec
from flows.kafka_sink import DeadLetteringKafkaSink
from flows.kafka_source import StoppableKafkaSource, kafka_input
from flows.placement import CURRENT, Placement, stage_keys
from flows.promotion_wiring import promotion_specs
from flows.stateful import ENTITIES_DIR, EntityStores, keyed_stage, retained_generations
from flows.topology import READS, SEQUENCE
from operators.inventory.domain import STOCK_LEVELS
from operators.promotions.rules import PromotionSettings
from operators.time.stream_items import Output


def domain_specs(config: Config, promotions: PromotionSettings, placement: Placement = CURRENT) -> list[DomainSpec]:
    """Every stage of the flow, in the order their steps are added (edges: ``flows/topology.py``),
    their entities on shards as ``placement`` says."""
    read = {stream for streams in READS.values() for stream in streams}
    return [
        inventory_spec(config, stock_signals=STOCK_LEVELS in read),
        *customer_specs(config),
        anomaly_spec(config, placed_groups=placement.placed_groups),
        *promotion_specs(promotions, config.flow.shards),
    ]


def build_flow(
    config: Config,
    domains: list[DomainSpec],
    *,
    partitions: int,
    tail: bool = True,
    client_config: Mapping[str, Any] | None = None,
    process: int = 0,
    processes: int = 1,
    placement: Placement = CURRENT,
) -> Dataflow:
    """Wire the flow for ``config`` through the stages ``domains`` (see :func:`domain_specs`).

    ``partitions`` is the number of input partitions the watermark waits for;
    ``tail=False`` stops at the end of the input (replays, tests).
    ``client_config`` adds confluent-kafka client properties (e.g. the shell's logger) to the
    configured ones (``KafkaConfig.consumer_properties``, ``producer_properties``).
    ``process`` of ``processes`` is this process's place in a Bytewax cluster: it reads its
    share of the input partitions (:class:`StoppableKafkaSource`). ``placement`` (the one
    ``domains`` were made with) says how the shards are named: with balanced keys shard k of
    every stage runs on worker k modulo the workers (:mod:`flows.placement`); a recovery
    directory written with plain names keeps them.
    """
    kafka = config.kafka
    input_topics = kafka.input_topics
    shards = config.flow.shards

    flow = Dataflow("channelflow")
    source = kafka_input(
        "kafka_in",
        flow,
        StoppableKafkaSource(
            list(kafka.brokers),
            list(input_topics),
            tail=tail,
            starting_offset=OFFSET_BEGINNING if kafka.starting_offset == "beginning" else OFFSET_END,
            add_config={**(client_config or {}), **kafka.consumer_properties},
            batch_size=kafka.batch_size,
            raise_on_errors=False,  # consumer errors become dead letters
            process=process,
            processes=processes,
        ),
    )
    errors = op.map("kafka_errors", source.errs, steps.kafka_error(input_topics))
    decoded = op.flat_map_batch(
        "decode",
        source.oks,
        steps.Decoder(
            input_topics,
            stage_keys(SEQUENCE, shards, balanced=placement.balanced_keys),
            config.ingest.max_event_bytes,
            limits=config.ingest.limits,
            max_output_bytes=config.ingest.max_output_bytes,
        ),
    )
    split = op.branch("split_rejected", decoded, steps.is_output)
    to_sequence = cast("Stream[tuple[str, tuple[int, Any]]]", split.falses)  # what is not an Output is keyed
    # Snapshots only when recovery will store them, their entries beside Bytewax's partitions (flows/stateful.py).
    entity_stores = None if config.flow.recovery_dir is None else EntityStores(
        config.flow.recovery_dir / ENTITIES_DIR,
        retained_generations(config.flow.snapshot_interval_ms, config.flow.backup_interval_ms),
    )
    sequenced = keyed_stage(
        "sequence",
        to_sequence,
        steps.Sequence(
            config.time.allowed_lateness_ms,
            config.time.idle_timeout_ms,
            config.time.dedupe_horizon_ms,
            partitions,
            frozenset(loc.id for loc in config.locations if loc.type == "store"),
            entity_stores=entity_stores,
            live_lateness_ms=config.time.live_lateness_ms,
        ),
    )
    outputs: list[Stream[Output]] = [split.trues, errors]
    stages: dict[str, tuple[Stream[Any], int]] = {SEQUENCE: (sequenced, shards)}
    inputs_of = upstreams(domains)
    feeding = {name for names in inputs_of.values() for name in names}
    listened = read_streams(domains)
    single = 0  # one-shard stages so far: each goes to the next worker
    for spec in domains:
        stage_shards = spec.shards or shards
        inputs = [stages[name][0] for name in inputs_of[spec.name]]
        stage_in = inputs[0] if len(inputs) == 1 else op.merge(f"{spec.name}_in", *inputs)
        if stage_shards == 1:
            single += 1
        keys = stage_keys(spec.name, stage_shards, balanced=placement.balanced_keys, target=single)
        route = steps.Route(keys, spec.routes, frozenset(spec.reads))
        routed = op.flat_map_batch(f"route_{spec.name}", stage_in, route)
        run = steps.RunDomain(
            spec.make,
            upstreams=sum(stages[name][1] for name in inputs_of[spec.name]),
            observe_shard=spec.observe_shard,
            ordered=spec.ordered,
            stage=spec.name if spec.name in feeding else None,
            listened=listened,
            entity_stores=entity_stores,
            live=spec.live,
            name=spec.name,
        )
        results = keyed_stage(spec.name, routed, run)
        if spec.name in feeding:
            split_results = op.branch(f"{spec.name}_split", results, steps.is_keyed_output)
            stages[spec.name] = (split_results.falses, stage_shards)
            results = split_results.trues
        domain_outputs = op.flat_map_batch(f"{spec.name}_out", results, steps.unkey)
        if spec.observe_output is not None:
            domain_outputs = op.inspect(f"{spec.name}_metrics", domain_outputs, _ignore_step(spec.observe_output))
        outputs.append(domain_outputs)
    merged = op.merge("outputs", *outputs)
    messages = op.flat_map_batch(
        "serialize", merged, steps.each(steps.to_kafka(kafka.topics, config.ingest.max_output_bytes))
    )
    # Not kop.output: Bytewax's KafkaSink stops the flow on a message the producer refuses and
    # loses those the broker refuses without a word (flows/kafka_sink.py).
    sink = DeadLetteringKafkaSink(
        kafka.brokers,
        dead_letters_topic=kafka.topics["dead_letters"],
        logical_topics={name: key for key, name in kafka.topics.items()},
        message_max_bytes=config.ingest.producer_message_max_bytes,
        add_config={**(client_config or {}), **kafka.producer_properties},
    )
    op.output("kafka_out", messages, sink)
    return flow


def _ignore_step(observe: Callable[[Output], None]) -> Callable[[str, Output], None]:
    def inspector(_step_id: str, output: Output) -> None:
        observe(output)

    return inspector
