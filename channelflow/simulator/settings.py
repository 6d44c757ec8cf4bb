"""What the simulator is asked to simulate: settings and locations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo

from operators.locations import Location
from operators.time.units import DAY_MS

#: 2026-01-05T00:00:00Z, a Monday: the default start of simulated event time.
DEFAULT_START_MS = 1_767_571_200_000


@dataclass(frozen=True)
class SimulationSettings:
    """The knobs of one simulation; the same settings and seed give the same bytes.

    ``days`` of 0 or None streams forever. ``anomalies_per_day`` is the
    expected number of injected anomalies of each kind per simulated day.
    """

    seed: int = 1
    customers: int = 1000
    start_ms: int = DEFAULT_START_MS
    days: float | None = 1.0
    anomalies: bool = True
    anomalies_per_day: float = 1.0
    skus: int = 200
    mean_lifetime_days: float = 180.0

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValueError(f"customers must be >= 1, got {self.customers}")
        if self.skus < 20:
            raise ValueError(f"skus must be >= 20, got {self.skus}")
        if self.days is not None and self.days < 0:
            raise ValueError(f"days must be >= 0, got {self.days}")
        if self.mean_lifetime_days <= 0:
            raise ValueError(f"mean_lifetime_days must be > 0, got {self.mean_lifetime_days}")
        if self.anomalies_per_day < 0:
            raise ValueError(f"anomalies_per_day must be >= 0, got {self.anomalies_per_day}")

    @property
    def end_ms(self) -> int | None:
        """Event time where the stream stops (exclusive), or None for a stream without end."""
        if not self.days:
            return None
        return self.start_ms + round(self.days * DAY_MS)


def _field(raw: Any, name: str) -> Any:
    if isinstance(raw, Mapping):
        return raw.get(name)
    return getattr(raw, name, None)


def _clock(text: Any, where: str) -> time:
    try:
        return time.fromisoformat(str(text))
    except ValueError:
        raise ValueError(f"{where}: expected HH:MM, got {text!r}") from None


def as_location(raw: Any) -> Location:
    """A :class:`Location` from a dict or an object with ``id``, ``type``, ``timezone``, ``opens``, ``closes``."""
    if isinstance(raw, Location):
        return raw
    location_id, kind, zone = _field(raw, "id"), _field(raw, "type"), _field(raw, "timezone")
    if not location_id or kind not in ("store", "warehouse"):
        raise ValueError(f"location {raw!r}: needs an id and a type of 'store' or 'warehouse'")
    ZoneInfo(str(zone))
    if kind == "warehouse":
        return Location(str(location_id), kind, str(zone))
    opens = _clock(_field(raw, "opens"), f"store {location_id} opens")
    closes = _clock(_field(raw, "closes"), f"store {location_id} closes")
    if opens == closes:
        raise ValueError(f"store {location_id}: opens and closes at the same time")
    return Location(str(location_id), kind, str(zone), opens=opens, closes=closes)


def as_locations(raw: Iterable[Any]) -> tuple[Location, ...]:
    """Validate the caller's locations: at least one store and one warehouse, unique ids."""
    locations = tuple(as_location(item) for item in raw)
    ids = [loc.id for loc in locations]
    if len(set(ids)) != len(ids):
        raise ValueError(f"location ids must be unique, got {ids}")
    if not any(loc.is_store for loc in locations) or all(loc.is_store for loc in locations):
        raise ValueError("the simulator needs at least one store and one warehouse")
    return locations


DEFAULT_LOCATIONS: tuple[Location, ...] = as_locations(
    [
        {"id": "W001", "type": "warehouse", "timezone": "Europe/London"},
        {"id": "W002", "type": "warehouse", "timezone": "Europe/Berlin"},
        {"id": "S001", "type": "store", "timezone": "Europe/London", "opens": "09:00", "closes": "21:00"},
        {"id": "S002", "type": "store", "timezone": "Europe/London", "opens": "08:00", "closes": "20:00"},
        {"id": "S003", "type": "store", "timezone": "Europe/Paris", "opens": "09:00", "closes": "21:00"},
        {"id": "S004", "type": "store", "timezone": "Europe/Berlin", "opens": "09:00", "closes": "20:00"},
        {"id": "S005", "type": "store", "timezone": "America/New_York", "opens": "09:00", "closes": "21:00"},
        {"id": "S006", "type": "store", "timezone": "America/New_York", "opens": "10:00", "closes": "22:00"},
    ]
)
