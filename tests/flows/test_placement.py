"""Balanced shard keys land where ``flows.placement`` says, checked against Bytewax itself."""

from __future__ import annotations

import threading
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, cluster_main
from hypothesis import given
from hypothesis import strategies as st

from flows.placement import SPAN, balanced_key, stage_keys, worker_of


def _threads_of(keys: list[str], workers: int) -> dict[str, int]:
    """Run a Bytewax dataflow with ``workers`` worker threads; the thread that ran each key's state."""
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def note(key: str, _value: Any) -> None:
        with lock:
            seen[key] = threading.get_ident()

    flow = Dataflow("placement")
    stream = op.input("in", flow, TestingSource([(key, 1) for key in keys]))
    keyed = op.key_on("key", stream, lambda item: item[0])

    def mapper(state: None, value: Any) -> tuple[None, Any]:
        return state, value

    mapped = op.stateful_map("where", keyed, mapper)
    op.inspect("note", mapped, lambda _step, item: note(item[0], item[1]))
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return seen


@pytest.mark.parametrize("workers", [2, 3])
def test_bytewax_puts_each_balanced_shard_on_the_predicted_worker(workers: int) -> None:
    keys = [balanced_key(stage, k) for stage in ("sequence", "promotions") for k in range(8)]
    threads = _threads_of(keys, workers)
    assert set(threads) == set(keys)
    # The predicted workers and the threads Bytewax used must partition the keys the same way.
    by_worker: dict[int, set[int]] = {}
    for key, thread in threads.items():
        by_worker.setdefault(worker_of(key, workers), set()).add(thread)
    assert all(len(found) == 1 for found in by_worker.values()), by_worker
    assert len({next(iter(found)) for found in by_worker.values()}) == workers
    assert {worker_of(key, workers) for key in keys} == set(range(workers))


@given(stage=st.text(min_size=1, max_size=20), shard=st.integers(0, 63), workers=st.sampled_from([1, 2, 3, 4, 5, 6, 8]))
def test_shard_k_of_any_stage_runs_on_worker_k_modulo_the_workers(stage: str, shard: int, workers: int) -> None:
    assert SPAN % workers == 0
    key = balanced_key(stage, shard)
    assert key.startswith(f"{stage}-{shard:02d}")
    assert worker_of(key, workers) == shard % workers


def test_a_one_shard_stage_runs_on_its_target_and_plain_keys_stay_plain() -> None:
    assert worker_of(stage_keys("churn", 1, balanced=True, target=1)[0], 2) == 1
    assert stage_keys("churn", 2, balanced=False) == ("churn-00", "churn-01")
