"""Bot traffic: a burst of page and product views from a few anonymous devices."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from channelflow.simulator.anomalies import Anomaly

if TYPE_CHECKING:
    from channelflow.simulator.world import World

REQUESTS_PER_SESSION = 25


def bot_requests_per_second(customers: int) -> float:
    """The burst's total request rate: many times the whole population's normal browsing."""
    return max(0.05, customers * 5e-5)


def bot_traffic(world: World, anomaly: Anomaly) -> int:
    """Queue the burst's events; return how many. Bots never log in, cart or buy."""
    rng = random.Random(f"{world.settings.seed}/bots/{anomaly.start}")
    skus = world.catalogue.skus
    per_device = bot_requests_per_second(world.settings.customers) / len(anomaly.devices)
    count = 0
    for device in anomaly.devices:
        ts = anomaly.start + rng.randrange(5000)
        requests = 0
        session_id = ""
        while ts < anomaly.end:
            if requests % REQUESTS_PER_SESSION == 0:
                session_id = f"{rng.getrandbits(64):016x}"
            event = {
                "event_id": world.event_id(), "type": "product_view", "ts": ts, "channel": "web",
                "session_id": session_id, "anonymous_id": device, "customer_id": None,
            }  # fmt: skip
            if rng.random() < 0.2:
                event["type"] = "page_view"
                event["url"] = f"/c/{rng.choice(world.catalogue.category)}?page={rng.randint(1, 40)}"
            else:
                event["sku"] = skus[rng.randrange(len(skus))]
            world.push(ts, event)
            requests += 1
            ts += 1 + int(rng.expovariate(per_device) * 1000)
        count += requests
    return count
