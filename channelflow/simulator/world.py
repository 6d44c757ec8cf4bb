"""The simulated world: shared state, the event queue, ids, prices and outages."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from typing import Any

from channelflow.simulator.anomalies import Anomaly, AnomalyPlanner
from channelflow.simulator.catalogue import Catalogue
from channelflow.simulator.clock import opening_windows, store_time
from channelflow.simulator.inventory import Ledger, stock_targets
from channelflow.simulator.settings import Location, SimulationSettings
from operators.time.units import DAY_MS

TruthSink = Callable[[dict[str, Any]], None]
"""Receives each ground-truth record (a JSON-ready dict) as soon as it is known."""

Line = tuple[int, int, int]
"""(SKU index, quantity, unit price in cents)."""


def _discard(_record: dict[str, Any]) -> None:
    return None


class World:
    """Everything the generators share: one random stream, the stock book, the event heap."""

    def __init__(
        self,
        settings: SimulationSettings,
        locations: tuple[Location, ...],
        truth: TruthSink | None = None,
    ) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.catalogue = Catalogue.generate(random.Random(f"{settings.seed}/catalogue"), settings.skus)
        self.locations = locations
        self.location_index = {loc.id: i for i, loc in enumerate(locations)}
        self.stores = tuple(loc for loc in locations if loc.is_store)
        self.warehouses = tuple(loc for loc in locations if not loc.is_store)
        self.store_targets, self.warehouse_targets = stock_targets(
            self.catalogue.popularity, settings.customers, len(self.stores)
        )
        self.ledger = Ledger(len(locations), settings.skus, settings.start_ms)
        self.anomalies = AnomalyPlanner(settings, self.stores, self.catalogue)
        self.truth: TruthSink = truth or _discard
        self.price_errors: list[Anomaly] = []
        self._heap: list[tuple[int, int, dict[str, Any]]] = []
        self._pushed = 0
        self._id_prefix = f"sim{settings.seed}-"
        self._ids = 0
        self._orders = 0
        self._receipts = dict.fromkeys((s.id for s in self.stores), 0)

    def event_id(self) -> str:
        self._ids += 1
        return f"{self._id_prefix}{self._ids}"

    def token(self) -> str:
        """A random 64-bit hex id (devices, sessions)."""
        return f"{self.rng.getrandbits(64):016x}"

    def order_id(self) -> str:
        self._orders += 1
        return f"O{self._orders:08d}"

    def receipt_id(self, store_id: str) -> str:
        self._receipts[store_id] += 1
        return f"{store_id}-{self._receipts[store_id]:07d}"

    def push(self, ts: int, event: dict[str, Any]) -> None:
        """Queue an event for emission in event-time order (ties: in the order pushed)."""
        self._pushed += 1
        heapq.heappush(self._heap, (ts, self._pushed, event))

    def pop_before(self, end_ms: int) -> Iterator[dict[str, Any]]:
        """Emit the queued events with ``ts < end_ms``, earliest first."""
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] < end_ms:
            yield pop(heap)[2]

    def day_start(self, day: int) -> int:
        return self.settings.start_ms + day * DAY_MS

    def store_time(self, store: Location, day_start: int) -> int | None:
        """A time the store is open on the simulated day from ``day_start``, or None."""
        return store_time(self.rng, opening_windows(store, day_start, day_start + DAY_MS))

    def pos_down(self, store_id: str, ts: int) -> Anomaly | None:
        return self.anomalies.store_down(store_id, ts) if self.settings.anomalies else None

    def checkout_down(self, channel: str, ts: int) -> Anomaly | None:
        """The conversion collapse failing ``channel``'s checkouts at ``ts``, if any."""
        return self.anomalies.checkout_down(channel, ts) if self.settings.anomalies else None

    def unit_price(self, sku: int, ts: int) -> int:
        """The price in cents the shopper sees at ``ts``: the list price, unless a pricing error is live."""
        for error in self.price_errors:
            if error.sku == sku and error.start <= ts < error.end:
                return error.error_price_cents or 0
        return self.catalogue.price_cents[sku]

    def pick_sku(self, ts: int) -> int:
        """A SKU by popularity; a mispriced SKU draws a crowd while the error is live."""
        for error in self.price_errors:
            if error.start <= ts < error.end and self.rng.random() < 0.15:
                return error.sku or 0
        return self.catalogue.pick(self.rng)
