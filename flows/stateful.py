"""The stateful steps of the flow, on Bytewax's ``stateful`` operator with snapshots of our own.

Bytewax's ``stateful_flat_map`` deep-copies every touched key's state at every
epoch, with recovery on or off. Here a shard's snapshot is its pickled bytes
when recovery is on (what Bytewax would store anyway, without the deep copy)
and nothing when it is off. The logic takes a whole batch of a key's values
per call (``StatefulBatchLogic``), not one call per value. :func:`keyed_stage`
keeps the step id that ``stateful_flat_map`` gave
(``<step>.stateful.stateful_batch``), so recovery state written by earlier
versions is found, and its builders accept both snapshot forms.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any, TypeVar

import bytewax.operators as op
from bytewax.dataflow import operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

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


def freeze(state: object, snapshots: bool) -> bytes | None:
    """A shard's snapshot: its pickled bytes, or None when recovery is off."""
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL) if snapshots else None


def thaw(resume: object) -> Any:
    """The state a snapshot holds (bytes from :func:`freeze`, or an object from an earlier version)."""
    return pickle.loads(resume) if isinstance(resume, bytes) else resume
