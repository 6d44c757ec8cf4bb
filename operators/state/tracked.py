"""Dicts that know which of their keys changed since they were last stored.

Domain state that grows with customers (profiles, links, timers, ...) lives
in tracked dicts, so a recovery snapshot stores only the entries that
changed since the previous one (see :mod:`operators.state.store`), not the
whole shard.

In a :class:`TrackedDict` (values that are replaced, never changed in place:
ids, tuples) a key counts as changed when it is written or deleted; reads cost
what a ``dict``'s do. In a :class:`MutableTrackedDict` (objects updated in
place) a read with ``d[key]``, ``get`` or ``setdefault`` counts too: whatever
is reached that way may be changed by the caller. Iterating (``items()``,
``values()``) marks nothing: code that updates values it reached by iterating
says so with :meth:`TrackedDict.touch`.

A restored :class:`MutableTrackedDict` holds its values pickled, as they were
stored, and unpickles each on its first read (iterating its items or values
unpickles all that are left); its keys, their order and ``len`` are there
from the start. A store may leave them in the store until then: the dict then
holds, for such a key, the number of the segment its entry is in, and asks its
*source* (the store) for the value when it is first read. Copy one with
``copy()``: ``dict(d)`` reads the values in C, past the unpickling, and would
copy the placeholders of those not read yet.

>>> profiles = MutableTrackedDict()
>>> profiles["c1"] = {"orders": 0}
>>> profiles.take_changes()  # never stored: everything is new
(None, None)
>>> profiles["c1"]["orders"] += 1  # a read of a mutable value marks it
>>> profiles["c2"] = {"orders": 1}  # a new key: added, in insertion order
>>> changed, added = profiles.take_changes()
>>> sorted(changed), list(added)
(['c1', 'c2'], ['c2'])
>>> "c1" in profiles, profiles.take_changes()  # membership is not a change
(True, (set(), {}))
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator
from itertools import repeat
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, overload

from operators.state.pickling import collector_paused

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_values

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

_MISSING: Any = object()


class _Unloaded:
    """The value of a restored entry not unpickled yet (its bytes, or the segment holding them, are
    in ``TrackedDict._packed``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNLOADED"

    def __reduce__(self) -> str:
        return "UNLOADED"


UNLOADED: Any = _Unloaded()
_PROTOCOL = pickle.HIGHEST_PROTOCOL


class Source(Protocol):
    """Where a restored dict's values left in a store are read (the store)."""

    def read(self, seg: int, key: Any) -> bytes:
        """The pickled value of ``key`` in segment ``seg``."""
        ...

    def read_all(self, seg: int) -> Iterator[tuple[Any, bytes]]:
        """Every key of segment ``seg``, with its pickled value."""
        ...


class TrackedDict(dict[K, V]):
    """A ``dict`` that records the keys written or deleted since :meth:`take_changes` (see the
    module docstring).

    ``changed`` is None until the dict is first stored: then every entry is new.
    ``added`` holds the keys inserted since (in the dict's own order), so a store
    can keep the iteration order: a restored dict iterates as the original did.
    ``store_id`` names the store that holds it and its id there (None: not stored yet).
    """

    __slots__ = ("__weakref__", "_packed", "_source", "added", "changed", "next_seq", "store_id")
    mutable: ClassVar[bool] = False  # whether a read counts as a change (MutableTrackedDict)

    def __init__(self, items: Iterable[tuple[K, V]] = ()) -> None:
        super().__init__(items)
        self.changed: set[K] | None = None
        self.added: dict[K, None] = {}
        self.next_seq = 0  # the store's position for the next inserted key
        self.store_id: tuple[str, int] | None = None
        # Keys not read since a restore: the pickled value, or the segment of ``_source`` holding it.
        self._packed: dict[K, bytes | int] = {}
        self._source: Source | None = None

    # -- writes ----------------------------------------------------------------------

    def __setitem__(self, key: K, value: V) -> None:
        changed = self.changed
        if changed is not None:
            changed.add(key)
            if key not in self:
                self.added[key] = None
        if self._packed:
            self._packed.pop(key, None)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: K) -> None:
        dict.__delitem__(self, key)
        self._removed(key)

    def _removed(self, key: K) -> None:
        if self.changed is not None:
            self.changed.add(key)
            self.added.pop(key, None)
        if self._packed:
            self._packed.pop(key, None)

    @overload
    def pop(self, key: K, /) -> V: ...
    @overload
    def pop(self, key: K, default: V | T, /) -> V | T: ...
    def pop(self, key: K, default: Any = _MISSING, /) -> Any:
        if key not in self:
            return dict.pop(self, key) if default is _MISSING else default
        value = dict.pop(self, key)
        if value is UNLOADED:
            value = pickle.loads(self._raw(key))
        self._removed(key)
        return value

    def popitem(self) -> tuple[K, V]:
        key, value = dict.popitem(self)
        if value is UNLOADED:
            value = pickle.loads(self._raw(key))
        self._removed(key)
        return key, value

    def setdefault(self, key: K, default: V = None, /) -> V:  # type: ignore[assignment]
        if key not in self:
            self[key] = default
            return default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self) -> None:
        if self.changed is not None:
            self.changed.update(self)
            self.added.clear()
        self._packed.clear()
        dict.clear(self)

    def __ior__(self, other: Any) -> TrackedDict[K, V]:  # type: ignore[override,misc]
        self.update(other)
        return self

    # -- values stored pickled (a restored MutableTrackedDict) ---------------------------

    def _raw(self, key: K) -> bytes:
        """The pickled value of ``key``, not read since a restore (read from the store if left there)."""
        raw = self._packed[key]
        if type(raw) is int:
            assert self._source is not None, "a value left in a store, but no store to read it from"
            return self._source.read(raw, key)
        return raw  # type: ignore[return-value]

    def _load(self, key: K) -> Any:
        """The value of ``key``, not read since a restore: unpickled, and put in its place."""
        raw = self._raw(key)
        del self._packed[key]
        value = pickle.loads(raw)
        dict.__setitem__(self, key, value)
        return value

    def load_all(self) -> None:
        """Unpickle every value not read yet (iterating items or values does this first)."""
        packed, loads, put = self._packed, pickle.loads, dict.__setitem__
        with collector_paused():
            if self._source is not None:  # values left in the store: read segment by segment
                for seg in sorted({at for at in packed.values() if type(at) is int}):
                    for key, raw in self._source.read_all(seg):
                        if packed.get(key) == seg:  # else not its current entry, or read already
                            del packed[key]
                            put(self, key, loads(raw))
            take = packed.popitem  # each pickle freed as its value is built: memory reused, not new
            while packed:
                key, pickled = take()
                put(self, key, loads(pickled))  # type: ignore[arg-type]

    def moved(self, keys: Iterable[K], seg: int) -> None:
        """The entries of ``keys`` were copied to segment ``seg``: values left in the store are read there."""
        packed = self._packed
        if not packed:
            return
        for key in keys:
            if type(packed.get(key)) is int:
                packed[key] = seg

    def items(self) -> dict_items[K, V]:
        if self._packed:
            self.load_all()
        return dict.items(self)

    def values(self) -> dict_values[K, V]:
        if self._packed:
            self.load_all()
        return dict.values(self)

    def __eq__(self, other: object) -> bool:
        if self._packed:
            self.load_all()
        if isinstance(other, TrackedDict) and other._packed:
            other.load_all()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def touch(self, key: K) -> None:
        """Record that ``key``'s value (reached by iterating) was changed in place."""
        if self.changed is not None:
            self.changed.add(key)

    # -- storing -----------------------------------------------------------------------

    def stored_values(self, keys: list[K]) -> list[Any]:
        """The values of ``keys`` as a store keeps them: as they are (replaced, never changed in
        place: a whole list of them pickles at once), each pickled for a MutableTrackedDict (so a
        restore can leave them pickled until read)."""
        get = dict.__getitem__
        if not self.mutable:
            return [get(self, key) for key in keys]
        dumps, raw = pickle.dumps, self._raw
        return [raw(key) if (value := get(self, key)) is UNLOADED else dumps(value, _PROTOCOL) for key in keys]

    @classmethod
    def restored(cls, keys: list[K], stored: dict[K, Any], source: Source | None = None) -> TrackedDict[K, V]:
        """A dict of ``keys``, in this order, with their values as :meth:`stored_values` gave (for a
        mutable one: or the segment that holds them, read from ``source`` when first needed)."""
        tracked = cls()
        if cls.mutable:
            dict.update(tracked, zip(keys, repeat(UNLOADED)))
            tracked._packed = stored
            tracked._source = source
        else:
            dict.update(tracked, zip(keys, map(stored.__getitem__, keys), strict=True))
        tracked.changed = set()
        return tracked

    def take_changes(self) -> tuple[set[K] | None, dict[K, None] | None]:
        """The keys changed since the last call and those of them inserted, in order (None, None:
        every entry, the dict was never stored); from now on changes are counted afresh."""
        changed, added = self.changed, self.added
        self.changed, self.added = set(), {}
        return changed, None if changed is None else added

    def __reduce__(self) -> tuple[Any, ...]:
        # A plain pickle (a copy, a test) holds every entry and is not bound to any store.
        return (type(self), (), None, None, iter(self.items()))

    def __copy__(self) -> TrackedDict[K, V]:
        return type(self)(self.items())

    def copy(self) -> TrackedDict[K, V]:
        return self.__copy__()

    def __repr__(self) -> str:
        if self._packed:
            self.load_all()
        return f"{type(self).__name__}({dict.__repr__(self)})"


