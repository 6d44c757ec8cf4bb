"""Stores and warehouses: the places stock is kept and customers shop."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time


@dataclass(frozen=True)
class Location:
    """A store or a warehouse.

    ``priority`` ranks locations for ship-from routing (lower first);
    ``opens``..``closes`` are a store's local opening hours, if known.

    >>> Location("S001", "store", "Europe/London", priority=10, opens=time(9), closes=time(21)).is_store
    True
    """

    id: str
    type: str
    timezone: str = "UTC"
    priority: int = 0
    opens: time | None = None
    closes: time | None = None

    @property
    def is_store(self) -> bool:
        return self.type == "store"
