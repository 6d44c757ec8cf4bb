"""Stock: the simulator's own book of stock, opening counts, restocks, transfers, counts.

The book decides what can be sold (a shopper skips an empty shelf) and what
needs replenishing. Stock coming back (restocked returns, cancellations) is
booked at the start of the day after it happens, so the book never promises
stock before it physically arrives.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from operators.time.units import DAY_MS

if TYPE_CHECKING:
    from channelflow.simulator.world import World

STORE_COVER_DAYS = 4
WAREHOUSE_COVER_DAYS = 10
CASE_SIZE = 12


class Ledger:
    """Per location and SKU: ``available`` (sellable now) and ``committed`` (held for orders)."""

    def __init__(self, locations: int, skus: int, start_ms: int) -> None:
        self.available = [[0] * skus for _ in range(locations)]
        self.committed = [[0] * skus for _ in range(locations)]
        self._start_ms = start_ms
        self._due: dict[int, list[tuple[int, int, int, int]]] = {}

    def _later(self, ts: int, location: int, sku: int, available: int, committed: int) -> None:
        day = (ts - self._start_ms) // DAY_MS + 1
        self._due.setdefault(day, []).append((location, sku, available, committed))

    def commit(self, location: int, sku: int, qty: int, release_ms: int, *, cancelled: bool) -> None:
        """Hold ``qty`` for an order until it leaves (or, if ``cancelled``, goes back on sale)."""
        self.available[location][sku] -= qty
        self.committed[location][sku] += qty
        self._later(release_ms, location, sku, qty if cancelled else 0, -qty)

    def credit_after(self, ts: int, location: int, sku: int, qty: int) -> None:
        """Stock that comes back at ``ts``, sellable from the next simulated day."""
        self._later(ts, location, sku, qty, 0)

    def settle(self, day: int) -> None:
        """Book what came back or left before simulated day ``day``."""
        for location, sku, available, committed in self._due.pop(day, ()):
            self.available[location][sku] += available
            self.committed[location][sku] += committed

    def on_hand(self, location: int, sku: int) -> int:
        return self.available[location][sku] + self.committed[location][sku]


def stock_targets(popularity: tuple[float, ...], customers: int, stores: int) -> tuple[list[int], list[int]]:
    """Shelf and warehouse targets per SKU, from expected daily demand."""
    units_per_day = customers * 0.32
    store_targets = [4 + math.ceil(STORE_COVER_DAYS * units_per_day * p / stores) for p in popularity]
    warehouse_targets = [CASE_SIZE + math.ceil(WAREHOUSE_COVER_DAYS * units_per_day * p) for p in popularity]
    return store_targets, warehouse_targets


def _inventory_event(world: World, ts: int, kind: str, **fields: object) -> None:
    world.push(ts, {"event_id": world.event_id(), "type": kind, "ts": ts, **fields})


def opening_stock(world: World, ts: int) -> None:
    """An absolute count of every SKU at every location, so the engine starts from real stock."""
    for location in world.locations:
        index = world.location_index[location.id]
        targets = world.store_targets if location.is_store else world.warehouse_targets
        for sku, target in enumerate(targets):
            world.ledger.available[index][sku] = target
            _inventory_event(world, ts, "stock_counted", location_id=location.id, sku=world.catalogue.skus[sku], on_hand=target)


def _receive(world: World, ts: int) -> None:
    ledger, skus = world.ledger, world.catalogue.skus
    for warehouse in world.warehouses:
        index = world.location_index[warehouse.id]
        for sku, target in enumerate(world.warehouse_targets):
            short = target - ledger.available[index][sku]
            if short > target // 2:
                qty = CASE_SIZE * math.ceil(short / CASE_SIZE)
                ledger.available[index][sku] += qty
                _inventory_event(world, ts, "stock_received", location_id=warehouse.id, sku=skus[sku], qty=qty)


def _replenish_stores(world: World, ts: int) -> None:
    ledger, skus = world.ledger, world.catalogue.skus
    sources = [world.location_index[w.id] for w in world.warehouses]
    for store in world.stores:
        index = world.location_index[store.id]
        for sku, target in enumerate(world.store_targets):
            short = target - ledger.available[index][sku]
            if short <= target // 2:
                continue
            source = max(sources, key=lambda w: ledger.available[w][sku])
            qty = min(short, ledger.available[source][sku])
            if qty > 0:
                ledger.available[source][sku] -= qty
                ledger.available[index][sku] += qty
                _inventory_event(
                    world, ts, "transfer",
                    from_location_id=world.locations[source].id, to_location_id=store.id, sku=skus[sku], qty=qty,
                )  # fmt: skip


def _cycle_counts(world: World, ts: int) -> None:
    rng, ledger = world.rng, world.ledger
    for location in world.locations:
        index = world.location_index[location.id]
        for _ in range(3 if location.is_store else 5):
            sku = rng.randrange(len(world.catalogue.skus))
            shrink = 1 if rng.random() < 0.25 else 0
            counted = max(0, ledger.on_hand(index, sku) - shrink)
            ledger.available[index][sku] = counted - ledger.committed[index][sku]
            _inventory_event(world, ts, "stock_counted", location_id=location.id, sku=world.catalogue.skus[sku], on_hand=counted)


def _damage(world: World, day_start: int) -> None:
    rng, ledger = world.rng, world.ledger
    for store in world.stores:
        if rng.random() >= 0.3:
            continue
        index = world.location_index[store.id]
        sku = world.catalogue.pick(rng)
        ts = world.store_time(store, day_start)
        if ts is None or ledger.available[index][sku] <= 0:
            continue
        ledger.available[index][sku] -= 1
        _inventory_event(
            world, ts, "stock_adjusted",
            location_id=store.id, sku=world.catalogue.skus[sku], delta=-1, reason="damaged",
        )  # fmt: skip


def stock_day(world: World, day: int, day_start: int) -> None:
    """The day's stock work: book returns, receive at warehouses, refill shelves, count, break things."""
    world.ledger.settle(day)
    _receive(world, day_start)
    _replenish_stores(world, day_start)
    _cycle_counts(world, day_start)
    _damage(world, day_start)
