"""What the customer stages publish about a customer, for any stage that listens.

After each event resolved to a customer, the identity or customers stage
publishes an :class:`Activity` carrying the customer's :class:`CustomerFacts`;
an erased customer is published as an :class:`Erasure`.

>>> from operators.contract.events import Event
>>> facts = CustomerFacts.unknown("loyalty:L9")
>>> facts.is_account, facts.marketing_consent
(False, None)
>>> act = Activity(facts, Event("e1", "product_view", "clickstream", 5, {"sku": "MUG"}))
>>> act.ts, act.cause_event_id, act.customer_key
(5, 'e1', 'loyalty:L9')
"""

from __future__ import annotations

from dataclasses import dataclass

from operators.contract.events import LOYALTY_PREFIX, Event
from operators.records import fast_init
from operators.state.pickling import pickled_as_call

#: Messaging channels a customer can consent to; ``till`` is the fourth promotion channel.
CHANNELS = ("email", "push", "sms")

@pickled_as_call
@fast_init
@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """A customer's profile as promotions see it.

    ``marketing_consent`` None is unknown; ``consent_channels`` empty means
    every channel; money is integer milli-units; ``cart`` holds
    ``(sku, qty, unit_price_millis)`` lines.
    """

    customer_key: str
    is_account: bool
    marketing_consent: bool | None = None
    consent_channels: tuple[str, ...] = ()
    timezone: str | None = None
    birthday: str | None = None
    home_store: str | None = None
    orders: int = 0
    lifetime_value_millis: int = 0
    last_order_ts: int | None = None
    cart: tuple[tuple[str, int, int], ...] = ()

    @classmethod
    def unknown(cls, customer_key: str) -> CustomerFacts:
        """Facts of a customer known only by key (e.g. a churn score before any activity)."""
        return cls(customer_key, is_account=not customer_key.startswith(LOYALTY_PREFIX))

    def cart_skus(self) -> tuple[str, ...]:
        """SKUs in the cart, in cart order, each once."""
        return tuple(dict.fromkeys(sku for sku, _, _ in self.cart))


@pickled_as_call
@fast_init
@dataclass(frozen=True, slots=True)
class Activity:
    """The customer's profile right after applying ``event`` (an event resolved to them)."""

    facts: CustomerFacts
    event: Event

    @property
    def customer_key(self) -> str:
        return self.facts.customer_key

    @property
    def ts(self) -> int:
        return self.event.ts

    @property
    def cause_event_id(self) -> str:
        return self.event.event_id


@pickled_as_call
@dataclass(frozen=True, slots=True)
class Erasure:
    """Forget this customer entirely."""

    customer_key: str
    ts: int
    cause_event_id: str
