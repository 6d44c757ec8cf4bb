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
from operators.contract.events import INPUT_TOPICS
from operators.customers.settings import CustomersConfig
from operators.inventory.settings import InventoryConfig
from operators.locations import Location

INPUT_TOPIC_KEYS = INPUT_TOPICS
OUTPUT_TOPIC_KEYS = ("promotions", "inventory_updates", "alerts", "customer_scores", "dead_letters")


@dataclass(frozen=True)
class KafkaConfig:
    brokers: tuple[str, ...]
    topics: Mapping[str, str]
    topic_partitions: int
    starting_offset: str
    batch_size: int

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


@dataclass(frozen=True)
class IngestConfig:
    max_event_bytes: int


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
