"""Which process of a cluster reads each input partition (``flows.kafka_source.owned_by``)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.kafka_source import StoppableKafkaSource, owned_by


@given(
    partitions=st.lists(st.integers(1, 12), min_size=1, max_size=5),
    processes=st.integers(1, 4),
)
def test_every_partition_has_one_reader_and_each_topic_is_shared_evenly(partitions: list[int], processes: int) -> None:
    topics = [f"topic{i}-x" for i in range(len(partitions))]  # a dash in a name, as Kafka allows
    for topic, count in zip(topics, partitions, strict=True):
        owners = Counter(owned_by(f"{p}-{topic}", topics, processes) for p in range(count))
        assert set(owners) <= set(range(processes))
        assert sum(owners.values()) == count
        shares = [owners.get(process, 0) for process in range(processes)]
        assert max(shares) - min(shares) <= 1


def test_four_topics_on_two_processes_give_each_process_half_of_every_topic() -> None:
    topics = ["clickstream", "pos", "inventory", "customers"]
    for topic in topics:
        owners = [owned_by(f"{p}-{topic}", topics, 2) for p in range(4)]
        assert sorted(owners) == [0, 0, 1, 1]


def test_a_process_outside_the_cluster_is_refused() -> None:
    with pytest.raises(ValueError, match="process 2 of 2"):
        StoppableKafkaSource(["localhost:9092"], ["pos"], process=2, processes=2)
