"""What happens to an online order: routing, reservation, shipping, collection or cancellation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from channelflow.simulator.population import Customer
from channelflow.simulator.returns import maybe_return
from channelflow.simulator.settings import Location
from operators.time.units import DAY_MS, HOUR_MS, MINUTE_MS

if TYPE_CHECKING:
    from channelflow.simulator.world import Line, World

PICKUP_SHARE = 0.3
CANCEL_RATE = 0.03
UNCOLLECTED_RATE = 0.07
PICKUP_EXPIRY_MS = 5 * DAY_MS


def _can_fill(world: World, location: Location, lines: list[Line]) -> bool:
    available = world.ledger.available[world.location_index[location.id]]
    return all(available[sku] >= qty for sku, qty, _ in lines)


def route(world: World, customer: Customer, lines: list[Line]) -> tuple[str, Location | None]:
    """The fulfilment method and the location that fills it (None: nobody can, it will be cancelled)."""
    if world.rng.random() < PICKUP_SHARE and _can_fill(world, customer.home_store, lines):
        return "pickup", customer.home_store
    for warehouse in world.warehouses:
        if _can_fill(world, warehouse, lines):
            return "ship", warehouse
    return "ship", None


def _close(world: World, ts: int, kind: str, order_id: str, location: Location | None) -> None:
    event = {"event_id": world.event_id(), "type": kind, "ts": ts, "order_id": order_id}
    if location is not None:
        event["location_id"] = location.id
    world.push(ts, event)


def _reserve(world: World, location: Location, lines: list[Line], release_ms: int, *, cancelled: bool) -> None:
    index = world.location_index[location.id]
    for sku, qty, _ in lines:
        world.ledger.commit(index, sku, qty, release_ms, cancelled=cancelled)


def _collection_time(world: World, store: Location, placed_ms: int) -> int | None:
    if world.rng.random() < UNCOLLECTED_RATE:
        return None
    day = (placed_ms - world.settings.start_ms) // DAY_MS + world.rng.randint(1, 3)
    return world.store_time(store, world.day_start(day))


def fulfil(
    world: World, customer: Customer, order_id: str, lines: list[Line], placed_ms: int, method: str, location: Location | None
) -> None:
    """Schedule ``order_fulfilled`` or ``order_cancelled``, and perhaps a return to the home store."""
    rng = world.rng
    if location is None:
        _close(world, placed_ms + rng.randrange(HOUR_MS, 6 * HOUR_MS), "order_cancelled", order_id, None)
        return
    received_ms: int | None = None
    if method == "pickup":
        done_ms = received_ms = _collection_time(world, location, placed_ms)
    elif rng.random() < CANCEL_RATE:
        done_ms = None
    else:
        done_ms = placed_ms + rng.randrange(2 * HOUR_MS, 30 * HOUR_MS)
        received_ms = done_ms + rng.randrange(DAY_MS, 3 * DAY_MS)
    if done_ms is None or received_ms is None:
        cancel_ms = placed_ms + (PICKUP_EXPIRY_MS if method == "pickup" else rng.randrange(5 * MINUTE_MS, HOUR_MS))
        _reserve(world, location, lines, cancel_ms, cancelled=True)
        _close(world, cancel_ms, "order_cancelled", order_id, None)
        return
    _reserve(world, location, lines, done_ms, cancelled=False)
    _close(world, done_ms, "order_fulfilled", order_id, location)
    maybe_return(world, customer, customer.home_store, lines, received_ms, customer.loyalty_id, ("original_order_id", order_id))
