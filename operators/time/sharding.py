"""Stable shard assignment: the same id lands on the same shard in every process.

Python's ``hash()`` of a ``str`` changes per process (PYTHONHASHSEED), so it
cannot route keys in a multi-process flow; CRC-32 can.

>>> shard_of("SKU-00017", 8) == shard_of("SKU-00017", 8)
True
>>> shard_key("inventory", 3)
'inventory-03'
"""

from __future__ import annotations

from zlib import crc32


def shard_of(entity_id: str, shards: int) -> int:
    """The shard number (0..shards-1) of an entity id."""
    return crc32(entity_id.encode()) % shards


def shard_key(stage: str, shard: int) -> str:
    """The Bytewax key of one shard of a stage (keys must be ``str``)."""
    return f"{stage}-{shard:02d}"

