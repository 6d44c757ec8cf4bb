"""Customers: who they are, how often they shop, where, and when they quietly leave."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from channelflow.simulator.settings import Location
from operators.time.units import DAY_MS

#: Shares of the three kinds of customer. Store-only shoppers (a loyalty card,
#: never linked to an online account) are most of a retailer's customers.
SEGMENT_SHARES = (("store_only", 0.55), ("omnichannel", 0.25), ("online_only", 0.20))
STORE_VISITS_PER_DAY = 0.11
ONLINE_SESSIONS_PER_DAY = 0.22
RATE_SHAPE = 0.9
CONSENT_CHANGES_PER_DAY = 0.002
PROFILE_UPDATES_PER_DAY = 0.003
BIRTHDAYS_FROM = date(1950, 1, 1)


@dataclass(slots=True)
class Device:
    """A browser cookie or an app install; ``logged_in`` once a login linked it to the account."""

    anonymous_id: str
    channel: str
    logged_in: bool = False


@dataclass(slots=True)
class Customer:
    """One person. ``key`` is the id the engine knows them by: account id, else loyalty card."""

    key: str
    segment: str
    customer_id: str | None
    loyalty_id: str | None
    home_store: Location
    store_visits_per_day: float
    online_sessions_per_day: float
    app_share: float
    joined_ms: int
    churn_ms: int
    marketing_consent: bool
    birthday: str
    activity_per_day: float = 0.0
    quiet_chance: float = 1.0
    link_scheduled: bool = False
    devices: list[Device] = field(default_factory=list)

    def __post_init__(self) -> None:
        crm_changes = CONSENT_CHANGES_PER_DAY + PROFILE_UPDATES_PER_DAY if self.customer_id else 0.0
        self.activity_per_day = self.store_visits_per_day + self.online_sessions_per_day + crm_changes
        self.quiet_chance = math.exp(-self.activity_per_day)

    @property
    def timezone(self) -> str:
        return self.home_store.timezone


def _segment(rng: random.Random) -> str:
    draw = rng.random()
    for name, share in SEGMENT_SHARES:
        if draw < share:
            return name
        draw -= share
    return SEGMENT_SHARES[-1][0]


def _rate(rng: random.Random, mean: float) -> float:
    """A gamma-distributed rate: most customers shop rarely, a few very often."""
    return rng.gammavariate(RATE_SHAPE, mean / RATE_SHAPE)


def _birthday(rng: random.Random) -> str:
    return (BIRTHDAYS_FROM + timedelta(days=rng.randrange(56 * 365))).isoformat()


def new_customer(
    rng: random.Random,
    number: int,
    stores: tuple[Location, ...],
    joined_ms: int,
    mean_lifetime_days: float,
) -> Customer:
    """The ``number``-th customer, joining at ``joined_ms`` with a latent churn time."""
    segment = _segment(rng)
    online = segment != "store_only"
    in_store = segment != "online_only"
    store_rate = _rate(rng, STORE_VISITS_PER_DAY) if in_store else 0.0
    online_rate = _rate(rng, ONLINE_SESSIONS_PER_DAY) if online else 0.0
    if segment == "omnichannel":
        store_rate *= 0.6
        online_rate *= 0.6
    customer_id = f"C{number:07d}" if online else None
    loyalty_id = f"L{number:09d}" if in_store else None
    lifetime_ms = int(rng.expovariate(1.0 / mean_lifetime_days) * DAY_MS)
    return Customer(
        key=customer_id or str(loyalty_id),
        segment=segment,
        customer_id=customer_id,
        loyalty_id=loyalty_id,
        home_store=rng.choice(stores),
        store_visits_per_day=store_rate,
        online_sessions_per_day=online_rate,
        app_share=rng.uniform(0.1, 0.7),
        joined_ms=joined_ms,
        churn_ms=joined_ms + max(lifetime_ms, 1),
        marketing_consent=rng.random() < 0.65,
        birthday=_birthday(rng),
    )
