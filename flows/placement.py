"""Which worker of a Bytewax cluster runs each shard of a stage, and keys that choose it.

Bytewax sends a keyed item to worker ``hash(key) % workers``, where the hash is Rust's
``DefaultHasher`` (SipHash-1-3 with zero keys) over the key's bytes and a ``0xff``
terminator (``str``'s ``Hash``). With keys such as ``"promotions-03"`` that puts shards
wherever the hash falls: with 8 shards on 2 workers, 7 of the promotions shards shared one
worker. A *balanced* key is the shard's name plus the shortest suffix that makes the hash
``shard % SPAN`` modulo :data:`SPAN`, so shard ``k`` of every stage runs on worker
``k % workers`` for any worker count that divides :data:`SPAN` (1 to 6, 8, 10, 12, ...):
each worker gets an equal share of every stage, and items between two stages whose
entities share a shard number (a customer's events, activity and profile) stay on one
worker instead of being pickled to another.

Within a stage, the anomaly stage places the contract's channel groups (``web``, ``app``,
``store``) on shards 0, 1, 2 rather than by hash (``operators.anomalies.domain.group_shard``).

State is held under its key and its shard, so a recovery directory keeps the
:class:`Placement` it was written with (``channelflow.recovery.placement``): the plain keys
and hashed groups before either existed. The placement changes where work runs, never what
it computes.

>>> worker_of("sequence-00", 2), worker_of(balanced_key("sequence", 3), 2)
(0, 1)
>>> all(worker_of(balanced_key("inventory", k), w) == k % w for k in range(8) for w in (2, 3, 4))
True
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache
from itertools import count

from operators.time.sharding import shard_key

#: Balanced keys put shard ``k`` on worker ``k % workers`` for every worker count dividing this.
SPAN = 120


@dataclass(frozen=True)
class Placement:
    """Where a flow puts its shards and what it puts on them: ``balanced_keys`` (see
    :func:`balanced_key`) and ``placed_groups`` (the anomaly stage's channel groups on shards
    0, 1, 2). The default is today's; a recovery directory records the one its state has.

    >>> Placement.parse(Placement().record()) == Placement()
    True
    >>> Placement.parse("balanced"), Placement.parse("plain") == PLAIN
    (Placement(balanced_keys=True, placed_groups=False), True)
    """

    balanced_keys: bool = True
    placed_groups: bool = True

    def record(self) -> str:
        """One line of words that :meth:`parse` reads back."""
        words = ("balanced" if self.balanced_keys else "plain", *(["placed-groups"] if self.placed_groups else []))
        return " ".join(words)

    @classmethod
    def parse(cls, text: str) -> Placement:
        """The placement a record names; ``"balanced"`` and ``"plain"`` are those of state
        written before groups were placed. Raises ValueError on a word it does not know (a
        record of a later release)."""
        words = set(text.split())
        unknown = words - {"balanced", "plain", "placed-groups"}
        if unknown or not words:
            raise ValueError(f"unknown shard placement {text.strip()!r}")
        return cls(balanced_keys="balanced" in words, placed_groups="placed-groups" in words)


#: Today's placement, for flows without recovery and directories without state.
CURRENT = Placement()
#: The placement of state written before placements were recorded.
PLAIN = Placement(balanced_keys=False, placed_groups=False)


_MASK = (1 << 64) - 1
_WORDS = struct.Struct("<Q")


def worker_of(key: str, workers: int) -> int:
    """The worker (0..workers-1) that Bytewax gives the state of ``key``."""
    return _route_hash(key) % workers


@cache
def balanced_key(stage: str, shard: int, target: int | None = None) -> str:
    """The Bytewax key of a shard of a stage that runs on worker ``target % workers``
    (``target`` defaults to the shard's number)."""
    want = (shard if target is None else target) % SPAN
    base = shard_key(stage, shard)
    candidates = (base if n == 0 else f"{base}.{n}" for n in count())
    return next(key for key in candidates if _route_hash(key) % SPAN == want)


def stage_keys(stage: str, shards: int, *, balanced: bool, target: int | None = None) -> tuple[str, ...]:
    """The Bytewax keys of a stage's shards; a one-shard stage runs on worker ``target``."""
    if not balanced:
        return tuple(shard_key(stage, k) for k in range(shards))
    return tuple(balanced_key(stage, k, target if shards == 1 else None) for k in range(shards))


def _rotl(x: int, bits: int) -> int:
    return ((x << bits) | (x >> (64 - bits))) & _MASK


def _route_hash(key: str) -> int:
    """SipHash-1-3 with zero keys of ``key``'s UTF-8 bytes and ``0xff``, as Bytewax routes it."""
    data = key.encode() + b"\xff"
    v0, v1, v2, v3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573

    def sip_round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)
        return v0, v1, v2, v3

    whole = len(data) - len(data) % 8
    for (word,) in _WORDS.iter_unpack(data[:whole]):
        v3 ^= word
        v0, v1, v2, v3 = sip_round(v0, v1, v2, v3)
        v0 ^= word
    last = (len(data) & 0xFF) << 56 | int.from_bytes(data[whole:], "little")
    v3 ^= last
    v0, v1, v2, v3 = sip_round(v0, v1, v2, v3)
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = sip_round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3
