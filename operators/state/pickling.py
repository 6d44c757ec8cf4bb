"""Pickling the records that domain state holds by the thousand.

A slotted dataclass pickles through the ``__getstate__`` that ``dataclasses``
writes: a Python-level walk of ``fields()`` per object, and ``__setstate__``
the same way back. For records a shard holds one of per customer (a
profile, a customer's facts, an armed rule) that walk is a large share of a
recovery snapshot's cost. :func:`pickled_as_call` pickles such a record as a
call of its class with its field values (read by ``operator.attrgetter``, in
C). Snapshots written before keep loading: the dataclass's own
``__setstate__`` stays for them.

:func:`collector_paused` keeps the cyclic garbage collector out of a bulk
unpickling: the millions of objects a restore builds are long-lived state, and
the collections their allocation triggers (each walking all of them) are about
half of what rebuilding them costs; a large block's objects are then frozen out of
later collections too.

>>> import pickle
>>> from dataclasses import dataclass
>>> @pickled_as_call
... @dataclass(frozen=True, slots=True)
... class Point:
...     x: int
...     y: int = 0
>>> Point(1, 2).__reduce__()
(<class 'operators.state.pickling.Point'>, (1, 2))
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T", bound=type)


def pickled_as_call(cls: T) -> T:
    """Class decorator (above ``@dataclass``): pickle instances as ``cls(*field values)``.

    Every field must be an ``__init__`` argument, so the call rebuilds the object exactly.
    """
    names = tuple(f.name for f in fields(cls))
    if len(names) < 2 or any(not f.init for f in fields(cls)):
        raise TypeError(f"{cls.__qualname__}: needs two or more fields, all __init__ arguments, to be pickled as a call")
    values = attrgetter(*names)  # with two or more names, a tuple of the values

    def reduce(self: Any) -> tuple[type, tuple[Any, ...]]:
        return cls, values(self)

    cls.__reduce__ = reduce  # type: ignore[assignment]
    return cls


#: A block that leaves more new objects than this to the collector freezes them (see below).
FREEZE_ABOVE = 100_000


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection in the block (as it was after it; nesting is fine).

    A block that built more than :data:`FREEZE_ABOVE` objects (a restore's state) freezes them
    (``gc.freeze``, as the runner's ``tune_gc`` does with start-up's): else the first collection
    after it walks all of them, and each older generation's again later. ``gc.freeze`` takes every
    object tracked then, so garbage cycles not collected yet stay too (once: what exists at
    that moment). Smaller blocks (tests, a small shard) leave the collector as it was.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_count()[0] > FREEZE_ABOVE:
            gc.freeze()
        if enabled:
            gc.enable()
