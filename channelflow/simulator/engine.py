"""The day loop: plan each simulated day, generate it, emit its events in event-time order."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from typing import Any

from channelflow.simulator.anomalies import truth_record
from channelflow.simulator.bots import bot_traffic
from channelflow.simulator.clock import online_time
from channelflow.simulator.crm import (
    change_consent,
    initial_load_time,
    maybe_erase,
    sign_up,
    update_profile,
)
from channelflow.simulator.inventory import opening_stock, stock_day
from channelflow.simulator.population import CONSENT_CHANGES_PER_DAY, Customer, new_customer
from channelflow.simulator.settings import (
    DAY_MS,
    DEFAULT_LOCATIONS,
    SimulationSettings,
    as_locations,
)
from channelflow.simulator.shopping import (
    CART_RATE,
    CHECKOUT_RATE,
    ORDER_RATE,
    online_session,
    visit_store,
)
from channelflow.simulator.world import TruthSink, World


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson count (normal approximation above a mean of 50)."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _customer_record(customer: Customer, purchases_per_day: float) -> dict[str, Any]:
    return {
        "record": "customer",
        "customer_key": customer.key,
        "segment": customer.segment,
        "customer_id": customer.customer_id,
        "loyalty_id": customer.loyalty_id,
        "home_store_id": customer.home_store.id,
        "joined_at": customer.joined_ms,
        "churn_at": customer.churn_ms,
        "purchases_per_day": round(purchases_per_day, 5),
    }


class _Population:
    """The active customers; newcomers replace leavers so the population stays near its size."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.active: list[Customer] = []
        self._joined = 0

    def join(self, joined_ms: int, *, initial: bool) -> Customer:
        world = self.world
        self._joined += 1
        customer = new_customer(world.rng, self._joined, world.stores, joined_ms, world.settings.mean_lifetime_days)
        world.truth(_customer_record(customer, _expected_purchases(customer)))
        sign_up(world, customer, initial_load_time(world, joined_ms) if initial else joined_ms, initial=initial)
        self.active.append(customer)
        return customer

    def arrivals(self, day_start: int) -> None:
        settings = self.world.settings
        for _ in range(poisson(self.world.rng, settings.customers / settings.mean_lifetime_days)):
            self.join(day_start + self.world.rng.randrange(DAY_MS), initial=False)

    def retire(self, before_ms: int) -> None:
        staying: list[Customer] = []
        for customer in self.active:
            if customer.churn_ms < before_ms:
                maybe_erase(self.world, customer)
            else:
                staying.append(customer)
        self.active = staying


def _expected_purchases(customer: Customer) -> float:
    return customer.store_visits_per_day + customer.online_sessions_per_day * CART_RATE * CHECKOUT_RATE * ORDER_RATE


def _activities(draw: float, quiet_chance: float, mean: float) -> int:
    """The Poisson count whose cumulative probability first exceeds ``draw`` (inversion)."""
    count, chance, cumulative = 0, quiet_chance, quiet_chance
    while draw >= cumulative and chance > 0:
        count += 1
        chance *= mean / count
        cumulative += chance
    return count


def _customer_day(world: World, customer: Customer, day_start: int) -> None:
    """The customer's day: a Poisson number of activities, each a store visit, a session or a CRM change.

    One uniform draw settles the common quiet day, which keeps a large population cheap.
    """
    rng = world.rng
    draw = rng.random()
    if draw < customer.quiet_chance:
        return
    for _ in range(_activities(draw, customer.quiet_chance, customer.activity_per_day)):
        pick = rng.random() * customer.activity_per_day - customer.store_visits_per_day
        if pick < 0:
            visit_store(world, customer, day_start)
        elif pick < customer.online_sessions_per_day:
            ts = online_time(rng, customer.timezone, day_start)
            if customer.joined_ms <= ts < customer.churn_ms:
                online_session(world, customer, ts)
        elif pick < customer.online_sessions_per_day + CONSENT_CHANGES_PER_DAY:
            change_consent(world, customer, day_start)
        else:
            update_profile(world, customer, day_start)


def _anomalies(world: World, day: int) -> None:
    plan = world.anomalies.for_day(day)
    world.anomalies.forget_before(day)
    world.price_errors = [a for a in plan if a.kind == "pricing_error"]
    for anomaly in plan:
        injected = bot_traffic(world, anomaly) if anomaly.kind == "bot_traffic" else 0
        world.truth(truth_record(anomaly, world.catalogue, injected))


def _header(world: World) -> dict[str, Any]:
    settings = world.settings
    return {
        "record": "simulation",
        "format": 1,
        "seed": settings.seed,
        "customers": settings.customers,
        "start": settings.start_ms,
        "end": settings.end_ms,
        "anomalies": settings.anomalies,
        "anomalies_per_day": settings.anomalies_per_day,
        "mean_lifetime_days": settings.mean_lifetime_days,
        "skus": [{"sku": sku, "price": cents / 100} for sku, cents in zip(world.catalogue.skus, world.catalogue.price_cents, strict=True)],
        "locations": [loc.id for loc in world.locations],
    }


def _run(world: World) -> Iterator[dict[str, Any]]:
    settings = world.settings
    end_ms = settings.end_ms
    world.truth(_header(world))
    opening_stock(world, settings.start_ms)
    population = _Population(world)
    for _ in range(settings.customers):
        population.join(settings.start_ms, initial=True)
    day = 0
    while True:
        day_start = world.day_start(day)
        day_end = day_start + DAY_MS
        _anomalies(world, day)
        stock_day(world, day, day_start)
        population.arrivals(day_start)
        for customer in population.active:
            _customer_day(world, customer, day_start)
        population.retire(day_end)
        if end_ms is not None and day_end >= end_ms:
            yield from world.pop_before(end_ms)
            return
        yield from world.pop_before(day_end)
        day += 1


def simulate(
    settings: SimulationSettings | None = None,
    locations: Iterable[Any] | None = None,
    truth: TruthSink | None = None,
) -> Iterator[dict[str, Any]]:
    """Contract events of a simulated retailer, in nondecreasing ``ts`` (epoch ms) order.

    ``locations`` are dicts or objects with ``id``, ``type``, ``timezone``,
    ``opens``, ``closes`` (default :data:`DEFAULT_LOCATIONS`). ``truth``
    receives the ground-truth records (see ``docs/simulator.md``). Lazy and
    bounded in memory: a stream without end (``days=None``) is fine.

    >>> from operators.contract.events import Event, topic_for_type, validate
    >>> events = list(simulate(SimulationSettings(seed=3, customers=40, days=1)))
    >>> all(isinstance(validate(e, topic_for_type(e["type"])), Event) for e in events)
    True
    >>> all(a["ts"] <= b["ts"] for a, b in zip(events, events[1:]))
    True
    >>> events == list(simulate(SimulationSettings(seed=3, customers=40, days=1)))
    True
    """
    world = World(settings or SimulationSettings(), as_locations(locations or DEFAULT_LOCATIONS), truth)
    return _run(world)
