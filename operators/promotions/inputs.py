"""What the promotions domain receives, per canonical customer, from the stages before it.

Identity stitching and the customer profile (``customers`` stage) resolve every
event to one canonical customer and publish an :class:`Activity` carrying the
profile right after that event; the churn stage publishes :class:`ChurnScore`;
inventory publishes :class:`StockLevel` (to every promotions shard); erasure
publishes :class:`Erasure`. Items reach a promotions shard ordered by ``(ts, id)``.
The types belong to their producers; this module names what promotions read.
"""

from __future__ import annotations

from operators.churn.scores import ChurnScore
from operators.customers.records import CHANNELS, LOYALTY_PREFIX, Activity, CustomerFacts, Erasure
from operators.inventory.domain import StockLevel

__all__ = [
    "CHANNELS",
    "LOYALTY_PREFIX",
    "PURCHASE_TYPES",
    "Activity",
    "ChurnScore",
    "CustomerFacts",
    "Erasure",
    "PromotionInput",
    "StockLevel",
]

#: Event types that are a purchase (a conversion, a cart-abandonment cancellation).
PURCHASE_TYPES = frozenset({"order_placed", "sale"})

PromotionInput = Activity | ChurnScore | StockLevel | Erasure
