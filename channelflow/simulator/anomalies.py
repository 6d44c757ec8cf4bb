"""Injected anomalies: store outages, pricing errors, bot traffic and conversion collapses, planned per day.

A day's plan depends only on the seed, the day number, the stores and the
catalogue, so any part of the simulator can ask whether a store is down at a
given time, even days ahead, without disturbing the main random stream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from channelflow.simulator.catalogue import Catalogue
from channelflow.simulator.clock import opening_windows
from channelflow.simulator.settings import Location, SimulationSettings
from operators.time.units import DAY_MS, MINUTE_MS


@dataclass(frozen=True)
class Anomaly:
    """One injected anomaly over ``start``..``end`` (epoch ms, end exclusive)."""

    kind: str
    start: int
    end: int
    store_id: str | None = None
    sku: int | None = None
    error_price_cents: int | None = None
    devices: tuple[str, ...] = ()
    channel: str | None = None


def _count(rng: random.Random, rate: float) -> int:
    whole = int(rate)
    return whole + (rng.random() < rate - whole)


def _outage(rng: random.Random, stores: tuple[Location, ...], day_start: int) -> Anomaly | None:
    store = rng.choice(stores)
    windows = opening_windows(store, day_start, day_start + DAY_MS)
    if not windows:
        return None
    lo, hi, _, _ = max(windows, key=lambda w: w[1] - w[0])
    duration = rng.randint(60, 150) * MINUTE_MS
    latest = hi - duration - 30 * MINUTE_MS
    if latest <= lo:
        return None
    start = rng.randrange(lo, latest)
    return Anomaly("store_outage", start, start + duration, store_id=store.id)


def _pricing_error(rng: random.Random, catalogue: Catalogue, day_start: int) -> Anomaly:
    sku = catalogue.by_popularity[rng.randrange(min(20, len(catalogue.skus)))]
    duration = rng.randint(60, 240) * MINUTE_MS
    start = rng.randrange(day_start, day_start + DAY_MS - duration)
    fraction = rng.choice((10, 20, 25))
    price = max(1, catalogue.price_cents[sku] * fraction // 100)
    return Anomaly("pricing_error", start, start + duration, sku=sku, error_price_cents=price)


def _bot_traffic(rng: random.Random, day_start: int) -> Anomaly:
    duration = rng.randint(10, 30) * MINUTE_MS
    start = rng.randrange(day_start, day_start + DAY_MS - duration)
    devices = tuple(f"{rng.getrandbits(64):016x}" for _ in range(rng.randint(2, 5)))
    return Anomaly("bot_traffic", start, start + duration, devices=devices)


#: A conversion collapse starts in these UTC hours: a failed release or payment change goes out in the
#: retailer's working day, when its checkouts are busy.
COLLAPSE_HOURS = (9, 19)


def _conversion_collapse(rng: random.Random, day_start: int) -> Anomaly:
    channel = rng.choice(("web", "app"))
    duration = rng.randint(45, 120) * MINUTE_MS
    first, last = COLLAPSE_HOURS
    start = day_start + rng.randrange(first * 60 * MINUTE_MS, last * 60 * MINUTE_MS)
    return Anomaly("conversion_collapse", start, start + duration, channel=channel)


class AnomalyPlanner:
    """The anomalies of each simulated day, computed on demand and kept for a few days."""

    def __init__(self, settings: SimulationSettings, stores: tuple[Location, ...], catalogue: Catalogue) -> None:
        self._settings = settings
        self._stores = stores
        self._catalogue = catalogue
        self._plans: dict[int, tuple[Anomaly, ...]] = {}

    def for_day(self, day: int) -> tuple[Anomaly, ...]:
        """The anomalies that start on simulated day ``day`` (0 = the first)."""
        plan = self._plans.get(day)
        if plan is None:
            plan = self._plan(day)
            self._plans[day] = plan
        return plan

    def forget_before(self, day: int) -> None:
        for old in [d for d in self._plans if d < day]:
            del self._plans[old]

    def store_down(self, store_id: str, ts: int) -> Anomaly | None:
        """The outage that silences ``store_id``'s tills at ``ts``, if any."""
        day = (ts - self._settings.start_ms) // DAY_MS
        for anomaly in self.for_day(day):
            if anomaly.store_id == store_id and anomaly.start <= ts < anomaly.end:
                return anomaly
        return None

    def checkout_down(self, channel: str, ts: int) -> Anomaly | None:
        """The conversion collapse that makes ``channel``'s checkouts fail at ``ts``, if any."""
        day = (ts - self._settings.start_ms) // DAY_MS
        for anomaly in self.for_day(day):
            if anomaly.channel == channel and anomaly.start <= ts < anomaly.end:
                return anomaly
        return None

    def _plan(self, day: int) -> tuple[Anomaly, ...]:
        settings = self._settings
        if not settings.anomalies or day < 0:
            return ()
        rng = random.Random(f"{settings.seed}/anomalies/{day}")
        day_start = settings.start_ms + day * DAY_MS
        rate = settings.anomalies_per_day
        plan: list[Anomaly | None] = []
        plan += [_outage(rng, self._stores, day_start) for _ in range(_count(rng, rate))]
        plan += [_pricing_error(rng, self._catalogue, day_start) for _ in range(_count(rng, rate))]
        plan += [_bot_traffic(rng, day_start) for _ in range(_count(rng, rate))]
        plan += [_conversion_collapse(rng, day_start) for _ in range(_count(rng, rate))]  # last: earlier kinds keep their draws
        return tuple(a for a in plan if a is not None)


def truth_record(anomaly: Anomaly, catalogue: Catalogue, events: int) -> dict[str, Any]:
    """The ground-truth line of one anomaly; ``events`` counts the events it injected."""
    record: dict[str, Any] = {"record": "anomaly", "kind": anomaly.kind, "start": anomaly.start, "end": anomaly.end}
    if anomaly.kind == "store_outage":
        record["store_id"] = anomaly.store_id
        record["series"] = [f"orders:store:{anomaly.store_id}", f"revenue:store:{anomaly.store_id}"]
    elif anomaly.kind == "pricing_error":
        assert anomaly.sku is not None and anomaly.error_price_cents is not None
        record["sku"] = catalogue.skus[anomaly.sku]
        record["list_price"] = catalogue.price_cents[anomaly.sku] / 100
        record["error_price"] = anomaly.error_price_cents / 100
        record["series"] = ["revenue:web", "revenue:app", "revenue:store"]
    elif anomaly.kind == "conversion_collapse":
        channel = anomaly.channel
        record["channel"] = channel
        record["series"] = [f"checkout_conversion:{channel}", f"orders:{channel}", f"revenue:{channel}",
                            f"conversion:{channel}"]
    else:
        record["channel"] = "web"
        record["anonymous_ids"] = list(anomaly.devices)
        record["events"] = events
        record["series"] = ["sessions:web", "conversion:web"]
    return record
