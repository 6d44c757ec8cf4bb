"""How a domain stage plugs into the flow (see ``flows.main``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flows.topology import EVENTS, PUBLISHES, SEQUENCE
from operators.time.shard import Domain
from operators.time.stream_items import Output


@dataclass(frozen=True)
class DomainSpec:
    """A domain stage: its name (step id and shard key prefix), how items reach
    its shards, how to build one shard's domain state, and optional metric hooks
    (on a shard after its watermark moved, on each output record).

    ``reads`` names the streams it reads (``EVENTS``: the de-duplicated input
    events; others: :class:`Signal` streams of earlier stages) and
    ``publishes`` the streams its domain emits (see ``flows/topology.py``).
    ``shards`` defaults to ``flow.shards``; ``ordered`` applies items
    in event-time order (see :class:`operators.time.shard.DomainShard`);
    ``live`` stages follow the live watermark (``time.live_lateness`` behind
    live input, see :class:`operators.time.watermark.PartitionWatermark`).
    """

    name: str
    routes: Callable[[Any, int], Iterable[int]]
    make: Callable[[int], Domain]
    observe_shard: Callable[[int, Any], None] | None = None
    observe_output: Callable[[Output], None] | None = None
    reads: tuple[str, ...] = (EVENTS,)
    publishes: tuple[str, ...] = ()
    shards: int | None = None
    ordered: bool = False
    live: bool = False


def upstreams(specs: list[DomainSpec]) -> dict[str, tuple[str, ...]]:
    """For each stage, the stages before it that publish what it reads (``sequence`` included).

    >>> from flows.topology import EVENTS
    >>> probe = DomainSpec("probe", lambda item, shards: [0], lambda shard: None)
    >>> upstreams([probe])
    {'probe': ('sequence',)}
    """
    published: list[tuple[str, tuple[str, ...]]] = [(SEQUENCE, PUBLISHES[SEQUENCE])]
    found: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        found[spec.name] = tuple(stage for stage, streams in published if set(streams) & set(spec.reads))
        if not found[spec.name]:
            raise ValueError(f"stage {spec.name!r} reads {spec.reads}, which no stage before it publishes")
        published.append((spec.name, spec.publishes))
    return found


def read_streams(specs: list[DomainSpec]) -> frozenset[str]:
    """Every stream some stage reads; the others are dropped where they are produced."""
    return frozenset(stream for spec in specs for stream in spec.reads)
