"""The protocol of a promotion trigger, and what a trigger may use of its shard.

A trigger is one kind of "when" of the rules file (``trigger = "..."``): it
names its parameter keys and how they parse, and reacts to the items and
timers of a promotions shard through hooks. A hook receives every enabled
rule of the trigger (in file order; maybe none: state may still need tending)
and acts through a :class:`Context`: it proposes candidates for a decision,
arms or disarms a rule timer (whose firing comes back to :meth:`Trigger.on_fire`),
or asks for a waitlist place. Timers stay with the domain of the customer's
shard (``operators.promotions.domain``); decisions, delivery policy, budgets,
waitlists and attribution with the gate (``operators.promotions.gate``), which
sees every shard's candidates.

Every hook of :class:`Trigger` has a default that does nothing, so a trigger
class subclasses it and overrides only the hooks it needs:

>>> from dataclasses import dataclass
>>> from operators.settings import parse_int
>>> @dataclass(frozen=True, slots=True)
... class Anniversary:
...     years: int
>>> class AnniversaryTrigger(Trigger):
...     name, params, keys = "anniversary", Anniversary, {"years": parse_int(1, 100)}
>>> trigger = AnniversaryTrigger()
>>> trigger.stock_watch(()), trigger.timer_prefix
(0, '')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from operators.promotions.inputs import Activity, ChurnScore, CustomerFacts, StockLevel
from operators.promotions.policy import Candidate
from operators.promotions.rules import PromotionSettings, Rule
from operators.promotions.state import Armed, Customer
from operators.records import fast_init
from operators.time.timers import Timer, TimerQueue

__all__ = ["ActivityChange", "Context", "Parser", "Trigger", "human_duration"]

#: Parses one rule key: ``(dotted key, raw value) -> value``, or raises ``ConfigError`` naming the key.
Parser = Callable[[str, Any], Any]


def human_duration(ms: int) -> str:
    """A duration as the rules file would write it, for reasons.

    >>> human_duration(3_600_000), human_duration(90_000), human_duration(1_500)
    ('1h', '90s', '1500ms')
    """
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@fast_init
@dataclass(frozen=True, slots=True)
class ActivityChange:
    """One :class:`Activity` as the domain has just applied it (facts updated, purchase attributed)."""

    item: Activity
    cust: Customer
    previous: CustomerFacts | None  # the facts before it; None: the customer was not held
    purchased: bool  # the event is a purchase (an order or a till sale)
    cart_changed: bool

    @property
    def sku(self) -> str | None:
        """The SKU of a ``product_view`` or ``add_to_cart`` event (None for other events)."""
        event = self.item.event
        sku = event.body.get("sku") if event.type in ("product_view", "add_to_cart") else None
        return sku if isinstance(sku, str) else None


class Context(Protocol):
    """What a trigger may use of its promotions shard while a hook runs (the domain provides it)."""

    @property
    def settings(self) -> PromotionSettings: ...

    @property
    def timers(self) -> TimerQueue[Any]:
        """The shard's timers, for a trigger's own timers (keys starting with its ``timer_prefix``)."""
        ...

    def customer(self, key: str) -> Customer:
        """A customer the shard holds."""
        ...

    def level(self, sku: str) -> int | None:
        """The SKU's network availability if at or below a trigger's :meth:`~Trigger.stock_watch` (else None)."""
        ...

    def in_cart(self, sku: str) -> Iterable[str]:
        """The customers of this shard with ``sku`` in their cart."""
        ...

    def join_waitlist(self, cust: Customer, rule: Rule, sku: str, now: int, cause_event_id: str) -> None:
        """Ask the gate for a place on the rule's waitlist of ``sku`` (a global bound, decided there)."""
        ...

    def propose(self, cust: Customer, candidate: Candidate, now: int) -> None:
        """Add a candidate to the customer's decision at ``now``."""
        ...

    def arm(self, cust: Customer, rule: Rule, deadline: int, armed: Armed) -> None:
        """Set the rule's timer for this customer (one per rule and customer: re-arming moves it)."""
        ...

    def disarm(self, cust: Customer, rule: str, *, count: bool = True) -> None:
        """Cancel the rule's timer for this customer, if set; if ``count``, a ``cancelled`` decision (the gate
        counts and records it)."""
        ...


class Trigger(Protocol):
    """One trigger: its name and rule keys, and hooks through which it reacts.

    ``name`` is the ``trigger = "..."`` value; ``params`` the dataclass of its
    parameters, built from ``keys`` (its own rule keys with their parsers, in
    the order of the dataclass fields). ``rules`` are the trigger's enabled rules.
    """

    name: str
    params: type[Any]
    keys: Mapping[str, Parser]
    #: Prefix of the trigger's own timer keys, routed to :meth:`on_timer` ("": none). Not ``r:``,
    #: ``q:``, ``w:`` or ``~d:`` (the domain's and the gate's).
    timer_prefix: str = ""

    def stock_watch(self, rules: tuple[Rule, ...]) -> int:
        """The highest availability at which the shard must remember a SKU's level (see ``Context.level``)."""
        return 0

    def on_activity(self, ctx: Context, rules: tuple[Rule, ...], change: ActivityChange) -> None:
        """A customer's activity (an event with their profile after it)."""
        return

    def on_stock_level(self, ctx: Context, rules: tuple[Rule, ...], item: StockLevel,
                       previous: int | None) -> None:
        """A SKU's network availability changed (``previous``: the level remembered before, if any)."""
        return

    def on_churn_score(self, ctx: Context, rules: tuple[Rule, ...], cust: Customer, item: ChurnScore) -> None:
        """A customer's new churn score."""
        return

    def on_fire(self, ctx: Context, rule: Rule, cust: Customer, armed: Armed, now: int) -> Armed | None:
        """A rule timer of this trigger is due (its rule still enabled): what to propose; None withdraws it
        (counted as ``cancelled``)."""
        return armed

    def on_timer(self, ctx: Context, timer: Timer[Any]) -> None:
        """One of the trigger's own timers (key starting with ``timer_prefix``) is due."""
        return

    def on_erasure(self, ctx: Context, cust: Customer) -> None:
        """The customer is being erased: drop what the trigger holds about them outside ``cust``."""
        return
