"""The stateful steps of the flow, on Bytewax's ``stateful`` operator with snapshots of our own.

Bytewax's ``stateful_flat_map`` deep-copies every touched key's state at every
epoch, with recovery on or off. Here a shard's snapshot is nothing when
recovery is off, and when it is on a small header: the entries that changed
since the previous snapshot go to the shard's own store beside Bytewax's
recovery partitions (:mod:`operators.state.store`), so a snapshot costs what
changed, not the whole state. The logic takes a whole batch of a key's values
per call (``StatefulBatchLogic``), not one call per value. :func:`keyed_stage`
keeps the step id that ``stateful_flat_map`` gave
(``<step>.stateful.stateful_batch``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import bytewax.operators as op
from bytewax.dataflow import operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from operators.state.store import RETAIN, EntityStore, StoreError, header_store

#: The folder in ``flow.recovery_dir`` that holds the shards' entity stores.
ENTITIES_DIR = "entities"

V = TypeVar("V")
W = TypeVar("W")


@operator
def keyed_stage(
    step_id: str, up: KeyedStream[V], builder: Callable[[Any], StatefulBatchLogic[V, W, Any]]
) -> KeyedStream[W]:
    """A stateful step (see the module docstring for why not ``stateful_flat_map``)."""
    return stateful("stateful", up, builder)


@operator
def stateful(
    step_id: str, up: KeyedStream[V], builder: Callable[[Any], StatefulBatchLogic[V, W, Any]]
) -> KeyedStream[W]:
    """Bytewax's ``stateful_batch`` one level down, under the step id ``op.stateful`` gave it."""
    return op.stateful_batch("stateful_batch", up, builder)


@dataclass(frozen=True)
class EntityStores:
    """Where every stage's shards keep their snapshots' entries: one store per stage and shard in
    ``folder`` (see :mod:`operators.state.store`)."""

    folder: Path
    retain: int = RETAIN  # generations a superseded entry is kept for (see retained_generations)

    def open(self, stage: str, shard: int) -> EntityStore:
        """A fresh shard's store, emptied: no snapshot of it was committed."""
        store = EntityStore(self.folder / f"{stage}-{shard}.sqlite3", retain=self.retain)
        store.reset()
        return store

    def read(self, header: bytes) -> tuple[Any, EntityStore]:
        """The state a snapshot header holds, and the store it was read from."""
        store = EntityStore(self.folder / header_store(header), retain=self.retain)
        return store.restore(header), store


def retained_generations(snapshot_interval_ms: int, backup_interval_ms: int) -> int:
    """Generations a store keeps superseded entries for: Bytewax may resume from a snapshot up to
    ``backup_interval`` old, plus a margin of :data:`RETAIN` snapshots not committed yet.

    >>> retained_generations(10_000, 0), retained_generations(10_000, 3_600_000)
    (8, 368)
    """
    return RETAIN + -(-backup_interval_ms // snapshot_interval_ms)


def open_store(stores: EntityStores | None, stage: str, shard: int) -> EntityStore | None:
    """A fresh shard's store (None: recovery is off)."""
    return None if stores is None else stores.open(stage, shard)


def thaw(stores: EntityStores | None, stage: str, resume: object) -> tuple[Any, EntityStore | None]:
    """What Bytewax resumes a shard with: its state and store; (None, None) for a fresh shard."""
    if resume is None:
        return None, None
    if stores is None or not isinstance(resume, bytes):
        raise StoreError(f"stage {stage!r}: a snapshot to resume from, but no entity store to read it with")
    return stores.read(resume)


def freeze(state: object, store: EntityStore | None) -> bytes | None:
    """A shard's snapshot: its header, what changed written to its store (None without recovery,
    and for a shard that has no state yet: it has no store either)."""
    return None if store is None else store.snapshot(state)
