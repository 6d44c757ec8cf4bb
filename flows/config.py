"""The settings the flow is wired from: Kafka, time, ingest, runtime and metrics,
plus each domain's own section (their types live with the domains).

The shell builds a :class:`Config` from the TOML file (``channelflow.config``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from operators.anomalies.settings import AnomalyConfig
from operators.churn.settings import ChurnConfig
from operators.contract.dead_letter import MAX_OUTPUT_BYTES
from operators.contract.events import (
    INPUT_TOPICS,
    MAX_FUTURE_MS,
    MAX_UNKNOWN_BYTES,
    MIN_EVENT_TIME_MS,
    Limits,
)
from operators.customers.settings import CustomersConfig
from operators.inventory.settings import InventoryConfig
from operators.locations import Location

INPUT_TOPIC_KEYS = INPUT_TOPICS
OUTPUT_TOPIC_KEYS = (
    "promotions", "promotion_decisions", "inventory_updates", "alerts", "customer_scores", "dead_letters",
)  # fmt: skip


@dataclass(frozen=True)
class KafkaConfig:
    brokers: tuple[str, ...]
    topics: Mapping[str, str]
    topic_partitions: int
    starting_offset: str
    batch_size: int
    #: librdkafka properties for every client: consumers, producers, admin (``[kafka.client]``).
    client: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    #: librdkafka properties for the input consumers, over ``client`` (``[kafka.consumer]``).
    consumer: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    #: librdkafka properties for the output producer, over ``client`` (``[kafka.producer]``).
    producer: Mapping[str, str | int | float | bool] = field(default_factory=dict)

    @property
    def consumer_properties(self) -> dict[str, str | int | float | bool]:
        """What the input consumers get: ``client``, then ``consumer`` over it."""
        return {**self.client, **self.consumer}

    @property
    def producer_properties(self) -> dict[str, str | int | float | bool]:
        """What the output producer gets: ``client``, then ``producer`` over it."""
        return {**self.client, **self.producer}

    @property
    def bootstrap(self) -> str:
        return ",".join(self.brokers)

    @property
    def input_topics(self) -> dict[str, str]:
        """Kafka topic name -> logical input topic."""
        return {self.topics[k]: k for k in INPUT_TOPIC_KEYS}


@dataclass(frozen=True)
class TimeConfig:
    allowed_lateness_ms: int
    idle_timeout_ms: int
    dedupe_horizon_ms: int
    live_lateness_ms: int  # the lateness of live partitions for inventory (operators.time.watermark)


@dataclass(frozen=True)
class IngestConfig:
    """``[ingest]``: what a message may be (``docs/contract.md``) and how large an output may get."""

    max_event_bytes: int
    max_unknown_bytes: int = MAX_UNKNOWN_BYTES
    min_event_time_ms: int = MIN_EVENT_TIME_MS
    max_future_ms: int = MAX_FUTURE_MS
    max_output_bytes: int = MAX_OUTPUT_BYTES

    @property
    def limits(self) -> Limits:
        """The limits :func:`operators.contract.events.parse` checks beyond the fixed rules."""
        return Limits(self.max_unknown_bytes, self.min_event_time_ms, self.max_future_ms)

    @property
    def producer_message_max_bytes(self) -> int:
        """The output producer's ``message.max.bytes``: the largest value plus room for the key
        (at most 1 KiB) and the record framing; 965,536 by default, under Kafka's default
        ``message.max.bytes`` of 1,048,588."""
        return self.max_output_bytes + 65_536


@dataclass(frozen=True)
class FlowConfig:
    shards: int
    workers_per_process: int
    snapshot_interval_ms: int
    backup_interval_ms: int
    recovery_dir: Path | None
    recovery_partitions: int


@dataclass(frozen=True)
class MetricsConfig:
    host: str
    port: int


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig
    time: TimeConfig
    ingest: IngestConfig
    flow: FlowConfig
    metrics: MetricsConfig
    currency: str
    locations: tuple[Location, ...]
    inventory: InventoryConfig
    customers: CustomersConfig
    churn: ChurnConfig
    anomaly: AnomalyConfig
    source: Path | None = field(default=None, compare=False)


# -- sections ------------------------------------------------------------------
