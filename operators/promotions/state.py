"""The per-customer state of a promotions shard, shared by the domain and its triggers.

:class:`Customer` is everything the domain holds about one customer (erasure
drops it whole); :class:`Armed` is the payload of a rule timer, the trigger
instance it will fire. Kept apart from ``domain.py`` so that trigger modules
can use them without importing the domain (which imports the triggers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operators.promotions.attribution import OpenPromotion
from operators.promotions.inputs import CustomerFacts
from operators.promotions.policy import Candidate, ContactHistory

__all__ = ["Armed", "Customer", "Pending"]


@dataclass(frozen=True, slots=True)
class Armed:
    """The payload of a rule timer: the trigger instance it will fire."""

    rule: str
    customer_key: str
    cause_event_id: str
    skus: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Pending:
    """A winner waiting for the customer's quiet hours to end at ``release``."""

    candidate: Candidate
    release: int


@dataclass(slots=True)
class Customer:
    """Everything the domain holds about one customer (erasure drops it whole)."""

    facts: CustomerFacts
    history: ContactHistory = field(default_factory=ContactHistory)
    views: dict[str, list[int]] = field(default_factory=dict)  # browse_abandoned: sku -> recent view times
    candidates: list[Candidate] = field(default_factory=list)  # waiting for this moment's decision
    pending: list[Pending] = field(default_factory=list)  # waiting for quiet hours to end
    open: list[OpenPromotion] = field(default_factory=list)  # can still convert
    armed: dict[str, None] = field(default_factory=dict)  # rules with a pending trigger timer
    churn_high: dict[str, None] = field(default_factory=dict)  # churn_risk rules whose threshold is reached
    waitlists: dict[tuple[str, str], None] = field(default_factory=dict)  # back_in_stock: (rule, sku)
