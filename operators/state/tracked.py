"""A dict that knows which of its keys changed since it was last stored.

Domain state that grows with customers (profiles, links, timers, ...) lives
in :class:`TrackedDict` s, so a recovery snapshot stores only the entries that
changed since the previous one (see :mod:`operators.state.store`), not the
whole shard.

A key counts as changed when it is written, deleted or, for a dict of
*mutable* values (objects updated in place), read with ``d[key]``, ``get`` or
``setdefault``: whatever is reached that way may be changed by the caller.
Iterating (``items()``, ``values()``) marks nothing: code that updates values
it reached by iterating says so with :meth:`TrackedDict.touch`.

>>> profiles = TrackedDict(mutable=True)
>>> profiles["c1"] = {"orders": 0}
>>> profiles.take_changes()  # never stored: everything is new
(None, None)
>>> profiles["c1"]["orders"] += 1  # a read of a mutable value marks it
>>> profiles["c2"] = {"orders": 1}  # a new key: added, in insertion order
>>> changed, added = profiles.take_changes()
>>> sorted(changed), added
(['c1', 'c2'], ['c2'])
>>> "c1" in profiles, profiles.take_changes()  # membership is not a change
(True, (set(), []))
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

_MISSING: Any = object()


class TrackedDict(dict[K, V]):
    """A ``dict`` that records the keys changed since :meth:`take_changes` (see the module docstring).

    ``changed`` is None until the dict is first stored: then every entry is new.
    ``added`` holds the keys inserted since (in the dict's own order), so a store
    can keep the iteration order: a restored dict iterates as the original did.
    ``store_id`` names the store that holds it and its id there (None: not stored yet).
    """

    __slots__ = ("added", "changed", "mutable", "next_seq", "store_id")

    def __init__(self, items: Iterable[tuple[K, V]] = (), *, mutable: bool = False) -> None:
        super().__init__(items)
        self.changed: set[K] | None = None
        self.added: dict[K, None] = {}
        self.mutable = mutable
        self.next_seq = 0  # the store's position for the next inserted key
        self.store_id: tuple[str, int] | None = None

    # -- writes ----------------------------------------------------------------------

    def __setitem__(self, key: K, value: V) -> None:
        if self.changed is not None:
            self.changed.add(key)
            if key not in self:
                self.added[key] = None
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: K) -> None:
        dict.__delitem__(self, key)
        self._removed(key)

    def _removed(self, key: K) -> None:
        if self.changed is not None:
            self.changed.add(key)
            self.added.pop(key, None)

    @overload
    def pop(self, key: K, /) -> V: ...
    @overload
    def pop(self, key: K, default: V | T, /) -> V | T: ...
    def pop(self, key: K, default: Any = _MISSING, /) -> Any:
        if key in self:
            self._removed(key)
        return dict.pop(self, key) if default is _MISSING else dict.pop(self, key, default)

    def popitem(self) -> tuple[K, V]:
        key, value = dict.popitem(self)
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
        dict.clear(self)

    def __ior__(self, other: Any) -> TrackedDict[K, V]:  # type: ignore[override,misc]
        self.update(other)
        return self

    # -- reads that may lead to a change -----------------------------------------------

    def __getitem__(self, key: K) -> V:
        value = dict.__getitem__(self, key)
        if self.mutable and self.changed is not None:
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
        if self.mutable and self.changed is not None:
            self.changed.add(key)
        return value

    def touch(self, key: K) -> None:
        """Record that ``key``'s value (reached by iterating) was changed in place."""
        if self.changed is not None:
            self.changed.add(key)

    # -- storing -----------------------------------------------------------------------

    def take_changes(self) -> tuple[set[K] | None, list[K] | None]:
        """The keys changed since the last call and those of them inserted, in order (None, None:
        every entry, the dict was never stored); from now on changes are counted afresh."""
        changed, added = self.changed, self.added
        self.changed, self.added = set(), {}
        return changed, None if changed is None else list(added)

    def __reduce__(self) -> tuple[Any, ...]:
        # A plain pickle (a copy, a test) holds every entry and is not bound to any store.
        return (type(self), (), {"mutable": self.mutable}, None, iter(dict.items(self)))

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.mutable = state["mutable"]
        self.changed, self.added, self.store_id, self.next_seq = None, {}, None, 0

    def __copy__(self) -> TrackedDict[K, V]:
        return TrackedDict(dict.items(self), mutable=self.mutable)

    def copy(self) -> TrackedDict[K, V]:
        return self.__copy__()

    def __repr__(self) -> str:
        return f"TrackedDict({dict.__repr__(self)}, mutable={self.mutable})"
