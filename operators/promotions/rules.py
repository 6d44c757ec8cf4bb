"""The rules file's types: rules, offers and delivery policy, as the promotions domain reads them.

:mod:`operators.promotions.rules_file` builds them from the marketer's file
(``config/promotions.toml``); ``docs/promotions.md`` documents every key. A
rule's ``params`` is the params dataclass of its trigger (``operators.promotions.triggers``).

>>> Offer("percent_off", 10).record(("MUG",))
{'kind': 'percent_off', 'value': 10, 'skus': ['MUG']}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

from operators.contract.money import from_millis
from operators.promotions.inputs import CHANNELS

__all__ = [
    "OFFER_KINDS",
    "PROMOTION_CHANNELS",
    "Cap",
    "Holdout",
    "Offer",
    "PromotionPolicy",
    "PromotionSettings",
    "QuietHours",
    "Rule",
]

#: ``till``: shown at the till when the customer's loyalty card or account is scanned.
PROMOTION_CHANNELS = (*CHANNELS, "till")
OFFER_KINDS = ("percent_off", "amount_off", "free_shipping", "message")


# -- rules and policy -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    """What the customer is offered.

    ``value`` is a percentage for ``percent_off``, milli-units for
    ``amount_off``, None otherwise; ``skus`` empty means the trigger's SKUs
    (cart, viewed or restocked SKUs) or, for triggers without SKUs, everything.

    >>> Offer("amount_off", 5_000).record(("MUG",))
    {'kind': 'amount_off', 'value': 5.0, 'skus': ['MUG']}
    >>> Offer("free_shipping").record(())
    {'kind': 'free_shipping'}
    """

    kind: str
    value: int | float | None = None
    skus: tuple[str, ...] = ()

    def record(self, trigger_skus: tuple[str, ...]) -> dict[str, Any]:
        """The ``offer`` field of a promotion record."""
        offer: dict[str, Any] = {"kind": self.kind}
        if self.value is not None:
            offer["value"] = from_millis(int(self.value)) if self.kind == "amount_off" else self.value
        skus = self.skus or trigger_skus
        if skus:
            offer["skus"] = list(skus)
        return offer


@dataclass(frozen=True, slots=True)
class Rule:
    """One promotion rule: when it fires (``trigger``, ``params``), what and where it sends.

    ``priority``: lower wins when several rules fire for a customer at once.
    ``daily_budget`` None is unlimited.
    """

    name: str
    trigger: str
    enabled: bool
    channel: str
    priority: int
    reeligibility_ms: int
    daily_budget: int | None
    expiry_ms: int
    offer: Offer
    params: Any  # the params dataclass of the rule's trigger


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``count`` promotions per customer and channel in any ``window_ms``."""

    count: int
    window_ms: int


@dataclass(frozen=True, slots=True)
class QuietHours:
    """No promotion on ``channels`` from local ``start`` to ``end`` (wraps midnight if end < start)."""

    start: time
    end: time
    default_timezone: str
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Holdout:
    """``percent`` of customers (by hash of key and ``salt``) are the control group."""

    percent: float
    salt: str


@dataclass(frozen=True)
class PromotionPolicy:
    """Delivery policy shared by every rule."""

    unknown_consent: bool
    frequency_caps: Mapping[str, tuple[Cap, ...]]
    quiet_hours: QuietHours
    holdout: Holdout
    attribution_window_ms: int


@dataclass(frozen=True)
class PromotionSettings:
    """The validated rules file."""

    policy: PromotionPolicy
    rules: tuple[Rule, ...]
    source: Path | None = None
    # Lookups the promotions stage makes per event, indexed once.
    _by_name: Mapping[str, Rule] = field(init=False, repr=False, compare=False)
    _by_trigger: Mapping[str, tuple[Rule, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_trigger: dict[str, tuple[Rule, ...]] = {}
        for rule in self.rules:
            if rule.enabled:
                by_trigger[rule.trigger] = (*by_trigger.get(rule.trigger, ()), rule)
        object.__setattr__(self, "_by_name", {rule.name: rule for rule in self.rules})
        object.__setattr__(self, "_by_trigger", by_trigger)

    def rule(self, name: str) -> Rule | None:
        """The rule called ``name``, enabled or not (None: not configured)."""
        return self._by_name.get(name)

    def enabled(self, trigger: str) -> tuple[Rule, ...]:
        """The enabled rules of ``trigger``, in file order."""
        return self._by_trigger.get(trigger, ())


