"""Live multi-location inventory: stock, reservations, ship routing and stock alerts.

One :class:`Inventory` holds the SKUs of one shard (``shard_of(sku, shards)``)
at every location, as :class:`~operators.inventory.ledger.Ledger` entries kept in
event-time order, so the final state after any arrival order within the
allowed lateness equals a fold of the events sorted by ``(ts, event_id)``.
See ``docs/inventory.md`` for the rules.
"""

from __future__ import annotations

import pickle
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from operators.contract.dead_letter import iso_ms
from operators.contract.events import Event
from operators.inventory.ledger import ADD, EVENT_RANK, EXPIRY_RANK, SET, Entry, Key, Ledger
from operators.inventory.routing import choose_location
from operators.locations import Location
from operators.state.pickling import pickled_as_call
from operators.state.tracked import MutableTrackedDict, TrackedDict
from operators.time.shard import DomainShard
from operators.time.sharding import shard_of
from operators.time.stream_items import Output, Signal
from operators.time.timers import Timer

__all__ = [
    "LOCATION_TYPES",
    "STOCK_EVENTS",
    "TOPIC",
    "Inventory",
    "InventoryHealth",
    "InventorySettings",
    "Location",
    "LocationHealth",
    "Position",
    "inventory_shards",
]

TOPIC = "inventory_updates"
#: The stream of network availability crossings (:class:`StockLevel`), keyed by SKU.
STOCK_LEVELS = "stock_levels"
LOCATION_TYPES = ("store", "warehouse")

SKU_EVENTS = frozenset({"stock_received", "stock_adjusted", "stock_counted", "transfer"})
LINE_EVENTS = frozenset({"sale", "return", "order_placed"})
ORDER_EVENTS = frozenset({"order_fulfilled", "order_cancelled"})
#: Every event type that can move stock.
STOCK_EVENTS = SKU_EVENTS | LINE_EVENTS | ORDER_EVENTS

# Alert levels of a SKU-location, from its available stock.
OUT, LOW, OK = 0, 1, 2

_EXPIRE, _ROUTE, _FORGET = "expire:", "route:", "forget:"


def inventory_shards(event: Event, shards: int) -> set[int]:
    """The inventory shards ``event`` must reach (empty: not an inventory event).

    >>> ev = Event("e1", "order_cancelled", "inventory", 0, {"order_id": "o1"})
    >>> sorted(inventory_shards(ev, 3))
    [0, 1, 2]
    """
    body = event.body
    if event.type in SKU_EVENTS:
        return {shard_of(body["sku"], shards)}
    if event.type in LINE_EVENTS:
        return {shard_of(line["sku"], shards) for line in _stock_lines(event)}
    if event.type in ORDER_EVENTS:
        return set(range(shards))
    return set()


def _stock_lines(event: Event) -> list[dict[str, Any]]:
    """The lines of a line event that touch stock (a return's lines with restock)."""
    lines: list[dict[str, Any]] = event.body["lines"]
    if event.type == "return":
        return [line for line in lines if line.get("restock", True)]
    return lines


# -- settings ----------------------------------------------------------------


@pickled_as_call
@dataclass(frozen=True, slots=True)
class StockLevel:
    """A SKU's network availability after its first change, and after every change that crossed
    zero or the low-stock threshold (so a SKU first counted at 0 is known to be out of stock)."""

    sku: str
    ts: int
    network_available: int
    cause_event_id: str


