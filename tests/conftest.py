"""Shared fixtures: a real Kafka-protocol broker (Tansu) on loopback, and configs pointing at it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from channelflow.broker import EmbeddedBroker
from channelflow.config import INPUT_TOPIC_KEYS, OUTPUT_TOPIC_KEYS, Config, load_config
from channelflow.kafka_io import create_topics

# The same examples on every run and machine: a property test that fails, fails for everyone
# (and a new counterexample is a code change, not luck). No deadline: CI machines are slow.
settings.register_profile(
    "channelflow", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("channelflow")

_topic_sets = itertools.count()


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


def make_config(broker: EmbeddedBroker, tmp_path: Path | None = None, partitions: int = 2, **overrides: str) -> Config:
    """A config on ``broker`` with topics of its own (created here), so tests do not share data.

    ``overrides`` are extra environment overrides, e.g. ``TIME__ALLOWED_LATENESS="1s"``.
    """
    suffix = f"t{next(_topic_sets)}"
    env = {f"CHANNELFLOW_KAFKA__TOPICS__{key.upper()}": f"{key}-{suffix}" for key in INPUT_TOPIC_KEYS + OUTPUT_TOPIC_KEYS}
    env["CHANNELFLOW_KAFKA__BROKERS"] = broker.bootstrap
    env["CHANNELFLOW_KAFKA__TOPIC_PARTITIONS"] = str(partitions)
    env["CHANNELFLOW_METRICS__PORT"] = "0"
    env["CHANNELFLOW_FLOW__RECOVERY_DIR"] = str(tmp_path / "recovery") if tmp_path else "none"
    env.update({f"CHANNELFLOW_{key}": value for key, value in overrides.items()})
    config = load_config(environ=env)
    create_topics(broker.bootstrap, config.kafka.topics.values(), partitions)
    return config