class MutableTrackedDict(TrackedDict[K, V]):
    """A :class:`TrackedDict` of values changed in place: a read that reaches a value counts as a change."""

    __slots__ = ()
    mutable: ClassVar[bool] = True

    def __getitem__(self, key: K) -> V:
        value = dict.__getitem__(self, key)
        if value is UNLOADED:
            value = self._load(key)
        if self.changed is not None:
            self.changed.add(key)
        return value

    @overload
    def get(self, key: K, default: None = None, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V, /) -> V: ...
    @overload
    def get(self, key: K, default: T, /) -> V | T: ...
    def get(self, key: K, default: Any = None, /) -> Any:
        value = dict.get(self, key, _MISSING)
        if value is _MISSING:
            return default
        if value is UNLOADED:
            value = self._load(key)
        if self.changed is not None:
            self.changed.add(key)
        return value


def tracked_dicts(obj: object) -> list[TrackedDict[Any, Any]]:
    """Every tracked dict in ``obj``'s object graph (not looking inside tracked dicts, or sets:
    a dict is not hashable), in an order that depends on the graph only.

    >>> tracked_dicts({"links": TrackedDict(), "shards": [(1, MutableTrackedDict())]})
    [MutableTrackedDict({}), TrackedDict({})]
    """
    found: list[TrackedDict[Any, Any]] = []
    seen: set[int] = set()
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, (str, bytes, int, float, bool, type(None))):
            continue
        seen.add(id(item))
        if isinstance(item, TrackedDict):
            found.append(item)
            continue
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif hasattr(item, "__dict__"):
            stack.extend(vars(item).values())
        elif hasattr(item, "__slots__"):
            stack.extend(getattr(item, name) for name in item.__slots__ if hasattr(item, name))
    return found
