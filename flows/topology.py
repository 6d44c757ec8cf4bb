"""The edges of the flow, in one place: which stage reads which stream.

A stage's domain publishes named streams and never names its readers (the
stream names are declared by the producing domains); each stage here lists
what it reads. ``sequence`` publishes the de-duplicated input events
(``EVENTS``). A stage's upstream stages, whose watermarks it waits for, are the
stages that publish what it reads; a stream nobody reads is dropped where it
is produced.

::

    sequence ──events──┬─ inventory ──stock_levels─────────────────────────┐
                       ├─ identity ──customer_events── customers           │
                       │     │  └──customer_snapshots──┐   │               │
                       │     │                          churn ◄─snapshots──┤
                       │     └──activity · erasures──┐    └──churn_scores──┤
                       │          customers ─────────┴───activity · erasures┴─ promotions
                       │                                                          │ promotion_candidates
                       │                           inventory ──stock_levels── promotion_gate (1 shard)
                       └─ anomaly
"""

from __future__ import annotations

from operators.churn.scores import CHURN_SCORES
from operators.customers.signals import (
    CUSTOMER_ACTIVITY,
    CUSTOMER_ERASURES,
    CUSTOMER_EVENTS,
    CUSTOMER_SNAPSHOTS,
)
from operators.inventory.domain import STOCK_LEVELS
from operators.promotions.gate import PROMOTION_CANDIDATES

#: The first stage and the stream it publishes: validated, de-duplicated events.
SEQUENCE, EVENTS = "sequence", "events"
#: The domain stages, in the order their steps are added (producers before readers).
INVENTORY, IDENTITY, CUSTOMERS, CHURN, ANOMALY, PROMOTIONS, PROMOTION_GATE = (
    "inventory", "identity", "customers", "churn", "anomaly", "promotions", "promotion_gate",
)  # fmt: skip

#: What each stage's domain publishes.
PUBLISHES: dict[str, tuple[str, ...]] = {
    SEQUENCE: (EVENTS,),
    INVENTORY: (STOCK_LEVELS,),
    IDENTITY: (CUSTOMER_EVENTS, CUSTOMER_SNAPSHOTS, CUSTOMER_ACTIVITY, CUSTOMER_ERASURES),
    CUSTOMERS: (CUSTOMER_SNAPSHOTS, CUSTOMER_ACTIVITY, CUSTOMER_ERASURES),
    CHURN: (CHURN_SCORES,),
    ANOMALY: (),
    PROMOTIONS: (PROMOTION_CANDIDATES,),
    PROMOTION_GATE: (),
}

#: What each stage reads.
READS: dict[str, tuple[str, ...]] = {
    INVENTORY: (EVENTS,),
    IDENTITY: (EVENTS,),
    CUSTOMERS: (CUSTOMER_EVENTS,),
    CHURN: (CUSTOMER_SNAPSHOTS,),
    ANOMALY: (EVENTS,),
    PROMOTIONS: (STOCK_LEVELS, CUSTOMER_ACTIVITY, CUSTOMER_ERASURES, CHURN_SCORES),
    # One shard: daily budgets and waitlists hold over all customers (docs/promotions.md).
    PROMOTION_GATE: (PROMOTION_CANDIDATES, STOCK_LEVELS),
}