@dataclass(frozen=True)
class InventorySettings:
    """Inventory configuration (the lead maps the TOML ``[inventory]`` table onto it).

    ``ship_from`` ranks the locations ship orders may reserve at, best first;
    empty means every configured location ranked by ``priority`` (equal
    priorities tie). ``safety_stock_overrides`` is keyed by ``(sku, location_id)``.
    Events at a location not in ``locations`` are accepted as
    ``unknown_location_type`` and counted.
    """

    locations: tuple[Location, ...] = ()
    safety_stock_by_type: Mapping[str, int] = field(default_factory=lambda: {"store": 0, "warehouse": 0})
    safety_stock_overrides: Mapping[tuple[str, str], int] = field(default_factory=dict)
    low_stock_threshold: int = 5
    pickup_expiry_ms: int = 48 * 3_600_000
    ship_from: tuple[str, ...] = ()
    unknown_location_type: str = "store"
    order_retention_ms: int = 3_600_000
    #: Publish ``STOCK_LEVELS``: a SKU's network availability at its first change and when it crosses zero or the low threshold
    #: (off when nobody reads it: it keeps per-SKU network totals).
    stock_signals: bool = False
    _types: dict[str, str] = field(init=False, repr=False, compare=False)
    _ranking: tuple[tuple[int, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        types: dict[str, str] = {}
        for loc in self.locations:
            if loc.type not in LOCATION_TYPES:
                raise ValueError(f"locations: {loc.id!r} has type {loc.type!r}, expected store or warehouse")
            if loc.id in types:
                raise ValueError(f"locations: {loc.id!r} is listed twice")
            types[sys.intern(loc.id)] = loc.type
        for name, value in (("low_stock_threshold", self.low_stock_threshold),
                            ("pickup_expiry_ms", self.pickup_expiry_ms),
                            ("order_retention_ms", self.order_retention_ms)):
            if value < 0:
                raise ValueError(f"{name}: must be >= 0, got {value}")
        for key, value in [*self.safety_stock_by_type.items(), *self.safety_stock_overrides.items()]:
            if value < 0:
                raise ValueError(f"safety_stock: {key!r} must be >= 0, got {value}")
        if self.unknown_location_type not in LOCATION_TYPES:
            raise ValueError(f"unknown_location_type: expected store or warehouse, got {self.unknown_location_type!r}")
        for loc_id in self.ship_from:
            if loc_id not in types:
                raise ValueError(f"ship_from: {loc_id!r} is not a configured location")
        if self.ship_from:
            ranking = tuple((rank, sys.intern(loc)) for rank, loc in enumerate(self.ship_from))
        else:
            ranking = tuple(sorted((loc.priority, sys.intern(loc.id)) for loc in self.locations))
        object.__setattr__(self, "_types", types)
        object.__setattr__(self, "_ranking", ranking)

    def location_type(self, location_id: str) -> str:
        return self._types.get(location_id, self.unknown_location_type)

    def is_known(self, location_id: str) -> bool:
        return location_id in self._types

    def safety_stock(self, sku: str, location_id: str) -> int:
        override = self.safety_stock_overrides.get((sku, location_id))
        if override is not None:
            return override
        return self.safety_stock_by_type.get(self.location_type(location_id), 0)

    @property
    def ship_ranking(self) -> tuple[tuple[int, str], ...]:
        """Ship-from candidates as ``(rank, location_id)``, best first."""
        return self._ranking


# -- state and reports --------------------------------------------------------


class Position(NamedTuple):
    """Stock of one SKU at one location."""

    on_hand: int
    reserved: int
    available: int


@dataclass(frozen=True, slots=True)
class LocationHealth:
    """Gauges of one location (never per SKU)."""

    location_type: str
    stock_outs: int
    low_stock: int
    open_reservations: int


@dataclass(frozen=True, slots=True)
class InventoryHealth:
    """Per-location gauges and event counters of one shard."""

    locations: dict[str, LocationHealth]
    counters: dict[str, int]


@dataclass(slots=True)
class _Line:
    """An order line held on this shard; ``location`` is None until a ship line is routed."""

    index: int
    sku: str
    qty: int
    location: str | None = None
    end_key: Key | None = None
    fulfil_key: Key | None = None


@dataclass(slots=True)
class _Order:
    """What this shard knows of one order: its placement and its terminal facts.

    Facts may arrive before the placement: they are kept and applied when it
    comes. A reservation ends at the earliest of cancel, fulfilment at its
    location and expiry, but never before the placement.
    """

    order_id: str
    last_ts: int
    placed: Key | None = None
    placed_event_id: str = ""
    method: str = ""
    routed: bool = False
    lines: list[_Line] = field(default_factory=list)
    cancel_key: Key | None = None
    fulfil_keys: dict[str, Key] = field(default_factory=dict)
    expiry_key: Key | None = None

    def is_closed(self) -> bool:
        """Placed, routed, and no reservation left open."""
        return (self.placed is not None and (self.method == "pickup" or self.routed)
                and all(line.end_key is not None or line.location is None for line in self.lines))


class _Change:
    """Collects what one event or timer did, to report it once at the end."""

    __slots__ = ("alerts", "before", "cause_event_id", "iso_ts", "outputs", "ts")

    def __init__(self, ts: int, cause_event_id: str) -> None:
        self.ts = ts
        self.iso_ts = iso_ms(ts)
        self.cause_event_id = cause_event_id
        self.before: dict[tuple[str, str], tuple[int, int]] = {}
        self.alerts: list[tuple[str, str, dict[str, Any]]] = []
        self.outputs: list[Output] = []


def _earliest(*keys: Key | None) -> Key | None:
    present = [key for key in keys if key is not None]
    return min(present) if present else None


# -- the domain ---------------------------------------------------------------


class Inventory:
    """The inventory domain of shard ``shard`` of ``shards`` (a ``Domain`` for ``DomainShard``).

    >>> settings = InventorySettings(locations=(Location("S1", "store"),), low_stock_threshold=2)
    >>> shard = DomainShard(Inventory(settings), upstreams=1)
    >>> [out.value["on_hand"] for out in shard.on_event(Event(
    ...     "e1", "stock_received", "inventory", 1_000, {"location_id": "S1", "sku": "MUG", "qty": 3}))][:1]
    [3]
    >>> outs = shard.on_event(Event("e2", "sale", "pos", 2_000, {"store_id": "S1", "receipt_id": "r1",
    ...     "lines": [{"sku": "MUG", "qty": 2, "unit_price": 9.5}], "total": 19}))
    >>> [(o.value["record"], o.value.get("alert"), o.value["available"]) for o in outs]
    [('stock', None, 1), ('alert', 'low_stock', 1)]
    >>> shard.domain.position("MUG", "S1")
    Position(on_hand=1, reserved=0, available=1)
    """

    def __init__(self, settings: InventorySettings, shard: int = 0, shards: int = 1) -> None:
        self.settings = settings
        self.shard = shard
        self.shards = shards
        # What grows with the catalogue and the open orders is tracked, so a snapshot stores the
        # SKUs and orders that changed since the last one, not all of them.
        self._stock: MutableTrackedDict[str, dict[str, Ledger]] = MutableTrackedDict()
        self._orders: MutableTrackedDict[str, _Order] = MutableTrackedDict()
        self._unsettled: set[tuple[str, str]] = set()
        self._level_counts: dict[str, list[int]] = {}  # location -> [stock_outs, low_stock]
        self._open_reservations: Counter[str] = Counter()
        self._network: TrackedDict[str, int] = TrackedDict()  # sku -> sum of positive availability
        self.counters: Counter[str] = Counter()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restored; state written before the stock, orders and network totals were tracked
        holds plain dicts (each is then stored whole at the next snapshot)."""
        for name, cls in (("_stock", MutableTrackedDict), ("_orders", MutableTrackedDict), ("_network", TrackedDict)):
            if not isinstance(state.get(name), TrackedDict):
                state[name] = cls(state.get(name, {}))
        self.__dict__.update(state)

    def reconfigure(self, fresh: Inventory) -> tuple[str, ...]:
        """Restored from a snapshot: take today's ``[inventory]`` and ``[[locations]]`` (``fresh``'s
        settings), keeping every ledger, order and reservation.

        Network totals are worked out again with the new safety stock. A position whose level
        (ok, low, out) moves with the new safety stock or threshold is reported with its next
        change: the alert then says so, and the per-location counts follow.
        """
        self.settings = fresh.settings
        network: Counter[str] = Counter()
        for sku, _location, position in self.positions():
            network[sku] += max(0, position.available)
        self._network = TrackedDict(network.items())
        return ()

    # -- queries

    def position(self, sku: str, location_id: str) -> Position | None:
        """Current stock of ``sku`` at ``location_id`` (None: never seen)."""
        ledger = self._stock.get(sku, {}).get(location_id)
        return None if ledger is None else self._position(sku, location_id, ledger)

    def positions(self) -> Iterator[tuple[str, str, Position]]:
        """Every SKU-location of this shard with its stock."""
        for sku, by_location in self._stock.items():
            for location_id, ledger in by_location.items():
                yield sku, location_id, self._position(sku, location_id, ledger)

    def network_available(self, sku: str) -> int:
        """Sum of the positive availability of ``sku`` over all locations (kept up to date)."""
        return self._network.get(sku, 0)

    def _outs_and_lows(self, location_id: str) -> tuple[int, int]:
        outs, lows = self._level_counts.get(location_id, (0, 0))
        return outs, lows

    def health(self) -> InventoryHealth:
        """Per-location stock-outs, low-stock and open reservation lines, and counters."""
        locations = set(self._level_counts) | set(self._open_reservations)
        report = {
            loc: LocationHealth(self.settings.location_type(loc), *self._outs_and_lows(loc), self._open_reservations[loc])
            for loc in sorted(locations)
        }
        return InventoryHealth(report, dict(self.counters))

    def state_size_bytes(self) -> int:
        """Bytes of this domain's pickled state (the state a restore rebuilds)."""
        return len(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))

    # -- Domain protocol

    def on_event(self, event: Event, shard: DomainShard[Any]) -> list[Output | Signal]:
        handler = _HANDLERS.get(event.type)
        if handler is None:
            return []
        if shard.is_late(event.ts):
            self.counters["late_events"] += 1
        change = _Change(event.ts, event.event_id)
        handler(self, event, (event.ts, EVENT_RANK, event.event_id), change, shard)
        return self._finish(change)

    def on_timer(self, timer: Timer[Any], shard: DomainShard[Any]) -> list[Output | Signal]:
        order = self._orders.get(timer.payload)
        if order is None:
            return []
        if timer.key.startswith(_FORGET):
            if order.placed is None:
                self.counters["orphan_order_events_forgotten"] += 1
            if order.placed is None or order.is_closed():
                del self._orders[order.order_id]
                shard.timers.cancel(_EXPIRE + order.order_id)
            return []
        assert order.placed is not None
        if timer.key.startswith(_ROUTE):
            change = _Change(order.placed[0], order.placed_event_id)
            self._route(order, change)
        else:
            change = _Change(timer.deadline, order.placed_event_id)
            self._expire(order, timer.deadline, change)
        self._keep_order(order, change.ts, shard)
        return self._finish(change)

    def on_watermark(self, shard: DomainShard[Any]) -> list[Output]:
        watermark = shard.watermark
        assert watermark is not None
        for sku, location_id in list(self._unsettled):
            if not self._stock[sku][location_id].settle(watermark):
                self._unsettled.discard((sku, location_id))
        return []

    # -- stock events

    def _on_sale(self, event: Event, key: Key, change: _Change, shard: DomainShard[Any]) -> None:
        store = event.body["store_id"]
        for sku, qty in self._line_totals(event).items():
            available = self._touch(change, sku, store)[2]
            if qty > available:
                self._oversold(change, sku, store, qty, available)
            self._add(sku, store, Entry(key, ADD, -qty))

    def _on_return(self, event: Event, key: Key, change: _Change, shard: DomainShard[Any]) -> None:
        store = event.body["store_id"]
        for sku, qty in self._line_totals(event).items():
            self._touch(change, sku, store)
            self._add(sku, store, Entry(key, ADD, qty))

    def _on_stock(self, event: Event, key: Key, change: _Change, shard: DomainShard[Any]) -> None:
        body = event.body
        sku, location = body["sku"], body["location_id"]
        if not self._holds(sku):
            return
        self._touch(change, sku, location)
        if event.type == "stock_received":
            entry = Entry(key, ADD, body["qty"])
        elif event.type == "stock_adjusted":
            entry = Entry(key, ADD, body["delta"])
        else:
            entry = Entry(key, SET, body["on_hand"])
        self._add(sku, location, entry)

    def _on_transfer(self, event: Event, key: Key, change: _Change, shard: DomainShard[Any]) -> None:
        body = event.body
        sku, qty = body["sku"], body["qty"]
        if not self._holds(sku):
            return
        for location, delta in ((body["from_location_id"], -qty), (body["to_location_id"], qty)):
            self._touch(change, sku, location)
            self._add(sku, location, Entry(key, ADD, delta))

    # -- order events

    def _on_order_placed(self, event: Event, key: Key, change: _Change, shard: DomainShard[Any]) -> None:
        body = event.body
        order = self._orders.get(body["order_id"]) or _Order(body["order_id"], event.ts)
        if order.placed is not None:
            self.counters["repeated_order_placements"] += 1
            return
        lines = [_Line(i, line["sku"], line["qty"]) for i, line in enumerate(body["lines"])
                 if self._holds(line["sku"])]
        if not lines:
            return
        self._orders[order.order_id] = order
        order.placed, order.placed_event_id, order.lines = key, event.event_id, lines
        order.method = body["fulfillment"]["method"]
        if order.method == "pickup":
            location = body["fulfillment"]["location_id"]
            for line in lines:
                available = self._touch(change, line.sku, location)[2]
                if line.qty > available:
                    self._oversold(change, line.sku, location, line.qty, available, order.order_id)
                self._reserve(order, line, location)
            shard.timers.schedule(_EXPIRE + order.order_id, event.ts + self.settings.pickup_expiry_ms,
                                  order.order_id)
            self._sync_order(order, change)
        elif shard.is_late(event.ts):
            self._route(order, change)  # its moment has passed: route on what is known now
        else:
            # Routed once the watermark passes the order, on the stock as of its event time.
            shard.timers.schedule(_ROUTE + event.event_id, event.ts, order.order_id)
        self._keep_order(order, event.ts, shard)

    def _on_order_fulfilled(self, event: Event, key: Key, change: _Change, shard: DomainShard[Any]) -> None:
        order = self._order_facts(event)
        location = event.body["location_id"]
        order.fulfil_keys[location] = _earliest(order.fulfil_keys.get(location), key) or key
        self._sync_order(order, change)
        self._keep_order(order, event.ts, shard)

    def _on_order_cancelled(self, event: Event, key: Key, change: _Change, shard: DomainShard[Any]) -> None:
        order = self._order_facts(event)
        order.cancel_key = _earliest(order.cancel_key, key)
        self._sync_order(order, change)
        self._keep_order(order, event.ts, shard)

    def _order_facts(self, event: Event) -> _Order:
        order_id = event.body["order_id"]
        order = self._orders.get(order_id)
        if order is None:
            order = self._orders[order_id] = _Order(order_id, event.ts)
        return order

    def _keep_order(self, order: _Order, ts: int, shard: DomainShard[Any]) -> None:
        """Remember the order until the watermark is ``order_retention_ms`` past its last activity."""
        order.last_ts = max(order.last_ts, ts)
        if order.order_id in self._orders:
            shard.timers.schedule(_FORGET + order.order_id, order.last_ts + self.settings.order_retention_ms,
                                  order.order_id)

    def _route(self, order: _Order, change: _Change) -> None:
        assert order.placed is not None
        ranking = self.settings.ship_ranking
        own: Counter[tuple[str, str]] = Counter()  # this order's earlier lines
        for line in order.lines:
            available = {loc: self._available_as_of(line.sku, loc, order.placed) - own[line.sku, loc]
                         for _, loc in ranking}
            choice = choose_location(ranking, available, line.qty)
            change.outputs.append(Output(TOPIC, line.sku, {
                "record": "route", "sku": line.sku, "location_id": choice.location_id,
                "order_id": order.order_id, "line": line.index, "qty": line.qty,
                "filled": choice.filled, "available_before": choice.available,
                "ts": change.iso_ts, "cause_event_id": change.cause_event_id,
            }, change.ts))
            if choice.location_id is None:
                self.counters["unroutable_lines"] += 1
                continue
            self._touch(change, line.sku, choice.location_id)
            if not choice.filled:
                self._oversold(change, line.sku, choice.location_id, line.qty, choice.available, order.order_id)
            own[line.sku, choice.location_id] += line.qty
            self._reserve(order, line, choice.location_id)
        order.routed = True
        self._sync_order(order, change)

    def _expire(self, order: _Order, deadline: int, change: _Change) -> None:
        expiry_key: Key = (deadline, EXPIRY_RANK, order.order_id)
        expiring = [line for line in order.lines if line.location is not None
                    and (line.end_key is None or line.end_key > expiry_key)]
        order.expiry_key = expiry_key
        self._sync_order(order, change)
        for line in expiring:
            assert line.location is not None
            self.counters["expired_reservations"] += 1
            self._touch(change, line.sku, line.location)
            change.outputs.append(Output(TOPIC, line.sku, {
                "record": "expiry", "sku": line.sku, "location_id": line.location,
                "order_id": order.order_id, "line": line.index, "qty": line.qty,
                "ts": iso_ms(deadline), "cause_event_id": change.cause_event_id,
            }, deadline))

    def _reserve(self, order: _Order, line: _Line, location: str) -> None:
        assert order.placed is not None
        line.location = location
        self._open_reservations[location] += 1
        self._add(line.sku, location, Entry(order.placed, ADD, 0, line.qty, (order.order_id, line.index, "r")))

    def _sync_order(self, order: _Order, change: _Change) -> None:
        """Put each reservation's end, and each fulfilment's stock removal, at its event time."""
        if order.placed is None:
            return
        for line in order.lines:
            if line.location is None:
                continue
            fulfilled = order.fulfil_keys.get(line.location)
            end = _earliest(order.cancel_key, fulfilled, order.expiry_key)
            if end is not None:
                line.end_key = self._place(change, order, line, "e", max(end, order.placed), line.end_key)
            if fulfilled is not None:
                line.fulfil_key = self._place(change, order, line, "f", max(fulfilled, order.placed),
                                              line.fulfil_key)

    def _place(self, change: _Change, order: _Order, line: _Line, kind: str, key: Key, current: Key | None) -> Key:
        """Put an order-derived entry at ``key``, moving it earlier if it is still pending."""
        assert line.location is not None
        if current is not None and key >= current:
            return current
        tag = (order.order_id, line.index, kind)
        ledger = self._touch_ledger(change, line.sku, line.location)
        if current is not None and ledger.remove(tag) is None:
            return current  # already settled: only its position in the past would change
        if current is None and kind == "e":
            self._open_reservations[line.location] -= 1
        on_hand, reserved = (0, -line.qty) if kind == "e" else (-line.qty, 0)
        self._add(line.sku, line.location, Entry(key, ADD, on_hand, reserved, tag))
        return key

    # -- ledgers and reports

    def _holds(self, sku: str) -> bool:
        return self.shards == 1 or shard_of(sku, self.shards) == self.shard

    def _line_totals(self, event: Event) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for line in _stock_lines(event):
            if self._holds(line["sku"]):
                totals[line["sku"]] += line["qty"]
        return dict(totals)

    def _ledger(self, sku: str, location_id: str) -> Ledger:
        by_location = self._stock.setdefault(sku, {})
        ledger = by_location.get(location_id)
        if ledger is None:
            location_id = sys.intern(location_id)
            ledger = by_location[location_id] = Ledger(level=self._level(-self.settings.safety_stock(sku, location_id)))
            self._count_level(location_id, ledger.level, +1)
        return ledger

    def _touch_ledger(self, change: _Change, sku: str, location_id: str) -> Ledger:
        """The ledger about to change; its state before the change is kept for the report."""
        ledger = self._ledger(sku, location_id)
        if (sku, location_id) not in change.before:
            change.before[sku, location_id] = ledger.as_of(None)
            if not self.settings.is_known(location_id):
                self.counters["unknown_location_events"] += 1
        return ledger

    def _touch(self, change: _Change, sku: str, location_id: str) -> Position:
        return self._position(sku, location_id, self._touch_ledger(change, sku, location_id))

    def _add(self, sku: str, location_id: str, entry: Entry) -> None:
        outcome = self._stock[sku][location_id].add(entry)
        if outcome == "applied":
            self._unsettled.add((sku, location_id))
        elif outcome == "stale":
            self.counters["stale_counts"] += 1

    def _position(self, sku: str, location_id: str, ledger: Ledger) -> Position:
        on_hand, reserved = ledger.as_of(None)
        return Position(on_hand, reserved, on_hand - reserved - self.settings.safety_stock(sku, location_id))

    def _available_as_of(self, sku: str, location_id: str, key: Key) -> int:
        ledger = self._stock.get(sku, {}).get(location_id)
        on_hand, reserved = (0, 0) if ledger is None else ledger.as_of(key)
        return on_hand - reserved - self.settings.safety_stock(sku, location_id)

    def _level(self, available: int) -> int:
        if available <= 0:
            return OUT
        return LOW if available <= self.settings.low_stock_threshold else OK

    def _count_level(self, location_id: str, level: int, delta: int) -> None:
        counts = self._level_counts.setdefault(location_id, [0, 0])
        if level != OK:
            counts[level] += delta

    def _oversold(self, change: _Change, sku: str, location_id: str, qty: int, available: int,
                  order_id: str | None = None) -> None:
        self.counters["oversold"] += 1
        extra: dict[str, Any] = {"alert": "oversold", "qty": qty, "available_before": available}
        if order_id is not None:
            extra["order_id"] = order_id
        change.alerts.append((sku, location_id, extra))

    def _finish(self, change: _Change) -> list[Output | Signal]:
        """Stock records for the SKU-locations that changed, then their alerts."""
        outputs: list[Output | Signal] = list(change.outputs)
        # None: the SKU's first change (told even without a crossing: a first count of 0 is out of stock)
        network_before = {sku: self._network.get(sku) for sku, _ in change.before} if self.settings.stock_signals else {}
        for (sku, location_id), before in change.before.items():
            ledger = self._stock[sku][location_id]
            position = self._position(sku, location_id, ledger)
            safety = self.settings.safety_stock(sku, location_id)
            network = self._network[sku] = (self._network.get(sku, 0) + max(0, position.available)
                                            - max(0, before[0] - before[1] - safety))
            state = {"sku": sku, "location_id": location_id, "on_hand": position.on_hand,
                     "reserved": position.reserved, "available": position.available,
                     "network_available": network, "ts": change.iso_ts,
                     "cause_event_id": change.cause_event_id}
            if (position.on_hand, position.reserved) != before:
                outputs.append(Output(TOPIC, sku, {"record": "stock", **state}, change.ts))
            for alert_sku, alert_location, extra in change.alerts:
                if (alert_sku, alert_location) == (sku, location_id):
                    outputs.append(Output(TOPIC, sku, {"record": "alert", **extra, **state}, change.ts))
            level = self._level(position.available)
            for alert in _transition_alerts(ledger.level, level):
                outputs.append(Output(TOPIC, sku, {"record": "alert", "alert": alert, **state}, change.ts))
            if level != ledger.level:
                self._count_level(location_id, ledger.level, -1)
                self._count_level(location_id, level, +1)
                ledger.level = level
        if self.settings.stock_signals:
            for sku, before_net in network_before.items():
                after = self._network.get(sku, 0)
                if before_net is None or self._level(before_net) != self._level(after):
                    crossing = StockLevel(sku, change.ts, after, change.cause_event_id)
                    order = f"{change.cause_event_id}:stock:{sku}"
                    outputs.append(Signal(STOCK_LEVELS, sku, change.ts, order, crossing))
        return outputs


def _transition_alerts(old: int, new: int) -> list[str]:
    """Alerts for a move between levels: they fire on entering a state, not while in it."""
    alerts = []
    if old == OUT and new != OUT:
        alerts.append("back_in_stock")
    if new == OUT and old != OUT:
        alerts.append("out_of_stock")
    if new == LOW and old != LOW:
        alerts.append("low_stock")
    return alerts


_HANDLERS = {
    "sale": Inventory._on_sale,
    "return": Inventory._on_return,
    "stock_received": Inventory._on_stock,
    "stock_adjusted": Inventory._on_stock,
    "stock_counted": Inventory._on_stock,
    "transfer": Inventory._on_transfer,
    "order_placed": Inventory._on_order_placed,
    "order_fulfilled": Inventory._on_order_fulfilled,
    "order_cancelled": Inventory._on_order_cancelled,
}
