"""How a domain stage plugs into the flow (see ``flows.main``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from operators.time.shard import Domain
from operators.time.stream_items import Output


@dataclass(frozen=True)
class DomainSpec:
    """A domain stage: its name (step id and shard key prefix), how items reach
    its shards, how to build one shard's domain state, and optional metric hooks
    (on a shard after its watermark moved, on each output record).

    ``inputs`` names the stages it reads: ``"sequence"`` (the de-duplicated
    events) and/or earlier domains, whose :class:`Signal` s addressed to it it
    receives. ``shards`` defaults to ``flow.shards``; ``ordered`` applies items
    in event-time order (see :class:`operators.time.shard.DomainShard`).
    """

    name: str
    routes: Callable[[Any, int], Iterable[int]]
    make: Callable[[int], Domain]
    observe_shard: Callable[[int, Any], None] | None = None
    observe_output: Callable[[Output], None] | None = None
    inputs: tuple[str, ...] = ("sequence",)
    shards: int | None = None
    ordered: bool = False
