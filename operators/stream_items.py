"""What flows between the stages besides events: progress markers and outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Marker:
    """Input partition ``source`` (``topic:partition``) has delivered events up to ``ts``.

    Emitted after each source batch to every first-stage shard, along the same
    path as the events, so a shard that got the marker has got the events
    before it. ``seen_at`` is the wall-clock time (epoch ms) of the batch, for
    the idle-partition timeout.
    """

    source: str
    ts: int
    seen_at: int


@dataclass(frozen=True, slots=True)
class Progress:
    """Upstream shard ``shard`` has forwarded everything up to ``watermark``."""

    shard: int
    watermark: int


@dataclass(frozen=True, slots=True)
class Output:
    """A record for an output topic: logical topic name, Kafka key and JSON value.

    Logical topics: ``promotions``, ``inventory_updates``, ``alerts``,
    ``customer_scores``, ``dead_letters``.
    """

    topic: str
    key: str
    value: dict[str, Any]
