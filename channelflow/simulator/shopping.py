"""Shopping: online sessions through the funnel, and till sales in stores."""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

from channelflow.simulator.crm import link_loyalty_later
from channelflow.simulator.fulfilment import fulfil, route
from channelflow.simulator.population import Customer, Device
from channelflow.simulator.returns import maybe_return
from channelflow.simulator.settings import Location

if TYPE_CHECKING:
    from channelflow.simulator.world import Line, World

SEARCH_RATE = 0.35
CART_RATE = 0.3
CHECKOUT_RATE = 0.5
ORDER_RATE = 0.6
LOGIN_AT_START_RATE = 0.4
NEW_COOKIE_RATE = 0.08
REMOVE_RATE = 0.12
ONLINE_COUPON_RATE = 0.1
STORE_COUPON_RATE = 0.05
LINE_DISCOUNT_RATE = 0.06
CARD_SCANNED_RATE = 0.9
AWAY_STORE_RATE = 0.15
COUPONS = (("WELCOME10", 10), ("SPRING15", 15), ("VIP20", 20))
LANDING_PAGES = ("/", "/", "/", "/new", "/sale", "/stores")


def geometric(rng: random.Random, p: float) -> int:
    """Failures before the first success, each trial succeeding with probability ``p``."""
    return int(math.log(1.0 - rng.random()) / math.log(1.0 - p))


def quantity(rng: random.Random) -> int:
    draw = rng.random()
    return 1 if draw < 0.85 else 2 if draw < 0.97 else 3


def _device(world: World, customer: Customer, channel: str) -> Device:
    for i, device in enumerate(customer.devices):
        if device.channel == channel:
            if channel == "web" and world.rng.random() < NEW_COOKIE_RATE:
                device = customer.devices[i] = Device(world.token(), channel)
            return device
    device = Device(world.token(), channel)
    customer.devices.append(device)
    return device


class _Clicks:
    """The events of one session, with the common clickstream fields and think times."""

    __slots__ = ("anonymous_id", "channel", "customer_id", "events", "session_id", "ts", "world")

    def __init__(self, world: World, device: Device, customer_id: str | None, ts: int) -> None:
        self.world = world
        self.channel = device.channel
        self.session_id = world.token()
        self.anonymous_id = device.anonymous_id
        self.customer_id = customer_id
        self.ts = ts
        self.events: list[tuple[int, dict[str, Any]]] = []

    def add(self, kind: str, **fields: Any) -> None:
        ts = self.ts
        self.events.append((ts, {
            "event_id": self.world.event_id(), "type": kind, "ts": ts, "channel": self.channel,
            "session_id": self.session_id, "anonymous_id": self.anonymous_id, "customer_id": self.customer_id,
            **fields,
        }))  # fmt: skip
        self.ts = ts + 2000 + int(self.world.rng.expovariate(1 / 30000))


def _login(clicks: _Clicks, device: Device, customer_id: str) -> None:
    clicks.customer_id = customer_id
    device.logged_in = True
    clicks.add("login")


def _browse(world: World, clicks: _Clicks, wants_cart: bool) -> dict[int, list[int]]:
    rng, skus = world.rng, world.catalogue.skus
    views = 1 + geometric(rng, 0.35)
    carted = 0
    if wants_cart:
        draw = rng.random()
        carted = min(views, 1 + (draw < 0.3) + (draw < 0.1))
    cart: dict[int, list[int]] = {}
    for i in range(views):
        sku = world.pick_sku(clicks.ts)
        cents = world.unit_price(sku, clicks.ts)
        clicks.add("product_view", sku=skus[sku], price=cents / 100)
        if i >= views - carted:
            qty = quantity(rng)
            clicks.add("add_to_cart", sku=skus[sku], qty=qty, price=cents / 100)
            cart.setdefault(sku, [0, cents])[0] += qty
    if len(cart) >= 2 and rng.random() < REMOVE_RATE:
        sku, (qty, _) = next(reversed(cart.items()))
        clicks.add("remove_from_cart", sku=skus[sku], qty=qty)
        del cart[sku]
    return cart


def _priced(rng: random.Random, subtotal: int, coupon_rate: float) -> tuple[int, str | None]:
    if rng.random() >= coupon_rate:
        return subtotal, None
    code, percent = rng.choice(COUPONS)
    return subtotal - subtotal * percent // 100, code


