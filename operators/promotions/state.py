"""The per-customer state of the promotions stages, shared by the domain, the gate and the triggers.

:class:`Customer` is what a customer shard (``operators.promotions.domain``)
holds about one customer for the triggers; :class:`Recipient` is what the
gate (``operators.promotions.gate``) holds about a customer it has decided
for: contact history, candidates, quiet-hours delays, open promotions and
waitlist places. Erasure drops both whole. :class:`Armed` is the payload of a
rule timer, the trigger instance it will fire. Kept apart from ``domain.py``
so that trigger modules can use them without importing the domain (which
imports the triggers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operators.promotions.attribution import OpenPromotion
from operators.promotions.inputs import CustomerFacts
from operators.promotions.policy import Candidate, ContactHistory
from operators.state.pickling import pickled_as_call

__all__ = ["Armed", "Customer", "Pending", "Recipient"]


@pickled_as_call
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


@pickled_as_call
@dataclass(slots=True)
class Customer:
    """What a customer shard holds about one customer (erasure drops it whole).

    ``told`` is the policy view of the facts last sent to the gate (None: the
    gate has heard nothing of this customer yet).
    """

    facts: CustomerFacts
    views: dict[str, list[int]] = field(default_factory=dict)  # browse_abandoned: sku -> recent view times
    armed: dict[str, str] = field(default_factory=dict)  # rule with a pending trigger timer -> its cause event
    churn_high: dict[str, None] = field(default_factory=dict)  # churn_risk rules whose threshold is reached
    told: CustomerFacts | None = None


@pickled_as_call
@dataclass(slots=True)
class Recipient:
    """What the gate holds about one customer (erasure drops it whole)."""

    facts: CustomerFacts  # the policy view: account, consent, time zone
    history: ContactHistory = field(default_factory=ContactHistory)
    candidates: list[Candidate] = field(default_factory=list)  # waiting for this moment's decision
    pending: list[Pending] = field(default_factory=list)  # waiting for quiet hours to end
    open: list[OpenPromotion] = field(default_factory=list)  # can still convert
    waitlists: dict[tuple[str, str], None] = field(default_factory=dict)  # back_in_stock places: (rule, sku)