def online_session(world: World, customer: Customer, start_ms: int) -> None:
    """One web or app visit: land, maybe search, view, maybe cart, checkout and order (about 30% of carts).

    During a conversion collapse of the channel the order fails: the shopper starts checkout again once or
    twice and leaves without an order."""
    rng = world.rng
    assert customer.customer_id is not None
    device = _device(world, customer, "app" if rng.random() < customer.app_share else "web")
    clicks = _Clicks(world, device, customer.customer_id if device.logged_in else None, start_ms)
    if not device.logged_in and rng.random() < LOGIN_AT_START_RATE:
        _login(clicks, device, customer.customer_id)
    clicks.add("page_view", url=rng.choice(LANDING_PAGES))
    if rng.random() < SEARCH_RATE:
        clicks.add("search", query=world.catalogue.category[world.catalogue.pick(rng)])
    cart = _browse(world, clicks, rng.random() < CART_RATE)
    order: tuple[str, list[Line], int, str, Location | None] | None = None
    if cart and rng.random() < CHECKOUT_RATE:
        if not device.logged_in:
            _login(clicks, device, customer.customer_id)
        clicks.add("checkout_started")
        if rng.random() < ORDER_RATE:
            if world.checkout_down(device.channel, clicks.ts) is None:
                order = _place_order(world, customer, clicks, cart)
            else:  # a conversion collapse: the checkout fails, the shopper retries once or twice, then leaves
                for _ in range(rng.randint(1, 2)):
                    clicks.add("checkout_started")
    if clicks.events[-1][0] >= customer.churn_ms:
        return
    for ts, event in clicks.events:
        world.push(ts, event)
    if order is not None:
        fulfil(world, customer, *order)


def _place_order(
    world: World, customer: Customer, clicks: _Clicks, cart: dict[int, list[int]]
) -> tuple[str, list[Line], int, str, Location | None]:
    skus = world.catalogue.skus
    lines: list[Line] = [(sku, qty, cents) for sku, (qty, cents) in cart.items()]
    total, coupon = _priced(world.rng, sum(qty * cents for _, qty, cents in lines), ONLINE_COUPON_RATE)
    method, location = route(world, customer, lines)
    order_id = world.order_id()
    fulfillment = {"method": "pickup", "location_id": location.id} if method == "pickup" and location else {"method": "ship"}
    fields: dict[str, Any] = {
        "order_id": order_id,
        "lines": [{"sku": skus[sku], "qty": qty, "unit_price": cents / 100} for sku, qty, cents in lines],
        "total": total / 100,
        "fulfillment": fulfillment,
    }
    if coupon:
        fields["coupon_code"] = coupon
    placed_ms = clicks.ts
    clicks.add("order_placed", **fields)
    return order_id, lines, placed_ms, method, location


def _basket(world: World, store_index: int, ts: int) -> list[Line]:
    rng = world.rng
    available = world.ledger.available[store_index]
    wanted: dict[int, int] = {}
    for _ in range(1 + geometric(rng, 0.45)):
        sku = world.pick_sku(ts)
        qty = min(quantity(rng), available[sku] - wanted.get(sku, 0))
        if qty > 0:
            wanted[sku] = wanted.get(sku, 0) + qty
    return [(sku, qty, world.unit_price(sku, ts)) for sku, qty in wanted.items()]


def store_visit(world: World, customer: Customer, store: Location, ts: int) -> None:
    """A till sale at ``ts``; nothing if the tills are down or the shelves are empty."""
    if world.pos_down(store.id, ts) is not None:
        return
    rng, skus = world.rng, world.catalogue.skus
    store_index = world.location_index[store.id]
    lines = _basket(world, store_index, ts)
    if not lines:
        return
    out_lines: list[dict[str, Any]] = []
    subtotal = 0
    for sku, qty, cents in lines:
        line: dict[str, Any] = {"sku": skus[sku], "qty": qty, "unit_price": cents / 100}
        amount = qty * cents
        if rng.random() < LINE_DISCOUNT_RATE:
            discount = amount * rng.choice((10, 20, 30)) // 100
            line["discount"] = discount / 100
            amount -= discount
        subtotal += amount
        out_lines.append(line)
        world.ledger.available[store_index][sku] -= qty
    total, coupon = _priced(rng, subtotal, STORE_COUPON_RATE)
    loyalty_id = customer.loyalty_id if rng.random() < CARD_SCANNED_RATE else None
    receipt_id = world.receipt_id(store.id)
    sale: dict[str, Any] = {
        "event_id": world.event_id(), "type": "sale", "ts": ts, "store_id": store.id,
        "receipt_id": receipt_id, "loyalty_id": loyalty_id, "lines": out_lines, "total": total / 100,
    }  # fmt: skip
    if coupon:
        sale["coupon_code"] = coupon
    world.push(ts, sale)
    if loyalty_id is not None:
        link_loyalty_later(world, customer, ts)
    maybe_return(world, customer, store, lines, ts, loyalty_id, ("original_receipt_id", receipt_id))


def visit_store(world: World, customer: Customer, day_start: int) -> None:
    """A store visit on the day, mostly to the home store, inside opening hours."""
    stores = world.stores
    store = world.rng.choice(stores) if world.rng.random() < AWAY_STORE_RATE else customer.home_store
    ts = world.store_time(store, day_start)
    if ts is not None and customer.joined_ms <= ts < customer.churn_ms:
        store_visit(world, customer, store, ts)
